#!/bin/sh
# The access policy with real peers, real sockets and the real CLI (hsamemd(8), ACCESS CONTROL):
#  - ipc://, default policy: a second uid (nobody, through setpriv) uses its own memories, is
#    refused everyone else's with the same answer whether the memory exists or not, changes
#    nothing it may not, sees only its memories in users and stats, runs no administrator's
#    operation; every refusal is logged with the peer;
#  - a policy from a file (group and uid rules, an administrator group) applied again on SIGHUP;
#  - tcp:// with a shared secret: none, a wrong one, the right one and what its name may use;
#  - tls+tcp:// with client certificates from a throwaway CA: a good one, none, one of another
#    CA (needs openssl);
#  - the default socket without a runtime directory: a private directory the daemon creates
#    (0700) and refuses when another uid owns it or others may enter it.
# Needs root, to run clients as nobody; skips (77) otherwise.
set -u
top=${HSAMEM_TOP_BUILDDIR:-.}
top=$(cd "$top" && pwd)
d="$top/hsamemd"
cli="$top/hsamem"
if [ "$(id -u)" -ne 0 ] || ! command -v setpriv >/dev/null 2>&1; then
	echo "test_access: needs root and setpriv to run a client as nobody; skipped"
	exit 77
fi
as_nobody() { setpriv --reuid=nobody --regid=nogroup --clear-groups "$@"; }
if ! as_nobody "$cli" --version >/dev/null 2>&1; then
	echo "test_access: nobody cannot run $cli (a private build directory?); skipped"
	exit 77
fi
dir=$(mktemp -d "${TMPDIR:-/tmp}/hsamem-access-XXXXXX")
chmod 0755 "$dir" # nobody reaches the socket; the state directory stays 0700
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
# start_daemon LOG ARGS...: starts hsamemd, waits until root's ping is answered
start_daemon() {
	log=$1
	shift
	"$d" -d "$dir/state" -o log-level=notice -o gpu=off "$@" 2>"$log" &
	pid=$!
	i=0
	until "$cli" -t 1 ping >/dev/null 2>&1; do
		i=$((i + 1))
		if [ $i -gt 150 ] || ! kill -0 "$pid" 2>/dev/null; then
			fail "hsamemd $* did not come up"
			cat "$log"
			return 1
		fi
		sleep 0.1
	done
}
stop_daemon() {
	kill -TERM "$pid"
	wait "$pid" || fail "hsamemd exit status after SIGTERM"
	pid=""
}

# ---- ipc://, the default policy ----
export HSAMEM_SOCKET="ipc://$dir/hsamemd.sock"
start_daemon "$dir/log1" -l "$HSAMEM_SOCKET" -o socket-mode=0666 || exit 1
"$cli" append root-notes "the launch code is 4711" >/dev/null || fail "root append"
"$cli" append nobody:seed "made by root for nobody" >/dev/null || fail "root append nobody:seed"
as_nobody "$cli" ping >/dev/null || fail "nobody: ping"
as_nobody "$cli" append nobody "my own memory" >/dev/null || fail "nobody: append to 'nobody'"
as_nobody "$cli" append nobody:diary "a memory of my prefix" >/dev/null ||
	fail "nobody: append to 'nobody:diary'"
as_nobody "$cli" --json entries nobody:seed | grep -q "made by root for nobody" ||
	fail "nobody: query of nobody:seed"

# refused, with the same answer whether the memory exists or not, and nothing changed
for cmd in "query launch" entries "append mine-now" flush stats export; do
	set -- $cmd
	verb=$1
	shift
	e1=$(as_nobody "$cli" "$verb" root-notes "$@" 2>&1 >"$dir/out"); r1=$?
	[ -s "$dir/out" ] && fail "nobody: $verb root-notes printed $(head -c 100 "$dir/out")"
	e2=$(as_nobody "$cli" "$verb" ghost-notes "$@" 2>&1 >/dev/null); r2=$?
	[ $r1 -eq 1 ] && [ $r2 -eq 1 ] || fail "nobody: $verb: exit $r1 and $r2, expected 1"
	echo "$e1" | grep -q "permission denied" || fail "nobody: $verb root-notes: '$e1'"
	# the two answers differ only in the name (and the pid in the peer's description)
	n1=$(echo "$e1" | sed -e 's/root-notes/NAME/g' -e 's/pid [0-9]*/pid N/')
	n2=$(echo "$e2" | sed -e 's/ghost-notes/NAME/g' -e 's/pid [0-9]*/pid N/')
	[ "$n1" = "$n2" ] || fail "nobody: $verb tells whether a memory exists: '$e1' / '$e2'"
