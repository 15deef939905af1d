"""Synonyms from Debian's WordNet (wordnet-base), for paraphrased training questions.

The training tasks that teach retrieval from the whole corpus (hsatrain.corpus_tasks) and the
varied fact wordings (hsatrain.wording) replace words by synonyms. WordNet is the lexical database;
this module extracts from its index and data files (/usr/share/wordnet/{index,data}.{noun,verb,
adj,adv}), for every single lowercase word that WordNet's sense counts mark as used (a tag count
> 0 in cntlist.rev), in its commonest part of speech (the largest summed tag count), the other
such words of its most frequent sense (the first synset the index
lists: no word-sense disambiguation, so the commonest sense is the safest), one word a line:

    POS<TAB>word<TAB>synonym synonym ...

corpus.sh regenerates the file (DATADIR/synonyms.txt, about half a megabyte) from the installed
package, so the repository carries no copy of WordNet. Thesaurus loads it: synonyms(word) is the
union over the word's parts of speech.

    python3 -m hsatrain.lexdb OUT [--wordnet /usr/share/wordnet]
"""
import argparse
import os
import re
import sys

POS_FILES = [("n", "data.noun"), ("v", "data.verb"), ("a", "data.adj"), ("r", "data.adv")]
WORD = re.compile(r"^[a-z]{3,}$")


def used_lemmas(wndir):
    """(lemma, pos) -> summed tag count of its senses, for those with a count > 0 in
    cntlist.rev, or None when the file is missing (then every word is kept)."""
    path = os.path.join(wndir, "cntlist.rev")
    if not os.path.exists(path):
        return None
    used = {}
    pos_of = {"1": "n", "2": "v", "3": "a", "4": "r", "5": "a"}
    with open(path, encoding="latin-1") as f:
        for line in f:
            parts = line.split()
            if len(parts) < 3 or parts[2] == "0":
                continue
            lemma, _, rest = parts[0].partition("%")
            k = (lemma, pos_of.get(rest[:1], "?"))
            used[k] = used.get(k, 0) + int(parts[2])
    return used


def synsets(wndir, used):
    """(pos, offset) -> the synset's single lowercase words in use."""
    out = {}
    for pos, name in POS_FILES:
        with open(os.path.join(wndir, name), encoding="latin-1") as f:
            for line in f:
                if line.startswith("  "):
                    continue
                fields = line.split(" ")
                ws = []
                for i in range(int(fields[3], 16)):
                    w = re.sub(r"\(.*\)$", "", fields[4 + 2 * i])
                    if WORD.match(w) and (used is None or (w, pos) in used) and w not in ws:
                        ws.append(w)
                out[(pos, fields[0])] = ws
    return out


def extract(wndir):
    """One line per word and part of speech: the other words of its most frequent sense
    (the first synset that WordNet's index lists for it)."""
    used = used_lemmas(wndir)
    sets = synsets(wndir, used)
    best = {}                        # lemma -> its commonest part of speech (by tag count)
    for (lemma, pos), n in (used or {}).items():
        if n > best.get(lemma, ("", -1))[1]:
            best[lemma] = (pos, n)
    out = []
    for pos, name in POS_FILES:
        with open(os.path.join(wndir, name.replace("data.", "index.")), encoding="latin-1") as f:
            for line in f:
                if line.startswith("  "):
                    continue
                fields = line.split()
                lemma, n = fields[0], int(fields[2])
                if not WORD.match(lemma) or (used is not None and best.get(lemma, ("",))[0] != pos):
                    continue
                syn = [w for w in sets.get((pos, fields[-n]), []) if w != lemma]
                if syn:
                    out.append(f"{pos}\t{lemma}\t{' '.join(syn)}")
    return out


class Thesaurus:
    def __init__(self, path=None, lines=None):
        self.syn = {}
        if lines is None:
            with open(path, encoding="utf-8") as f:
                lines = f.read().splitlines()
        for line in lines:
            parts = line.split("\t")
            if len(parts) != 3:
                continue
            s = self.syn.setdefault(parts[1], [])
            s.extend(x for x in parts[2].split() if x not in s)

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
