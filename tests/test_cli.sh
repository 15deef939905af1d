#!/bin/sh
# The CLI as a new user drives it: a daemon on a temporary socket and state directory; several
# hundred paragraphs of ordinary text (the license texts every Debian system ships) and a few facts
# appended with `hsamem append`; questions about the facts must return the fact's entry among the
# top 3 hits, before and after a clean restart and after SIGKILL. Scopes and filters on append,
# query, entries and export. Bad names, bad filters and stdin with a NUL byte are refused with the
# documented exit status.
set -u
top=${HSAMEM_TOP_BUILDDIR:-.}
dir=$(mktemp -d "${TMPDIR:-/tmp}/hsamem-cli-XXXXXX")
sock="ipc://$dir/hsamemd.sock"
export HSAMEM_SOCKET="$sock"
hsamem="$top/hsamem"
pid=""
failures=0

cleanup() {
	[ -n "$pid" ] && kill -9 "$pid" 2>/dev/null
	rm -rf "$dir"
}
trap cleanup EXIT

start() {
	"$top/hsamemd" -l "$sock" -d "$dir/state" -o log-level=warning 2>>"$dir/hsamemd.log" &
	pid=$!
	i=0
	until "$hsamem" -t 1 ping >/dev/null 2>&1; do
		i=$((i + 1))
		if [ $i -gt 100 ]; then
			echo "hsamemd did not start"; cat "$dir/hsamemd.log"; exit 1
		fi
		sleep 0.1
	done
}

fail() {
	echo "FAIL: $*"
	failures=$((failures + 1))
}

# one paragraph per line
for f in GPL-3 GPL-2 LGPL-2.1 Apache-2.0 MPL-2.0 GFDL-1.3 Artistic; do
	awk '/^[[:space:]]*$/ { if (p != "") print p; p = ""; next }
	     { sub(/^[[:space:]]+/, ""); p = (p == "" ? $0 : p " " $0) }
	     END { if (p != "") print p }' "/usr/share/common-licenses/$f"
done | awk 'length($0) > 20' > "$dir/text.txt"
lines=$(wc -l < "$dir/text.txt")
[ "$lines" -ge 300 ] || fail "only $lines paragraphs of text"

fact1="Alice's cat is named Whiskers and sleeps on the red sofa."
q1="What is the name of Alice's cat?"
fact2="The password for the blue vault is tangerine."
q2="What is the password of the blue vault?"
fact3="The quarterly budget meeting moved to Thursday at 3pm in room 418."
q3="Where is the quarterly budget meeting?"

start
# No -s and no HSAMEM_SOCKET: found at the per-user socket ($XDG_RUNTIME_DIR/hsamemd.sock).
out=$(env -u HSAMEM_SOCKET -u RUNTIME_DIRECTORY XDG_RUNTIME_DIR="$dir" "$hsamem" -t 5 ping) ||
	fail "ping by the default search"
case $out in *"at $sock:"*) ;; *) fail "default search reached: $out" ;; esac
# global options after the command name
"$hsamem" -s "ipc://$dir/nothing.sock" ping -s "$sock" >/dev/null || fail "ping -s URL"
"$hsamem" stats --json -s "$sock" -t 5 | grep -q '^{"users":' || fail "stats --json -s URL"
head -n 150 "$dir/text.txt" | "$hsamem" append alice --lines >/dev/null || fail "append --lines"
"$hsamem" append alice "$fact1" >/dev/null || fail "append fact 1"
sed -n '151,300p' "$dir/text.txt" | "$hsamem" append alice --lines >/dev/null || fail "append"
printf '%s\n' "$fact2" | "$hsamem" append alice --role assistant --tag secret >/dev/null ||
	fail "append fact 2 from stdin"
sed -n '301,$p' "$dir/text.txt" | "$hsamem" append alice --lines >/dev/null || fail "append"
"$hsamem" append alice "$fact3" >/dev/null || fail "append fact 3"