done
# the denial log keeps ten a second (hsamemd(8)): the ones checked below start a second of their own
sleep 1.1
for cmd in "delete root-notes" "delete nobody" "stats"; do
	err=$(as_nobody "$cli" $cmd 2>&1 >/dev/null); rc=$?
	[ $rc -eq 1 ] || fail "nobody: $cmd: exit $rc, expected 1"
	echo "$err" | grep -q "not an administrator" || fail "nobody: $cmd: '$err'"
done
"$cli" export nobody >"$dir/nobody.hsx" || fail "root: export nobody"
err=$(as_nobody "$cli" import nobody:copy <"$dir/nobody.hsx" 2>&1 >/dev/null); rc=$?
[ $rc -eq 1 ] && echo "$err" | grep -q "not an administrator" || fail "nobody: import: '$err'"
"$cli" --json entries root-notes | grep -q '"total":1,' || fail "root-notes changed"
"$cli" --json users | grep -q '"user":"ghost-notes"' && fail "ghost-notes was created"

# listings show what the peer may use, and count nothing else
out=$(as_nobody "$cli" --json users)
echo "$out" | grep -q '"user":"root-notes"' && fail "nobody: users shows root-notes"
echo "$out" | grep -q '"user":"nobody:diary"' || fail "nobody: users misses nobody:diary"
as_nobody "$cli" --json stats nobody | grep -q '^{"users":3,' || fail "nobody: stats counts others"
"$cli" --json users | grep -q '"user":"root-notes"' || fail "root: users misses root-notes"
"$cli" --json stats | grep -q '^{"users":4,' || fail "root: global stats"
grep -q "acl: denied query of memory 'root-notes' to uid 65534 (nobody) pid [0-9]" "$dir/log1" ||
	fail "the denial is not logged with the peer"
grep -q "acl: denied delete of memory 'nobody' to uid 65534 (nobody) pid [0-9]*: not an administrator" \
	"$dir/log1" || fail "the administrator's denial is not logged"
"$cli" delete nobody:seed >/dev/null || fail "root: delete"
stop_daemon

# ---- a policy from a file, applied again on SIGHUP ----
cat >"$dir/policy.conf" <<CONF
admin = uid:0
allow = gid:65534 team:*
allow = user:nobody private
CONF
start_daemon "$dir/log2" -c "$dir/policy.conf" -l "$HSAMEM_SOCKET" -o socket-mode=0666 || exit 1
as_nobody "$cli" append team:a "by group" >/dev/null || fail "gid rule: team:a"
as_nobody "$cli" append private "by user" >/dev/null || fail "user rule: private"
as_nobody "$cli" append nobody "by login" >/dev/null 2>&1 && fail "the default rule is still there"
as_nobody "$cli" users >/dev/null 2>&1 || fail "nobody: users"
as_nobody "$cli" --json stats >/dev/null 2>&1 && fail "nobody: global stats before the reload"
cat >"$dir/policy.conf" <<CONF
admin = uid:0 group:nogroup
allow = none
CONF
kill -HUP "$pid"
i=0
until grep -q "conf: reloaded" "$dir/log2"; do
	i=$((i + 1)); [ $i -gt 50 ] && { fail "no reload"; break; }
	sleep 0.1
done
as_nobody "$cli" --json users | grep -q '"user":"root-notes"' ||
	fail "group administrator after SIGHUP"
