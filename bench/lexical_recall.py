#!/usr/bin/env python3
"""Recall of the lexical encoder's ranking beside SQLite FTS5's bm25, on the same chunks.

Builds haystacks of ordinary text (Debian's licenses, copyright files and man pages, as found on
this machine), hides needles in them (facts such as "The special magic number for quiet-harbor is
4829301."), appends everything as entries through a running hsamemd (the Python client), queries
the daemon with the questions, and ranks the same chunk texts, read back from the daemon, with
FTS5's bm25. A part of an answer is found at k when a chunk holding its text is among the first k.

The tasks follow tools/train/hsatrain/tasks.py: single (one fact), multikey (the fact and three
others with other keys), multivalue (three values for one key; each value is a part), multiquery
(three keys asked at once), vartrack (a chain VAR A = 12345, VAR B = VAR A, ... and a distractor
chain; each name is a part, and only the first holds the value asked about).

Every length and task gets its own memories, one per encoder revision asked for (--revisions), with
the same entries, so that the revisions and FTS5 rank the very same chunks.

    python3 bench/lexical_recall.py --url ipc:///tmp/hsamemd.sock --lengths 65536,1048576

needs the Python client on PYTHONPATH (client/python) and libhsamem where it can load it.
"""
import argparse
import glob
import gzip
import random
import re
import sqlite3
import sys
import time

import hsamem

NIAH_FACT = "The special magic number for {k} is {v}."
NIAH_Q = "What is the special magic number for {k} mentioned in the provided text?"
NIAH_MV_Q = "What are all the special magic numbers for {k} mentioned in the provided text?"
NIAH_MQ_Q = "What are the special magic numbers for {ks} mentioned in the provided text?"
VT_Q = "Find all variables that are assigned the value {v} in the text above."
TASKS = ["single", "multikey", "multivalue", "multiquery", "vartrack"]


def strip_roff(text):
    out = []
    for line in text.splitlines():
        if line.startswith((".\\\"", "'\\\"")):
            continue
        if line.startswith("."):
            parts = line.split(None, 1)
            if len(parts) < 2 or parts[0] in (".TH", ".de", ".ds", ".nr", ".so", ".if", ".ie"):
                continue
            line = parts[1]
        line = re.sub(r"\\f[BIRP]|\\f\(..|\\f\[[^]]*\]|\\s[-+]?\d|\\\(..|\\[-&e|^]", " ", line)
        line = line.replace("\\", " ").replace('"', " ")
        out.append(line)
    return " ".join(out)


def corpus(words_wanted, seed):
    """Paragraphs of ordinary text, about words_wanted words in all."""
    files = sorted(glob.glob("/usr/share/common-licenses/*") +
                   glob.glob("/usr/share/doc/*/copyright"))
    mans = sorted(glob.glob("/usr/share/man/man*/*.gz"))
    random.Random(seed).shuffle(mans)
    paras, n = [], 0

    def add(text):
        nonlocal n
        ws = text.split()
        for i in range(0, len(ws), 120):
            p = " ".join(ws[i:i + 120])
            if p:
                paras.append(p)
                n += min(120, len(ws) - i)

    for f in files:
        try:
            add(open(f, errors="replace").read())
        except OSError:
            pass
    for f in mans:
        if n >= words_wanted:
            break
        try:
            add(strip_roff(gzip.open(f, "rt", errors="replace").read()))
        except (OSError, EOFError):
            pass
    random.Random(seed + 1).shuffle(paras)
    return paras


class Maker:
    def __init__(self, paras, rng):
        vocab = set()
        for p in paras[:4000]:
            vocab.update(w for w in re.findall(r"[a-z]+", p) if len(w) >= 5)
        self.words = sorted(vocab)
        self.rng = rng

    def key(self):
        return "-".join(self.rng.choice(self.words) for _ in range(2))

    def number(self):
        return str(self.rng.randrange(1000000, 10000000))

    def varname(self):
        return "".join(chr(65 + self.rng.randrange(26)) for _ in range(5))

    def make(self, task):
        """needles, question, parts (each the text whose chunk answers it)."""
        if task in ("single", "multikey"):
            k, v = self.key(), self.number()
            needles = [NIAH_FACT.format(k=k, v=v)]
            if task == "multikey":
                needles += [NIAH_FACT.format(k=self.key(), v=self.number()) for _ in range(3)]
            return needles, NIAH_Q.format(k=k), [v]
        if task == "multivalue":
            k = self.key()
            vals = [self.number() for _ in range(3)]
            return [NIAH_FACT.format(k=k, v=v) for v in vals], NIAH_MV_Q.format(k=k), vals
        if task == "multiquery":
            keys = [self.key() for _ in range(3)]
            vals = [self.number() for _ in keys]
            needles = [NIAH_FACT.format(k=k, v=v) for k, v in zip(keys, vals)]
            ks = ", ".join(keys[:-1]) + " and " + keys[-1]
            return needles, NIAH_MQ_Q.format(ks=ks), vals
        names = [self.varname() for _ in range(3)]
        v = str(self.rng.randrange(10000, 100000))
        needles = ["VAR %s = %s" % (names[0], v)]
        needles += ["VAR %s = VAR %s" % (names[i], names[i - 1]) for i in range(1, 3)]
        d = [self.varname() for _ in range(2)]
        needles += ["VAR %s = %d" % (d[0], self.rng.randrange(10000, 100000)),
                    "VAR %s = VAR %s" % (d[1], d[0])]
        return needles, VT_Q.format(v=v), names


