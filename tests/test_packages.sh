#!/bin/sh
# The Debian packages (debian/), built and installed as an operator would: dpkg-buildpackage builds
# them from the files of the release tarball (make distdir), lintian judges them, debootstrap makes
# a fresh Debian 12 root, apt installs them there with their dependencies from the mirror, and the
# installed hsamemd runs there as the user hsamem with the packaged /etc/hsamem.conf. The installed
# CLI and Python client then reach it through the default socket /run/hsamem/hsamemd.sock with no
# address given, the daemon serves hsa-small from the installed model data, and a program linked
# statically through the packaged hsamem.pc talks to it too.
#
# Slow (a package build and a debootstrap: minutes), so it runs only with HSAMEM_TEST_PACKAGES=1
# (test.sh passes it on; CI sets it). Skips (77) without it, when not root, or without the tools.
# HSAMEM_DEBIAN_MIRROR picks the mirror (default http://deb.debian.org/debian), HSAMEM_KEEP=1
# keeps the work folder. Each step's time is printed.
set -u
top=${HSAMEM_TOP_BUILDDIR:-.}
top=$(cd "$top" && pwd)
mirror=${HSAMEM_DEBIAN_MIRROR:-http://deb.debian.org/debian}

if [ "${HSAMEM_TEST_PACKAGES:-0}" != 1 ]; then
	echo "test_packages: slow (a package build and a debootstrap); set HSAMEM_TEST_PACKAGES=1 to run it; skipped"
	exit 77
fi
if [ "$(id -u)" -ne 0 ]; then
	echo "test_packages: needs root (debootstrap, chroot); skipped"
	exit 77
fi
for tool in dpkg-buildpackage dh debootstrap lintian chroot setpriv pkg-config cc; do
	if ! command -v "$tool" >/dev/null 2>&1; then
		echo "test_packages: $tool not found (scripts/deps.sh packages installs it); skipped"
		exit 77
	fi
done
if ! dpkg-checkbuilddeps -d 'dh-python, dh-sequence-python3' /dev/null >/dev/null 2>&1; then
	echo "test_packages: dh-python not installed (scripts/deps.sh packages installs it); skipped"
	exit 77
fi

work=$(mktemp -d "${TMPDIR:-/var/tmp}/hsamem-pkg-XXXXXX")
root="$work/root"
pid=""
t0=$(date +%s)
step_t=$t0
cleanup() {
	if [ -n "$pid" ]; then
		kill -9 "$pid" 2>/dev/null
	fi
	for m in proc dev/pts dev; do
		umount "$root/$m" 2>/dev/null
	done
	if [ "${HSAMEM_KEEP:-0}" = 1 ] || grep -q " $root/" /proc/mounts; then
		echo "test_packages: kept $work"
	else
		rm -rf "$work"
	fi
}
trap cleanup EXIT
trap 'exit 1' INT TERM

fail() {
	echo "FAIL: $*"
	exit 1
}
# Prints how long the step that just ended took.
step() {
	now=$(date +%s)
	echo "test_packages: $1: $((now - step_t)) s"
	step_t=$now
}
# Runs a command in the root, as root, in a clean environment.
in_root() {
	chroot "$root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 "$@"
}

# ---- the packages, built from the tarball's files ----
version=$(sed -n '1s/^hsamem (\([^)]*\)).*/\1/p' "$top/debian/changelog" 2>/dev/null ||
	sed -n '1s/^hsamem (\([^)]*\)).*/\1/p' "${HSAMEM_TOP_SRCDIR:-.}/debian/changelog")
pkgver=$(sed -n 's/^PACKAGE_VERSION = //p' "$top/Makefile")
[ "$version" = "$pkgver" ] ||
	fail "debian/changelog says $version, configure.ac $pkgver: add a changelog entry"
src="$work/hsamem-$pkgver"
make -s -C "$top" distdir distdir="$src" >"$work/distdir.log" 2>&1 ||
	{ cat "$work/distdir.log"; fail "make distdir"; }
(
	cd "$src" &&
		DEB_BUILD_OPTIONS="nocheck parallel=$(nproc)" nice dpkg-buildpackage -us -uc -b
) >"$work/build.log" 2>&1 || { tail -n 60 "$work/build.log"; fail "dpkg-buildpackage"; }
step "packages built"
changes=$(ls "$work"/hsamem_*.changes)
for d in "$work"/*.deb; do echo "  ${d##*/}"; done
for p in hsamemd hsamem libhsamem1 libhsamem-dev python3-hsamem hsamem-models; do
	ls "$work/${p}_"*.deb >/dev/null 2>&1 || fail "no package $p"
done

