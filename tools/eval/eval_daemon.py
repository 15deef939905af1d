"""Recall of query's rankings (learned, lexical, hybrid) through the real daemon, beside BM25.

    python3 tools/eval/eval_daemon.py --hsamemd ./hsamemd --heldout DATA/text/heldout.txt \
        [--lengths 65536] [--trials 50] [--tasks single,...] [--ask-trials 50] [--out OUT.json]
        [--model-dir DIR] [--lead-words 48] [--cache DIR]

--model-dir gives the daemon another model folder (its model-dir), e.g. a candidate that
hsatrain.export wrote, so that a retrained model is measured through the daemon before it
replaces models/hsa-small.

The tasks and their instances are tools/train/evaluate.py's (hsatrain.tasks.TaskMaker with
evaluate=True: the same needles, questions and answer parts), and the haystack is the same text:
the held-out split of the training corpus (tools/train/corpus.sh, then hsatrain.corpus), its
first LENGTH tokens. Unlike evaluate.py, nothing is written over tokens: the haystack is appended
as entries of about 50 words (a chunk's worth) through a real hsamemd with the Python client,
into one hsa-small memory per length, which is exported once. Each trial imports that memory
under a new name (the stored chunks are reused, not encoded again), appends an entry of 0 to 47
words (--lead-words; without it every trial's first needle would start at the same place of its
chunk, the haystack being the same), the instance's needles, each an entry of its own followed
by two entries of held-out text that the haystack does not hold (so that each needle has a chunk
of its own, and the last is sealed and outside the question's own window), then one more such
entry, and asks the
question by query in each mode. HSA scores a chunk by its content alone (no positions), so the
needles sit after the haystack; evaluate.py's depths do not apply.

Reported per task and length (recall of each answer part's needle entry, averaged over parts,
then over trials, as evaluate.py's baselines: one ranking per question):
  learned, lexical, hybrid r@1 / r@8   query --mode (the daemon's own fusion in hybrid)
  BM25 r@1 / r@8                       SQLite FTS5's bm25 over the same entries (each entry one
                                       row; the question's distinct words ORed)
  BM25c r@1 / r@8                      the same over the memory's chunks (each chunk's text one
                                       row, read back from the daemon): the lexical ranking's
                                       own granularity, where a needle shares its chunk's
                                       length with the text around it
  rrf, zsum, zsum0, zwin, zweigh       fusions of the daemon's learned and lexical rankings (64
                                       deep each, with their scores) computed here to compare
                                       them: reciprocal rank fusion (k 60); summed standard
                                       scores; the same with negative standard scores counted
                                       as 0; summed standard scores with the lexical side over
                                       the model's windows (zwin); the same, each list weighed by
                                       its first place (zweigh: the daemon's hybrid)
  ask EM                               single-needle task: `ask`'s answer equals the value
Writes a table (stdout) and, with --out, JSON with every trial.
"""
import argparse
import io
import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(TOP, "tools", "train"))
sys.path.insert(0, os.path.join(TOP, "client", "python"))

import hsamem  # noqa: E402
from hsatrain.tasks import EVAL_TASKS, TaskMaker  # noqa: E402
from hsatrain.tokenizer import Tokenizer  # noqa: E402

WORD_RE = re.compile(r"[A-Za-z0-9]+")
DEPTH = 64
MODES = ("learned", "lexical", "hybrid", "bm25", "bm25c", "rrf", "zsum", "zsum0", "zwin",
         "zweigh")
CHUNK_PAGE = 256


def paragraphs(path, words_per=50):
    """The held-out text as entries of about words_per words, in order."""
    text = open(path, encoding="utf-8", errors="replace").read()
    for doc in text.split("\n\f\n"):
        ws = doc.split()
        for i in range(0, len(ws), words_per):
            yield " ".join(ws[i:i + words_per])


def start_daemon(exe, tmp, model_dir=None):
    sock = "ipc://%s/hsamemd.sock" % tmp
    log = open(os.path.join(tmp, "hsamemd.log"), "w")
    args = [exe, "-l", sock, "-d", os.path.join(tmp, "state"), "-o", "log-level=warning"]
    if model_dir:
        args += ["-o", "model-dir=" + os.path.abspath(model_dir)]
    p = subprocess.Popen(args, stderr=log, stdout=subprocess.DEVNULL)
    for _ in range(600):
        try:
            c = hsamem.Client(sock)
            c.ping()
            return p, c
        except hsamem.HsamemError:
            time.sleep(0.1)
    p.kill()
    raise SystemExit("hsamemd did not start; see %s" % log.name)


