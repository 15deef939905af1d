#!/bin/sh
# Cost of a metrics scrape (hsamemd(8), METRICS) with N memories (default 1000): starts hsamemd
# with a metrics endpoint, creates N one-entry memories, then times 2000 scrapes over HTTP from
# python3 urllib: client wall time per scrape (HTTP and Python included), and the daemon's CPU
# time (user + system, from /proc) per scrape over the same 2000.
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
python3 - "$url" "$n" "$pid" <<'PY'
import os, sys, time, urllib.request
url, n, pid = sys.argv[1], sys.argv[2], sys.argv[3]
def cpu_s():  # the daemon's user + system time (/proc/PID/stat fields 14 and 15)
    f = open("/proc/%s/stat" % pid).read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")
for _ in range(20):
    urllib.request.urlopen(url).read()
ts = []
c0 = cpu_s()
for _ in range(2000):
    t = time.perf_counter(); body = urllib.request.urlopen(url).read(); ts.append(time.perf_counter() - t)
c1 = cpu_s()
ts.sort()
print("memories  bytes  p50_ms  p99_ms  min_ms  daemon_cpu_ms")
print("%8s %6d  %6.3f  %6.3f  %6.3f  %6.3f" % (n, len(body), ts[1000] * 1e3, ts[1980] * 1e3,
      ts[0] * 1e3, (c1 - c0) / 2000 * 1e3))
PY
