"""Haystacks and needle placement of the evaluation (hsatrain.evaluate).

Haystack: the held-out split, then the extra held-out text (array heldout_extra of tokens.npz
when present: documents of packages that train.txt never contains, hsatrain.corpus --extra),
repeated only when a length exceeds both; the number of repeats is reported.

Two ways to hide a trial's needles (both re-encode only the chunks whose window changed):
  overwrite  a needle overwrites tokens inside one chunk (the original evaluation)
  append     a needle is a whole entry of its own, "text\\n", put between two entries of
             ordinary text, as the daemon receives a stored fact among other appends: it
             starts right after a line end of the haystack (the first from a random place of
             the wanted chunk on), the text after it moves back by
             the needle's length, and the next entry loses as many tokens at its end so that
             the stream realigns at the entry after it (entries longer than 8 chunks are not
             used). The needle may straddle two chunks; its rank is the best rank of the
             chunks holding its tokens.
"""
import numpy as np
import torch

from .tokenizer import EOS


def assemble(data, L):
    """(haystack tokens of length L, number of times the text was repeated)."""
    parts = [data["heldout"]] + ([data["heldout_extra"]] if "heldout_extra" in data.files else [])
    base = np.concatenate(parts)
    reps = -(-L // len(base))
    hay = np.concatenate([base] * reps)[:L] if reps > 1 else base[:L]
    return hay, reps


def entry_starts(tok, hay):
    """Token positions that start an entry: after a token ending in a line feed, or eos."""
    ends = np.zeros(tok.vocab_size, bool)
    for i in range(tok.vocab_size):
        b = tok.decode_bytes([i])
        ends[i] = b.endswith(b"\n")
    ends[EOS] = True                                         # <|eos|> separates documents
    return np.nonzero(ends[hay[:-1]])[0] + 1


def overwrite(rng, hay_t, chunks, needles, S):
    toks = {}
    for c, nt in zip(chunks, needles):
        off = int(rng.integers(0, S - len(nt) + 1))
        base = toks.get(c, hay_t[c * S:(c + 1) * S].clone())
        base[off:off + len(nt)] = torch.from_numpy(nt)
        toks[c] = base
    return toks, [[c] for c in chunks]


def append(rng, hay_t, chunks, needles, S, starts, nC, max_entry=8):
    """Needles as entries near the wanted chunks. Returns (chunk -> new tokens, chunks of
    each needle), or None when no placement was found."""
    used, plan = [], {}
    order = sorted(range(len(chunks)), key=lambda i: chunks[i])
    for ni in order:
        n = len(needles[ni])
        # the first entry boundary from a random place of the wanted chunk on: trials of one
        # depth then put their needle at different boundaries, not all at the same one
        j0 = int(np.searchsorted(starts, chunks[ni] * S + int(rng.integers(0, S))))
        found = None
        for dj in range(400):
            j = j0 + (dj + 1) // 2 * (1 if dj % 2 else -1)
            if j < 0 or j >= len(starts):
                continue
            b = int(starts[j])
            k = int(np.searchsorted(starts, b + n + 1))
            if k >= len(starts):
                continue
            b2 = int(starts[k])
            if b2 - b > max_entry * S or b2 > nC * S:
                continue
            if any(b < e + S and b2 + S > s for s, e in used):
                continue
            found = (b, b2)
            break
        if found is None:
            return None
        used.append(found)
        plan[ni] = found
    toks, where = {}, [None] * len(chunks)
    for ni, (b, b2) in plan.items():
        n = len(needles[ni])
        c0, c1 = b // S, (b2 - 1) // S
        seg = hay_t[c0 * S:(c1 + 1) * S].clone()
        o = b - c0 * S
        moved = hay_t[b:b2 - n].clone()
        seg[o:o + n] = torch.from_numpy(needles[ni])
        seg[o + n:o + n + len(moved)] = moved
        for c in range(c0, c1 + 1):
            toks[c] = seg[(c - c0) * S:(c - c0 + 1) * S]
        where[ni] = list(range(b // S, (b + n - 1) // S + 1))
    return toks, where
