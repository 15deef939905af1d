"""Tokenize the corpus splits into uint16 arrays: DATADIR/tokens.npz with arrays
`train` and `heldout` (documents separated by <|eos|>), compressed; also
`heldout_extra` when TEXTDIR/heldout_extra.txt exists (hsatrain.corpus --extra), cut so
that held-out and extra together give a 16M-token haystack without repeating.

Usage: python3 -m hsatrain.pack TEXTDIR TOKFILE OUT.npz
"""
import os
import sys

import numpy as np

from .tokenizer import EOS, Tokenizer

EVAL_TOKENS = 2**24 + 4096        # the longest evaluation haystack (16M tokens) and its question


def encode_split(tok, path):
    ids = []
    with open(path, encoding="utf-8") as f:
        for doc in f.read().split("\n\f\n"):
            if doc.strip():
                ids.extend(tok.encode(doc))
                ids.append(EOS)
    return np.array(ids, dtype=np.uint16)


def main():
    textdir, tokfile, out = sys.argv[1:4]
    tok = Tokenizer.load(tokfile)
    arrs = {s: encode_split(tok, f"{textdir}/{s}.txt") for s in ("train", "heldout", "heldout_extra")
            if s != "heldout_extra" or os.path.exists(f"{textdir}/{s}.txt")}
    if "heldout_extra" in arrs:                   # only what a 16M-token haystack needs
        arrs["heldout_extra"] = arrs["heldout_extra"][:max(0, EVAL_TOKENS - len(arrs["heldout"]))]
    np.savez_compressed(out, **arrs)
    for s, a in arrs.items():
        print(f"pack: {s}: {len(a)} tokens")


if __name__ == "__main__":
    main()
