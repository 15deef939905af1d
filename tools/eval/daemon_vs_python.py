"""A task through the daemon and through the Python model, on the same token stream.

    HSAMEM_LIBRARY=.libs/libhsamem.so python3 tools/eval/daemon_vs_python.py \
        --model-dir FOLDER --heldout DATA/text/heldout.txt [--trials 24] [--seed 5] \
        [--layout entries|keep|spread|packed|import] [--offset N] [--base EXPORT] [--ask]

Per trial: a new hsa-small memory of 40 of eval_daemon.py's 50-word entries of held-out text,
then one multikey instance (hsatrain.tasks, evaluate=True) appended as eval_daemon.py appends it
(each needle an entry, followed by two entries of text). The daemon's learned ranking of the
question is read, and so are its chunks' tokens; hsatrain.model then encodes those same chunks
and the question (its window: the last sealed chunk) and ranks them itself. Printed: in how many
trials the asked needle's chunk is first by the daemon and by Python.
Layouts: entries (as above), keep (entries that keep the text's line breaks), spread (the
needles put among the 40 entries instead of after them), packed (entries of 64 tokens of the
packed held-out token stream, decoded; needs --data), import (the 40 entries exported and
imported into the trial's memory first, as eval_daemon.py does). --offset N starts at the Nth
entry of the text rather than its first (eval_daemon.py's trials at 64K take their text from
entry 768 on).
--base EXPORT: each trial's memory is that export (e.g. eval_daemon.py --cache DIR's
hay-65536.export, a 64K haystack) instead of the 40 entries, its trial appended after it as
eval_daemon.py does (without its lead-in entry: every trial's first needle starts at the same
place). --ask: the single-needle task instead, answered by the daemon's `ask` and by a greedy
answer of the Python model over the same chunks (HSA top-k over all of them at every token);
printed: how many answers equal the value by each, and how many are the same.
"""
import argparse
import io
import math
import os
import re
import sys
import tempfile

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(os.path.dirname(HERE))
sys.path[:0] = [HERE, os.path.join(TOP, "tools", "train"), os.path.join(TOP, "client", "python")]

import eval_daemon as ed  # noqa: E402
from hsatrain.evaluate import query_step  # noqa: E402
from hsatrain.model import load_model  # noqa: E402
from hsatrain.tasks import TaskMaker  # noqa: E402
from hsatrain.tokenizer import ATOK, EOS, QTOK, Tokenizer  # noqa: E402


def keep_paragraphs(path, words_per=50):
    """As eval_daemon.paragraphs, but each entry is the text's own span, line breaks kept."""
    text = open(path, encoding="utf-8", errors="replace").read()
    for doc in text.split("\n\f\n"):
        at = [m.start() for m in re.finditer(r"\S+", doc)]
        for i in range(0, len(at), words_per):
            yield doc[at[i]:at[i + words_per] if i + words_per < len(at) else len(doc)]


def entries(a, tok):
    if a.layout == "keep":
        return list(keep_paragraphs(a.heldout))
    if a.layout == "packed":
        ht = np.load(a.data)["heldout"]
        return [tok.decode([int(x) for x in ht[i * 64:(i + 1) * 64]])
                for i in range(a.offset + 64 * a.trials)]
    return list(ed.paragraphs(a.heldout))


def trial_texts(rng, inst, base, rest, spread):
    """The entries to append and the index of each needle among them."""
    if not spread:
        return ed.trial_entries(inst, rest)
    texts, n = list(base), len(inst["needles"])
    slots = sorted(rng.choice(np.arange(2, len(base) - 2, 3), size=n, replace=False))
    order = rng.permutation(n)
    at = [0] * n
    for j, (slot, ni) in enumerate(zip(slots, order)):
        texts.insert(slot + j, "\n" + inst["needles"][ni] + "\n")
        at[ni] = slot + j
    return texts + rest[:3], at


class Encoded:
    """The Python model's K, V and landmarks of a memory's chunks (the attributes that
    hsatrain.evaluate.query_step reads of its Memory), reusing those of the chunks that the
    previous call's memory shared from the start (a large --base is encoded once)."""

    def __init__(self, m):
        self.m, self.toks, self.K, self.V, self.L, self.nC = m, None, None, None, None, 0

    @torch.no_grad()
    def __call__(self, chunks):
        m, S = self.m, self.m.cfg.chunk
        toks = torch.tensor([c.tokens for c in chunks]).reshape(1, -1)
        n0 = 0
        if self.toks is not None:
            n = min(self.toks.shape[1], toks.shape[1]) // S
            while n0 < n and torch.equal(self.toks[0, n0 * S:(n0 + 1) * S], toks[0, n0 * S:(n0 + 1) * S]):
                n0 += 1
            n0 = max(0, n0 - 1)                   # the next chunk's window changed with it
        wins = m.windows(toks)
        parts = [(self.K[:n0], self.V[:n0], self.L[:n0])] if n0 else []
        for c0 in range(n0, len(chunks), 256):
            parts.append(m.encode_chunks(m.lower_stack(wins[c0:c0 + 256])[:, S:]))
        self.toks = toks
        self.K, self.V, self.L = (torch.cat(x) for x in zip(*parts))
        self.nC = len(chunks)
        return toks


