"""Synonyms from Debian's WordNet (wordnet-base), for paraphrased training questions.

The training tasks that teach retrieval from the whole corpus (hsatrain.corpus_tasks) and the
varied fact wordings (hsatrain.wording) replace words by synonyms. WordNet is the lexical database;
this module extracts from its data files (/usr/share/wordnet/data.{noun,verb,adj,adv}) the synsets
of two or more single lowercase words, keeps only words that WordNet's sense counts mark as used
(a tag count > 0 in cntlist.rev for the word and part of speech), and writes one synset a line:

    POS<TAB>word word word ...

corpus.sh regenerates the file (DATADIR/synonyms.txt, about half a megabyte) from the installed
package, so the repository carries no copy of WordNet. Thesaurus loads it: synonyms(word) is the
union of the word's synsets, without the word.

    python3 -m hsatrain.lexdb OUT [--wordnet /usr/share/wordnet]
"""
import argparse
import os
import re
import sys

POS_FILES = [("n", "data.noun"), ("v", "data.verb"), ("a", "data.adj"), ("r", "data.adv")]
WORD = re.compile(r"^[a-z]{3,}$")


def used_lemmas(wndir):
    """(lemma, pos) pairs with a sense that has a tag count > 0 in cntlist.rev, or None when
    the file is missing (then every word is kept)."""
    path = os.path.join(wndir, "cntlist.rev")
    if not os.path.exists(path):
        return None
    used = set()
    pos_of = {"1": "n", "2": "v", "3": "a", "4": "r", "5": "a"}
    with open(path, encoding="latin-1") as f:
        for line in f:
            parts = line.split()
            if len(parts) < 3 or parts[2] == "0":
                continue
            lemma, _, rest = parts[0].partition("%")
            used.add((lemma, pos_of.get(rest[:1], "?")))
    return used


def extract(wndir):
    used = used_lemmas(wndir)
    out = []
    for pos, name in POS_FILES:
        with open(os.path.join(wndir, name), encoding="latin-1") as f:
            for line in f:
                if line.startswith("  "):
                    continue
                fields = line.split(" ")
                n = int(fields[3], 16)
                ws = []
                for i in range(n):
                    w = re.sub(r"\(.*\)$", "", fields[4 + 2 * i])
                    if not WORD.match(w):
                        continue
                    if used is not None and (w, pos) not in used:
                        continue
                    if w not in ws:
                        ws.append(w)
                if len(ws) >= 2:
                    out.append(f"{pos}\t{' '.join(ws)}")
    return out


class Thesaurus:
    def __init__(self, path=None, lines=None):
        self.syn = {}
        if lines is None:
            with open(path, encoding="utf-8") as f:
                lines = f.read().splitlines()
        for line in lines:
            _, _, ws = line.partition("\t")
            ws = ws.split()
            for w in ws:
                s = self.syn.setdefault(w, [])
                s.extend(x for x in ws if x != w and x not in s)

    def synonyms(self, word):
        return self.syn.get(word.lower(), [])

    @staticmethod
    def find(*dirs):
        """The first DIR/synonyms.txt that exists, or None."""
        for d in dirs:
            if d and os.path.exists(os.path.join(d, "synonyms.txt")):
                return Thesaurus(os.path.join(d, "synonyms.txt"))
        return None


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out")
    ap.add_argument("--wordnet", default="/usr/share/wordnet")
    a = ap.parse_args()
    lines = extract(a.wordnet)
    with open(a.out, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    print(f"{a.out}: {len(lines)} synsets", file=sys.stderr)


if __name__ == "__main__":
    main()
