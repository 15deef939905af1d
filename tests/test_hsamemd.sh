#!/bin/sh
# hsamemd's command line and configuration: --help and --version, -p printing the effective
# settings, the file/-o precedence, clear errors with exit status 2 for bad settings (the access
# policy's among them: a tcp:// address needs a secret), and a tcp:// listener that the CLI
# reaches with the secret, which reloads on SIGHUP and stops on SIGTERM whichever thread the kernel
# hands them to. tests/test_access.sh tests what the policy allows.
set -u
top=${HSAMEM_TOP_BUILDDIR:-.}
d="$top/hsamemd"
dir=$(mktemp -d "${TMPDIR:-/tmp}/hsamem-conf-XXXXXX")
pid=""
failures=0
cleanup() {
	[ -n "$pid" ] && kill -9 "$pid" 2>/dev/null
	rm -rf "$dir"
}
trap cleanup EXIT
fail() {
	echo "FAIL: $*"
	failures=$((failures + 1))
}

"$d" --help | grep -q -- "--state-dir" || fail "--help"
"$d" --version | grep -q "^hsamemd " || fail "--version"
"$d" --bogus >/dev/null 2>&1; [ $? -eq 2 ] || fail "unknown option: exit 2"
"$d" extra-arg >/dev/null 2>&1; [ $? -eq 2 ] || fail "stray argument: exit 2"

cat > "$dir/hsamem.conf" <<CONF
# a comment
listen = ipc://$dir/file.sock
workers = 3   # trailing comment
max-message = 8M
log-level = notice
CONF
out=$("$d" -c "$dir/hsamem.conf" -p) || fail "-p with a good file"
echo "$out" | grep -qx "workers = 3" || fail "file setting not applied"
echo "$out" | grep -qx "max-message = 8M" || fail "size setting not printed in its unit"
echo "$out" | grep -qx "listen = ipc://$dir/file.sock" || fail "file listen"
out=$("$d" -c "$dir/hsamem.conf" -o workers=5 -l "ipc://$dir/cli.sock" -p)
echo "$out" | grep -qx "workers = 5" || fail "-o does not override the file"
echo "$out" | grep -q "file.sock" && fail "-l does not replace the file's listen"
echo "$out" | grep -qx "listen = ipc://$dir/cli.sock" || fail "-l not applied"

for bad in "workers=0" "workers=abc" "max-message=12Q" "gpu=maybe" "nonsense=1" \
	"listen=http://x" "socket-mode=999" "state-dir="; do
	err=$("$d" -o "$bad" --check-config 2>&1); rc=$?
	[ $rc -eq 2 ] || fail "-o $bad: exit $rc, expected 2"
	echo "$err" | grep -q "${bad%%=*}" || fail "-o $bad: the error does not name the key"
done
printf 'workers = 4\nmax-entry = 0\n' > "$dir/bad.conf"
err=$("$d" -c "$dir/bad.conf" --check-config 2>&1); rc=$?
[ $rc -eq 2 ] || fail "bad file: exit $rc"
echo "$err" | grep -q "bad.conf:2: max-entry" || fail "bad file: no file:line in '$err'"
"$d" -c "$dir/missing.conf" --check-config >/dev/null 2>&1; [ $? -eq 2 ] ||
	fail "a named config file that does not exist must be an error"
out=$("$d" -o max-message=1G -p) || fail "max-message=1G refused"
echo "$out" | grep -qx "max-inflight = 2G" || fail "max-inflight does not follow max-message"
err=$("$d" -o max-message=64M -o max-inflight=100M --check-config 2>&1); rc=$?
[ $rc -eq 2 ] || fail "max-inflight under twice max-message: exit $rc, expected 2"
echo "$err" | grep -q "max-inflight must be at least twice max-message" ||
	fail "max-inflight: no reason in '$err'"
"$d" -o map-size=2G -o map-max=1G --check-config >/dev/null 2>&1; [ $? -eq 2 ] ||
	fail "map-max below map-size"

# model-dir: a daemon of this build tree uses the source tree's model; a relative path is refused
out=$("$d" -p)
echo "$out" | grep -qx "model-dir = ${HSAMEM_TOP_SRCDIR:-$PWD}/models/hsa-small" ||
	fail "default model-dir of a build-tree daemon: $(echo "$out" | grep model-dir)"
"$d" -o model-dir=models/hsa-small --check-config >/dev/null 2>&1; [ $? -eq 2 ] ||
	fail "relative model-dir accepted"

