"""Multikey through the daemon and through the Python model, on the same token stream.

    HSAMEM_LIBRARY=.libs/libhsamem.so python3 tools/eval/daemon_vs_python.py \
        --model-dir FOLDER --heldout DATA/text/heldout.txt [--trials 24] [--seed 5] \
        [--layout entries|keep|spread|packed|import] [--offset N]

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
from hsatrain.model import load_model  # noqa: E402
from hsatrain.tasks import TaskMaker  # noqa: E402
from hsatrain.tokenizer import ATOK, QTOK, Tokenizer  # noqa: E402


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
    a = ap.parse_args()
    tok = Tokenizer.load(os.path.join(a.model_dir, "hsamem-bpe.tok"))
    m, _ = load_model(os.path.join(a.model_dir, "model.safetensors"))
    cfg = m.cfg
    S = cfg.chunk
    paras = entries(a, tok)[a.offset:]
    proc, cli = ed.start_daemon(a.hsamemd, tempfile.mkdtemp(), a.model_dir)
    maker, rng = TaskMaker(tok), np.random.default_rng(a.seed)
    first_d = first_p = 0
    try:
        for t in range(a.trials):
            user, base = "t%d" % t, paras[t * 60:t * 60 + 40]
            rest = paras[t * 60 + 40:t * 60 + 60]
            inst = maker.make(rng, "multikey", evaluate=True)
            if a.layout == "import":
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
            texts, at = trial_texts(rng, inst, base, rest, a.layout == "spread")
            info = cli.append_many(user, [dict(text=x) for x in texts], create=False)
            asked = info.first_seq + at[0]
            hits = cli.query(user, inst["question"], k=64, mode="learned", max_entries=64)
            ch = cli.chunks(user, 0, ed.CHUNK_PAGE)
            mine = [c.index for c in ch if c.first_entry <= asked <= c.last_entry]
            first_d += bool(hits) and hits[0].chunk in mine
            with torch.no_grad():
                toks = torch.tensor([c.tokens for c in ch]).reshape(1, -1)
                _, _, L = m.encode_chunks(m.lower_stack(m.windows(toks))[:, S:])
                q = [QTOK] + tok.encode(" " + inst["question"].strip()) + [ATOK]
                win = torch.cat([toks[0, -S:], torch.tensor(q)])[None]
                qr, _ = m.queries(m.upper_pre(m.lower_stack(win))[:, S:])
                s = torch.einsum("hr,jhr->j", qr[0, -1], L) / math.sqrt(cfg.d_r)
            first_p += int(s.argmax()) in mine
            cli.delete(user)
    finally:
        proc.terminate()
        proc.wait()
    print("layout %s: the asked needle's chunk first in %d of %d trials through the daemon, %d by "
          "the Python model on the same chunks" % (a.layout, first_d, a.trials, first_p))


if __name__ == "__main__":
    main()
