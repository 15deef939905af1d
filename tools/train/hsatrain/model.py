"""The learned HSA encoder of hsamem: a small SWA + HSA language model.

Every token is processed inside its window: the previous chunk (S tokens, or S
pad tokens before the first chunk) followed by its own chunk up to itself. All
sliding-window attention layers are causal over that window of at most 2S
tokens with rotary positions 0..2S-1, so the output of the lower stack for a
chunk's tokens, and thus the chunk's K, V and landmark, depend only on that
chunk and the one before it. A daemon encodes each sealed chunk once, from the
two chunks' tokens, and never re-encodes it.

Layout (models/README.md gives the exact computation):
  embedding -> n_lower SWA blocks -> [chunk encoder -> K, V, landmark per chunk]
            -> n_upper SWA blocks -> HSA block (SWA, HSA attention, MLP)
            -> final RMSNorm -> LM head (tied to the embedding)
The HSA block is the last block, so only the window's own-chunk positions need
HSA; HSA carries no positions.
"""
import json
import math
from dataclasses import dataclass, asdict

import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.utils.checkpoint

from . import st


@dataclass
class Config:
    vocab: int = 8192
    d_model: int = 384
    n_heads: int = 6          # SWA heads (head dim d_model / n_heads)
    d_mlp: int = 1024         # SwiGLU hidden size
    n_lower: int = 3          # SWA blocks below the chunk memory
    n_enc: int = 1            # bidirectional chunk-encoder blocks
    n_upper: int = 1          # SWA blocks between the lower stack and the HSA block
    chunk: int = 64           # S
    h_kv: int = 1             # HSA key/value heads (= retrieval heads h_r)
    d_h: int = 64             # HSA head dim
    h_q: int = 8              # HSA query heads (G = h_q / h_kv)
    d_r: int = 128            # landmark / retrieval query size (all h_r heads together)
    rope_theta: float = 10000.0
    eps: float = 1e-6
    topk: int = 8
    pad_id: int = 256
    # 1: the landmark also reads the mean of the chunk's encoder outputs (enc_lmk_pool), a
    # computation outside the hsamem-hsa 1 format (export refuses it); 0: the format's landmark
    lmk_pool: int = 0

    def to_dict(self):
        d = asdict(self)
        if not self.lmk_pool:
            del d["lmk_pool"]  # the hsamem-hsa 1 config has no such key
        return d


def rms(x, eps):
    return x * torch.rsqrt(x.float().pow(2).mean(-1, keepdim=True) + eps).to(x.dtype)


class RMSNorm(nn.Module):
    def __init__(self, d, eps):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(d))
        self.eps = eps

    def forward(self, x):
        return rms(x, self.eps) * self.weight.to(x.dtype)


def rope_tables(n, dim, theta, device):
    inv = 1.0 / (theta ** (torch.arange(0, dim, 2, device=device, dtype=torch.float32) / dim))
    ang = torch.arange(n, device=device, dtype=torch.float32)[:, None] * inv[None, :]
    return ang.cos(), ang.sin()


def apply_rope(x, cos, sin):
    # x [..., n, dim]; rotate pairs (i, i + dim/2)
    h = x.shape[-1] // 2
    x1, x2 = x[..., :h].float(), x[..., h:].float()
    return torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos], -1).to(x.dtype)


def sdpa(q, k, v, causal):
    if hasattr(F, "scaled_dot_product_attention"):
        return F.scaled_dot_product_attention(q, k, v, is_causal=causal)
    a = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(q.shape[-1])
    if causal:
        n = q.shape[-2]
        a = a.masked_fill(torch.ones(n, n, dtype=torch.bool, device=q.device).triu(1), float("-inf"))
    return torch.matmul(torch.softmax(a.float(), -1).to(v.dtype), v)


