"""CPU check that a stopped and resumed training run equals an uninterrupted one.

Builds a tiny corpus, tokenizer and synonym file in a temporary directory, then runs
hsatrain.train three times with every hsa-small v2 option on (extra tasks, hard keys, same-value distractors, word-valued needles, needles across chunk boundaries,
margin, landmark queue, balanced retrieval loss, the weights of continued positions and of first answer
tokens, the bag-of-words loss and its decoder) on a tiny model: 6 steps straight through, and 4 steps (across a phase boundary) followed by a resume from the checkpoint directory to 6. With
--ckpt-format full the final weights, AdamW moments and queue must be identical to the
uninterrupted run's; with bf16 (the reduced state) they must agree within bf16 rounding. Used by hsatrain.selftest (tests/test_train.sh).

    python3 -m hsatrain.resumetest [WORKDIR]
"""
import os
import subprocess
import sys
import tempfile

import numpy as np
import torch

from . import ckpt
from .tokenizer import EOS, train

WORDS = ("river stone garden window morning letter summer market engine bridge doctor travel "
         "yellow silver thunder harbor picture kitchen library village forest mountain ocean "
         "quiet ancient bright simple golden careful").split()
SYN = "n\triver stream\nn\tstone rock\nn\tgarden yard\na\tquiet silent\na\tbright shiny\nv\ttravel journey\n"
CONFIG = '{"d_model":32,"n_heads":2,"d_mlp":64,"d_h":8,"h_q":2,"d_r":16,"n_lower":1,"vocab":%d}'


def make_data(d):
    rng = np.random.default_rng(0)
    sents = []
    for _ in range(3000):
        ws = [WORDS[i] for i in rng.integers(0, len(WORDS), int(rng.integers(5, 12)))]
        sents.append(" ".join(ws).capitalize() + ".")
    text = " ".join(sents) + " The special magic number for 1234567 is what? My dog is Rex."
    tok = train(text.encode(), 420)
    tok.save(os.path.join(d, "tok"))
    ids = np.array(tok.encode(text) + [EOS], np.uint16)
    np.savez_compressed(os.path.join(d, "tokens.npz"), train=ids, heldout=ids[:20000])
    with open(os.path.join(d, "synonyms.txt"), "w") as f:
        f.write(SYN)
    return tok.vocab_size


def run(d, out, extra):
    vocab = 512
    cmd = [sys.executable, "-m", "hsatrain.train", "--data", os.path.join(d, "tokens.npz"),
           "--tok", os.path.join(d, "tok"), "--out", out, "--workers", "1", "--log-every", "1",
           "--schedule", "warm:3:512:2:64:0.9:2e-3:0:base,sparse:3:512:2:2:0.9:2e-3:1:tune",
           "--config", CONFIG % vocab, "--warmup", "2",
           "--extra-tasks", "icl:0.2,rarespan:0.15,selfcopy:0.15,facts2:0.2", "--hard-keys", "0.5",
           "--same-value", "0.5", "--word-values", "0.5", "--word-tasks", "single,multikey,multivalue,multiquery", "--straddle", "0.5", "--free-order", "--first-person", "0.5", "--margin", "1", "--queue", "40", "--ret-balance", "--cont-weight", "0.5", "--first-weight", "2",
           "--bow", "0.2", "--key-bow", "0.5", "--hold-cont", "--key-look", "0.1",
           "--ret-skip-tasks", "multivalue,icl",
           "--part-mib", "0.1"] + extra
    pkg = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    path = os.environ.get("PYTHONPATH")
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="", PYTHONDONTWRITEBYTECODE="1",
               PYTHONPATH=pkg + (os.pathsep + path if path else ""))
    r = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if r.returncode:
        print(r.stdout[-3000:], r.stderr[-3000:])
        raise SystemExit(f"train failed: {' '.join(cmd)}")
    return r.stdout


def compare(a, b):
    meta_a, ma, oa, ea = ckpt.load(a)
    meta_b, mb, ob, eb = ckpt.load(b)
    diff = max(float((ma[k] - mb[k]).abs().max()) for k in ma)
    for i in oa:
        for k in oa[i]:
            diff = max(diff, float((oa[i][k] - ob[i][k]).abs().max()))
    for k in ea:
        diff = max(diff, float((ea[k].float() - eb[k].float()).abs().max()))
    return diff, meta_a["step"], meta_b["step"]


def main(workdir=None):
    """Returns the number of failed checks (0 or more)."""
    if workdir is None:
        with tempfile.TemporaryDirectory(prefix="hsatrain-resume-") as d:
            return main(d)
    d = workdir
    make_data(d)
    fails = 0
    straight = os.path.join(d, "straight")
    run(d, straight, ["--ckpt-format", "full"])
    # bf16 (the reduced state) is compared with the same uninterrupted full-precision run
    for fmt, tol in (("full", 0.0), ("bf16", 0.05)):
        split = os.path.join(d, fmt + "-split")
        run(d, split, ["--ckpt-format", fmt, "--until-step", "4"])
        nparts = len(os.listdir(os.path.join(split, "ckpt")))
        run(d, split, ["--ckpt-format", fmt, "--resume", os.path.join(split, "ckpt")])
        diff, s1, s2 = compare(os.path.join(straight, "ckpt"), os.path.join(split, "ckpt"))
        ok = s1 == s2 == 6 and diff <= tol
        print(f"resume ({fmt} checkpoint, {nparts - 1} parts): steps {s1} vs {s2}, "
              f"max abs diff of weights, moments and queue {diff:.2e} (allowed {tol}): "
              f"{'ok' if ok else 'FAILED'}")
        fails += not ok
    return fails


if __name__ == "__main__":
    torch.set_num_threads(1)
    sys.exit(1 if main(sys.argv[1] if len(sys.argv) > 1 else None) else 0)
