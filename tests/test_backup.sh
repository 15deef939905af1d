#!/bin/sh
# Backup and compaction with the real daemon, real LMDB and the real CLI (hsamemd(8), OPERATIONS):
#  - a backup taken while a client appends holds every append acknowledged before it began: a
#    second daemon started on the backup directory reads them back;
#  - a backup after deleting half the memories compacts (the free pages are many) and holds what
#    is left;
#  - compaction after deleting half the memories shrinks data.mdb and loses nothing: every entry
#    of the memories left reads back identical, before and after a restart;
#  - a PATH that is not an empty directory, or whose parent is missing, is refused with a message
#    and leaves nothing behind;
#  - a client that is not an administrator (nobody, when run as root) is refused both;
#  - a stop during a long backup ends at the stop's deadline, with status 0 and nothing lost.
set -u
top=${HSAMEM_TOP_BUILDDIR:-.}
top=$(cd "$top" && pwd)
d="$top/hsamemd"
cli="$top/hsamem"
dir=$(mktemp -d "${TMPDIR:-/tmp}/hsamem-backup-XXXXXX")
chmod 0755 "$dir"
url="ipc://$dir/a.sock"
url2="ipc://$dir/b.sock"
pid=""
pid2=""
writer=""
failures=0
cleanup() {
	[ -n "$writer" ] && kill "$writer" 2>/dev/null
	[ -n "$pid" ] && kill -9 "$pid" 2>/dev/null
	[ -n "$pid2" ] && kill -9 "$pid2" 2>/dev/null
	rm -rf "$dir"
}
trap cleanup EXIT
fail() {
	echo "FAIL: $*"
	failures=$((failures + 1))
}
# up URL PID: waits until the daemon at URL answers
up() {
	i=0
	until "$cli" -s "$1" -t 1 ping >/dev/null 2>&1; do
		i=$((i + 1))
		if [ $i -gt 150 ] || ! kill -0 "$2" 2>/dev/null; then
			echo "hsamemd at $1 did not come up"
			cat "$dir"/*.log
			exit 1
		fi
		sleep 0.1
	done
}
h() { "$cli" -s "$url" "$@"; }

"$d" -d "$dir/state" -l "$url" -o socket-mode=0666 -o gpu=off -o log-level=notice 2>"$dir/a.log" &
pid=$!
up "$url" "$pid"

# eight memories of 40 entries each
for u in 0 1 2 3 4 5 6 7; do
	seq 1 40 | sed "s/^/user $u fact number /; s/$/ about lighthouses, tea and the sea/" |
		h append "m$u" --lines >/dev/null || fail "append m$u"
done

# a writer that records each append once it is acknowledged
: >"$dir/acked"
(
	n=0
	while [ ! -e "$dir/stop" ]; do
		n=$((n + 1))
		h append live "acked append $n" >/dev/null && echo "$n" >>"$dir/acked"
	done
) &
writer=$!
sleep 1
before=$(wc -l <"$dir/acked")
h backup "$dir/bk" >"$dir/backup.out" || fail "backup: $(cat "$dir/backup.out")"
sleep 0.5
touch "$dir/stop"
wait "$writer"
writer=""
[ "$before" -gt 0 ] || fail "the writer acknowledged nothing before the backup"
[ -f "$dir/bk/data.mdb" ] || fail "no data.mdb in the backup"
ls "$dir/bk" | grep -qv '^data.mdb$' && fail "the backup left other files: $(ls "$dir/bk")"
grep -q "^backup: $dir/bk/data.mdb" "$dir/backup.out" || fail "backup reply: $(cat "$dir/backup.out")"

"$d" -d "$dir/bk" -l "$url2" -o gpu=off -o log-level=notice 2>"$dir/b.log" &
pid2=$!
up "$url2" "$pid2"
"$cli" -s "$url2" entries live --count 1000 >"$dir/restored" || fail "entries of the restored live"
n=1
while [ "$n" -le "$before" ]; do
	grep -q "acked append $n\$" "$dir/restored" || fail "acknowledged append $n is not in the backup"
	n=$((n + 1))
done
for u in 0 1 2 3 4 5 6 7; do
	"$cli" -s "$url2" entries "m$u" >"$dir/r$u" && h entries "m$u" >"$dir/o$u" &&
		cmp -s "$dir/r$u" "$dir/o$u" || fail "m$u differs in the backup"
done
kill -TERM "$pid2"
wait "$pid2"
pid2=""

# bad directories: refused, and nothing left
mkdir "$dir/full" && touch "$dir/full/x"
out=$(h backup "$dir/full" 2>&1) && fail "a non-empty directory was taken"
echo "$out" | grep -q "not an empty directory" || fail "non-empty directory message: $out"
out=$(h backup "$dir/nowhere/bk" 2>&1) && fail "a directory under a missing one was taken"
echo "$out" | grep -q "No such file or directory" || fail "missing parent message: $out"
out=$(h backup "$dir/full/x" 2>&1) && fail "a file was taken"
[ "$(ls "$dir/full")" = "x" ] || fail "a refused backup left files"

# compaction after deleting half the memories
for u in 0 2 4 6; do
	h delete "m$u" >/dev/null || fail "delete m$u"
done
h delete live >/dev/null || fail "delete live"
for u in 1 3 5 7; do
	h entries "m$u" --count 1000 >"$dir/keep$u" || fail "entries m$u"
done
size0=$(stat -c %s "$dir/state/data.mdb")
# a backup of a store with many free pages compacts: smaller than data.mdb, and whole
h backup "$dir/bk2" >/dev/null || fail "backup after the deletes"
grep -q "backup of .* compacting copy) into $dir/bk2" "$dir/a.log" ||
	fail "the backup after the deletes did not compact: $(grep 'backup of' "$dir/a.log")"
[ "$(stat -c %s "$dir/bk2/data.mdb")" -lt "$size0" ] || fail "the compacting backup is not smaller"
"$d" -d "$dir/bk2" -l "$url2" -o gpu=off -o log-level=notice 2>"$dir/b2.log" &
pid2=$!
up "$url2" "$pid2"
for u in 1 3 5 7; do
	"$cli" -s "$url2" entries "m$u" --count 1000 | cmp -s - "$dir/keep$u" || fail "m$u differs in bk2"
done
kill -TERM "$pid2"
wait "$pid2"
pid2=""
h --json compact >"$dir/compact.json" || fail "compact: $(cat "$dir/compact.json")"
size1=$(stat -c %s "$dir/state/data.mdb")
[ "$size1" -lt "$size0" ] || fail "compaction did not shrink data.mdb: $size0 -> $size1"
grep -q "\"bytes_before\":$size0," "$dir/compact.json" || fail "bytes_before: $(cat "$dir/compact.json")"
grep -q "\"bytes_after\":$size1," "$dir/compact.json" || fail "bytes_after: $(cat "$dir/compact.json")"
[ -e "$dir/state/data.mdb.compact" ] && fail "compaction left its copy"
check_kept() {
	for u in 1 3 5 7; do
		h entries "m$u" --count 1000 >"$dir/now$u" && cmp -s "$dir/keep$u" "$dir/now$u" ||
			fail "m$u changed by compaction ($1)"
	done
	for u in 0 2 4 6; do
		h entries "m$u" >/dev/null 2>&1 && fail "deleted m$u is back ($1)"
	done
}
check_kept "served"
h append m1 "written after the compaction" >/dev/null || fail "append after compaction"
h entries m1 --count 1000 | grep -q "written after the compaction" || fail "read after compaction"
h entries m1 --count 1000 >"$dir/keep1"
kill -TERM "$pid"
wait "$pid" || fail "hsamemd exit status after compaction"
"$d" -d "$dir/state" -l "$url" -o socket-mode=0666 -o gpu=off -o log-level=notice 2>>"$dir/a.log" &
pid=$!
up "$url" "$pid"
check_kept "restarted"

# not an administrator
if [ "$(id -u)" -eq 0 ] && command -v setpriv >/dev/null 2>&1 &&
	setpriv --reuid=nobody --regid=nogroup --clear-groups "$cli" --version >/dev/null 2>&1; then
	chmod 0777 "$dir"
	out=$(setpriv --reuid=nobody --regid=nogroup --clear-groups "$cli" -s "$url" backup "$dir/nb" 2>&1) &&
		fail "nobody took a backup"
	echo "$out" | grep -q "not an administrator" || fail "nobody's backup refusal: $out"
	[ -e "$dir/nb" ] && fail "nobody's refused backup made a directory"
	out=$(setpriv --reuid=nobody --regid=nogroup --clear-groups "$cli" -s "$url" compact 2>&1) &&
		fail "nobody compacted"
	echo "$out" | grep -q "not an administrator" || fail "nobody's compact refusal: $out"
else
	echo "test_backup: not root (or no setpriv): the refusal of a non-administrator is not tried"
fi

# a stop that waits on something long (here a backup paced to 16 KiB a second) is cut at its
# deadline: the daemon exits 0 within 5 s of SIGTERM, the backup leaves no data.mdb, and the store
# serves everything again after a restart
kill -TERM "$pid"
wait "$pid" || fail "hsamemd exit status"
"$d" -d "$dir/state" -l "$url" -o socket-mode=0666 -o gpu=off -o log-level=notice \
	-o backup-rate=16K 2>>"$dir/a.log" &
pid=$!
up "$url" "$pid"
h backup "$dir/slow" >/dev/null 2>&1 &
slow=$!
i=0
while [ ! -e "$dir/slow/data.mdb.part" ] && [ $i -lt 100 ]; do
	sleep 0.1
	i=$((i + 1))
done
[ -e "$dir/slow/data.mdb.part" ] || fail "the paced backup did not start"
t0=$(date +%s%N)
kill -TERM "$pid"
wait "$pid"
status=$?
ms=$((($(date +%s%N) - t0) / 1000000))
pid=""
wait "$slow"
[ "$status" -eq 0 ] || fail "hsamemd exit status $status after a stop cut at its deadline"
[ "$ms" -le 5500 ] || fail "hsamemd took $ms ms to exit after SIGTERM"
grep -q "not stopped within 4500 ms of the signal" "$dir/a.log" || fail "the deadline was not logged"
[ -e "$dir/slow/data.mdb" ] && fail "a backup cut short left a data.mdb"
"$d" -d "$dir/state" -l "$url" -o socket-mode=0666 -o gpu=off -o log-level=notice 2>>"$dir/a.log" &
pid=$!
up "$url" "$pid"
check_kept "after a stop cut at its deadline"

kill -TERM "$pid"
wait "$pid" || fail "hsamemd exit status"
pid=""
if [ "$failures" -ne 0 ]; then
	echo "--- daemon log"
	cat "$dir/a.log"
	exit 1
fi
echo "test_backup: ok ($before appends acknowledged before the backup)"
