"""Where is the key lost? Probe the landmarks and retrieval queries of multi-needle instances.

    python3 -m hsatrain.keyprobe --model models/hsa-small/model.safetensors \
        --tok models/hsa-small/hsamem-bpe.tok --data .train-pack/tokens.npz \
        [--tasks multikey,multikey-near,single,facts] [--n 100] [--grids 3] [--seed 7]
        [--threads 2] [--json FILE]

(with tools/train on PYTHONPATH; about 6 minutes on 2 CPU cores at the defaults)

On multikey the model ranks the asked key's needle first only at chance (models/EVAL.md). This
module looks at the two vectors of the retrieval score, isolated from any haystack:

Instances (per task, --n of them): hsatrain.tasks.TaskMaker.make(evaluate=True), needles placed
by hsatrain.evaluate.place (overwrite mode, each needle inside its own chunk of held-out text),
every needle chunk encoded from its real window (previous chunk + chunk). For every needle j a
question about it is asked: the instance's question for needle 0, the same template with needle
j's key (multikey, multikey-near) or relation (facts: the evaluation question of that relation)
for the others; all questions of an instance share one random held-out chunk as the first half
of their window, so they differ in the key only. Per question i and needle j:
  qr_i   retrieval query at <|a|>        X_i  its input (hidden state after the HSA block's SWA)
  Xk_i   mean of X over the question's key tokens (facts: over the whole question)
  lm_j   landmark of needle j's chunk     E_j  its input (encoder output at the summary position)
  Pk_j   mean of the encoder outputs over needle j's key tokens (facts: its tokens but the value's)
Reported per task (N = needles per instance; chance of key r@1 = 1/N):
  (a) cos lm: mean cosine between the landmarks of two needles of one instance; "centred": after
      subtracting the task's mean needle landmark (the shared template); shared: |mean lm|^2 /
      mean |lm|^2; cos lm-fill: needle landmark against held-out filler chunks' landmarks
  (b) cos qr / centred: the same for the questions of one instance (only the key differs)
  (c) score matrix s_ij = qr_i . lm_j / sqrt(d_r): diag-off = mean diagonal - mean off-diagonal,
      in units of the std of the scores of 64 filler chunks; key r@1 = argmax over the
      instance's needles on the diagonal; vs fill = the asked needle beats all 64 fillers;
      rawcos = key r@1 with cos(X_i, E_j) (no projection; different spaces, so only indicative);
      probes: a rank-32 bilinear map (A u)·(B w) fitted contrastively (softmax over the
      instance's needles and the fillers, 5-fold cross-validation over instances, scores on
      held-out folds) on (qr, lm), (X, E), (X, Pk), (Xk, E) and (Xk, Pk). (Xk, Pk) shows that the
      key is in the token states and that the probe can match it; (X, Pk) asks whether the
      <|a|> position carries the key, (Xk, E) whether the summary position does; if (X, E)
      tells the keys apart and (qr, lm) does not, the projections lose the key; if (qr, lm)
      does and the model does not, the key is in the vectors but misaligned.
Factorial grids (--grids of each kind; multikey needles and questions; keys random, or "near":
three keys sharing a word with the first as in multikey-near): needles with K=4 keys x 4 values
x 4 contexts (chunk and offset), questions about the same 4 keys x 8 contexts (the window's
first half). Per representation: the share of variance (sum of squares about the grid mean)
explained by each factor's main effect, the mean cosine between two vectors that differ in that
factor only, and key identification: leave-one-out nearest key centroid (cosine, grid-centred),
chance 1/K, on the vectors as they are and on their key-only part (each cell's mean over the
keys subtracted: what changing only the key does). The model's scores on the grid: key r@1 when
the needles differ in the key only, when only the key-only parts of qr and lm are multiplied,
and when they differ in key, value and context as in an instance; the score gain of a key match
and the score's spread over the needles' keys, values and contexts.
"""
import argparse
import json
import math
import re
import time

import numpy as np
import torch

from . import haystack
from .evaluate import place
from .model import load_model
from .tasks import NIAH_FACT, NIAH_Q, RELATIONS, TaskMaker
from .tokenizer import Tokenizer

N_FILL = 64
PROBES = [("qr", "lm"), ("X", "E"), ("X", "Pk"), ("Xk", "E"), ("Xk", "Pk")]
HAY_LEN = 65536
FACT_RE = re.compile("^" + re.escape(NIAH_FACT[0]).replace(r"\{k\}", "(.+)").replace(r"\{v\}", r"(\d+)") + "$")
REL_RE = [re.compile("^" + re.escape(r[4]).replace(r"\{v\}", "(.+)") + "$") for r in RELATIONS]