check_facts() {
	for n in 1 2 3; do
		eval "fact=\$fact$n q=\$q$n"
		out=$("$hsamem" --json query alice "$q" -k 3) || { fail "$1: query $n failed"; continue; }
		printf '%s' "$out" | grep -qF "\"text\":\"$fact\"" ||
			fail "$1: fact $n not in the top 3 for: $q"
	done
	# the people's view prints the fact too
	"$hsamem" query alice "$q1" -k 3 | grep -q "Whiskers" || fail "$1: table output"
}

check_facts "first run"
entries=$("$hsamem" --json stats alice | grep -o '"entries":[0-9]*' | head -n 1 | cut -d: -f2)
want=$((lines + 3))
[ "$entries" = "$want" ] || fail "stats: $entries entries, expected $want"

kill -TERM "$pid"; wait "$pid" || fail "hsamemd did not exit cleanly on SIGTERM"; pid=""
start
check_facts "after restart"

"$hsamem" append alice "The spare key is under the third flowerpot." >/dev/null || fail "append"
kill -9 "$pid"; wait "$pid" 2>/dev/null; pid=""
start
check_facts "after SIGKILL"
"$hsamem" query alice "where is the spare key" -k 3 | grep -q "flowerpot" ||
	fail "the append acknowledged before SIGKILL is missing"

# ask (experimental): an hsa-small memory answers with the needle's number, the note on stderr;
# --max-tokens bounds the answer; a lexical memory is refused naming its encoder
"$hsamem" create askcli --encoder hsa-small >/dev/null || fail "create of an hsa-small memory"
for i in 1 2 3 4 5 6; do
	"$hsamem" append askcli "The village baker repaired the wooden bridge before the rain came. A young painter described a map of the valley as the fog lifted." >/dev/null
	[ $i -eq 3 ] && "$hsamem" append askcli "One of the special magic numbers for quiet-harbor is: 4829301." >/dev/null
done
askq="What is the special magic number for quiet-harbor mentioned in the provided text?"
out=$("$hsamem" --json ask askcli "$askq" 2>"$dir/err") || fail "ask failed: $(cat "$dir/err")"
echo "$out" | grep -q '"answer": *"[^"]*4829301' || fail "ask: no number in $out"
echo "$out" | grep -q '"experimental": *true' || fail "ask: not marked experimental: $out"
grep -q "experimental" "$dir/err" || fail "ask: no note on stderr"
out=$("$hsamem" --json ask askcli "$askq" --max-tokens 1 2>/dev/null)
echo "$out" | grep -q '"complete": *false' || fail "ask --max-tokens 1: $out"
"$hsamem" ask askcli "$askq" --max-tokens 65 >/dev/null 2>&1; rc=$?
[ $rc -eq 2 ] || fail "ask --max-tokens 65 exited $rc, expected 2"
"$hsamem" ask alice "$askq" >/dev/null 2>"$dir/err"; rc=$?
[ $rc -eq 1 ] && grep -q "lexical" "$dir/err" || fail "ask of a lexical memory exited $rc: $(cat "$dir/err")"

# scopes and filters: append --scope/--meta/--time; query, entries and export with a filter show
# only matching entries; the chunk view with --chunks; a filter that keeps nothing says so;
# --min-score; bad filters and scopes are refused with the documented exit status
"$hsamem" append scoped "The dentist appointment is on Friday at nine." --scope agent=cal,session=1 \
	--meta src=sms --time 2026-11-02T09:00:00+01:00 >/dev/null || fail "append --scope"
"$hsamem" append scoped "The spare key to the dentist office is under the red mat." \
	--scope agent=home --role assistant --tag keys >/dev/null || fail "append --scope 2"
head -n 40 "$dir/text.txt" | "$hsamem" append scoped --lines --scope agent=home >/dev/null ||
	fail "append --lines --scope"