# The files each package must hold, where the man pages and the daemon expect them.
multiarch=$(dpkg-architecture -qDEB_HOST_MULTIARCH)
check_holds() {
	deb=$(ls "$work/${1}_"*.deb)
	shift
	list=$(dpkg-deb -c "$deb" | awk '{print $6}' | sed 's|^\./|/|')
	for f in "$@"; do
		echo "$list" | grep -qx "$f" || fail "$(basename "$deb") lacks $f"
	done
}
check_holds hsamemd /usr/sbin/hsamemd /etc/hsamem.conf /lib/systemd/system/hsamemd.service \
	/usr/lib/sysusers.d/hsamem.conf /usr/share/man/man8/hsamemd.8.gz
check_holds hsamem /usr/bin/hsamem /usr/share/man/man1/hsamem.1.gz
check_holds libhsamem1 "/usr/lib/$multiarch/libhsamem.so.1"
check_holds libhsamem-dev /usr/include/hsamem.h "/usr/lib/$multiarch/libhsamem.a" \
	"/usr/lib/$multiarch/libhsamem.so" "/usr/lib/$multiarch/pkgconfig/hsamem.pc"
check_holds python3-hsamem /usr/lib/python3/dist-packages/hsamem/__init__.py
check_holds hsamem-models /usr/share/hsamem/models/hsa-small/model.safetensors \
	/usr/share/hsamem/models/hsa-small/config.json /usr/share/hsamem/models/hsa-small/hsamem-bpe.tok
dpkg-deb -I "$(ls "$work"/hsamemd_*.deb)" conffiles | grep -qx /etc/hsamem.conf ||
	fail "/etc/hsamem.conf is not a conffile"
dpkg-deb -I "$(ls "$work"/hsamem-models_*.deb)" | grep -q 'Architecture: all' ||
	fail "hsamem-models is not Architecture: all"

# lintian: no errors (warnings are printed).
lintian --fail-on error --tag-display-limit 0 "$changes" >"$work/lintian.log" 2>&1
lrc=$?
cat "$work/lintian.log"
[ $lrc -eq 0 ] || fail "lintian reports errors"
step "lintian"

# ---- a fresh Debian 12 root ----
debootstrap --variant=minbase bookworm "$root" "$mirror" >"$work/debootstrap.log" 2>&1 ||
	{ tail -n 30 "$work/debootstrap.log"; fail "debootstrap"; }
