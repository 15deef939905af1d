#!/bin/sh
# The Python client (the package client/python/hsamem/): a daemon on a temporary socket and state
# directory, driven by tests/test_python.py through the libhsamem of this build. Skips (77)
# without python3 or without a shared libhsamem (--disable-shared).
set -u
top=${HSAMEM_TOP_BUILDDIR:-.}
src=${HSAMEM_TOP_SRCDIR:-${srcdir:-.}}
if [ -x /usr/bin/python3 ]; then
	python=/usr/bin/python3
elif command -v python3 >/dev/null 2>&1; then
	python=python3
else
	echo "test_python: no python3; skipped"
	exit 77
fi
lib="$top/.libs/libhsamem.so"
if [ ! -e "$lib" ]; then
	echo "test_python: no shared libhsamem ($lib; built with --disable-shared?); skipped"
	exit 77
fi
if ldd "$lib" 2>/dev/null | grep -q 'libasan'; then
	echo "test_python: libhsamem is built with sanitizers, which python cannot load; skipped"
	exit 77
fi

dir=$(mktemp -d "${TMPDIR:-/tmp}/hsamem-py-XXXXXX")
sock="ipc://$dir/hsamemd.sock"
pid=""
cleanup() {
	[ -n "$pid" ] && kill -9 "$pid" 2>/dev/null
	rm -rf "$dir"
}
trap cleanup EXIT

"$top/hsamemd" -l "$sock" -d "$dir/state" -o log-level=warning 2>>"$dir/hsamemd.log" &
pid=$!
i=0
until "$top/hsamem" -s "$sock" -t 1 ping >/dev/null 2>&1; do
	i=$((i + 1))
	if [ $i -gt 100 ]; then
		echo "hsamemd did not start"; cat "$dir/hsamemd.log"; exit 1
	fi
	sleep 0.1
done

HSAMEM_SOCKET="$sock" HSAMEM_LIBRARY="$lib" PYTHONPATH="$src/client/python" \
	PYTHONDONTWRITEBYTECODE=1 TMPDIR="$dir" "$python" "$src/tests/test_python.py"
rc=$?

# The chat example: a second session recalls the first one's turn, and nothing below its threshold.
chat() {
	HSAMEM_SOCKET="$sock" HSAMEM_LIBRARY="$lib" PYTHONPATH="$src/client/python" \
		PYTHONDONTWRITEBYTECODE=1 "$python" "$src/client/python/chat_example.py" carol
}
out=$(printf 'I keep bees on the roof of my house\n' | chat) &&
	echo "$out" | grep -q 'nothing relevant remembered' &&
	out=$(printf 'tell me about my bees\nwhat is the weather\n' | chat) &&
	echo "$out" | sed -n 2p | grep -q '^  \[recalled #0 user, .*\] I keep bees on the roof' &&
	echo "$out" | grep -q '^That reminds me of what you said before: "I keep bees' &&
	echo "$out" | tail -n 2 | grep -q 'nothing relevant remembered' &&
	"$top/hsamem" -s "$sock" entries carol | grep -q 'assistant' ||
	{ echo "chat_example: FAIL: $out"; rc=1; }

kill -TERM "$pid"; wait "$pid" || { echo "hsamemd did not exit cleanly"; rc=1; }; pid=""
[ $rc -eq 0 ] || cat "$dir/hsamemd.log"
exit $rc