# ---------------------------------------------------------------- model side

class Encoder:
    """The model's own code, with the encoder's normalised output captured by a hook."""

    def __init__(self, model, batch=64):
        self.m, self.S, self.batch = model, model.cfg.chunk, batch
        self._e = None
        model.enc_norm.register_forward_hook(lambda mod, inp, out: setattr(self, "_e", out))

    @torch.no_grad()
    def chunks(self, wins, spans=None):
        """wins [N, 2S] windows -> lm [N, d_r], E [N, d] (summary position, input of enc_lmk),
        P [N, d] (mean encoder output over the positions spans[i] of the chunk's tokens; the
        whole chunk when None)."""
        S, out = self.S, ([], [], [])
        for b0 in range(0, len(wins), self.batch):
            w = wins[b0:b0 + self.batch]
            h = self.m.lower_stack(w)
            _, _, L = self.m.encode_chunks(h[:, S:])
            e = self._e
            out[0].append(L[:, 0])                 # h_kv = 1
            out[1].append(e[:, S])
            sp = spans[b0:b0 + self.batch] if spans is not None else [range(S)] * len(w)
            out[2].append(torch.stack([e[i, list(p)].mean(0) for i, p in enumerate(sp)]))
        return tuple(torch.cat(o) for o in out)

    @torch.no_grad()
    def queries(self, prevs, blocks, apos, kspans):
        """prevs [N, S] first halves, blocks: list of question blocks (1-D int64), apos: index of
        <|a|> in each block, kspans: the key's positions in each block -> qr [N, d_r], X [N, d]
        at <|a|>, Xk [N, d] mean of X over the key's positions."""
        S, qrs, xs, xks = self.S, [], [], []
        for b0 in range(0, len(blocks), self.batch):
            bl = blocks[b0:b0 + self.batch]
            n = max(len(b) for b in bl)
            q = torch.full((len(bl), n), 257, dtype=torch.long)      # eos padding (causal: unseen)
            for i, b in enumerate(bl):
                q[i, :len(b)] = torch.from_numpy(b)
            h = self.m.lower_stack(torch.cat([prevs[b0:b0 + len(bl)], q], 1))
            xall = self.m.upper_pre(h)[:, S:]
            x = xall[torch.arange(len(bl)), torch.tensor(apos[b0:b0 + len(bl)])]
            qr, _ = self.m.queries(x)
            qrs.append(qr[:, 0])
            xs.append(x)
            xks.append(torch.stack([xall[i, list(p)].mean(0) for i, p in enumerate(kspans[b0:b0 + len(bl)])]))
        return torch.cat(qrs), torch.cat(xs), torch.cat(xks)


# ---------------------------------------------------------------- instances

def questions_of(task, inst):
    """One question per needle: (question text, needle's key or relation)."""
    if task == "facts":
        out = []
        for nd in inst["needles"]:
            ri = [i for i, r in enumerate(REL_RE) if r.match(nd) and r.match(nd).group(1) in RELATIONS[i][1]]
            assert len(ri) == 1, nd
            out.append((RELATIONS[ri[0]][5], RELATIONS[ri[0]][0]))
        assert out[0][0] == inst["question"]
        return out
    keys = [FACT_RE.match(nd).group(1) for nd in inst["needles"]]
    assert NIAH_Q.format(k=keys[0]) == inst["question"]
    return [(NIAH_Q.format(k=k), k) for k in keys]


def needle_key(task, text):
    """The part of a needle the question names: the key; facts: the value (everything else)."""
    if task == "facts":
        for r, rel in zip(REL_RE, RELATIONS):
            m = r.match(text)
            if m and m.group(1) in rel[1]:
                return m.group(1)
    return FACT_RE.match(text).group(1)


def tok_span(tok, lead, text, ranges):
    """Token positions of encode(lead + text) covering the character ranges [(cs, ce)] of text
    (a space before a range belongs to its first token: pieces start with their space)."""
    full = tok.encode(lead + text)
    pos = []
    for cs, ce in ranges:
        a_txt = text[:cs - 1] if cs > 0 and text[cs - 1] == " " else text[:cs]
        a, b = tok.encode(lead + a_txt), tok.encode(lead + text[:ce])
        assert full[:len(a)] == a and full[:len(b)] == b, (text, cs, ce)
        pos += range(len(a), len(b))
    return pos