out=$("$hsamem" query scoped "dentist" --scope agent=cal) || fail "query --scope"
printf '%s' "$out" | grep -q "Friday" || fail "query --scope: the cal entry missing: $out"
printf '%s' "$out" | grep -q "red mat" && fail "query --scope: another scope's entry shown: $out"
out=$("$hsamem" query scoped "dentist" --scope agent=cal --chunks) || fail "query --chunks"
printf '%s' "$out" | grep -q "chunk 0" || fail "query --chunks: no chunk view: $out"
printf '%s' "$out" | grep -q "red mat" && fail "query --chunks: another scope's text shown"
"$hsamem" --json query scoped "dentist" --where src=sms --since 2026-11-02T08:00Z \
	--until 2026-11-02T08:01Z | grep -q '"scope":\["agent=cal","session=1"\],"meta":\["src=sms"\]' ||
	fail "query --where --since --until: the entry at 08:00 UTC with its scope and meta"
"$hsamem" query scoped "dentist" --scope agent=nobody | grep -q "no entry passes the filter" ||
	fail "a filter that keeps nothing"
"$hsamem" query scoped "dentist" --min-score 2 | grep -q "no entry scored above min-score" ||
	fail "--min-score"
n=$("$hsamem" --json entries scoped --where role=assistant --tag keys | grep -o '"seq":' | wc -l)
[ "$n" -eq 1 ] || fail "entries --where role= --tag: $n entries"
"$hsamem" export scoped --scope agent=cal >"$dir/listing" || fail "export --scope"
"$hsamem" import scoped-copy <"$dir/listing" >/dev/null 2>&1 && fail "a filtered export imported"
"$hsamem" query scoped x --since 2026-13-01 >/dev/null 2>&1; rc=$?
[ $rc -eq 2 ] || fail "a bad --since exited $rc, expected 2"
"$hsamem" query scoped x --scope agent >/dev/null 2>&1; rc=$?
[ $rc -eq 2 ] || fail "--scope without a value exited $rc, expected 2"
"$hsamem" append scoped x --scope "a=1,a=2" >/dev/null 2>&1; rc=$?
[ $rc -eq 1 ] || fail "a scope naming a key twice exited $rc, expected 1"
"$hsamem" delete scoped >/dev/null || fail "delete scoped"

# errors: unknown user, bad name, exit codes as documented
"$hsamem" query nobody "anything" >/dev/null 2>&1; rc=$?
[ $rc -eq 1 ] || fail "query of an unknown user exited $rc, expected 1"
"$hsamem" append "bad name" "x" >/dev/null 2>&1; rc=$?
[ $rc -eq 1 ] || fail "append with a bad user name exited $rc, expected 1"
"$hsamem" append "$(printf 'tab\tname')" "x" >/dev/null 2>"$dir/err"; rc=$?
[ $rc -eq 1 ] && grep -q "control byte" "$dir/err" ||
	fail "append with a control byte in the name exited $rc: $(cat "$dir/err")"

# stdin with a NUL byte is refused whole (exit 2) and nothing is sent: as one entry, and with
# --lines even when the NUL byte comes after more lines than one batch holds
printf 'before\0after\n' | "$hsamem" append nul >/dev/null 2>"$dir/err"; rc=$?
[ $rc -eq 2 ] || fail "append of stdin with a NUL byte exited $rc, expected 2"
grep -q "stdin holds a NUL byte (byte 6, line 1)" "$dir/err" ||
	fail "append of a NUL byte: $(cat "$dir/err")"
{ seq 1 600 | sed 's/^/line /'; printf 'bad\0line\n'; } |
	"$hsamem" append nul --lines >/dev/null 2>"$dir/err"; rc=$?
[ $rc -eq 2 ] || fail "append --lines of stdin with a NUL byte exited $rc, expected 2"
grep -q "line 601" "$dir/err" || fail "append --lines of a NUL byte: $(cat "$dir/err")"
"$hsamem" stats nul >/dev/null 2>&1 && fail "stdin with a NUL byte left a memory"