as_nobody "$cli" delete team:a >/dev/null || fail "group administrator: delete"
# a bad policy on reload keeps the running one
echo "allow = nonsense" >"$dir/policy.conf"
kill -HUP "$pid"
i=0
until grep -q "reload failed" "$dir/log2"; do
	i=$((i + 1)); [ $i -gt 50 ] && { fail "a bad reload is not reported"; break; }
	sleep 0.1
done
as_nobody "$cli" --json stats >/dev/null || fail "the running policy was lost on a bad reload"
stop_daemon

# ---- tcp:// with a shared secret ----
port=$((20000 + $$ % 20000))
printf 'app-secret-0123456789abcdef\n' >"$dir/app.secret"
printf 'ops-secret-0123456789abcdef\n' >"$dir/ops.secret"
chmod 0600 "$dir/app.secret" "$dir/ops.secret"
tcp="tcp://127.0.0.1:$port"
start_daemon "$dir/log3" -l "$HSAMEM_SOCKET" -l "$tcp" -o "secret=app $dir/app.secret" \
	-o "secret=ops $dir/ops.secret" -o "admin=uid:0 secret:ops" || exit 1
err=$("$cli" -s "$tcp" append app "no secret" 2>&1); rc=$?
[ $rc -eq 1 ] && echo "$err" | grep -q "without a shared secret" || fail "tcp, no secret: '$err'"
err=$(HSAMEM_SECRET=app-secret-0123456789abcdeX "$cli" -s "$tcp" ping 2>&1); rc=$?
[ $rc -eq 1 ] && echo "$err" | grep -q "does not match" || fail "tcp, wrong secret: '$err'"
err=$(HSAMEM_SECRET=app-secret-0123456789abcde "$cli" -s "$tcp" ping 2>&1); rc=$?
[ $rc -eq 1 ] || fail "tcp, a prefix of the secret: exit $rc"
export HSAMEM_SECRET_FILE="$dir/app.secret"
"$cli" -s "$tcp" append app "with the secret" >/dev/null || fail "tcp, secret app: append app"
"$cli" -s "$tcp" append app:x "with the secret" >/dev/null || fail "tcp, secret app: app:x"
err=$("$cli" -s "$tcp" query root-notes "launch" 2>&1); rc=$?
[ $rc -eq 1 ] && echo "$err" | grep -q "secret 'app' from 127.0.0.1:[0-9]* may not use" ||
	fail "tcp, secret app: root-notes: '$err'"
"$cli" -s "$tcp" delete app >/dev/null 2>&1 && fail "tcp, secret app: delete"
HSAMEM_SECRET_FILE="$dir/ops.secret" "$cli" -s "$tcp" delete app:x >/dev/null ||
	fail "tcp, secret ops (an administrator): delete"
unset HSAMEM_SECRET_FILE
grep -q "acl: denied append of memory 'app' to 127.0.0.1:[0-9]* (tcp without a shared secret" \
	"$dir/log3" || fail "the tcp denial is not logged with the peer"
stop_daemon