def key_ranges(task, text, key):
    """Character ranges of the key in a needle or question (facts: the needle without its value,
    the whole question)."""
    if task != "facts":
        i = text.index(key)
        return [(i, i + len(key))]
    if key is None:
        return [(0, len(text))]
    i = text.index(key)
    return [(0, i - 1 if text[i - 1] == " " else i), (i + len(key), len(text))]


def find(seq, sub):
    seq, sub = seq.tolist(), sub.tolist()
    for i in range(len(seq) - len(sub) + 1):
        if seq[i:i + len(sub)] == sub:
            return i
    raise ValueError("needle not found in its chunk")


def build_task(enc, maker, task, n, hay_t, rng):
    """Encode n instances of task. Returns per-instance lists of tensors and the fillers'."""
    S = maker.S
    nC = len(hay_t) // S
    tok = maker.tok
    wins, spans, owner, blocks, apos, prevs, qowner, qspans = [], [], [], [], [], [], [], []
    for it in range(n):
        inst = maker.make(rng, task, evaluate=True)
        toks, chunks = place(rng, maker, task, inst, float(rng.random()), nC, hay_t, "overwrite", None)

        def chunk_tokens(c):
            return toks[c] if c in toks else hay_t[c * S:(c + 1) * S]
        for j, nd in enumerate(inst["needles"]):
            c = chunks[j][0]
            prev = chunk_tokens(c - 1) if c > 0 else torch.full((S,), enc.m.cfg.pad_id)
            own = chunk_tokens(c)
            nt = maker.needle_tokens(nd, newline=True)
            a = find(own, torch.from_numpy(nt))
            wins.append(torch.cat([prev, own]))
            ks = tok_span(tok, "\n", nd, key_ranges(task, nd, needle_key(task, nd)))
            spans.append([a + p for p in ks if p < len(nt)])
            owner.append(it)
        pc = int(rng.integers(1, nC))
        prev = hay_t[pc * S:(pc + 1) * S]
        for j, (qtext, qkey) in enumerate(questions_of(task, inst)):
            q = dict(question=qtext, parts=[(inst["parts"][0][0], j)], sep=inst["sep"])
            block, src, _, qlen = maker.encode_block(q)
            assert src[qlen - 1] == j
            blocks.append(block)
            apos.append(qlen - 1)
            prevs.append(prev)
            qowner.append(it)
            qt = " " + qtext.strip()
            qspans.append([1 + p for p in tok_span(tok, "", qt, key_ranges(
                task, qt, None if task == "facts" else qkey))])
    lm, E, Pk = enc.chunks(torch.stack(wins), spans)
    qr, X, Xk = enc.queries(torch.stack(prevs), blocks, apos, qspans)
    owner, qowner = np.array(owner), np.array(qowner)
    split = lambda t, o: [t[torch.from_numpy(np.nonzero(o == i)[0])] for i in range(n)]
    return dict(lm=split(lm, owner), E=split(E, owner), Pk=split(Pk, owner),
                qr=split(qr, qowner), X=split(X, qowner), Xk=split(Xk, qowner))


def fillers(enc, hay_t, rng, S):
    nC = len(hay_t) // S
    cs = rng.choice(np.arange(1, nC), N_FILL, replace=False)
    wins = torch.stack([hay_t[(c - 1) * S:(c + 1) * S] for c in cs])
    lm, E, P = enc.chunks(wins)
    return dict(lm=lm, E=E, Pk=P)           # a filler has no key: Pk is its whole chunk's mean


# ---------------------------------------------------------------- measures

def cos(a, b):
    return torch.nn.functional.normalize(a, dim=-1) @ torch.nn.functional.normalize(b, dim=-1).T


def nanmean(v):
    v = [x for x in v if x == x]
    return float(np.mean(v)) if v else float("nan")


def mean_offdiag(m):
    n = m.shape[0]
    if n < 2:
        return float("nan")
    return float((m.sum() - m.diagonal().sum()) / (n * n - n))