def build(cli, users, revisions, paras, tokens, insts, rng):
    """Appends paragraphs to every memory of users until each holds about tokens tokens, with the
    instances' needles at random places; returns the chunk texts (equal across revisions)."""
    for u, rev in zip(users, revisions):
        try:
            cli.delete(u)
        except hsamem.NoSuchUser:
            pass
        cli.create(u, revision=rev)
    # how many paragraphs make the length: lex1 makes a token of each word and punctuation mark
    n_paras, est = 0, 0
    while est < tokens:
        est += len(re.findall(r"\w+|[^\w\s]", paras[n_paras % len(paras)]))
        n_paras += 1
    slots = {}
    for needles, _, _ in insts:
        for nd in needles:
            slots.setdefault(rng.randrange(n_paras), []).append(nd)
    batch = []
    for pi in range(n_paras):
        batch.append(paras[pi % len(paras)])
        batch += slots.pop(pi, [])
        if len(batch) >= 64 or pi == n_paras - 1:
            for u in users:
                cli.append_many(u, batch)
            batch = []
    for u in users:
        cli.flush(u)
    texts, first = [], 0
    while True:
        cl = cli.chunks(users[0], first, 256)
        if not cl:
            break
        texts += [c.text for c in cl]
        first += len(cl)
    return texts


def fts_ranker(texts):
    db = sqlite3.connect(":memory:")
    db.execute("CREATE VIRTUAL TABLE c USING fts5(body)")
    db.executemany("INSERT INTO c(rowid, body) VALUES (?, ?)", ((i, t) for i, t in enumerate(texts)))

    def rank(question, k):
        words = re.findall(r"\w+", question.lower())
        q = " OR ".join('"%s"' % w for w in words)
        return [r[0] for r in db.execute(
            "SELECT rowid FROM c WHERE c MATCH ? ORDER BY bm25(c) LIMIT ?", (q, k))]

    return rank


def targets(texts, needles, parts):
    """For each part, the chunks that answer it: those holding the part's needle, or, for a
    needle cut by a chunk boundary, those holding a piece of it (the part's chunk and the chunk
    on the other side of the cut)."""
    out = []
    for p in parts:
        nd = next(n for n in needles if p in n)
        t = set()
        for j, x in enumerate(texts):
            if p in x:
                t.add(j)
                if nd not in x:
                    t.update((j - 1, j + 1))
        out.append(t)
    return out


def score(ranked, tg):
    """(found at 1, found at 8) summed over the parts; tg: targets()."""
    r1 = r8 = 0
    for t in tg:
        hit = [i for i, j in enumerate(ranked[:8]) if j in t]
        r1 += bool(hit) and hit[0] == 0
        r8 += bool(hit)
    return r1, r8


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--url", default=None)
    ap.add_argument("--lengths", default="65536,1048576")
    ap.add_argument("--tasks", default=",".join(TASKS))
    ap.add_argument("--trials", type=int, default=20)
    ap.add_argument("--revisions", default="1,2")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--keep", action="store_true", help="keep the memories")
    a = ap.parse_args()
    lengths = [int(x) for x in a.lengths.split(",")]
    revs = [int(x) for x in a.revisions.split(",")]
    t0 = time.time()
    paras = corpus(max(lengths) * 3 // 4 + 10000, a.seed)
    print("# corpus: %d paragraphs (%.0f s)" % (len(paras), time.time() - t0), file=sys.stderr)
    cli = hsamem.Client(a.url)
    cols = ["task", "length", "n"] + ["r%d r@1" % r for r in revs] + ["r%d r@8" % r for r in revs]
    cols += ["FTS5 r@1", "FTS5 r@8"]
    print("| " + " | ".join(cols) + " |")
    print("|" + "---|" * len(cols))
    for length in lengths:
        for task in a.tasks.split(","):
            rng = random.Random("%d-%d-%s" % (a.seed, length, task))
            mk = Maker(paras, rng)
            insts = [mk.make(task) for _ in range(a.trials)]
            users = ["bench-lex-%s-%d-r%d" % (task, length, r) for r in revs]
            t1 = time.time()
            texts = build(cli, users, revs, paras, length, insts, rng)
            fts = fts_ranker(texts)
            found = {u: [0, 0] for u in users + ["fts"]}
            n = 0
            for needles, question, parts in insts:
                n += len(parts)
                tg = targets(texts, needles, parts)
                for u in users:
                    ranked = [h.chunk for h in cli.query(u, question, k=8)]
                    s = score(ranked, tg)
                    found[u][0] += s[0]
                    found[u][1] += s[1]
                s = score(fts(question, 8), tg)
                found["fts"][0] += s[0]
                found["fts"][1] += s[1]
            row = [task, str(length), str(n)]
            row += ["%.3f" % (found[u][0] / n) for u in users]
            row += ["%.3f" % (found[u][1] / n) for u in users]
            row += ["%.3f" % (found["fts"][0] / n), "%.3f" % (found["fts"][1] / n)]
            print("| " + " | ".join(row) + " |", flush=True)
            print("# %s %d: %d chunks, %.0f s" % (task, length, len(texts), time.time() - t1),
                  file=sys.stderr)
            if not a.keep:
                for u in users:
                    cli.delete(u)


if __name__ == "__main__":
    main()
