#!/bin/sh
# Installs what is missing, builds, and runs the whole test suite twice: built by gcc in the source
# tree, and built by clang from the distribution's files (make distdir) in build-clang/, which also
# proves the tarball complete. Then checks the sources' formatting and layering. The last line says
# "N passed, N failed" (", N skipped" when some tests could not run here, e.g. GPU tests).
# With HSAMEM_TEST_PACKAGES=1 (CI sets it) the first run includes tests/test_packages.sh: the Debian
# packages built, installed into a fresh debootstrap root and run there (about 15 minutes more on
# 2 cores); without it that test is skipped.
set -eu
cd "$(dirname "$0")"
sh scripts/deps.sh test
sh scripts/build.sh

passed=0 failed=0 skipped=0

# Prints the results of one `make check` in $1, with their logs when some failed, and counts them.
report() {
	dir=$1 tag=$2 status=$3 out=$4
	sed -n "s/^\(PASS\|FAIL\|SKIP\|ERROR\|XFAIL\|XPASS\): \(.*\)/\1: \2$tag/p" "$out"
	trs=$(ls "$dir"/tests/*.trs 2>/dev/null || true)
	p=0 f=0 s=0
	if [ -n "$trs" ]; then
		# shellcheck disable=SC2086
		p=$(cat $trs | grep -cE '^:test-result: (PASS|XFAIL)' || true)
		# shellcheck disable=SC2086
		f=$(cat $trs | grep -cE '^:test-result: (FAIL|ERROR|XPASS)' || true)
		# shellcheck disable=SC2086
		s=$(cat $trs | grep -cE '^:test-result: SKIP' || true)
		# shellcheck disable=SC2086
		for log in $(grep -lE '^:test-result: (FAIL|ERROR|XPASS)' $trs); do
			echo "---- ${log%.trs}.log$tag"
			tail -n 40 "${log%.trs}.log"
		done
	fi
	if [ "$status" -ne 0 ] && [ "$f" -eq 0 ]; then
		echo "---- the build failed$tag:"
		grep -E 'error|Error' "$out" | head -n 20 || true
		f=1
	fi
	passed=$((passed + p)) failed=$((failed + f)) skipped=$((skipped + s))
}

status=0
make -j"$(nproc)" check >check.out 2>&1 || status=$?
report . "" "$status" check.out

# The same suite built by clang, from exactly the files a release tarball holds (the package test
# once is enough); the MCP SDK that deps.sh installed is not part of it, so test_mcp.sh is told
# where it is.
export HSAMEM_MCP_MODULES="$PWD/tests/mcp/node_modules"
status=0
rm -rf build-clang && mkdir build-clang
(
	make distdir distdir=build-clang/src &&
		cd build-clang/src &&
		CC=clang ./configure -q &&
		make -j"$(nproc)" &&
		HSAMEM_TEST_PACKAGES=0 make -j"$(nproc)" check
) >check-clang.out 2>&1 || status=$?
report build-clang/src " (clang)" "$status" check-clang.out

# The habits the code keeps: formatting, and layers without loops.
for check in format-check deps-check; do
	if make -s "$check"; then
		echo "PASS: $check"
		passed=$((passed + 1))
	else
		echo "FAIL: $check"
		failed=$((failed + 1))
	fi
done

if [ "$skipped" -gt 0 ]; then
	echo "$passed passed, $failed failed, $skipped skipped"
else
	echo "$passed passed, $failed failed"
fi
[ "$failed" -eq 0 ]