def build_haystack(cli, user, paras, length):
    """Appends paragraphs to user's hsa-small memory until it holds length tokens; returns the
    entries' texts and the index of the first paragraph not used."""
    cli.create(user, encoder="hsa-small")
    texts, used, tokens = [], 0, 0
    while tokens < length:
        batch = []
        while len(batch) < 32 and used < len(paras):
            batch.append(paras[used])
            used += 1
        if not batch:
            raise SystemExit("the held-out text is too short for %d tokens" % length)
        info = cli.append_many(user, [dict(text=t) for t in batch], create=False)
        texts += batch
        tokens = info.tokens
    return texts, used


def fts_open(texts):
    db = sqlite3.connect(":memory:")
    db.execute("CREATE VIRTUAL TABLE e USING fts5(body)")
    db.executemany("INSERT INTO e(rowid, body) VALUES (?, ?)",
                   [(i, t) for i, t in enumerate(texts)])
    db.commit()
    return db


def fts_rank(db, question, depth=DEPTH):
    ws = sorted(set(w.lower() for w in WORD_RE.findall(question)))
    if not ws:
        return []
    q = " OR ".join('"%s"' % w for w in ws)
    rows = db.execute("SELECT rowid FROM e WHERE e MATCH ? ORDER BY bm25(e) LIMIT ?",
                      (q, depth)).fetchall()
    return [r[0] for r in rows]


def read_chunks(cli, user, first):
    """The sealed chunks of user from first on: (index, text, first_entry, last_entry)."""
    out = []
    while True:
        page = cli.chunks(user, first + len(out), CHUNK_PAGE)
        out += [(c.index, c.text, c.first_entry, c.last_entry) for c in page]
        if not page or first + len(out) >= page.total:
            return out


def hit_entries(hits):
    """Per hit, the set of entry seqs it covers."""
    return [set(e.seq for e in h.entries) for h in hits]


def rank_in(covers, seq):
    for i, s in enumerate(covers):
        if seq in s:
            return i + 1
    return 10 ** 9


def rrf(a, b, k=60, depth=DEPTH):
    """Reciprocal rank fusion of two lists of (chunk, score), best first: chunk ids, best first."""
    score = {}
    for lst in (a, b):
        for i, (c, _) in enumerate(lst[:depth]):
            score[c] = score.get(c, 0.0) + 1.0 / (k + i + 1)
    return sorted(score, key=lambda c: -score[c])


def zsum(a, b, depth=DEPTH, floor0=False, weigh=False):
    """Standard scores within each list summed, a chunk missing from a list getting that list's
    last; floor0: negative standard scores count 0; weigh: each list's weighed by the cube of its
    first place's standard score, at least 0.1, the lexical one (b) also by its first place's
    BM25 less 2.5, between 0.05 and 1 (the daemon's fusion, hybrid.c)."""
    z, last, w_of = {}, [0.0, 0.0], [1.0, 1.0]
    for w, lst in enumerate((a, b)):
        lst = lst[:depth]
        if not lst:
            continue
        v = np.array([s for _, s in lst], np.float64)
        sd = v.std() if v.std() > 1e-6 else 1.0
        zs = (v - v.mean()) / sd
        if floor0:
            zs = np.maximum(zs, 0)
        for (c, _), zz in zip(lst, zs):
            z.setdefault(c, [None, None])[w] = zz
        last[w] = zs[-1]
        if weigh:
            w_of[w] = max(zs[0], 0.1) ** 3
            if w == 1:      # the lexical side's first place's BM25 (hybrid.c, lexical_gate)
                w_of[w] *= min(max(v[0] - 2.5, 0.05), 1.0)
    for c in z:
        z[c] = [x if x is not None else last[i] for i, x in enumerate(z[c])]
    return sorted(z, key=lambda c: -(w_of[0] * z[c][0] + w_of[1] * z[c][1]))


def window(b, back=1, depth=DEPTH):
    """The lexical list over the model's windows (hybrid.c, hyb_window_rank): chunk c scores the
    best of c - back .. c, from the list's own scores (the daemon reads every chunk's)."""
    lex = dict(b)
    cand = set(c + d for c, _ in b for d in range(back + 1))
    w = {c: max(lex.get(c - d, -1e30) for d in range(back + 1)) for c in cand}
    return sorted(w.items(), key=lambda x: (-x[1], x[0]))[:depth]


FUSIONS = {"rrf": rrf, "zsum": zsum, "zsum0": lambda a, b: zsum(a, b, floor0=True),
           "zwin": lambda a, b: zsum(a, window(b)),
           "zweigh": lambda a, b: zsum(a, window(b), weigh=True)}