def geometry(d, fill):
    """(a) and (b): cosines within instances, raw and centred on the task's mean vector."""
    out = {}
    for key in ("lm", "qr"):
        allv = torch.cat(d[key])
        mu = allv.mean(0)
        out[f"cos_{key}"] = nanmean([mean_offdiag(cos(v, v)) for v in d[key]])
        out[f"cos_{key}_centred"] = nanmean([mean_offdiag(cos(v - mu, v - mu)) for v in d[key]])
        out[f"shared_{key}"] = float(mu.pow(2).sum() / allv.pow(2).sum(1).mean())
    out["cos_lm_fill"] = float(cos(torch.cat(d["lm"]), fill["lm"]).mean())
    return out


def score_stats(d, fill, d_r):
    """(c): the model's score matrix per instance."""
    diag, off, r1, vsfill, sd = [], [], [], [], []
    for qr, lm in zip(d["qr"], d["lm"]):
        s = qr @ lm.T / math.sqrt(d_r)
        f = qr @ fill["lm"].T / math.sqrt(d_r)
        sd.append(float(f.std()))
        diag.append(float(s.diagonal().mean()))
        if len(s) > 1:
            off.append(mean_offdiag(s))
            r1.append(float((s.argmax(1) == torch.arange(len(s))).float().mean()))
        else:
            off.append(float(f.mean()))                  # single: the fillers are the others
            r1.append(float("nan"))
        vsfill.append(float((s.diagonal()[:, None] > f).all(1).float().mean()))
    sd = float(np.mean(sd))
    return dict(diag_minus_off=float((np.mean(diag) - np.mean(off)) / sd), score_fill_sd=sd,
                key_r1=nanmean(r1), r1_vs_fill=float(np.mean(vsfill)))


def key_r1(qs, ns, fn):
    r = [float((fn(q, n).argmax(1) == torch.arange(len(q))).float().mean()) for q, n in zip(qs, ns) if len(q) > 1]
    return float(np.mean(r)) if r else float("nan")


def probe(qs, ns, fill_n, folds=5, rank=32, steps=300, wd=1e-3, seed=0):
    """Cross-validated rank-`rank` bilinear probe s = (A u).(B w) on standardised features;
    softmax over the instance's needles and the fillers. Returns held-out key r@1 (over the
    instance's needles; nan when an instance has one needle) and held-out r@1 against the
    fillers, and the training folds' key r@1."""
    n = len(qs)
    g = torch.Generator().manual_seed(seed)
    idx = torch.randperm(n, generator=g).tolist()
    test_r1, test_fill, train_r1 = [], [], []
    for f in range(folds):
        te = set(idx[f::folds])
        tr = [i for i in range(n) if i not in te]
        uq = torch.cat([qs[i] for i in tr])
        un = torch.cat([ns[i] for i in tr])
        mq, sq = uq.mean(0), uq.std(0) + 1e-6
        mn, sn = un.mean(0), un.std(0) + 1e-6
        nq = lambda x: (x - mq) / sq
        nn_ = lambda x: (x - mn) / sn
        torch.manual_seed(seed + f)
        A = (torch.randn(rank, uq.shape[1]) / math.sqrt(uq.shape[1])).requires_grad_()
        B = (torch.randn(rank, un.shape[1]) / math.sqrt(un.shape[1])).requires_grad_()
        opt = torch.optim.Adam([A, B], lr=1e-2)
        F = nn_(fill_n)
        Qt = torch.stack([nq(qs[i]) for i in tr])              # [n_tr, N, dq] (N fixed per task)
        Wt = torch.stack([nn_(ns[i]) for i in tr])
        N = Qt.shape[1]
        lab = torch.arange(N).repeat(len(tr))
        for _ in range(steps):
            a = Qt @ A.T
            s = torch.cat([a @ (Wt @ B.T).transpose(1, 2), a @ (F @ B.T).T], 2)
            loss = torch.nn.functional.cross_entropy(s.reshape(-1, s.shape[-1]), lab)
            loss = loss + wd * (A.pow(2).sum() + B.pow(2).sum())
            opt.zero_grad()
            loss.backward()
            opt.step()
        with torch.no_grad():
            fn = lambda q, w: (nq(q) @ A.T) @ (nn_(w) @ B.T).T
            for i in range(n):
                s = fn(qs[i], ns[i])
                if i in te:
                    sf = fn(qs[i], fill_n)
                    test_fill.append(float((s.diagonal()[:, None] > sf).all(1).float().mean()))
                    if len(s) > 1:
                        test_r1.append(float((s.argmax(1) == torch.arange(len(s))).float().mean()))
                elif len(s) > 1:
                    train_r1.append(float((s.argmax(1) == torch.arange(len(s))).float().mean()))
    m = lambda v: float(np.mean(v)) if v else float("nan")
    return dict(key_r1=m(test_r1), r1_vs_fill=m(test_fill), train_key_r1=m(train_r1))


