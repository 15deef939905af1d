#!/bin/sh
# Cost of a metrics scrape (hsamemd(8), METRICS) with N memories (default 1000): starts hsamemd
# with a metrics endpoint, creates N one-entry memories, then times 500 scrapes over HTTP from
# python3 urllib. The figure is client wall time per scrape, an upper bound on the daemon's time.
# Usage: bench/bench_metrics.sh [N]   (from the build directory)
set -eu
n=${1:-1000}
dir=$(mktemp -d "${TMPDIR:-/tmp}/hsamem-bench-XXXXXX")
sock="ipc://$dir/s"
url="http://127.0.0.1:19470/metrics"
./hsamemd -l "$sock" -d "$dir/st" -o metrics-listen=$url -o log-level=warning 2>"$dir/log" &
pid=$!
trap 'kill $pid; wait $pid; rm -rf "$dir"' EXIT
until ./hsamem -s "$sock" -t 1 ping >/dev/null 2>&1; do sleep 0.1; done
i=0
while [ $i -lt "$n" ]; do ./hsamem -s "$sock" append "m$i" "entry $i" >/dev/null; i=$((i + 1)); done
python3 - "$url" "$n" <<'PY'
import sys, time, urllib.request
url, n = sys.argv[1], sys.argv[2]
for _ in range(20):
    urllib.request.urlopen(url).read()
ts = []
for _ in range(500):
    t = time.perf_counter(); body = urllib.request.urlopen(url).read(); ts.append(time.perf_counter() - t)
ts.sort()
print("memories  bytes  p50_ms  p99_ms  min_ms")
print("%8s %6d  %6.3f  %6.3f  %6.3f" % (n, len(body), ts[250] * 1e3, ts[495] * 1e3, ts[0] * 1e3))
PY