# the access policy's settings: defaults printed, bad lines refused with the key named
out=$("$d" -p)
echo "$out" | grep -qx "admin = uid:0 self group:hsamem" || fail "default admin not printed"
echo "$out" | grep -qx 'allow = \* \$login \$login:\*' || fail "default allow not printed"
out=$("$d" -o "allow=user:alice alice bob:*" -o "admin=none" -p)
echo "$out" | grep -qx "allow = user:alice alice bob:\*" || fail "allow not replaced"
echo "$out" | grep -q "allow = \*" && fail "the default allow is kept beside an explicit one"
echo "$out" | grep -qx "admin = none" || fail "admin = none"
for bad in "admin=uid:x" "admin=wizard" "allow=alice" "allow=* a*b" "allow=* \$user" \
	"secret=name" "secret=name relative/path" "tls-ca=relative.pem" "allow=cert: y"; do
	err=$("$d" -o "$bad" --check-config 2>&1); rc=$?
	[ $rc -eq 2 ] || fail "-o $bad: exit $rc, expected 2"
	echo "$err" | grep -q "${bad%%=*}" || fail "-o $bad: the error does not name the key"
done

# tcp:// needs a shared secret, tls+tcp:// a certificate, key and client authority
port=$((20000 + $$ % 20000))
err=$("$d" -l "tcp://127.0.0.1:$port" -d "$dir/state" --check-config 2>&1); rc=$?
[ $rc -eq 2 ] || fail "tcp:// without a secret: exit $rc, expected 2"
echo "$err" | grep -q "needs a shared secret" || fail "tcp:// without a secret: '$err'"
err=$("$d" -l "tls+tcp://127.0.0.1:$port" -o "secret=app $dir/none" --check-config 2>&1); rc=$?
[ $rc -eq 2 ] || fail "tls+tcp:// without tls-cert: exit $rc, expected 2"
echo "$err" | grep -q "tls-cert, tls-key and tls-ca" || fail "tls+tcp:// without tls-cert: '$err'"
printf 'a-secret-of-at-least-16-bytes\n' > "$dir/secret"
chmod 0644 "$dir/secret"
err=$("$d" -l "tcp://127.0.0.1:$port" -o "secret=app $dir/secret" --check-config 2>&1); rc=$?
[ $rc -eq 2 ] || fail "a secret file others can read: exit $rc, expected 2"
echo "$err" | grep -q "others cannot read" || fail "a secret file others can read: '$err'"
chmod 0600 "$dir/secret"
printf 'short\n' > "$dir/short"
chmod 0600 "$dir/short"
"$d" -l "tcp://127.0.0.1:$port" -o "secret=app $dir/short" --check-config >/dev/null 2>&1
[ $? -eq 2 ] || fail "a secret shorter than 16 bytes must be refused"

# a tcp listener with a secret on a free loopback port
"$d" -l "tcp://127.0.0.1:$port" -d "$dir/state" -o log-level=warning \
	-o "secret=app $dir/secret" 2>"$dir/log" &
pid=$!
export HSAMEM_SECRET_FILE="$dir/secret"
i=0
until "$top/hsamem" -s "tcp://127.0.0.1:$port" -t 1 ping >/dev/null 2>&1; do
	i=$((i + 1)); [ $i -gt 100 ] && { fail "no answer over tcp"; break; }
	sleep 0.1
done
"$top/hsamem" -s "tcp://127.0.0.1:$port" append app "over tcp" >/dev/null || fail "tcp append"
kill -HUP "$pid"
sleep 0.2
"$top/hsamem" -s "tcp://127.0.0.1:$port" ping >/dev/null || fail "serving after SIGHUP"
# The kernel may hand a signal to any thread that does not block it: a thread a library started
# before main (OpenBLAS's pool) gets SIGHUP and SIGTERM here as it can at any moment, and the
# daemon must reload and stop as when main gets them, not die of the signal.
other=""
for t in /proc/"$pid"/task/*; do
	tid=${t##*/}
	blk=$(awk '/^SigBlk/ {print $2}' "$t/status" 2>/dev/null)
	if [ "$tid" != "$pid" ] && [ -n "$blk" ] && [ $((0x$blk & 0x4001)) -eq 0 ]; then
		other=$tid
		break
	fi
done
signal_thread() {
	if [ -n "$other" ]; then
		python3 -c 'import ctypes, sys; sys.exit(ctypes.CDLL(None).tgkill(*map(int, sys.argv[1:])))' \
			"$pid" "$other" "$1" || fail "tgkill $1"
	else
		kill -"$1" "$pid"
	fi
}
[ -n "$other" ] || echo "test_hsamemd: no thread without the signals blocked; signalling the process"
signal_thread 1
sleep 0.2
"$top/hsamem" -s "tcp://127.0.0.1:$port" ping >/dev/null || fail "serving after SIGHUP to thread $other"
unset HSAMEM_SECRET_FILE
signal_thread 15
wait "$pid" || fail "exit status after SIGTERM to thread $other"
pid=""

if [ $failures -ne 0 ]; then
	echo "test_hsamemd: $failures failures"
	exit 1
fi
echo "test_hsamemd: ok"
