"""Build the English training corpus from installed Debian documentation packages.

Reads the files that these packages install (see ../corpus.sh, which installs them):
  linux-doc (reStructuredText), python3.11-doc, debian-reference-en and
  debian-handbook (HTML), dict-gcide (dictionary), bible-kjv (King James Bible,
  printed by its `bible` program), fortunes, gnu-standards (plain text).
Each source file becomes one or more documents. Documents are assigned to the
train or held-out split by a hash of their name, so the split does not depend on
the order files are found in. Output: OUT/train.txt and OUT/heldout.txt, documents
separated by a line holding a single form feed character.

With --extra, OUT/heldout_extra.txt receives the evaluation-only documents of
extra_sources() (dict-foldoc, dict-jargon, dict-wn, dict-vera, dict-devil): text
that neither training nor the tokenizer sees, so that long evaluation haystacks
repeat less. train.txt and heldout.txt do not change with it.

Usage: python3 -m hsatrain.corpus OUTDIR [--heldout-percent 20] [--extra]
"""
import argparse
import gzip
import hashlib
import html.parser
import os
import re
import subprocess
import sys

SEP = "\n\f\n"


class _HTMLText(html.parser.HTMLParser):
    BLOCK = {"p", "div", "br", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6",
             "pre", "dt", "dd", "table", "section", "blockquote", "title"}
    SKIP = {"script", "style", "head", "nav"}

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.out = []
        self.skip = 0

    def handle_starttag(self, tag, attrs):
        if tag in self.SKIP:
            self.skip += 1
        elif tag in self.BLOCK:
            self.out.append("\n")

    def handle_endtag(self, tag):
        if tag in self.SKIP:
            self.skip = max(0, self.skip - 1)
        elif tag in self.BLOCK:
            self.out.append("\n")

    def handle_data(self, data):
        if not self.skip:
            self.out.append(data)


def html_to_text(raw):
    p = _HTMLText()
    p.feed(raw)
    return "".join(p.out)


def clean(text):
    text = text.replace("\r\n", "\n").replace("\t", "    ").replace("\f", "\n")
    text = text.replace("\u00a0", " ").replace("\u00b6", "")
    lines = [ln.rstrip() for ln in text.split("\n")]
    # collapse runs of blank lines and of whitespace inside prose lines
    out, blank = [], 0
    for ln in lines:
        if not ln.strip():
            blank += 1
            if blank <= 1:
                out.append("")
            continue
        blank = 0
        out.append(re.sub(r"(?<=\S) {2,}(?=\S)", " ", ln))
    return "\n".join(out).strip()


def mostly_english(text):
    """Reject binary junk, translations and other non-English documents."""
    ascii_chars = sum(1 for ch in text if " " <= ch <= "~" or ch == "\n")
    return ascii_chars >= 0.97 * len(text)


def read_text(path):
    op = gzip.open if path.endswith(".gz") else open
    with op(path, "rb") as f:
        return f.read().decode("utf-8", errors="replace")


def walk(root, suffixes):
    found = []
    for d, _, files in os.walk(root, followlinks=True):
        for fn in files:
            if fn.endswith(suffixes):
                found.append(os.path.join(d, fn))
    return sorted(found)


def split_long(name, text, limit=200000):
    """Split very long texts into documents of at most ~limit characters at blank lines."""
    if len(text) <= limit:
        return [(name, text)]
    docs, cur, n, part = [], [], 0, 0
    for para in text.split("\n\n"):
        cur.append(para)
        n += len(para) + 2
        if n >= limit:
            docs.append((f"{name}#{part}", "\n\n".join(cur)))
            cur, n, part = [], 0, part + 1
    if cur:
        docs.append((f"{name}#{part}", "\n\n".join(cur)))
    return docs


def sources():
    """Yield (name, text) for every document, in a fixed order."""
    for p in walk("/usr/share/doc/linux-doc/Documentation", (".rst", ".rst.gz", ".txt", ".txt.gz")):
        if "/translations/" not in p:
            yield p, read_text(p)
    for p in walk("/usr/share/doc/python3.11-doc/html", (".html",)):
        if "/_static/" in p or "genindex" in p or "/py-modindex" in p:
            continue
        yield p, html_to_text(read_text(p))
    for p in walk("/usr/share/debian-reference", (".en.html",)):
        yield p, html_to_text(read_text(p))
    for p in walk("/usr/share/doc/debian-handbook/html/en-US", (".html",)):
        yield p, html_to_text(read_text(p))
    for p in ("/usr/share/doc/gnu-standards/standards.text.gz",
              "/usr/share/doc/gnu-standards/maintain.text.gz"):
        if os.path.exists(p):
            yield p, read_text(p)
    fdir = "/usr/share/games/fortunes"
    if os.path.isdir(fdir):
        for fn in sorted(os.listdir(fdir)):
            p = os.path.join(fdir, fn)
            if "." in fn or not os.path.isfile(p):
                continue
            yield p, "\n\n".join(x.strip() for x in read_text(p).split("\n%\n"))
    gc = "/usr/share/dictd/gcide.dict.dz"
    if os.path.exists(gc):
        raw = read_text(gc)
        raw = re.sub(r"<[^>]{0,40}>", "", raw)
        yield gc, raw
    try:
        kjv = subprocess.run(["bible", "-f", "Gen1:1-Rev22:21"], capture_output=True,
                             text=True, timeout=600).stdout
        if kjv:
            yield "bible-kjv", kjv
    except (OSError, subprocess.TimeoutExpired):
        pass


EXTRA_DICTS = ["foldoc", "jargon", "wn", "vera", "devil"]


def extra_sources():
    """Evaluation-only documents: dictionaries of dictd packages, split at blank lines."""
    for name in EXTRA_DICTS:
        p = f"/usr/share/dictd/{name}.dict.dz"
        if os.path.exists(p):
            with gzip.open(p, "rb") as f:           # dictzip is gzip
                yield p, re.sub(r"<[^>]{0,40}>", "", f.read().decode("utf-8", errors="replace"))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("outdir")
    ap.add_argument("--heldout-percent", type=int, default=20)
    ap.add_argument("--extra", action="store_true", help="also write heldout_extra.txt")
    a = ap.parse_args()
    os.makedirs(a.outdir, exist_ok=True)
    outs = {s: open(os.path.join(a.outdir, s + ".txt"), "w", encoding="utf-8")
            for s in ("train", "heldout")}
    counts = {"train": [0, 0], "heldout": [0, 0]}
    for name, text in sources():
        for dname, dtext in split_long(name, clean(text)):
            if len(dtext) < 200 or not mostly_english(dtext):
                continue
            h = int(hashlib.sha256(dname.encode()).hexdigest()[:8], 16) % 100
            split = "heldout" if h < a.heldout_percent else "train"
            outs[split].write(dtext + SEP)
            counts[split][0] += 1
            counts[split][1] += len(dtext)
    if a.extra:
        with open(os.path.join(a.outdir, "heldout_extra.txt"), "w", encoding="utf-8") as f:
            counts["heldout_extra"] = [0, 0]
            for name, text in extra_sources():
                for dname, dtext in split_long(name, clean(text)):
                    if len(dtext) >= 200 and mostly_english(dtext):
                        f.write(dtext + SEP)
                        counts["heldout_extra"][0] += 1
                        counts["heldout_extra"][1] += len(dtext)
    for s, f in outs.items():
        f.close()
    for s in counts:
        print(f"corpus: {s}: {counts[s][0]} documents, {counts[s][1] / 1e6:.1f}M characters")


if __name__ == "__main__":
    sys.exit(main())
