#!/bin/sh
# hsamem mcp, the MCP server, against a real daemon: a whole session driven by the official MCP
# TypeScript SDK (tests/mcp/session.mjs) over stdio and over Streamable HTTP, and the revisions
# and malformed input checked on raw stdio. Skips (77) without node or without the SDK
# (scripts/deps.sh test installs both; HSAMEM_MCP_MODULES may name a node_modules elsewhere).
set -u
top=${HSAMEM_TOP_BUILDDIR:-.}
src=${HSAMEM_TOP_SRCDIR:-${srcdir:-.}}
modules=${HSAMEM_MCP_MODULES:-$src/tests/mcp/node_modules}
if ! command -v node >/dev/null 2>&1; then
	echo "test_mcp: no node; skipped"
	exit 77
fi
if [ ! -f "$modules/@modelcontextprotocol/sdk/package.json" ]; then
	echo "test_mcp: no MCP SDK in $modules (run scripts/deps.sh test); skipped"
	exit 77
fi

dir=$(mktemp -d "${TMPDIR:-/tmp}/hsamem-mcp-XXXXXX")
sock="ipc://$dir/hsamemd.sock"
pid="" http=""
cleanup() {
	[ -n "$http" ] && kill -9 "$http" 2>/dev/null
	[ -n "$pid" ] && kill -9 "$pid" 2>/dev/null
	rm -rf "$dir"
}
trap cleanup EXIT
fail() {
	echo "test_mcp: FAIL: $*"
	exit 1
}

"$top/hsamemd" -l "$sock" -d "$dir/state" -o log-level=warning 2>>"$dir/hsamemd.log" &
pid=$!
i=0
until "$top/hsamem" -s "$sock" -t 1 ping >/dev/null 2>&1; do
	i=$((i + 1))
	[ $i -gt 100 ] && { cat "$dir/hsamemd.log"; fail "hsamemd did not start"; }
	sleep 0.1
done

# The session script runs beside the SDK's node_modules (ES modules resolve from their folder).
mkdir "$dir/client"
cp "$src/tests/mcp/session.mjs" "$dir/client/"
ln -s "$(cd "$modules" && pwd)" "$dir/client/node_modules"

# ---- raw stdio: revisions, malformed input, notifications ----
mcp() {
	"$top/hsamem" -s "$sock" mcp "$@" 2>>"$dir/mcp.err"
}
init='{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"%s","capabilities":{},"clientInfo":{"name":"sh","version":"1"}}}\n'
for rev in 2025-11-25 2025-06-18 2025-03-26; do
	out=$(printf "$init" "$rev" | mcp raw) || fail "mcp exited $? for $rev"
	echo "$out" | grep -q "\"protocolVersion\":\"$rev\"" || fail "revision $rev not agreed: $out"
done
out=$(printf "$init" 2024-11-05 | mcp raw)
echo "$out" | grep -q '"protocolVersion":"2025-11-25"' || fail "an old revision gets the newest: $out"
out=$(printf '%s\n' 'not json' '{"jsonrpc":"2.0","method":"notifications/initialized"}' \
	'[]' '{"jsonrpc":"2.0","id":7,"method":"nope"}' '{"jsonrpc":"2.0","id":8,"method":"ping"}' \
	'[{"jsonrpc":"2.0","id":9,"method":"ping"},{"jsonrpc":"2.0","method":"x"}]' \
	'{"jsonrpc":"1.0","id":10,"method":"ping"}' '{"jsonrpc":"2.0","id":[1],"method":"ping"}' | mcp raw)
[ "$(echo "$out" | wc -l)" -eq 7 ] || fail "expected 7 replies (none to a notification): $out"
echo "$out" | sed -n 1p | grep -q '"code":-32700' || fail "no parse error: $out"
echo "$out" | sed -n 2p | grep -q '"code":-32600' || fail "an empty batch: $out"
echo "$out" | sed -n 3p | grep -q '"id":7,"error":{"code":-32601' || fail "unknown method: $out"
echo "$out" | sed -n 4p | grep -q '"id":8,"result":{}' || fail "ping: $out"
echo "$out" | sed -n 5p | grep -q '^\[{"jsonrpc":"2.0","id":9,"result":{}}\]$' || fail "batch: $out"
echo "$out" | sed -n 6p | grep -q '"id":10,"error":{"code":-32600' || fail "jsonrpc 1.0: $out"
echo "$out" | sed -n 7p | grep -q '"code":-32600' || fail "an array id: $out"
# The memory is fixed by the command line: a bad name is a usage error, nothing is served.
mcp 'bad/name' </dev/null && fail "a bad memory name was accepted"
HSAMEM_MCP_USER= mcp </dev/null && fail "no memory name was accepted"
mcp raw --http 10.1.2.3:80 </dev/null && fail "a non-loopback address was accepted"
"$top/hsamem" -s "$sock" users | grep -q raw && fail "the raw exchanges created a memory"

# ---- the SDK over stdio ----
node "$dir/client/session.mjs" stdio "$top/hsamem" "$sock" alice || fail "stdio session"
"$top/hsamem" -s "$sock" entries alice | grep -q "Miso" || fail "the entries are not alice's"
"$top/hsamem" -s "$sock" users | grep -q bob && fail "bob has a memory"

# ---- the SDK over Streamable HTTP ----
HSAMEM_MCP_USER=bob "$top/hsamem" -s "$sock" mcp --http 127.0.0.1:0 2>"$dir/http.err" &
http=$!
i=0
until url=$(sed -n 's/^hsamem: mcp: serving bob at \(http:.*\)$/\1/p' "$dir/http.err") &&
	[ -n "$url" ]; do
	i=$((i + 1))
	[ $i -gt 100 ] && { cat "$dir/http.err"; fail "the HTTP server did not start"; }
	sleep 0.1
done
node "$dir/client/session.mjs" http "$url" || fail "http session"
kill -TERM "$http"
wait "$http" || fail "the HTTP server did not exit cleanly"
http=""
"$top/hsamem" -s "$sock" entries bob | grep -q "green tea" || fail "the entries are not bob's"

kill -TERM "$pid"
wait "$pid" || fail "hsamemd did not exit cleanly"
pid=""
echo "test_mcp: ok"
