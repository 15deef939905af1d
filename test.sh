#!/bin/sh
# Installs what is missing, builds, and runs the whole test suite. The last line says
# "N passed, N failed" (", N skipped" when some tests could not run here, e.g. GPU tests).
set -eu
cd "$(dirname "$0")"
sh scripts/deps.sh
sh scripts/build.sh
status=0
make -j"$(nproc)" check >check.out 2>&1 || status=$?
grep -E '^(PASS|FAIL|SKIP|ERROR|XFAIL|XPASS):' check.out || true
if [ "$status" -ne 0 ]; then
	for log in $(grep -lE '^:test-result: (FAIL|ERROR|XPASS)' tests/*.trs 2>/dev/null); do
		echo "---- ${log%.trs}.log"
		tail -n 40 "${log%.trs}.log"
	done
	grep -E 'error|Error' check.out | head -n 20 || true
fi
passed=$(cat tests/*.trs 2>/dev/null | grep -cE '^:test-result: (PASS|XFAIL)' || true)
failed=$(cat tests/*.trs 2>/dev/null | grep -cE '^:test-result: (FAIL|ERROR|XPASS)' || true)
skipped=$(cat tests/*.trs 2>/dev/null | grep -cE '^:test-result: SKIP' || true)
if [ "$status" -ne 0 ] && [ "$failed" -eq 0 ]; then
	failed=1 # the build of the tests failed
fi
if [ "$skipped" -gt 0 ]; then
	echo "$passed passed, $failed failed, $skipped skipped"
else
	echo "$passed passed, $failed failed"
fi
[ "$failed" -eq 0 ]
