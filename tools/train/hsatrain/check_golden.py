"""Recompute the golden vectors with numpy alone, following models/README.md step by step,
and compare them with models/hsa-small/golden.safetensors. It checks the written contract
(what a C implementation follows), not the PyTorch code.

    python3 -m hsatrain.check_golden [models/hsa-small]
"""
import json
import os
import struct
import sys

import numpy as np


def load_st(path):
    data = open(path, "rb").read()
    n = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8:8 + n])
    meta = header.pop("__metadata__", {})
    out = {}
    for name, h in header.items():
        b, e = h["data_offsets"]
        raw = data[8 + n + b:8 + n + e]
        if h["dtype"] == "BF16":
            a = (np.frombuffer(raw, np.uint16).astype(np.uint32) << 16).view(np.float32)
        else:
            a = np.frombuffer(raw, {"F32": np.float32, "I64": np.int64}[h["dtype"]])
        out[name] = a.reshape(h["shape"]).astype(np.float64 if h["dtype"] != "I64" else np.int64)
    return out, meta


EPS = 1e-6


def rms(x):
    return x / np.sqrt((x * x).mean(-1, keepdims=True) + EPS)


def rope(x, pos):                    # x [n, 64]
    f = 10000.0 ** (-np.arange(32) * 2 / 64)
    a = pos[:, None] * f[None, :]
    c, s = np.cos(a), np.sin(a)
    x1, x2 = x[:, :32], x[:, 32:]
    return np.concatenate([x1 * c - x2 * s, x1 * s + x2 * c], 1)


def attention(W, p, x, causal):
    n = x.shape[0]
    q, k, v = x @ W[p + "wq.weight"].T, x @ W[p + "wk.weight"].T, x @ W[p + "wv.weight"].T
    pos = np.arange(n, dtype=np.float64)
    out = np.zeros_like(q)
    for h in range(6):
        sl = slice(64 * h, 64 * h + 64)
        qh = rope(rms(q[:, sl]) * W[p + "q_norm.weight"], pos)
        kh = rope(rms(k[:, sl]) * W[p + "k_norm.weight"], pos)
        a = qh @ kh.T / 8.0
        if causal:
            a = np.where(np.tril(np.ones((n, n), bool)), a, -np.inf)
        a = np.exp(a - a.max(1, keepdims=True))
        a /= a.sum(1, keepdims=True)
        out[:, sl] = a @ v[:, sl]
    return out @ W[p + "wo.weight"].T


def silu(x):
    return x / (1 + np.exp(-x))


def mlp(W, p, z):
    return (silu(z @ W[p + "w1.weight"].T) * (z @ W[p + "w3.weight"].T)) @ W[p + "w2.weight"].T


def block(W, p, x, causal):
    x = x + attention(W, p + "attn.", rms(x) * W[p + "attn_norm.weight"], causal)
    return x + mlp(W, p + "mlp.", rms(x) * W[p + "mlp_norm.weight"])


def lower(W, win):
    x = W["embed.weight"][win]
    for i in range(3):
        x = block(W, f"lower.{i}.", x, True)
    return x


def encode_chunk(W, win):
    H = lower(W, win)
    E = np.concatenate([H[64:], W["summary"][None]], 0)
    i = 0
    while f"enc.{i}.attn_norm.weight" in W:        # n_enc blocks (hsatrain.train --add-enc)
        E = block(W, f"enc.{i}.", E, False)
        i += 1
    E = rms(E) * W["enc_norm.weight"]
    K = rms(E[:64] @ W["enc_k.weight"].T)
    V = E[:64] @ W["enc_v.weight"].T
    L = E[64] @ W["enc_lmk.weight"].T
    return H, K, V, L


def main():
    d = sys.argv[1] if len(sys.argv) > 1 else "models/hsa-small"
    W, _ = load_st(os.path.join(d, "model.safetensors"))
    G, gm = load_st(os.path.join(d, "golden.safetensors"))
    worst = {}

    def cmp(name, mine):
        ref = G[name]
        err = float(np.abs(mine.reshape(ref.shape) - ref).max() / (np.abs(ref).max() + 1e-9))
        worst[name] = err

    win = G["windows"]
    cmp("embed_w0", W["embed.weight"][win[0]])
    Ks, Vs, Ls = [], [], []
    for j in range(win.shape[0]):
        H, K, V, L = encode_chunk(W, win[j])
        if j == 1:
            cmp("lower_out_w1", H)
        Ks.append(K), Vs.append(V), Ls.append(L)
    K, V, L = np.stack(Ks), np.stack(Vs), np.stack(Ls)
    cmp("chunk_K", K), cmp("chunk_V", V), cmp("chunk_L", L)
    qwin = G["query_window"]
    X = block(W, "upper.0.", lower(W, qwin), True)
    X = X + attention(W, "hsa_swa.", rms(X) * W["hsa_swa_norm.weight"], True)
    X = X[64:]
    cmp("query_hidden", X)
    qr = (rms(X) * W["ret_norm.weight"]) @ W["ret_q.weight"].T
    qa = rms(((rms(X) * W["hsa_norm.weight"]) @ W["hsa_q.weight"].T).reshape(-1, 8, 64))
    cmp("query_qr", qr), cmp("query_qa", qa)
    s = qr @ L.T / np.sqrt(128)
    cmp("query_scores", s)
    n = X.shape[0]
    O = np.zeros((n, 8, 64))
    idx_ok = True
    for t in range(n):
        order = sorted(range(len(L)), key=lambda j: (-s[t, j], j))[:8]
        idx_ok &= order == G["query_topk_idx"][t, 0].tolist()
        w = np.exp(s[t, order] - s[t, order].max())
        w /= w.sum()
        for h in range(8):
            for wi, j in zip(w, order):
                a = K[j] @ qa[t, h] / 8.0
                p = np.exp(a - a.max())
                O[t, h] += wi * (p / p.sum()) @ V[j]
    cmp("query_hsa_out", O)
    x = X + O.reshape(n, 512) @ W["hsa_o.weight"].T
    x = x + mlp(W, "hsa_mlp.", rms(x) * W["hsa_mlp_norm.weight"])
    logits = (rms(x) * W["final_norm.weight"]) @ W["embed.weight"].T
    cmp("query_logits", logits)
    for k, v in worst.items():
        print(f"{k:16s} max rel err {v:.2e}")
    a0 = int(gm["answer_start"])
    ans = logits[a0:a0 + 7].argmax(-1).tolist()
    ok = idx_ok and max(worst.values()) < 1e-3 and ans == G["query_tokens"][a0 + 1:a0 + 8].tolist()
    print(f"top-k indices match: {idx_ok}; answer tokens {ans}; {'ok' if ok else 'MISMATCH'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
