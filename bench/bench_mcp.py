#!/usr/bin/env python3
"""bench_mcp.py: the round trip of an MCP tool call to hsamem mcp (recall, k=8, the entry view) on a
large memory, beside the same recall made directly through libhsamem (the Python client,
Client.recall), so that what the MCP layer adds (a process, JSON both ways, the transport) shows.

    bench/bench_mcp.py [--corpus FILE] [--tokens N] [--calls N] [--state DIR] [--json OUT]

Run from the build directory. Starts its own hsamemd (state in --state DIR, kept, so that the
memory is built once: a second run finds it; default a temporary directory), fills memory "bench"
with paragraphs of the corpus (bench/corpus.sh makes it) until it holds N tokens (default 1M), then
times --calls recall calls (default 500, after 20 unmeasured) of queries made from corpus
paragraphs: direct, MCP over stdio, the same with chunks=true (the chunk view), MCP over
Streamable HTTP. The figures are the client's wall
time per call, the MCP client's JSON work included.
"""

import argparse
import http.client
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time

TOP = os.getcwd()
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "client",
                                "python"))
os.environ.setdefault("HSAMEM_LIBRARY", os.path.join(TOP, ".libs", "libhsamem.so"))
import hsamem  # noqa: E402


def paragraphs(path):
    with open(path, encoding="utf-8", errors="replace") as f:
        return [line.strip() for line in f if line.strip()]


def fill(mem, user, paras, target):
    try:
        tokens = mem.stats(user).memories[0].tokens
    except hsamem.NoSuchUser:
        tokens = 0
    i, t0 = 0, time.perf_counter()
    while tokens < target:
        batch = [paras[(i + j) % len(paras)] for j in range(64)]
        i += 64
        tokens = mem.append_many(user, batch).tokens
    if i:
        print("filled %s: %d tokens in %.1f s" % (user, tokens, time.perf_counter() - t0))
    return tokens


def quantiles(ts):
    ts = sorted(ts)
    q = lambda p: ts[min(len(ts) - 1, int(p * len(ts)))] * 1e3
    return {"p50_ms": q(0.50), "p90_ms": q(0.90), "p99_ms": q(0.99), "min_ms": ts[0] * 1e3}


def timed(fn, queries, warm=20):
    for q in queries[:warm]:
        fn(q)
    ts = []
    for q in queries[warm:]:
        t = time.perf_counter()
        fn(q)
        ts.append(time.perf_counter() - t)
    return ts


def recall_msg(i, q, chunks=False):
    args = {"query": q, "k": 8}
    if chunks:
        args["chunks"] = True
    return {"jsonrpc": "2.0", "id": i, "method": "tools/call",
            "params": {"name": "recall", "arguments": args}}


INIT = {"jsonrpc": "2.0", "id": 0, "method": "initialize",
        "params": {"protocolVersion": "2025-11-25", "capabilities": {},
                   "clientInfo": {"name": "bench", "version": "1"}}}


def check(reply, chunks=False):
    r = reply["result"]
    if r.get("isError") or not 1 <= len(r["structuredContent"]["hits" if chunks else
                                                               "entries"]) <= 8:
        raise SystemExit("bench_mcp: unexpected reply: %s" % json.dumps(reply)[:300])


def mcp_stdio(sock, user, queries, chunks=False):
    p = subprocess.Popen(["./hsamem", "-s", sock, "mcp", user], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, text=True, bufsize=1)
    n = [0]

    def rpc(msg):
        p.stdin.write(json.dumps(msg) + "\n")
        p.stdin.flush()
        return json.loads(p.stdout.readline())

    def call(q):
        n[0] += 1
        check(rpc(recall_msg(n[0], q, chunks)), chunks)

    rpc(INIT)
    p.stdin.write('{"jsonrpc":"2.0","method":"notifications/initialized"}\n')
    ts = timed(call, queries)
    p.stdin.close()
    p.wait()
    return ts


def mcp_http(sock, user, queries):
    p = subprocess.Popen(["./hsamem", "-s", sock, "mcp", user, "--http", "127.0.0.1:0"],
                         stderr=subprocess.PIPE, text=True)
    url = p.stderr.readline().split(" at ")[-1].strip()
    host, port = url.split("//")[1].split("/")[0].split(":")
    conn = http.client.HTTPConnection(host, int(port))
    headers = {"Content-Type": "application/json",
               "Accept": "application/json, text/event-stream",
               "MCP-Protocol-Version": "2025-11-25"}
    n = [0]

    def rpc(msg):
        conn.request("POST", "/mcp", json.dumps(msg), headers)
        return json.loads(conn.getresponse().read())

    def call(q):
        n[0] += 1
        check(rpc(recall_msg(n[0], q)))

    rpc(INIT)
    ts = timed(call, queries)
    conn.close()
    p.terminate()
    p.wait()
    return ts


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--corpus", default="bench-data/english.txt")
    ap.add_argument("--tokens", type=int, default=1 << 20)
    ap.add_argument("--calls", type=int, default=500)
    ap.add_argument("--state")
    ap.add_argument("--json")
    a = ap.parse_args()
    paras = paragraphs(a.corpus)
    tmp = tempfile.mkdtemp(prefix="hsamem-bench-mcp-")
    state = a.state or os.path.join(tmp, "state")
    sock = "ipc://%s/s" % tmp
    d = subprocess.Popen(["./hsamemd", "-l", sock, "-d", state, "-o", "log-level=err"])
    try:
        mem = hsamem.Client(sock)
        for _ in range(300):
            try:
                mem.ping()
                break
            except hsamem.HsamemError:
                time.sleep(0.1)
        tokens = fill(mem, "bench", paras, a.tokens)
        rnd = random.Random(12)
        queries = [" ".join(rnd.choice(paras).split()[:8]) for _ in range(a.calls + 20)]
        rows = [("direct (libhsamem)", timed(lambda q: mem.recall("bench", q, k=8), queries)),
                ("mcp stdio", mcp_stdio(sock, "bench", queries)),
                ("mcp stdio, chunks", mcp_stdio(sock, "bench", queries, chunks=True)),
                ("mcp http", mcp_http(sock, "bench", queries))]
        mem.close()
    finally:
        d.terminate()
        d.wait()
        shutil.rmtree(tmp)
    out = {"tokens": tokens, "k": 8, "calls": a.calls, "results": {}}
    print("recall k=8 (entry view) on %d tokens, %d calls" % (tokens, a.calls))
    print("%-20s %8s %8s %8s %8s" % ("path", "p50 ms", "p90 ms", "p99 ms", "min ms"))
    for name, ts in rows:
        q = quantiles(ts)
        out["results"][name] = q
        print("%-20s %8.2f %8.2f %8.2f %8.2f" % (name, q["p50_ms"], q["p90_ms"], q["p99_ms"],
                                                q["min_ms"]))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(out, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
