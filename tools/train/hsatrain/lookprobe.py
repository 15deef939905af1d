"""Where does the chunk encoder's summary position look? Attention of the summary token over a
multi-key needle's chunk, in the first encoder block, per head.

    python3 -m hsatrain.lookprobe --tok models/hsa-small/hsamem-bpe.tok \
        --data .train-pack/tokens.npz [--n 200] [--seed 1] MODEL.safetensors [MODEL ...]

(with tools/train on PYTHONPATH; about 20 s a model on 2 CPU cores)

Each instance is one multikey needle (hsatrain.tasks: a random key of TaskMaker.key, a 7-digit
value, one of the NIAH_FACT templates) written over held-out text inside a chunk, the chunk
encoded from its real window (previous chunk + chunk). The summary token's attention (the row of
the landmark's position, softmax over the chunk's 64 tokens and itself) is summed over four
spans: the chunk's tokens before the key, the key's tokens, the value's tokens and every other
token after the key (the template's words between them, the full stop and the text after the
needle); the summary's attention to itself is the rest. Reported per head and as the mean over
heads, with each span's share of the chunk's tokens beside it: a span attended in proportion to
its length would get its share.
"""
import argparse
import sys

import numpy as np
import torch

from .model import load_model
from .tasks import NIAH_FACT, TaskMaker
from .tokenizer import Tokenizer

SPANS = ("before the key", "key", "value", "after the key, not the value")


def instances(tok, held, S, n, seed):
    """n (window [2S], span label of the chunk's tokens [S]: 0-3 as SPANS) pairs."""
    rng = np.random.default_rng(seed)
    maker = TaskMaker(tok, S)
    out = []
    while len(out) < n:
        tmpl = NIAH_FACT[int(rng.integers(0, len(NIAH_FACT)))]
        k, v = maker.key(rng), maker.number(rng)
        pre, mid = tmpl.split("{k}")
        mid, post = mid.split("{v}")
        parts = [tok.encode(pre), tok.encode(k), tok.encode(mid), tok.encode(v), tok.encode(post)]
        needle = sum(parts, [])
        if len(needle) > S:
            continue
        s0 = int(rng.integers(0, len(held) - 2 * S))
        win = np.asarray(held[s0:s0 + 2 * S]).astype(np.int64)
        off = int(rng.integers(S, 2 * S - len(needle) + 1))
        win[off:off + len(needle)] = needle
        lab = np.zeros(2 * S, np.int64)
        a = off + len(parts[0])
        b = a + len(parts[1])
        c = b + len(parts[2])
        lab[a:b] = 1
        lab[b:] = 3
        lab[c:c + len(parts[3])] = 2
        out.append((win, lab[S:]))
    return out


def summary_attention(m, win):
    """model.summary_look of the window's chunk: [heads, S]."""
    S = m.cfg.chunk
    with torch.no_grad():
        h = m.lower_stack(torch.from_numpy(win)[None])[:, S:]
        return m.summary_look(h)[0].numpy()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("models", nargs="+")
    ap.add_argument("--tok", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    torch.set_num_threads(2)
    tok = Tokenizer.load(a.tok)
    held = np.load(a.data)["heldout"]
    for path in a.models:
        m, _ = load_model(path)
        S, H = m.cfg.chunk, m.cfg.n_heads
        mass, share = np.zeros((H, len(SPANS))), np.zeros(len(SPANS))
        inst = instances(tok, held, S, a.n, a.seed)
        for win, lab in inst:
            w = summary_attention(m, win)
            for s in range(len(SPANS)):
                mass[:, s] += w[:, lab == s].sum(-1)
                share[s] += (lab == s).mean()
        mass /= len(inst)
        share /= len(inst)
        print(f"{path} ({len(inst)} needles): the summary's attention mass (share of the tokens)")
        print("| head | " + " | ".join(SPANS) + " | itself |")
        print("|---" * (len(SPANS) + 2) + "|")
        print("| tokens | " + " | ".join(f"{x:.3f}" for x in share) + " | - |")
        for h in range(H):
            print(f"| {h} | " + " | ".join(f"{x:.3f}" for x in mass[h]) + f" | {1 - mass[h].sum():.3f} |")
        mean = mass.mean(0)
        print("| mean | " + " | ".join(f"{x:.3f}" for x in mean) + f" | {1 - mean.sum():.3f} |")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
