#!/bin/sh
# Metrics, audit trail and slow-request log with the real daemon (hsamemd(8), METRICS and AUDIT):
# tests/test_metrics.py scrapes the HTTP endpoint with urllib, parses the exposition strictly,
# compares it with `hsamem stats --prometheus`, and reads the daemon's log. Skips (77) without
# python3.
set -u
top=${HSAMEM_TOP_BUILDDIR:-.}
src=${HSAMEM_TOP_SRCDIR:-${srcdir:-.}}
python=$(command -v python3) || { echo "test_metrics: no python3; skipped"; exit 77; }
dir=$(mktemp -d "${TMPDIR:-/tmp}/hsamem-metrics-XXXXXX")
trap 'rm -rf "$dir"' EXIT
HSAMEMD="$top/hsamemd" HSAMEM="$top/hsamem" TMPDIR="$dir" PYTHONDONTWRITEBYTECODE=1 \
	"$python" "$src/tests/test_metrics.py"