# ---------------------------------------------------------------- factorial grids

def variance_shares(Y):
    """Y [K, V, C, d] (or [K, C, d]): share of the total sum of squares about the grid mean
    explained by each factor's main effect."""
    Yc = Y - Y.reshape(-1, Y.shape[-1]).mean(0)
    tot = float(Yc.pow(2).sum())
    shares = []
    for ax in range(Y.dim() - 1):
        other = [a for a in range(Y.dim() - 1) if a != ax]
        m = Yc.mean(dim=other)                              # [levels, d]
        shares.append(float(m.pow(2).sum()) * (Yc[..., 0].numel() / Y.shape[ax]) / tot)
    return shares


def one_factor_cos(Y, ax):
    """Mean cosine between two vectors that differ in factor ax only."""
    Z = torch.movedim(Y, ax, 0)
    Z = Z.reshape(Z.shape[0], -1, Z.shape[-1])              # levels x cells x d
    c = [mean_offdiag(cos(Z[:, j], Z[:, j])) for j in range(Z.shape[1])]
    return float(np.mean(c))


def key_id(Y, key_only=False):
    """Leave-one-out nearest key centroid (cosine, grid-centred); key = axis 0. key_only: each
    cell's mean over the keys subtracted first (what changing only the key does)."""
    K = Y.shape[0]
    if key_only:
        Y = Y - Y.mean(0, keepdim=True)
    Z = Y.reshape(K, -1, Y.shape[-1])
    Z = Z - Z.reshape(-1, Z.shape[-1]).mean(0)
    m = Z.shape[1]
    sums = Z.sum(1)
    hit = 0
    for k in range(K):
        for j in range(m):
            cent = sums.clone() / m
            cent[k] = (sums[k] - Z[k, j]) / (m - 1)
            hit += int(cos(Z[k, j][None], cent).argmax()) == k
    return hit / (K * m)


def grid_scores(qr, lm, rng, draws=200):
    """The model's score on one grid: qr [K, CQ, d_r] (question key x context), lm [K, V, C, d_r]
    (needle key x value x context), the same K keys on both sides."""
    K, CQ, d = qr.shape
    V, C = lm.shape[1], lm.shape[2]
    S = torch.einsum("kqd,nvcd->kqnvc", qr, lm) / math.sqrt(d)
    hit = lambda s, k: float((s.argmax(2) == k).float().mean())
    kk = torch.arange(K)[:, None, None, None]
    pure = hit(S, kk)                                       # needles differ in the key only
    dq, dl = qr - qr.mean(0), lm - lm.mean(0)
    aligned = hit(torch.einsum("kqd,nvcd->kqnvc", dq, dl), kk)
    same = torch.eye(K, dtype=torch.bool)[:, None, :, None, None].expand_as(S)
    gain = float(S[same].mean() - S[~same].mean())
    mixed = []                                              # needles differ in key, value, context
    for _ in range(draws):
        v = torch.from_numpy(rng.permutation(V)[:K])
        c = torch.from_numpy(rng.permutation(C)[:K])
        s = S[:, :, torch.arange(K), v, c]                  # [K, CQ, K]
        mixed.append(float((s.argmax(2) == torch.arange(K)[:, None]).float().mean()))
    return dict(pure_r1=pure, aligned_r1=aligned, mixed_r1=float(np.mean(mixed)), match_gain=gain,
                sd_key=float(S.std(2).mean()), sd_value=float(S.std(3).mean()),
                sd_context=float(S.std(4).mean()))


