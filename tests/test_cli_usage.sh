#!/bin/sh
# test_cli_usage.sh: the hsamem CLI's usage errors and documented exit codes, with no daemon.
# Run by `make check`, which exports HSAMEM_TOP_BUILDDIR.
set -u

HSAMEM="${HSAMEM_TOP_BUILDDIR:-.}/hsamem"
[ -x "$HSAMEM" ] || { echo "test_cli_usage: $HSAMEM not built"; exit 99; }
DEAD="ipc://${TMPDIR:-/tmp}/hsamem-test-dead-$$.sock"
failures=0
checks=0

# expect STATUS DESCRIPTION COMMAND...: runs COMMAND with stdin from /dev/null and checks its
# exit status.
expect() {
	want=$1
	what=$2
	shift 2
	checks=$((checks + 1))
	"$@" </dev/null >/dev/null 2>&1
	got=$?
	if [ "$got" -ne "$want" ]; then
		echo "test_cli_usage: $what: exit $got, expected $want"
		failures=$((failures + 1))
	fi
}

expect 2 "no arguments" "$HSAMEM"
expect 2 "unknown command" "$HSAMEM" frobnicate
expect 2 "unknown global option" "$HSAMEM" --frobnicate ping
expect 2 "query without TEXT" "$HSAMEM" -s "$DEAD" query alice
expect 2 "query without USER" "$HSAMEM" -s "$DEAD" query
expect 2 "query with a bad -k" "$HSAMEM" -s "$DEAD" query alice text -k x
expect 2 "create with a bad dtype" "$HSAMEM" -s "$DEAD" create alice --dtype f8
expect 2 "append of nothing" "$HSAMEM" -s "$DEAD" append alice
expect 2 "attend without --qr" "$HSAMEM" -s "$DEAD" attend alice
expect 2 "bad timeout" "$HSAMEM" -t soon ping
expect 2 "bad URL" "$HSAMEM" -s "nosuch://x" ping
expect 2 "extra argument" "$HSAMEM" -s "$DEAD" users extra
expect 2 "help for an unknown command" "$HSAMEM" help frobnicate
expect 0 "--help" "$HSAMEM" --help
expect 0 "help query" "$HSAMEM" help query
expect 0 "query --help" "$HSAMEM" query --help
expect 0 "version" "$HSAMEM" version
expect 0 "--version" "$HSAMEM" --version
expect 3 "ping to a dead socket" "$HSAMEM" -t 2 -s "$DEAD" ping
expect 3 "users to a dead socket" "$HSAMEM" -t 2 -s "$DEAD" --json users
expect 3 "HSAMEM_SOCKET to a dead socket" env HSAMEM_SOCKET="$DEAD" "$HSAMEM" -t 2 ping
expect 3 "-s after the command" "$HSAMEM" ping -t 2 -s "$DEAD"
expect 3 "--socket= after the command" "$HSAMEM" users --json --socket="$DEAD"
expect 2 "-s after the command without its value" "$HSAMEM" ping -s
expect 2 "-t after the command, bad" "$HSAMEM" -s "$DEAD" ping -t soon
expect 4 "attend with a missing file" "$HSAMEM" -s "$DEAD" attend alice --qr /nonexistent/qr \
	--qa /nonexistent/qa

# --help lists every exit code.
checks=$((checks + 1))
help=$("$HSAMEM" --help)
for code in 0 1 2 3 4; do
	if ! printf '%s\n' "$help" | grep -q "^  $code  "; then
		echo "test_cli_usage: --help does not list exit code $code"
		failures=$((failures + 1))
	fi
done

# Errors go to stderr in the documented form.
checks=$((checks + 1))
err=$("$HSAMEM" -t 2 -s "$DEAD" ping 2>&1 >/dev/null)
case $err in
"hsamem: ping: "*) ;;
*) echo "test_cli_usage: unexpected error line: $err"; failures=$((failures + 1)) ;;
esac

# No address given: the per-user socket, then the system service's; the failure names both
# and how to choose.
checks=$((checks + 1))
empty=$(mktemp -d "${TMPDIR:-/tmp}/hsamem-usage-XXXXXX")
err=$(env -u HSAMEM_SOCKET -u RUNTIME_DIRECTORY XDG_RUNTIME_DIR="$empty" "$HSAMEM" -t 2 ping \
	2>&1 >/dev/null)
got=$?
rm -rf "$empty"
if [ -e /run/hsamem/hsamemd.sock ]; then
	echo "test_cli_usage: a system service listens; the failure of the default search is not checked"
else
	case $got:$err in
	"3:hsamem: ping: "*"ipc://$empty/hsamemd.sock (no socket there)"*"ipc:///run/hsamem/hsamemd.sock"*"-s URL"*) ;;
	*) echo "test_cli_usage: default search: exit $got, $err"; failures=$((failures + 1)) ;;
	esac
fi

# version --json is one JSON object.
checks=$((checks + 1))
case $("$HSAMEM" --json version) in
"{\"version\":"*"}") ;;
*) echo "test_cli_usage: version --json is not a JSON object"; failures=$((failures + 1)) ;;
esac

echo "test_cli_usage: $checks checks, $failures failed"
[ "$failures" -eq 0 ]
