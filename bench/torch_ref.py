#!/usr/bin/env python3
"""torch_ref.py: the PyTorch reference of HSA attention (hsamem(7), THE HSA OPERATOR), for the ratio in
bench/RESULTS.md: matmul of the retrieval query against all landmarks, topk, gather of the
selected chunks' K/V, per-chunk softmax attention, softmax fusion. Two variants: chunk K/V in
device memory, and chunk K/V in pinned host memory gathered per query (indices to the host, an
index_select into a pinned buffer, one copy to the device). Also measures the two ceilings the
figures are held against: a device-to-device copy (HBM) and a 64 MiB pinned host-to-device copy.

Usage: torch_ref.py [--spec client|lexical] [--tokens N,N,...] [--iters N] [--json FILE]
Prints one line per figure; --json appends JSON lines in bench_gpu's format.
"""
import argparse
import json
import math
import statistics
import sys
import time

import torch

K_SEL = 64
N_SETS = 16


def spec_of(name):
    if name == "lexical":
        return dict(S=64, h_kv=1, d_h=64, h_q=1, d_r=1024)
    return dict(S=64, h_kv=1, d_h=128, h_q=16, d_r=128)


def emit(out, spec, part, tokens, metric, value, unit):
    print(f"  {spec:6s} {part:8s} {tokens:9d}  {metric:34s} {value:12.3f} {unit}", flush=True)
    if out is not None:
        out.write(json.dumps(dict(spec=spec, part=part, tokens=tokens, metric=metric,
                                  value=value, unit=unit)) + "\n")
        out.flush()


def hsa(L, K, V, qr, qa, k, S, d_h, d_r, host=None):
    """One call: qr [n, d_r] f16, qa [n, h_q, d_h] f32; K, V [N, S, d_h] f16 (device), or host =
    (K_host, V_host, K_buf, V_buf) pinned."""
    scores = torch.matmul(qr, L.t()).float() / math.sqrt(d_r)        # [n, N]
    top, idx = torch.topk(scores, k, dim=1)                           # [n, k]
    if host is None:
        Ks, Vs = K[idx], V[idx]                                       # [n, k, S, d_h]
    else:
        Kh, Vh, Kb, Vb = host
        flat = idx.reshape(-1).cpu()
        m = flat.numel()
        torch.index_select(Kh, 0, flat, out=Kb[:m])
        torch.index_select(Vh, 0, flat, out=Vb[:m])
        Ks = Kb[:m].to("cuda", non_blocking=True).view(idx.shape[0], k, S, d_h)
        Vs = Vb[:m].to("cuda", non_blocking=True).view(idx.shape[0], k, S, d_h)
    a = torch.einsum("nhd,nksd->nhks", qa, Ks.float()) / math.sqrt(d_h)
    p = torch.softmax(a, dim=-1)
    o = torch.einsum("nhks,nksd->nhkd", p, Vs.float())
    w = torch.softmax(top, dim=1)
    return torch.einsum("nk,nhkd->nhd", w, o), idx


def time_gpu(fn, iters):
    for i in range(5):
        fn(i)
    torch.cuda.synchronize()
    ts = []
    for i in range(iters):
        t0 = time.perf_counter()
        fn(i)
        torch.cuda.synchronize()
        ts.append((time.perf_counter() - t0) * 1e6)
    ts.sort()
    return statistics.median(ts), ts[min(len(ts) - 1, int(math.ceil(0.99 * len(ts))) - 1)]


def ceilings(out, spec):
    x = torch.empty(1 << 30, dtype=torch.uint8, device="cuda")
    y = torch.empty_like(x)
    for _ in range(3):
        y.copy_(x)
    torch.cuda.synchronize()
    e0, e1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    e0.record()
    for _ in range(10):
        y.copy_(x)
    e1.record()
    torch.cuda.synchronize()
    emit(out, spec, "limit", 0, "HBM copy (read+write)", 2 * 10 * (1 << 30) / (e0.elapsed_time(e1) / 1e3) / 1e9, "GB/s")
    del x, y
    h = torch.empty(64 << 20, dtype=torch.uint8, pin_memory=True)
    d = torch.empty(64 << 20, dtype=torch.uint8, device="cuda")
    for _ in range(3):
        d.copy_(h, non_blocking=True)
    torch.cuda.synchronize()
    e0.record()
    for _ in range(20):
        d.copy_(h, non_blocking=True)
    e1.record()
    torch.cuda.synchronize()
    emit(out, spec, "limit", 0, "pinned H2D copy 64 MiB", 20 * (64 << 20) / (e0.elapsed_time(e1) / 1e3) / 1e9, "GB/s")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--spec", default="client")
    ap.add_argument("--tokens", default="1048576,4194304,16777216")
    ap.add_argument("--iters", type=int, default=200)
    ap.add_argument("--json")
    ap.add_argument("--no-host", action="store_true")
    ap.add_argument("--ceilings", action="store_true")
    args = ap.parse_args()
    out = open(args.json, "a") if args.json else None
    sp = spec_of(args.spec)
    S, d_h, h_q, d_r = sp["S"], sp["d_h"], sp["h_q"], sp["d_r"]
    torch.manual_seed(1)
    print(f"torch_ref: torch {torch.__version__} on {torch.cuda.get_device_name(0)}; spec {args.spec}", flush=True)
    if args.ceilings:
        ceilings(out, args.spec)
    for tok in [int(t) for t in args.tokens.split(",")]:
        N = tok // S
        L = (torch.rand(N, d_r, device="cuda", dtype=torch.float16) * 4 - 2)
        K = torch.rand(N, S, d_h, device="cuda", dtype=torch.float16) * 2 - 1
        V = torch.rand(N, S, d_h, device="cuda", dtype=torch.float16) * 2 - 1
        for n in (1, 32):
            qr = [(torch.rand(n, d_r, device="cuda") * 2 - 1).half() for _ in range(N_SETS)]
            qa = [torch.rand(n, h_q, d_h, device="cuda") * 2 - 1 for _ in range(N_SETS)]
            it = args.iters if n == 1 else max(20, args.iters // 4)
            p50, p99 = time_gpu(lambda i: hsa(L, K, V, qr[i % N_SETS], qa[i % N_SETS], K_SEL, S, d_h, d_r), it)
            emit(out, args.spec, "torch", tok, f"attend n={n} K/V in HBM p50", p50, "us")
            emit(out, args.spec, "torch", tok, f"attend n={n} K/V in HBM p99", p99, "us")
        if not args.no_host:
            Kh = K.cpu().pin_memory()
            Vh = V.cpu().pin_memory()
            del K, V
            torch.cuda.empty_cache()
            Kb = torch.empty(32 * K_SEL, S, d_h, dtype=torch.float16, pin_memory=True)
            Vb = torch.empty_like(Kb).pin_memory()
            for n in (1, 32):
                qr = [(torch.rand(n, d_r, device="cuda") * 2 - 1).half() for _ in range(N_SETS)]
                qa = [torch.rand(n, h_q, d_h, device="cuda") * 2 - 1 for _ in range(N_SETS)]
                it = max(20, args.iters // 4)
                p50, p99 = time_gpu(lambda i: hsa(L, None, None, qr[i % N_SETS], qa[i % N_SETS], K_SEL, S, d_h, d_r,
                                                  host=(Kh, Vh, Kb, Vb)), it)
                emit(out, args.spec, "torch", tok, f"attend n={n} K/V pinned host p50", p50, "us")
            del Kh, Vh, Kb, Vb
        else:
            del K, V
        del L
        torch.cuda.empty_cache()
    return 0


if __name__ == "__main__":
    sys.exit(main())