def trial_entries(inst, filler, lead=""):
    """The trial's entries: lead when not empty (an entry of a few words that moves the first
    needle's place within its chunk), each needle followed by two filler paragraphs (more than
    a chunk, so that every needle has a chunk of its own, as in evaluate.py), then one more; and
    the index of each needle among them."""
    texts, at = [lead] if lead else [], []
    for i, n in enumerate(inst["needles"]):
        at.append(len(texts))
        texts += ["\n" + n + "\n"] + filler[2 * i:2 * i + 2]
    return texts + filler[2 * len(inst["needles"]):][:1], at


def run_trial(cli, user, base_stream, inst, filler, lead, db, n_base, dbc, n_base_chunks, ask):
    cli.import_(user, io.BytesIO(base_stream))
    texts, at = trial_entries(inst, filler, lead)
    info = cli.append_many(user, [dict(text=t) for t in texts], create=False)
    seqs = [info.first_seq + i for i in at]
    q = inst["question"]
    got = {}
    lists = {m: cli.query(user, q, k=DEPTH if m != "hybrid" else 8, mode=m, max_entries=64)
             for m in ("learned", "lexical", "hybrid")}
    parts = [seqs[ni] for _, ni in inst["parts"]]
    for m, hits in lists.items():
        cov = hit_entries(hits)
        got[m] = [rank_in(cov, s) for s in parts]
    # the two rankings with their scores, and which parts each chunk holds, to fuse here
    covers = {}
    for h in lists["learned"] + lists["lexical"]:
        covers[h.chunk] = [i for i, s in enumerate(parts) if s in set(e.seq for e in h.entries)]
    pair = [[(h.chunk, h.score) for h in lists["learned"]],
            [(h.chunk, h.rank_score) for h in lists["lexical"]]]
    for name, fuse in FUSIONS.items():
        order = fuse(*pair)
        # a window's chunk after a ranked one may be in neither list: it holds no part
        got[name] = [next((r + 1 for r, c in enumerate(order) if i in covers.get(c, ())),
                          10 ** 9) for i in range(len(parts))]
    # BM25 over the same entries: the base's rows, then this trial's, rolled back after
    cur = db.cursor()
    cur.execute("SAVEPOINT t")
    cur.executemany("INSERT INTO e(rowid, body) VALUES (?, ?)",
                    [(n_base + i, t) for i, t in enumerate(texts)])
    ranked = fts_rank(db, q)
    cur.execute("ROLLBACK TO t")
    cur.execute("RELEASE t")
    rows = [n_base + at[ni] for _, ni in inst["parts"]]
    got["bm25"] = [ranked.index(r) + 1 if r in ranked else 10 ** 9 for r in rows]
    # BM25 over the same chunks: the base's, then this trial's sealed ones
    new = read_chunks(cli, user, n_base_chunks)
    spans = {c: (f, l) for c, _, f, l in new}
    cur = dbc.cursor()
    cur.execute("SAVEPOINT t")
    cur.executemany("INSERT INTO e(rowid, body) VALUES (?, ?)", [(c, t) for c, t, _, _ in new])
    ranked = fts_rank(dbc, q)
    cur.execute("ROLLBACK TO t")
    cur.execute("RELEASE t")
    got["bm25c"] = [next((r + 1 for r, c in enumerate(ranked)
                          if c in spans and spans[c][0] <= s <= spans[c][1]), 10 ** 9)
                    for s in parts]
    em = answer = None
    if ask:
        answer = cli.ask(user, q, max_tokens=16).text
        truth = inst["sep"].join(t for t, _ in inst["parts"])
        em = float(answer.strip() == truth)
    cli.delete(user)
    return got, em, answer, dict(learned=pair[0], lexical=pair[1],
                                 covers={str(c): v for c, v in covers.items() if v})


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--hsamemd", default=os.path.join(TOP, "hsamemd"))
    ap.add_argument("--heldout", required=True, help="held-out text (hsatrain.corpus)")
    ap.add_argument("--tok", default=os.path.join(TOP, "models", "hsa-small", "hsamem-bpe.tok"))
    ap.add_argument("--lengths", default="65536")
    ap.add_argument("--tasks", default=",".join(EVAL_TASKS))
    ap.add_argument("--trials", type=int, default=50)
    ap.add_argument("--ask-trials", type=int, default=50, help="single task at the first length")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--lead-words", type=int, default=48,
                    help="each trial's needles follow an entry of 0 to N-1 words (drawn apart "
                    "from the instances), so that the first needle does not sit at the same place "
                    "of its chunk in every trial; 0: no such entry")
    ap.add_argument("--out")
    ap.add_argument("--model-dir", help="the daemon's model folder (default: the daemon's own)")
    ap.add_argument("--cache", help="a folder to keep each length's exported haystack in, and "
                    "its entries, for later runs")
    a = ap.parse_args()
    tok = Tokenizer.load(a.tok)
    maker = TaskMaker(tok, 64)
    rng = np.random.default_rng(a.seed)
    lead_rng = np.random.default_rng([a.seed, 1])
    paras = list(paragraphs(a.heldout))
    tmp = tempfile.mkdtemp(prefix="hsamem-eval-")
    proc, cli = start_daemon(a.hsamemd, tmp, a.model_dir)
    t0 = time.time()
    results = {}
    try:
        for li, L in enumerate(int(x) for x in a.lengths.split(",")):
            cached = a.cache and os.path.join(a.cache, "hay-%d" % L)
            if cached and os.path.exists(cached + ".json"):
                base = open(cached + ".export", "rb").read()
                texts, used = json.load(open(cached + ".json"))
            else:
                texts, used = build_haystack(cli, "hay", paras, L)
                buf = io.BytesIO()
                cli.export("hay", buf)
                base = buf.getvalue()
                cli.delete("hay")
                if cached:
                    os.makedirs(a.cache, exist_ok=True)
                    open(cached + ".export", "wb").write(base)
                    json.dump([texts, used], open(cached + ".json", "w"))
            n_base = len(texts)
            db = fts_open(texts)
            cli.import_("hay", io.BytesIO(base))
            chunks = read_chunks(cli, "hay", 0)
            cli.delete("hay")
            n_base_chunks = len(chunks)
            dbc = fts_open([t for _, t, _, _ in chunks])
            print("[%6.0fs] length %d: %d entries, export %.1f MB" %
                  (time.time() - t0, L, n_base, len(base) / 1e6), flush=True)
            for task in a.tasks.split(","):
                rows = []
                for i in range(a.trials):
                    inst = maker.make(rng, task, evaluate=True)
                    f0 = used + 16 * (i % 100)
                    n_fill = 2 * len(inst["needles"]) + 1
                    filler = paras[f0:f0 + n_fill]
                    lead = ""
                    if a.lead_words > 0:
                        n_lead = int(lead_rng.integers(0, a.lead_words))
                        lead = " ".join(paras[f0 + n_fill].split()[:n_lead])
                    ask = task == "single" and li == 0 and i < a.ask_trials
                    got, em, answer, lists = run_trial(cli, "t", base, inst, filler, lead, db,
                                                       n_base, dbc, n_base_chunks, ask)
                    rows.append(dict(ranks=got, em=em, answer=answer, question=inst["question"],
                                     lists=lists))
                res = dict(n=len(rows), trials=rows)
                for m in MODES:
                    for k in (1, 8):
                        res["%s_r%d" % (m, k)] = float(np.mean(
                            [np.mean([r <= k for r in row["ranks"][m]]) for row in rows]))
                ems = [row["em"] for row in rows if row["em"] is not None]
                res["ask_em"] = float(np.mean(ems)) if ems else None
                results.setdefault(str(L), {})[task] = res
                print("[%6.0fs] %d %s: " % (time.time() - t0, L, task) + " ".join(
                    "%s %.3f/%.3f" % (m, res[m + "_r1"], res[m + "_r8"])
                    for m in MODES) +
                    ("" if res["ask_em"] is None else " ask EM %.3f" % res["ask_em"]), flush=True)
            db.close()
            dbc.close()
    finally:
        cli.close()
        proc.terminate()
        proc.wait()
        shutil.rmtree(tmp, ignore_errors=True)
    print("\n| task | length | n | learned r@1 | learned r@8 | lexical r@1 | lexical r@8 | "
          "hybrid r@1 | hybrid r@8 | BM25 r@1 | BM25 r@8 | BM25c r@1 | BM25c r@8 | RRF r@1 | "
          "RRF r@8 | z r@1 | z r@8 | z+ r@1 | z+ r@8 | zw r@1 | zw r@8 | zweigh r@1 | zweigh r@8 "
          "| ask EM |")
    print("|---" * 24 + "|")
    for L, per in results.items():
        for task, r in per.items():
            print("| %s | %s | %d | " % (task, L, r["n"]) + " | ".join(
                "%.3f" % r[m + s] for m in MODES for s in ("_r1", "_r8")) +
                " | %s |" % ("-" if r["ask_em"] is None else "%.3f" % r["ask_em"]))
    if a.out:
        with open(a.out, "w") as f:
            json.dump(dict(args=vars(a), seconds=time.time() - t0, results=results), f, indent=1)


if __name__ == "__main__":
    main()
