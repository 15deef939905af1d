"""Where does the chunk encoder's summary position look? Attention of the summary token over a
multi-key needle's chunk, in the first encoder block, per head.

    python3 -m hsatrain.lookprobe --tok models/hsa-small/hsamem-bpe.tok \
        --data .train-pack/tokens.npz [--n 200] [--seed 1] MODEL.safetensors [MODEL ...]
    python3 -m hsatrain.lookprobe --tok ... --data ... --reach --n 40

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

--reach needs no model: it tells what the key-look and key-decoding losses (train.py --key-look,
--key-bow) are given to act on. Over n training sequences of each needle and fact task (word
values off and on), it counts a part's first answer positions and those with at least one
distinguishing token (train.key_tokens: in the question so far, in the target chunk and in no
other chunk visible from there), and the mean number of such tokens a position.
"""
import argparse
import sys

import numpy as np
import torch

from .model import load_model
from .tasks import NIAH_FACT, TASKS, WORD_CAN, TaskMaker, build_training_sample
from .tokenizer import Tokenizer
from .train import first_positions, key_tokens

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


def key_reach(tok, filler, n, seed, T=4096, S=64):
    """Print, per task and word-value share, the first positions with distinguishing tokens."""
    print("| task | word values | first positions | with distinguishing tokens | tokens a position |")
    print("|---|---|---|---|---|")
    for task in TASKS:
        for wv in (0.0, 1.0):
            maker = TaskMaker(tok, S, hard_keys=0.5, same_value=0.5, word_values=wv, word_tasks=WORD_CAN)
            rng = np.random.default_rng(seed)
            n_pos = n_on = n_tok = 0
            for _ in range(n):
                t, g, _ = build_training_sample(maker, rng, filler, T, task)
                toks, tgt = torch.from_numpy(t)[None], torch.from_numpy(g)[None]
                fb, ft = first_positions(tgt).nonzero(as_tuple=True)
                k = key_tokens(toks, S, T // S, tok.vocab_size, fb, ft, tgt[fb, ft])
                n_pos += len(fb)
                n_on += int((k.sum(1) > 0).sum())
                n_tok += float(k.sum())
            print(f"| {task} | {wv:g} | {n_pos} | {n_on} ({n_on / max(1, n_pos):.0%}) | {n_tok / max(1, n_pos):.2f} |")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("models", nargs="*")
    ap.add_argument("--tok", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--reach", action="store_true",
                    help="no model: the first positions the key-look loss acts on, per task")
    a = ap.parse_args()
    torch.set_num_threads(2)
    tok = Tokenizer.load(a.tok)
    if a.reach:
        return key_reach(tok, np.load(a.data)["train"], a.n, a.seed)
    if not a.models:
        ap.error("a model, or --reach")
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