class Attention(nn.Module):
    """Multi-head attention with q/k RMSNorm and rotary positions."""

    def __init__(self, cfg):
        super().__init__()
        d, h = cfg.d_model, cfg.n_heads
        self.h, self.dh = h, d // h
        self.wq = nn.Linear(d, d, bias=False)
        self.wk = nn.Linear(d, d, bias=False)
        self.wv = nn.Linear(d, d, bias=False)
        self.wo = nn.Linear(d, d, bias=False)
        self.q_norm = RMSNorm(self.dh, cfg.eps)
        self.k_norm = RMSNorm(self.dh, cfg.eps)

    def forward(self, x, cos, sin, causal):
        b, n, _ = x.shape
        q = self.q_norm(self.wq(x).view(b, n, self.h, self.dh)).transpose(1, 2)
        k = self.k_norm(self.wk(x).view(b, n, self.h, self.dh)).transpose(1, 2)
        v = self.wv(x).view(b, n, self.h, self.dh).transpose(1, 2)
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        o = sdpa(q, k, v, causal)
        return self.wo(o.transpose(1, 2).reshape(b, n, -1))


class MLP(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.w1 = nn.Linear(cfg.d_model, cfg.d_mlp, bias=False)
        self.w3 = nn.Linear(cfg.d_model, cfg.d_mlp, bias=False)
        self.w2 = nn.Linear(cfg.d_mlp, cfg.d_model, bias=False)

    def forward(self, x):
        return self.w2(F.silu(self.w1(x)) * self.w3(x))


class Block(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.attn_norm = RMSNorm(cfg.d_model, cfg.eps)
        self.attn = Attention(cfg)
        self.mlp_norm = RMSNorm(cfg.d_model, cfg.eps)
        self.mlp = MLP(cfg)

    def forward(self, x, cos, sin, causal=True):
        x = x + self.attn(self.attn_norm(x), cos, sin, causal)
        return x + self.mlp(self.mlp_norm(x))


class HSAModel(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        d = cfg.d_model
        assert cfg.h_q % cfg.h_kv == 0 and cfg.d_r % cfg.h_kv == 0
        self.embed = nn.Embedding(cfg.vocab, d)
        self.lower = nn.ModuleList([Block(cfg) for _ in range(cfg.n_lower)])
        # chunk encoder
        self.summary = nn.Parameter(torch.zeros(d))
        self.enc = nn.ModuleList([Block(cfg) for _ in range(cfg.n_enc)])
        self.enc_norm = RMSNorm(d, cfg.eps)
        self.enc_k = nn.Linear(d, cfg.h_kv * cfg.d_h, bias=False)
        self.enc_v = nn.Linear(d, cfg.h_kv * cfg.d_h, bias=False)
        self.enc_lmk = nn.Linear(d, cfg.d_r, bias=False)
        if cfg.lmk_pool:
            self.enc_lmk_pool = nn.Linear(d, cfg.d_r, bias=False)
        # upper stack
        self.upper = nn.ModuleList([Block(cfg) for _ in range(cfg.n_upper)])
        self.hsa_swa_norm = RMSNorm(d, cfg.eps)
        self.hsa_swa = Attention(cfg)
        self.ret_norm = RMSNorm(d, cfg.eps)
        self.ret_q = nn.Linear(d, cfg.d_r, bias=False)
        self.hsa_norm = RMSNorm(d, cfg.eps)
        self.hsa_q = nn.Linear(d, cfg.h_q * cfg.d_h, bias=False)
        self.hsa_o = nn.Linear(cfg.h_q * cfg.d_h, d, bias=False)
        self.hsa_mlp_norm = RMSNorm(d, cfg.eps)
        self.hsa_mlp = MLP(cfg)
        self.final_norm = RMSNorm(d, cfg.eps)
        self.apply(self._init)
        nn.init.normal_(self.summary, std=0.02)
        if cfg.lmk_pool:  # starts as the format's landmark
            nn.init.zeros_(self.enc_lmk_pool.weight)
        # residual-branch output projections start small
        for name, p in self.named_parameters():
            if name.endswith("wo.weight") or name.endswith("w2.weight") or name == "hsa_o.weight":
                nn.init.normal_(p, std=0.02 / math.sqrt(2 * (cfg.n_lower + cfg.n_upper + 1)))

    @staticmethod
    def _init(m):
        if isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, std=0.02)
        elif isinstance(m, nn.Embedding):
            nn.init.normal_(m.weight, std=0.02)

    # ---- pieces shared by training, evaluation and export ----

    def rope(self, n, device):
        key = (n, str(device))
        if not hasattr(self, "_rope") or self._rope[0] != key:
            self._rope = (key, rope_tables(n, self.cfg.d_model // self.cfg.n_heads,
                                           self.cfg.rope_theta, device))
        return self._rope[1]

    def windows(self, tokens):
        """tokens [B, T] (T multiple of S) -> windows [B*nC, 2S]: previous chunk + chunk."""
        S = self.cfg.chunk
        B, T = tokens.shape
        nC = T // S
        ch = tokens.view(B, nC, S)
        prev = torch.cat([torch.full_like(ch[:, :1], self.cfg.pad_id), ch[:, :-1]], 1)
        return torch.cat([prev, ch], 2).view(B * nC, 2 * S)

    def lower_stack(self, win):
        """win [N, n] token windows -> hidden [N, n, d] after the lower blocks."""
        x = self.embed(win)
        cos, sin = self.rope(win.shape[1], win.device)
        for blk in self.lower:
            x = blk(x, cos, sin, True)
        return x

    def encode_chunks(self, h_chunk):
        """h_chunk [N, S, d] lower-stack outputs of N chunks' own tokens ->
        K [N, S, h_kv, d_h] (RMS-normalized per head, no gain), V [N, S, h_kv, d_h],
        L [N, h_kv, d_r/h_kv]."""
        c = self.cfg
        N, S, d = h_chunk.shape
        x = torch.cat([h_chunk, self.summary.to(h_chunk.dtype).expand(N, 1, d)], 1)
        cos, sin = self.rope(S + 1, x.device)
        for blk in self.enc:
            x = blk(x, cos, sin, False)
        e = self.enc_norm(x)
        K = rms(self.enc_k(e[:, :S]).view(N, S, c.h_kv, c.d_h), c.eps)
        V = self.enc_v(e[:, :S]).view(N, S, c.h_kv, c.d_h)
        L = self.enc_lmk(e[:, S])
        if c.lmk_pool:
            L = L + self.enc_lmk_pool(e[:, :S].mean(1))
        L = L.view(N, c.h_kv, c.d_r // c.h_kv)
        return K, V, L

    def upper_pre(self, h):
        """h [N, n, d] lower output of windows -> hidden after the upper SWA blocks and
        the HSA block's SWA sub-layer."""
        cos, sin = self.rope(h.shape[1], h.device)
        for blk in self.upper:
            h = blk(h, cos, sin, True)
        return h + self.hsa_swa(self.hsa_swa_norm(h), cos, sin, True)

    def queries(self, x):
        """x [..., d] -> retrieval query qr [..., h_kv, d_r/h_kv], attention query
        qa [..., h_q, d_h] (RMS-normalized per head, no gain)."""
        c = self.cfg
        qr = self.ret_q(self.ret_norm(x)).view(*x.shape[:-1], c.h_kv, c.d_r // c.h_kv)
        qa = rms(self.hsa_q(self.hsa_norm(x)).view(*x.shape[:-1], c.h_q, c.d_h), c.eps)
        return qr, qa

    def head(self, x, o):
        """x [..., d] hidden before HSA, o [..., h_q*d_h] fused HSA output -> logits."""
        x = x + self.hsa_o(o)
        x = x + self.hsa_mlp(self.hsa_mlp_norm(x))
        return F.linear(self.final_norm(x), self.embed.weight)

    # ---- training forward ----

    def summary_look(self, h_chunk):
        """h_chunk [N, S, d] lower-stack outputs of N chunks' own tokens -> the first encoder
        block's attention of the summary position over the chunk's tokens, [N, heads, S] (its
        weight on itself is the rest of each row)."""
        S = h_chunk.shape[1]
        x = torch.cat([h_chunk, self.summary.to(h_chunk.dtype).expand(len(h_chunk), 1, -1)], 1)
        at = self.enc[0].attn
        y = self.enc[0].attn_norm(x)
        n = y.shape[1]
        q = at.q_norm(at.wq(y[:, -1:]).view(-1, 1, at.h, at.dh)).transpose(1, 2)
        k = at.k_norm(at.wk(y).view(-1, n, at.h, at.dh)).transpose(1, 2)
        cos, sin = self.rope(S + 1, x.device)
        q = apply_rope(q, cos[-1:], sin[-1:])
        k = apply_rope(k, cos, sin)
        with no_autocast(x.device):
            w = torch.softmax(q.float() @ k.float().transpose(-1, -2) / math.sqrt(at.dh), -1)
        return w[:, :, 0, :S]

    def forward(self, tokens, topk, need_scores=False, hold=None, look=None):
        """tokens [B, T] -> logits [B, T, V]; also retrieval scores [B, T, h_kv, nC]
        (visible chunks only, -inf elsewhere) and the chunk landmarks if asked.
        HSA is computed densely: every chunk's in-chunk attention, weighted by the
        top-k softmax weights (zero outside the top-k), which equals the sparse op.
        hold [B, T] (training only): at these positions the chunk weights are the same
        but pass no gradient to the retrieval query and the landmarks. look [P] (training
        only, with need_scores): indices of chunks (sequence * nC + chunk) whose summary
        attention (summary_look) is returned as a fifth value."""
        c = self.cfg
        S = c.chunk
        B, T = tokens.shape
        nC = T // S
        win = self.windows(tokens)
        h = self.lower_stack(win)
        K, V, L = self.encode_chunks(h[:, S:])
        K = K.view(B, nC, S, c.h_kv, c.d_h)
        V = V.view(B, nC, S, c.h_kv, c.d_h)
        L = L.view(B, nC, c.h_kv, c.d_r // c.h_kv)
        x = self.upper_pre(h)[:, S:].reshape(B, T, -1)
        qr, qa = self.queries(x)
        o, scores = hsa_dense(qr, qa, K, V, L, topk, S, checkpoint=self.training, hold=hold)
        logits = self.head(x, o.reshape(B, T, -1))
        if look is not None:
            return logits, scores, qr, L, self.summary_look(h[:, S:][look])
        if need_scores:
            return logits, scores, qr, L
        return logits


def no_autocast(device):
    """Scores are computed in fp32 even inside a bf16 autocast region."""
    return torch.autocast(device_type=device.type, enabled=False)


def visible_mask(T, nC, S, device):
    """[T, nC] True where chunk j is entirely before token t: (j+1)*S <= t."""
    t = torch.arange(T, device=device)[:, None]
    j = torch.arange(nC, device=device)[None, :]
    return (j + 1) * S <= t


def hsa_dense(qr, qa, K, V, L, topk, S, qblock=1024, checkpoint=False, hold=None):
    """qr [B,T,hkv,dr'], qa [B,T,hq,dh], K,V [B,nC,S,hkv,dh], L [B,nC,hkv,dr'].
    Returns O [B,T,hq,dh] and the masked scores [B,T,hkv,nC] (fp32); where hold [B,T] is
    True, the chunk weights are computed from detached scores (the returned scores are not).
    Queries are processed in blocks of qblock tokens against the chunks visible to
    the block; with checkpoint=True each block's large intermediates are recomputed
    in the backward pass instead of being stored."""
    B, T, hkv, dr = qr.shape
    nC = L.shape[1]
    with no_autocast(qr.device):
        s = torch.einsum("bthr,bjhr->bthj", qr.float(), L.float()) / math.sqrt(dr)
    vis = visible_mask(T, nC, S, qr.device)[None, :, None, :]
    s = s.masked_fill(~vis, float("-inf"))
    k = min(topk, nC)
    sw = s if hold is None else torch.where(hold[:, :, None, None], s.detach(), s)
    top_v, top_i = torch.topk(sw, k, dim=-1)
    sel = torch.full_like(sw, float("-inf")).scatter(-1, top_i, top_v)
    w = torch.nan_to_num(torch.softmax(sel, -1), nan=0.0)  # no visible chunk -> 0
    outs = []
    for t0 in range(0, T, qblock):
        t1 = min(T, t0 + qblock)
        nv = max(1, (t1 - 1) // S)              # chunks visible to the block's last token
        args = (qa[:, t0:t1], K[:, :nv], V[:, :nv], w[:, t0:t1, :, :nv])
        if checkpoint and torch.is_grad_enabled():
            outs.append(torch.utils.checkpoint.checkpoint(_inchunk, *args, use_reentrant=False))
        else:
            outs.append(_inchunk(*args))
    return torch.cat(outs, 1), s


def _inchunk(qa, K, V, w):
    """Softmax attention inside each chunk for every (token, chunk), fused with the
    chunk weights w [B,T,hkv,nC] (zero outside the top-k)."""
    B, T, hq, dh = qa.shape
    nC, S, hkv = K.shape[1], K.shape[2], K.shape[3]
    G = hq // hkv
    q = qa.reshape(B, T, hkv, G, dh).permute(0, 2, 3, 1, 4)      # B hkv G T dh
    Kf = K.permute(0, 3, 1, 2, 4).reshape(B, hkv, 1, nC * S, dh)
    a = torch.matmul(q, Kf.transpose(-1, -2)) / math.sqrt(dh)    # B hkv G T nC*S
    p = torch.softmax(a.view(B, hkv, G, T, nC, S).float(), -1)
    wt = w.permute(0, 2, 1, 3)[:, :, None, :, :, None]          # B hkv 1 T nC 1
    p = (p * wt).to(V.dtype).view(B, hkv, G, T, nC * S)
    Vf = V.permute(0, 3, 1, 2, 4).reshape(B, hkv, 1, nC * S, dh)
    o = torch.matmul(p, Vf)                                     # B hkv G T dh
    return o.permute(0, 3, 1, 2, 4).reshape(B, T, hq, dh)


def hsa_sparse(qr, qa, Kmem, Vmem, Lmem, n_visible, topk, extra=None):
    """Reference sparse HSA for a batch of query tokens against a chunk memory.
    qr [Q,hkv,dr'], qa [Q,hq,dh]; Kmem,Vmem [nC,S,hkv,dh]; Lmem [nC,hkv,dr'];
    n_visible [Q]: chunks 0..n_visible-1 are visible to each query.
    Returns O [Q,hq,dh] (fp32), selected indices [Q,hkv,k], weights [Q,hkv,k], scores."""
    Q, hkv, dr = qr.shape
    nC = Kmem.shape[0]
    hq, dh = qa.shape[1], qa.shape[2]
    G = hq // hkv
    s = torch.einsum("qhr,jhr->qhj", qr.float(), Lmem.float()) / math.sqrt(dr)
    vis = torch.arange(nC, device=qr.device)[None, :] < n_visible[:, None]
    s = s.masked_fill(~vis[:, None, :], float("-inf"))
    k = min(topk, nC)
    top_v, top_i = stable_topk(s, k)
    w = torch.nan_to_num(torch.softmax(top_v, -1), nan=0.0)
    r_idx = torch.arange(hkv, device=qr.device)[None, :, None]
    Kg = Kmem.float().permute(2, 0, 1, 3)[r_idx, top_i]     # Q hkv k S dh
    Vg = Vmem.float().permute(2, 0, 1, 3)[r_idx, top_i]
    q = qa.float().view(Q, hkv, G, dh)
    a = torch.einsum("qhgd,qhksd->qhgks", q, Kg) / math.sqrt(dh)
    p = torch.softmax(a, -1)
    o = torch.einsum("qhgks,qhksd->qhgkd", p, Vg)
    o = (o * w[:, :, None, :, None]).sum(3)
    return o.reshape(Q, hq, dh), top_i, w, s


def stable_topk(s, k):
    """Top-k along the last axis, ties broken by the lower index."""
    vals, idx = torch.sort(s, dim=-1, descending=True, stable=True)
    return vals[..., :k], idx[..., :k]


def count_params(model):
    return sum(p.numel() for p in model.parameters())


def load_model(path):
    """A model.safetensors (bf16 weights, config in the metadata) as an fp32 HSAModel in eval
    mode, and the file's metadata."""
    tensors, meta = st.load(path)
    model = HSAModel(Config(**json.loads(meta["config"])))
    model.load_state_dict({k: v.float() for k, v in tensors.items()})
    return model.eval(), meta
