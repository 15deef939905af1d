#!/bin/sh
# fuzz.sh: runs the libFuzzer target tests/stress/fuzz_request from the seeds of fuzz_seeds
# (tests/stress/README.md). Without arguments a short run for `make check` (HSAMEM_FUZZ_SECONDS,
# default 20); arguments replace that and go to libFuzzer as they are, e.g. -runs=10000000
# -max_total_time=600. HSAMEM_FUZZ_CORPUS keeps the corpus in a directory of one's own
# (default: a temporary one). A crash leaves its input as tests/stress/fuzz-crash-* (or
# fuzz-leak-*, fuzz-oom-*, fuzz-timeout-*) in the build tree. Skips (77) when configure found no
# clang with libFuzzer.
top=${HSAMEM_TOP_BUILDDIR:-.}
fuzz=$top/tests/stress/fuzz_request
if [ ! -x "$fuzz" ]; then
	echo "fuzz.sh: no fuzz target (configure found no clang with libFuzzer: see --enable-fuzz)"
	exit 77
fi
work=$(mktemp -d "${TMPDIR:-/tmp}/hsamem-fuzz-run-XXXXXX") || exit 1
trap 'rm -rf "$work"' EXIT
"$top/tests/stress/fuzz_seeds" "$work/seeds" || exit 1
corpus=${HSAMEM_FUZZ_CORPUS:-$work/corpus}
mkdir -p "$corpus" || exit 1
if [ $# -eq 0 ]; then
	set -- -max_total_time="${HSAMEM_FUZZ_SECONDS:-20}"
fi
# -timeout: a request that takes 20 s is a finding; -rss_limit_mb: so is one that takes 2 GiB
"$fuzz" -max_len=4096 -timeout=20 -rss_limit_mb=2048 -print_final_stats=1 \
	-artifact_prefix="$top/tests/stress/fuzz-" "$@" "$corpus" "$work/seeds" 2>"$work/log"
status=$?
# libFuzzer's own lines: the final statistics, or the report of what it found
grep -E '^(stat::|Done|INFO: Seed|==[0-9]+==|SUMMARY|artifact_prefix|Test unit written)' "$work/log"
if [ $status -ne 0 ]; then
	tail -n 60 "$work/log"
fi
runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/log")
echo "fuzz.sh: ${runs:-?} executions, exit status $status"
exit $status
