"""Retrieval tasks made from the corpus itself, so that every document trains the landmarks.

The template tasks of hsatrain.tasks teach a few forms of needle; these teach retrieval in
general. Each builds one training sequence of T tokens from ordinary text and returns it as
build_training_sample does: tokens, the retrieval target chunk per position (-1: none) and the
answer mask.
  icl       inverse cloze: a run of words from a chunk far back in the sequence becomes the
            question, with words dropped, replaced by WordNet synonyms (hsatrain.lexdb) and
            reordered; the answer is the run's original words, so both the retrieval loss and
            the answer loss need that chunk
  rarespan  the question quotes a rare token of an earlier chunk with its neighbour ("What
            follows 'vermiculite'?"); the answer is the next few tokens of that chunk
  selfcopy  the paper's self-copy warm-up: the second half of the sequence repeats the first,
            so every token of the second half is predicted from the chunk half a sequence back
            (its retrieval target; every 8th position is labelled)
"""
import numpy as np

from .tokenizer import ATOK, EOS, QTOK

ICL_ASK = ["Which passage says: {q}?", "Find the part that talks about {q}.",
           "Where did the text mention {q}?", "user: I read something like \"{q}\" earlier. "
           "What exactly did it say?\nassistant:", "Quote the sentence about {q}.",
           "Recall the words: {q}", "What was written about {q}?"]
RARE_ASK = ["What follows \"{w}\"?", "Continue the text after \"{w}\":",
            "user: what came after \"{w}\" in what I sent you?\nassistant:",
            "Which words come right after \"{w}\"?"]


class CorpusTasks:
    def __init__(self, tok, filler, thesaurus=None, S=64):
        self.tok, self.S, self.th = tok, S, thesaurus
        freq = np.bincount(filler[: min(len(filler), 4_000_000)], minlength=tok.vocab_size)
        self.freq = freq.astype(np.float64)
        self.alpha = np.zeros(tok.vocab_size, bool)
        for i in range(256, tok.vocab_size):
            b = tok.vocab[i].strip()
            self.alpha[i] = len(b) >= 4 and b.isalpha()

    # ---- question block helpers ----
    def block(self, question, answer_ids, target):
        q = [QTOK] + self.tok.encode(" " + question) + [ATOK]
        ids = q + list(answer_ids) + [EOS]
        src = [-1] * len(ids)
        ans = [0] * len(ids)
        for t in range(len(q) - 1, len(ids) - 1):
            src[t], ans[t] = target, 1
        return np.array(ids, np.int64), np.array(src, np.int64), np.array(ans, np.int64)

    def paraphrase(self, rng, ws, drop=0.25, syn=0.35, shuffle=0.5):
        out = []
        for w in ws:
            if len(ws) > 4 and rng.random() < drop:
                continue
            s = self.th.synonyms(w) if self.th is not None and w.isalpha() else []
            out.append(s[int(rng.integers(0, len(s)))] if s and rng.random() < syn else w)
        if rng.random() < shuffle:                       # reorder: rotate or swap neighbours
            if rng.random() < 0.5 and len(out) > 3:
                k = int(rng.integers(1, len(out)))
                out = out[k:] + out[:k]
            else:
                for i in range(0, len(out) - 1, 2):
                    if rng.random() < 0.5:
                        out[i], out[i + 1] = out[i + 1], out[i]
        return out

    # ---- tasks ----
    def icl(self, rng, toks, c):
        S = self.S
        text = self.tok.decode(toks[c * S + 2:(c + 1) * S - 2].tolist())
        ws = text.split()[1:-1]
        alpha = [i for i, w in enumerate(ws) if w.isalpha()]
        if len(ws) < 8 or len(alpha) < 5:
            return None
        n = int(rng.integers(6, 12))
        i0 = int(rng.integers(0, max(1, len(ws) - n)))
        span = ws[i0:i0 + n]
        words = [w.strip(".,;:()\"'").lower() for w in span]
        q = " ".join(w for w in self.paraphrase(rng, [w for w in words if w]))
        ans = self.tok.encode(" " + " ".join(span))[:20]
        return ICL_ASK[int(rng.integers(0, len(ICL_ASK)))].format(q=q), ans

    def rarespan(self, rng, toks, c):
        S = self.S
        lo, hi = c * S + 1, (c + 1) * S - 6
        cand = np.arange(lo, hi)
        cand = cand[self.alpha[toks[cand]]]
        if len(cand) == 0:
            return None
        p = int(cand[np.argmin(self.freq[toks[cand]] + rng.random(len(cand)))])
        w = self.tok.decode(toks[p - 1:p + 1].tolist()).strip()
        ans = toks[p + 1:p + 1 + int(rng.integers(3, 6))].tolist()
        return RARE_ASK[int(rng.integers(0, len(RARE_ASK)))].format(w=w), ans

    def sample(self, rng, filler, T, task):
        S = self.S
        start = int(rng.integers(0, len(filler) - T - 1))
        toks = filler[start:start + T].astype(np.int64).copy()
        tgt = np.full(T, -1, np.int64)
        am = np.zeros(T, np.int64)
        nC = T // S
        if task == "selfcopy":
            h = (nC // 2) * S
            toks[h:2 * h] = toks[:h]
            t = np.arange(h - 1, 2 * h - 1)
            keep = t[(t % 8) == 7]
            tgt[keep] = (keep + 1 - h) // S
            return toks, tgt, am
        fn = self.icl if task == "icl" else self.rarespan
        for _ in range(8):
            q_chunk = int(rng.integers(nC // 2, nC - 1))
            c = int(rng.integers(0, max(1, q_chunk - 3)))
            got = fn(rng, toks, c)
            if got is None:
                continue
            block, src, ans = self.block(got[0], got[1], c)
            p0 = q_chunk * S
            L = min(len(block), T - p0)
            toks[p0:p0 + L] = block[:L]
            tgt[p0:p0 + L] = src[:L]
            am[p0:p0 + L] = ans[:L]
            return toks, tgt, am
        return toks, tgt, am


CORPUS_TASKS = ("icl", "rarespan", "selfcopy")