def grids(enc, maker, hay_t, rng, G, S, near=False):
    """Needle grid (K keys x V values x C contexts: chunk and offset) and question grid (the same
    K keys x CQ contexts: the window's first half), multikey form; near: the keys share a word
    with the first (multikey-near)."""
    K, V, C, CQ = 4, 4, 4, 8
    nC = len(hay_t) // S
    tok = maker.tok
    res = {k: [] for k in ("lm", "E", "Pk", "qr", "X", "Xk")}
    sc = []
    for _ in range(G):
        keys = [maker.key(rng)]
        while len(keys) < K:
            k = maker.near_key(rng, keys[0]) if near else maker.key(rng)
            if k not in keys:
                keys.append(k)
        vals = [maker.number(rng) for _ in range(V)]
        texts = [[NIAH_FACT[0].format(k=k, v=v) for v in vals] for k in keys]
        nts = [[maker.needle_tokens(t, newline=True) for t in r] for r in texts]
        L = max(len(t) for r in nts for t in r)
        ctx = [(int(rng.integers(1, nC)), int(rng.integers(0, S - L + 1))) for _ in range(C)]
        wins, spans = [], []
        for ki in range(K):
            for vi in range(V):
                for c, off in ctx:
                    own = hay_t[c * S:(c + 1) * S].clone()
                    nt = nts[ki][vi]
                    own[off:off + len(nt)] = torch.from_numpy(nt)
                    wins.append(torch.cat([hay_t[(c - 1) * S:c * S], own]))
                    t = texts[ki][vi]
                    spans.append([off + p for p in tok_span(tok, "\n", t, key_ranges("multikey", t, keys[ki]))])
        lm, E, Pk = enc.chunks(torch.stack(wins), spans)
        for name, t in (("lm", lm), ("E", E), ("Pk", Pk)):
            res[name].append(t.reshape(K, V, C, -1))
        qctx = [int(rng.integers(1, nC)) for _ in range(CQ)]
        blocks, apos, prevs, kspans = [], [], [], []
        for k in keys:
            q = NIAH_Q.format(k=k)
            block, src, _, qlen = maker.encode_block(dict(question=q, parts=[("1234567", 0)], sep=", "))
            ks = [1 + p for p in tok_span(tok, "", " " + q, key_ranges("multikey", " " + q, k))]
            for c in qctx:
                blocks.append(block)
                apos.append(qlen - 1)
                prevs.append(hay_t[c * S:(c + 1) * S])
                kspans.append(ks)
        qr, X, Xk = enc.queries(torch.stack(prevs), blocks, apos, kspans)
        for name, t in (("qr", qr), ("X", X), ("Xk", Xk)):
            res[name].append(t.reshape(K, CQ, -1))
        sc.append(grid_scores(res["qr"][-1], res["lm"][-1], rng))
    rows = {}
    for name, Ys in res.items():
        sh = np.mean([variance_shares(Y) for Y in Ys], 0)
        fc = [float(np.mean([one_factor_cos(Y, ax) for Y in Ys])) for ax in range(Ys[0].dim() - 1)]
        rows[name] = dict(shares=sh.tolist(), cos_one_factor=fc,
                          key_id=float(np.mean([key_id(Y) for Y in Ys])),
                          key_id_key_only=float(np.mean([key_id(Y, True) for Y in Ys])),
                          chance=1 / Ys[0].shape[0])
    rows["scores"] = {k: float(np.mean([x[k] for x in sc])) for k in sc[0]}
    return rows


# ---------------------------------------------------------------- main

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--tok", required=True)
    ap.add_argument("--data", required=True, help="tokens.npz (held-out text for the filler)")
    ap.add_argument("--tasks", default="multikey,multikey-near,single,facts")
    ap.add_argument("--n", type=int, default=100, help="instances per task")
    ap.add_argument("--grids", type=int, default=3, help="factorial grids of each kind (0: none)")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    ap.add_argument("--json", help="write every figure to this file")
    a = ap.parse_args()
    t0 = time.time()
    if a.threads:
        torch.set_num_threads(a.threads)
    model, meta = load_model(a.model)
    cfg = model.cfg
    assert cfg.h_kv == 1, "keyprobe reads retrieval head 0 only"
    tok = Tokenizer.load(a.tok)
    maker = TaskMaker(tok, cfg.chunk)
    hay, _ = haystack.assemble(np.load(a.data), HAY_LEN)
    hay_t = torch.from_numpy(hay.astype(np.int64))
    enc = Encoder(model)
    rng = np.random.default_rng(a.seed)
    fill = fillers(enc, hay_t, rng, cfg.chunk)
    results = dict(model=a.model, step=meta.get("step"), n=a.n, tasks={})
    for task in a.tasks.split(","):
        t1 = time.time()
        d = build_task(enc, maker, task, a.n, hay_t, rng)
        r = dict(needles=len(d["lm"][0]))
        r.update(geometry(d, fill))
        r.update(score_stats(d, fill, cfg.d_r))
        r["rawcos_key_r1"] = key_r1(d["X"], d["E"], cos)
        for qk, nk in PROBES:
            r[f"probe_{qk}_{nk}"] = probe(d[qk], d[nk], fill[nk])
        results["tasks"][task] = r
        print(f"[{time.time() - t0:6.1f}s] {task}: {time.time() - t1:.1f}s", flush=True)
    if a.grids:
        t1 = time.time()
        results["grids"] = {kind: grids(enc, maker, hay_t, rng, a.grids, cfg.chunk, kind == "near")
                            for kind in ("random", "near")}
        print(f"[{time.time() - t0:6.1f}s] grids: {time.time() - t1:.1f}s", flush=True)
    results["seconds"] = time.time() - t0
    report(results)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(results, f, indent=1)