step "debootstrap"
mount -t proc proc "$root/proc" || fail "mount proc"
echo "deb $mirror bookworm main" >"$root/etc/apt/sources.list"
# No service starts inside the root (no systemd runs there; invoke-rc.d asks this script).
printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d"
chmod 755 "$root/usr/sbin/policy-rc.d"
mkdir -p "$root/tmp/debs"
cp "$work"/*.deb "$root/tmp/debs/"
debs=$(cd "$root/tmp/debs" && for d in *.deb; do
	case $d in libhsamem-dev_* | *-dbgsym_*) ;; *) printf '/tmp/debs/%s ' "$d" ;; esac
done)
# shellcheck disable=SC2086
in_root DEBIAN_FRONTEND=noninteractive sh -c "apt-get update -qq &&
	apt-get install -y -qq --no-install-recommends $debs" >"$work/apt.log" 2>&1 ||
	{ tail -n 40 "$work/apt.log"; fail "apt-get install"; }
step "apt-get install"

# What postinst made: the user and group, the store's folder.
in_root getent passwd hsamem >/dev/null || fail "no user hsamem"
in_root getent group hsamem >/dev/null || fail "no group hsamem"
[ "$(in_root stat -c '%U %a' /var/lib/hsamem)" = "hsamem 700" ] || fail "/var/lib/hsamem"
cmp "$root/etc/hsamem.conf" "${HSAMEM_TOP_SRCDIR:-$top}/systemd/hsamem.conf" ||
	fail "/etc/hsamem.conf is not the sample configuration"

# ---- the installed daemon as the user hsamem, set up as the unit's directories would ----
in_root install -d -o hsamem -g hsamem -m 0750 /run/hsamem
chroot "$root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin LANG=C.UTF-8 \
	RUNTIME_DIRECTORY=/run/hsamem STATE_DIRECTORY=/var/lib/hsamem \
	setpriv --reuid=hsamem --regid=hsamem --init-groups \
	/usr/sbin/hsamemd >"$work/hsamemd.log" 2>&1 &
pid=$!
i=0
until in_root hsamem -t 1 ping >/dev/null 2>&1; do
	i=$((i + 1))
	if [ $i -gt 150 ] || ! kill -0 "$pid" 2>/dev/null; then
		cat "$work/hsamemd.log"
		fail "the installed hsamemd did not answer on /run/hsamem/hsamemd.sock"
	fi
	sleep 0.2
done
step "hsamemd started"
[ -S "$root/run/hsamem/hsamemd.sock" ] || fail "no socket /run/hsamem/hsamemd.sock"
# chroot, env and setpriv each exec the next: $pid is hsamemd.
uid=$(in_root id -u hsamem)
[ "$(stat -c %u "/proc/$pid")" = "$uid" ] || fail "hsamemd does not run as the user hsamem"
[ "$(stat -c %u "$root/run/hsamem/hsamemd.sock")" = "$uid" ] ||
	fail "the socket is not the user hsamem's"
[ -f "$root/var/lib/hsamem/data.mdb" ] || fail "no store in /var/lib/hsamem"
grep -q "hsa-small.*loaded from /usr/share/hsamem/models/hsa-small" "$work/hsamemd.log" ||
	{ cat "$work/hsamemd.log"; fail "hsamemd did not load the installed model data"; }

# The installed CLI, with no address: ping, append, query.
out=$(in_root hsamem ping) || fail "hsamem ping: $out"
echo "$out" | grep -q "unix:///run/hsamem/hsamemd.sock\|ipc:///run/hsamem/hsamemd.sock" ||
	fail "hsamem ping did not reach /run/hsamem/hsamemd.sock: $out"
echo "  $out"
in_root hsamem append alice "Alice's cat is named Whiskers and sleeps on the red sofa." ||
	fail "hsamem append"
out=$(in_root hsamem --json query alice "what is the name of alice's cat?" -k 1) ||
	fail "hsamem query: $out"
echo "$out" | grep -q Whiskers || fail "hsamem query did not find the entry: $out"

# The learned encoder from hsamem-models.
in_root hsamem create bob --encoder hsa-small || fail "hsamem create --encoder hsa-small"
in_root hsamem append bob "One of the special magic numbers for quiet-harbor is: 4829301." ||
	fail "hsamem append to an hsa-small memory"
in_root hsamem flush bob >/dev/null || fail "hsamem flush"
out=$(in_root hsamem --json query bob "What is the special magic number for quiet-harbor?" -k 1) ||
	fail "hsamem query of an hsa-small memory: $out"
echo "$out" | grep -q 4829301 || fail "the hsa-small memory did not return its entry: $out"

# The installed Python client, with no address.
out=$(in_root python3 -c '
import hsamem
with hsamem.Client() as mem:
    mem.append("carol", "Carol keeps her bicycle in the blue shed.", role="user")
    hits = mem.query("carol", "where is the bicycle?", k=1)
    print(" ".join(e.text for h in hits for e in h.entries))
    print(" ".join(e.text for h in mem.query("alice", "cat", k=1) for e in h.entries))
') || fail "python3 client: $out"
echo "$out" | grep -q "blue shed" || fail "the Python client did not find its entry: $out"
echo "$out" | grep -q Whiskers || fail "the Python client did not find the CLI's entry: $out"

# A program linked statically against libhsamem-dev's files (hsamem.pc's Libs.private), run here
# against the daemon in the root.
dev="$work/dev"
dpkg-deb -x "$(ls "$work"/libhsamem-dev_*.deb)" "$dev"
cat >"$work/static.c" <<'EOF'
#include <hsamem.h>
#include <stdio.h>
int
main(int argc, char **argv)
{
	struct hsamem *h = NULL;
	int rc = hsamem_open(argv[1], &h);
	if (rc == 0)
		rc = hsamem_append_text(h, "dave", HSAMEM_ROLE_USER, "Dave links statically.", NULL);
	if (rc != 0)
		fprintf(stderr, "%s\n", hsamem_strerror(rc));
	hsamem_close(h);
	return rc != 0 && argc > 0;
}
EOF
pc="$dev/usr/lib/$multiarch/pkgconfig"
flags=$(PKG_CONFIG_PATH="$pc" PKG_CONFIG_SYSROOT_DIR="$dev" pkg-config --static --cflags --libs hsamem) ||
	fail "pkg-config --static hsamem"
# shellcheck disable=SC2086
cc -o "$work/static" "$work/static.c" -Wl,-Bstatic $flags -Wl,-Bdynamic >"$work/cc.log" 2>&1 ||
	{ cat "$work/cc.log"; fail "a static link with pkg-config --static --libs hsamem ($flags)"; }
ldd "$work/static" | grep -q libhsamem && fail "the static program loads libhsamem.so"
"$work/static" "ipc://$root/run/hsamem/hsamemd.sock" || fail "the statically linked program"
in_root hsamem query dave "links" -k 1 | grep -q statically || fail "the static program's entry"
step "clients checked"

kill -TERM "$pid"
wait "$pid" || { cat "$work/hsamemd.log"; fail "hsamemd did not exit cleanly"; }
pid=""
echo "test_packages: passed in $(($(date +%s) - t0)) s"
