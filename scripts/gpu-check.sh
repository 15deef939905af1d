#!/bin/bash
# gpu-check.sh: the GPU tests and the GPU benchmark, in one go, on a GPU host (README: Benchmarks).
#
# The GPU host has no LMDB, NNG, protobuf-c or autotools, so everything is built beforehand on the
# build host, in a build folder of real ELF binaries, with the non-CUDA libraries beside it:
#
#   mkdir -p build-gpu && cd build-gpu
#   ../configure --disable-shared --enable-cuda=yes
#   progs="hsamemd tests/test_cuda tests/test_cuda_cache tests/test_cuda_copy tests/test_cuda_probe
#       tests/test_hsa tests/test_hsa_cpu tests/test_hsa_math tests/test_daemon_attend
#       tests/test_cuda_model tests/test_hsa_model tests/test_daemon_hsa tests/test_daemon_scopes
#       tests/test_daemon_forget tests/test_daemon_lexkv tests/test_daemon_hybrid bench/bench_gpu
#       bench/bench_kernels bench/bench_cuda_model"
#   make -j $progs && strip $progs
#   cd .. && ../shared/tools/devlibs build-gpu/hsamemd build-gpu/bench/bench_gpu \
#       build-gpu/tests/test_daemon_attend -o .devlibs
#
# Then, on the GPU host, from the top of the source tree (with build-gpu/ and .devlibs/ there):
#
#   scripts/gpu-check.sh [quick|full]     (OUT=DIR for the logs; default ./gpu-check-out)
#
# It runs every test with HSAMEM_REQUIRE_GPU=1 (a skip is a failure), test_cuda a second time beside
# a PyTorch matrix-multiply loop that keeps the GPU busy, then bench/bench_gpu for the
# client spec and the lexical encoder's spec and bench/torch_ref.py on the same sizes, then
# bench/bench_kernels (each kernel alone, and cuBLAS's scoring beside the backend's), then
# bench/bench_cuda_model (hsa-small on the GPU: chunk-encoding tokens/s against the bf16 GEMM roof,
# query latency), and writes
#   $OUT/machine.txt  the GPU, driver and CPU
#   $OUT/tests.log    every test's output, and a PASS/FAIL line each
#   $OUT/bench.log    both benchmarks' tables
#   $OUT/bench.json   every figure, one JSON object a line
# quick: 1M tokens and fewer iterations (a smoke run); full (default): 1M, 4M and 16M tokens.
# Exit status: 0 when every test passed and the benchmarks ran, 1 otherwise.
set -u -o pipefail
mode=${1:-full}
top=$(pwd)
build=${BUILD:-build-gpu}
out=${OUT:-$top/gpu-check-out}
mkdir -p "$out"
export LD_LIBRARY_PATH="$top/.devlibs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export HSAMEM_REQUIRE_GPU=1
export HSAMEM_TOP_BUILDDIR="$top/$build"
export HSAMEM_TOP_SRCDIR="$top"
export PYTHONUNBUFFERED=1

case $mode in
quick) tokens=1048576 iters=100 append=1024 model_secs=2 ;;
full) tokens=1048576,4194304,16777216 iters=300 append=8192 model_secs=6 ;;
*) echo "usage: $0 [quick|full]" >&2; exit 2 ;;
esac

{
	nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv
	echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2) x $(nproc)"
	echo "kernel: $(uname -r)"
	date -u
} >"$out/machine.txt" 2>&1

status=0
: >"$out/tests.log"
for t in test_cuda_probe test_cuda_cache test_cuda_copy test_hsa test_hsa_cpu test_hsa_math test_cuda \
	test_daemon_attend test_cuda_model test_hsa_model test_daemon_hsa test_daemon_scopes \
	test_daemon_forget test_daemon_lexkv test_daemon_hybrid test_cuda+load; do
	start=$(date +%s)
	if [ "$t" = test_cuda+load ]; then
		# the backend again while another process keeps the GPU busy, so that its copies and
		# kernels queue behind foreign work (an unsynchronised reuse of a staging buffer shows)
		python3 -c 'import time, torch
a = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
end = time.time() + 90
while time.time() < end:
    for _ in range(20): a @ a
    torch.cuda.synchronize()' &
		load=$!
		sleep 3
		"$build/tests/test_cuda" >>"$out/tests.log" 2>&1
		rc=$?
		kill $load 2>/dev/null
		wait $load 2>/dev/null
	else
		"$build/tests/$t" >>"$out/tests.log" 2>&1
		rc=$?
	fi
	secs=$(($(date +%s) - start))
	if [ $rc -eq 0 ]; then
		echo "PASS: $t (${secs}s)" | tee -a "$out/tests.log"
	else
		echo "FAIL: $t (exit $rc, ${secs}s)" | tee -a "$out/tests.log"
		status=1
	fi
done

: >"$out/bench.log"
: >"$out/bench.json"
bench() {
	"$@" 2>&1 | tee -a "$out/bench.log"
}
bench python3 bench/torch_ref.py --ceilings --spec client --tokens "$tokens" --iters "$iters" \
	--json "$out/bench.json" || status=1
bench "$build/bench/bench_gpu" --spec client --tokens "$tokens" --iters "$iters" \
	--append "$append" --json "$out/bench.json" || status=1
lex=$tokens
[ "$mode" = full ] && lex=1048576,16777216
bench python3 bench/torch_ref.py --spec lexical --tokens "$lex" --iters "$iters" --no-host \
	--json "$out/bench.json" || status=1
bench "$build/bench/bench_gpu" --spec lexical --tokens "$lex" --iters "$iters" --append 0 \
	--json "$out/bench.json" || status=1
kern=1048576
[ "$mode" = full ] && kern=1048576,16777216
bench "$build/bench/bench_kernels" --tokens "$kern" --iters 200 --json "$out/bench.json" ||
	status=1
bench "$build/bench/bench_cuda_model" --model "$top/models/hsa-small" --seconds "$model_secs" \
	--json "$out/bench.json" || status=1
grep -E '^(PASS|FAIL)' "$out/tests.log"
exit $status