def report(res):
    f3 = lambda x: "-" if x != x else f"{x:.3f}"
    print(f"\nmodel {res['model']} step {res['step']}, {res['n']} instances a task, "
          f"{N_FILL} filler chunks, {res['seconds']:.0f} s\n")
    print("(a), (b): cosines within one instance")
    print("| task | N | cos lm | cos lm centred | shared lm | cos lm-fill | cos qr | cos qr centred | shared qr |")
    print("|---|---|---|---|---|---|---|---|---|")
    for t, r in res["tasks"].items():
        print(f"| {t} | {r['needles']} | {f3(r['cos_lm'])} | {f3(r['cos_lm_centred'])} | {f3(r['shared_lm'])} | "
              f"{f3(r['cos_lm_fill'])} | {f3(r['cos_qr'])} | {f3(r['cos_qr_centred'])} | {f3(r['shared_qr'])} |")
    print("\n(c): key r@1 (argmax over the instance's needles; chance 1/N), r@1 vs 64 fillers; probes: "
          "key r@1 on held-out folds (training folds' in brackets)")
    hdr = ["task", "diag-off (filler sd)", "model key r@1", "model vs fill", "rawcos(X,E)"] + \
        [f"probe({q},{n})" for q, n in PROBES]
    print("| " + " | ".join(hdr) + " |")
    print("|" + "---|" * len(hdr))
    for t, r in res["tasks"].items():
        p = [r[f"probe_{q}_{n}"] for q, n in PROBES]
        print(f"| {t} | {r['diag_minus_off']:.2f} ({r['score_fill_sd']:.2f}) | {f3(r['key_r1'])} | "
              f"{f3(r['r1_vs_fill'])} | {f3(r['rawcos_key_r1'])} | "
              + " | ".join(f"{f3(x['key_r1'])} ({f3(x['train_key_r1'])})" for x in p) + " |")
    print("\nprobes, held-out r@1 against the 64 fillers: " + "; ".join(
        f"{t} " + " / ".join(f3(r[f"probe_{q}_{n}"]["r1_vs_fill"]) for q, n in PROBES)
        for t, r in res["tasks"].items()))
    for kind, gr in res.get("grids", {}).items():
        print(f"\nfactorial grids, {kind} keys (multikey form; needles 4 keys x 4 values x 4 contexts, "
              "questions the same 4 keys x 8 contexts): variance share of each factor's main effect, "
              "cosine between vectors differing in that factor only, key identification (chance)")
        print("| vector | key share | value share | context share | cos key-only | cos value-only "
              "| cos context-only | key id | key id, key-only part |")
        print("|---|---|---|---|---|---|---|---|---|")
        for name, g in gr.items():
            if name == "scores":
                continue
            sh, fc = g["shares"], g["cos_one_factor"]
            if len(sh) == 2:                       # questions: key x context
                sh, fc = [sh[0], float("nan"), sh[1]], [fc[0], float("nan"), fc[1]]
            print(f"| {name} | " + " | ".join(f3(x) for x in sh) + " | " + " | ".join(f3(x) for x in fc)
                  + f" | {g['key_id']:.3f} ({g['chance']:.3f}) | {g['key_id_key_only']:.3f} |")
        g = gr["scores"]
        print(f"model score on the grid: key r@1 (chance 0.25) with needles differing in the key only "
              f"{g['pure_r1']:.3f}, key-only parts of qr and lm {g['aligned_r1']:.3f}, needles differing "
              f"in key, value and context {g['mixed_r1']:.3f}; score gain of a key match "
              f"{g['match_gain']:.3f}; score sd over needle keys {g['sd_key']:.3f}, values "
              f"{g['sd_value']:.3f}, contexts {g['sd_context']:.3f}")


if __name__ == "__main__":
    main()