# Progress lines: on stderr under a pseudo-terminal (script(1)), never into a pipe or with --json.
if command -v script >/dev/null 2>&1; then
	tty_run() { script -qec "$1" /dev/null >"$dir/tty" 2>&1 </dev/null; }
	tty_run "'$hsamem' append prog --lines <'$dir/text.txt'" || fail "append --lines on a tty"
	grep -q "hsamem: append prog: [0-9]*/[0-9]* entries" "$dir/tty" ||
		fail "no progress line for append --lines: $(cat "$dir/tty")"
	tty_run "'$hsamem' export prog >'$dir/prog.exp'" || fail "export on a tty"
	grep -q "hsamem: export prog: [0-9]*/[0-9]* entries" "$dir/tty" ||
		fail "no progress line for export: $(cat "$dir/tty")"
	tty_run "'$hsamem' import prog-copy <'$dir/prog.exp'" || fail "import on a tty"
	grep -q "hsamem: import prog-copy: [0-9]*/[0-9]* entries" "$dir/tty" ||
		fail "no progress line for import: $(cat "$dir/tty")"
	tty_run "'$hsamem' --json append prog-json --lines <'$dir/text.txt'" || fail "append --json"
	grep -q "entries (" "$dir/tty" && fail "a progress line with --json: $(cat "$dir/tty")"
	"$hsamem" delete prog-copy >/dev/null && "$hsamem" delete prog-json >/dev/null ||
		fail "delete the progress memories"
else
	echo "test_cli: no script(1); the progress lines are not checked"
fi
"$hsamem" append piped --lines <"$dir/text.txt" 2>"$dir/err" >/dev/null || fail "append piped"
[ -s "$dir/err" ] && fail "append --lines into a pipe wrote to stderr: $(cat "$dir/err")"
"$hsamem" export piped 2>"$dir/err" | "$hsamem" import piped-copy 2>>"$dir/err" >/dev/null ||
	fail "export | import"
[ -s "$dir/err" ] && fail "export | import wrote to stderr: $(cat "$dir/err")"
for u in prog piped piped-copy; do "$hsamem" delete "$u" >/dev/null || fail "delete $u"; done

# forget: refused without --yes off a terminal, asked on one (script(1)), done with --yes
"$hsamem" append forgetful "the lake froze" >/dev/null &&
	"$hsamem" append forgetful "my locker code is 31337 walrus" >/dev/null || fail "append forgetful"
"$hsamem" forget forgetful 1 </dev/null >/dev/null 2>&1; rc=$?
[ $rc -eq 2 ] || fail "forget off a terminal without --yes exited $rc, expected 2"
"$hsamem" entries forgetful | grep -q walrus || fail "forget without --yes forgot"
if command -v script >/dev/null 2>&1; then
	echo n | script -qec "$hsamem forget forgetful 1" /dev/null >"$dir/out" 2>&1
	grep -q "cannot be undone" "$dir/out" || fail "forget on a terminal did not ask"
	"$hsamem" entries forgetful | grep -q walrus || fail "forget answered no forgot"
fi
"$hsamem" forget forgetful 0-1 --yes | grep -q "forgot 2 entries" || fail "forget --yes"
"$hsamem" entries forgetful | grep -q walrus && fail "forgotten text still listed"
"$hsamem" update forgetful 1 "x" >/dev/null 2>&1 && fail "update of a forgotten entry"
"$hsamem" append forgetful "bob lives in Bergen" >/dev/null || fail "append forgetful"
"$hsamem" update forgetful 2 "bob lives in Oslo" | grep -q "replaces entry 2" || fail "update"
"$hsamem" --json history forgetful 3 | grep -q '"replaces":2' || fail "history --json"
"$hsamem" delete forgetful >/dev/null || fail "delete forgetful"

"$hsamem" delete alice >/dev/null || fail "delete"
"$hsamem" query alice "$q1" >/dev/null 2>&1; rc=$?
[ $rc -eq 1 ] || fail "query after delete exited $rc, expected 1"

kill -TERM "$pid"; wait "$pid"; pid=""
if [ $failures -ne 0 ]; then
	cat "$dir/hsamemd.log"
	echo "test_cli: $failures failures"
	exit 1
fi
echo "test_cli: ok"