# ---- tls+tcp:// with client certificates ----
if command -v openssl >/dev/null 2>&1; then
	c="$dir/certs"
	mkdir "$c"
	ca() { openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
		-keyout "$c/$1.key" -out "$c/$1.pem" -days 2 -subj "/CN=$1" 2>/dev/null; }
	leaf() { # NAME CN CA
		openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
			-keyout "$c/$1.key" -out "$c/$1.csr" -subj "/CN=$2" 2>/dev/null &&
			printf 'subjectAltName=DNS:127.0.0.1,IP:127.0.0.1\n' >"$c/$1.ext" &&
			openssl x509 -req -in "$c/$1.csr" -CA "$c/$3.pem" -CAkey "$c/$3.key" \
				-CAcreateserial -out "$c/$1.pem" -days 2 -extfile "$c/$1.ext" 2>/dev/null
	}
	ca ca && ca rogue && leaf server 127.0.0.1 ca && leaf alice alice ca &&
		leaf mallory alice rogue || fail "openssl could not make the test certificates"
	chmod 0600 "$c"/*.key
	tls="tls+tcp://127.0.0.1:$((port + 1))"
	start_daemon "$dir/log4" -l "$HSAMEM_SOCKET" -l "$tls" -o "tls-cert=$c/server.pem" \
		-o "tls-key=$c/server.key" -o "tls-ca=$c/ca.pem" -o "allow=cert:* tls-shared" || exit 1
	export HSAMEM_TLS_CA="$c/ca.pem"
	HSAMEM_TLS_CERT="$c/alice.pem" HSAMEM_TLS_KEY="$c/alice.key" \
		"$cli" -s "$tls" append tls-shared "over tls" >/dev/null || fail "tls, good certificate"
	err=$(HSAMEM_TLS_CERT="$c/alice.pem" HSAMEM_TLS_KEY="$c/alice.key" \
		"$cli" -s "$tls" query root-notes launch 2>&1); rc=$?
	[ $rc -eq 1 ] && echo "$err" | grep -q "certificate.* may not use memory 'root-notes'" ||
		fail "tls, good certificate, root-notes: '$err'"
	"$cli" -t 5 -s "$tls" append tls-shared "no certificate" >/dev/null 2>&1; rc=$?
	[ $rc -eq 3 ] || fail "tls without a client certificate: exit $rc, expected 3"
	HSAMEM_TLS_CERT="$c/mallory.pem" HSAMEM_TLS_KEY="$c/mallory.key" \
		"$cli" -t 5 -s "$tls" append tls-shared "another CA" >/dev/null 2>&1; rc=$?
	[ $rc -eq 3 ] || fail "tls with a certificate of another CA: exit $rc, expected 3"
	HSAMEM_TLS_CA="$c/rogue.pem" HSAMEM_TLS_CERT="$c/alice.pem" HSAMEM_TLS_KEY="$c/alice.key" \
		"$cli" -t 5 -s "$tls" ping >/dev/null 2>&1; rc=$?
	[ $rc -eq 3 ] || fail "tls, a daemon the client's CA did not sign: exit $rc, expected 3"
	unset HSAMEM_TLS_CA
	"$cli" --json entries tls-shared | grep -q '"total":1,' ||
		fail "tls: what the refused clients sent was stored"
	stop_daemon
else
	echo "test_access: no openssl; the tls+tcp:// part is skipped"
fi

# ---- the default socket without a runtime directory ----
unset HSAMEM_SOCKET
t="$dir/tmp"
mkdir -m 0755 "$t"
(
	failures=0
	unset RUNTIME_DIRECTORY XDG_RUNTIME_DIR
	export TMPDIR="$t"
	start_daemon "$dir/log5" || exit 1
	[ "$(stat -c '%a %u' "$t/hsamem-0")" = "700 0" ] || fail "private directory not 0700 root"
	[ -S "$t/hsamem-0/hsamemd.sock" ] || fail "no socket in the private directory"
	stop_daemon
	# a directory another uid made is refused, by the daemon and by the client
	chown nobody "$t/hsamem-0"
	"$d" -d "$dir/state" 2>"$dir/log6" &
	p=$!
	wait $p; rc=$?
	[ $rc -eq 1 ] || fail "daemon in another uid's directory: exit $rc, expected 1"
	grep -q "belongs to uid 65534" "$dir/log6" || fail "daemon: no reason given: $(cat "$dir/log6")"
	err=$("$cli" ping 2>&1); rc=$?
	[ $rc -eq 3 ] && echo "$err" | grep -q "refusing to connect" || fail "client: '$err'"
	chown root "$t/hsamem-0"
	chmod 0755 "$t/hsamem-0"
	"$d" -d "$dir/state" 2>"$dir/log7"; rc=$?
	[ $rc -eq 1 ] && grep -q "must be 0700" "$dir/log7" || fail "daemon in an open directory"
	exit $failures
) || failures=$((failures + $?))

if [ $failures -ne 0 ]; then
	echo "test_access: $failures failures"
	exit 1
fi
echo "test_access: ok"