def python_answer(m, enc, toks, q, max_tokens=16):
    """Greedy answer of the Python model through the evaluation's own step (hsatrain.evaluate
    .query_step, no replaced chunks): the window is the last sealed chunk then the question
    block so far, HSA over every chunk with the config's top-k."""
    S = m.cfg.chunk
    none = torch.full((1, 1), -1)
    mK = torch.zeros(1, 1, S, m.cfg.h_kv, m.cfg.d_h)
    mL = torch.zeros(1, 1, m.cfg.h_kv, m.cfg.d_r // m.cfg.h_kv)
    gen = list(q)
    for _ in range(max_tokens):
        logits, _ = query_step(m, enc, toks[:, -S:], torch.tensor([gen]), none, mK, mK, mL,
                               m.cfg.topk, torch.device("cpu"))
        nxt = int(logits[0, -1].argmax())
        if nxt == EOS:
            break
        gen.append(nxt)
    return gen[len(q):]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--hsamemd", default=os.path.join(TOP, "hsamemd"))
    ap.add_argument("--model-dir", required=True)
    ap.add_argument("--heldout", required=True)
    ap.add_argument("--data", help="tokens.npz (layout packed)")
    ap.add_argument("--trials", type=int, default=24)
    ap.add_argument("--seed", type=int, default=5)
    ap.add_argument("--offset", type=int, default=0)
    ap.add_argument("--layout", default="entries", choices=["entries", "keep", "spread", "packed", "import"])
    ap.add_argument("--base", help="a memory export to start each trial's memory from")
    ap.add_argument("--ask", action="store_true", help="the single task, answered by both")
    a = ap.parse_args()
    tok = Tokenizer.load(os.path.join(a.model_dir, "hsamem-bpe.tok"))
    m, _ = load_model(os.path.join(a.model_dir, "model.safetensors"))
    cfg = m.cfg
    S = cfg.chunk
    paras = entries(a, tok)[a.offset:]
    base_export = open(a.base, "rb").read() if a.base else None
    proc, cli = ed.start_daemon(a.hsamemd, tempfile.mkdtemp(), a.model_dir)
    maker, rng = TaskMaker(tok), np.random.default_rng(a.seed)
    enc = Encoded(m)
    first_d = first_p = em_d = em_p = same = 0
    try:
        for t in range(a.trials):
            user, base = "t%d" % t, paras[t * 60:t * 60 + 40]
            rest = paras[t * 60 + 40:t * 60 + 60]
            inst = maker.make(rng, "single" if a.ask else "multikey", evaluate=True)
            if base_export is not None:
                cli.import_(user, io.BytesIO(base_export))
            elif a.layout == "import":
                cli.create("hay", encoder="hsa-small")
                cli.append_many("hay", [dict(text=x) for x in base], create=False)
                buf = io.BytesIO()
                cli.export("hay", buf)
                cli.delete("hay")
                cli.import_(user, io.BytesIO(buf.getvalue()))
            else:
                cli.create(user, encoder="hsa-small")
                if a.layout != "spread":       # spread: the base goes in with the needles
                    cli.append_many(user, [dict(text=x) for x in base], create=False)
            texts, at = trial_texts(rng, inst, base, rest, a.layout == "spread" and base_export is None)
            info = cli.append_many(user, [dict(text=x) for x in texts], create=False)
            asked = info.first_seq + at[0]
            hits = cli.query(user, inst["question"], k=64, mode="learned", max_entries=64)
            ch = []
            while True:
                page = cli.chunks(user, len(ch), ed.CHUNK_PAGE)
                ch += page
                if not page or len(ch) >= page.total:
                    break
            mine = [c.index for c in ch if c.first_entry <= asked <= c.last_entry]
            first_d += bool(hits) and hits[0].chunk in mine
            toks = enc(ch)
            q = [QTOK] + tok.encode(" " + inst["question"].strip()) + [ATOK]
            with torch.no_grad():
                win = torch.cat([toks[0, -S:], torch.tensor(q)])[None]
                qr, _ = m.queries(m.upper_pre(m.lower_stack(win))[:, S:])
                s = torch.einsum("hr,jhr->j", qr[0, -1], enc.L) / math.sqrt(cfg.d_r)
            first_p += int(s.argmax()) in mine
            if a.ask:
                truth = inst["parts"][0][0]
                d_ans = cli.ask(user, inst["question"], max_tokens=16).text.strip()
                p_ans = tok.decode(python_answer(m, enc, toks, q)).strip()
                em_d, em_p, same = em_d + (d_ans == truth), em_p + (p_ans == truth), same + (d_ans == p_ans)
                print("trial %d: value %s, daemon %r, Python %r" % (t, truth, d_ans, p_ans), flush=True)
            cli.delete(user)
    finally:
        proc.terminate()
        proc.wait()
    what = "layout %s" % a.layout if base_export is None else "base %s" % os.path.basename(a.base)
    print("%s: the asked needle's chunk first in %d of %d trials through the daemon, %d by "
          "the Python model on the same chunks" % (what, first_d, a.trials, first_p))
    if a.ask:
        print("answers equal to the value: %d by the daemon's ask, %d by the Python model; the same "
              "answer in %d of %d trials" % (em_d, em_p, same, a.trials))


if __name__ == "__main__":
    main()
