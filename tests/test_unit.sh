#!/bin/sh
# systemd/hsamemd.service as the build generates it: `systemd-analyze verify` finds nothing to say
# about it, `systemd-analyze security` rates it OK or better (also with the tcp:// drop-in that
# hsamemd(8) documents), and the NVIDIA devices stay allowed. Skips (77) without systemd-analyze;
# the verify part is skipped where systemd-analyze cannot verify even a trivial unit.
set -u
top=${HSAMEM_TOP_BUILDDIR:-.}
unit="$top/systemd/hsamemd.service"
# Exposure is rated 0 to 100 (printed as 0.0 to 10.0); OK is below 5.0, so at most 49.
threshold=49
failures=0
fail() {
	echo "FAIL: $*"
	failures=$((failures + 1))
}

if ! command -v systemd-analyze >/dev/null 2>&1; then
	echo "test_unit: no systemd-analyze; skipped"
	exit 77
fi
if [ ! -f "$unit" ]; then
	echo "test_unit: $unit was not generated (make all makes it)"
	exit 1
fi
dir=$(mktemp -d "${TMPDIR:-/tmp}/hsamem-unit-XXXXXX")
trap 'rm -rf "$dir"' EXIT

# The lines the unit must keep for the daemon to reach the GPU.
for line in "DevicePolicy=closed" "DeviceAllow=char-nvidia-frontend rw" \
	"DeviceAllow=char-nvidia-uvm rw" "DeviceAllow=char-nvidia-caps rw" "LimitMEMLOCK=infinity"; do
	grep -qx "$line" "$unit" || fail "no '$line' in $unit"
done
for line in "PrivateDevices=yes" "ProcSubset=pid" "MemoryDenyWriteExecute=yes"; do
	grep -qx "$line" "$unit" && fail "'$line' in $unit hides the NVIDIA devices or breaks CUDA"
done
for call in @memlock ioctl; do
	grep -Eq "^SystemCallFilter=~.*$call( |\$)" "$unit" && fail "the system call filter refuses $call"
done

# verify: the installed ExecStart does not exist yet, so a copy runs the built daemon; man pages
# are not installed either. A trivial unit tells whether verify works here at all.
mkdir -p "$dir/probe" "$dir/verify"
printf '[Service]\nExecStart=/bin/sh -c true\n' >"$dir/probe/probe.service"
if out=$(systemd-analyze verify --man=no "$dir/probe/probe.service" 2>&1) && [ -z "$out" ]; then
	bin=$(cd "$top" && pwd)/hsamemd
	sed "s|^ExecStart=.*|ExecStart=$bin|" "$unit" >"$dir/verify/hsamemd.service"
	out=$(systemd-analyze verify --man=no "$dir/verify/hsamemd.service" 2>&1)
	rc=$?
	if [ $rc -ne 0 ] || [ -n "$out" ]; then
		fail "systemd-analyze verify (exit $rc):"
		echo "$out"
	fi
else
	echo "test_unit: systemd-analyze verify does not work here; verify skipped:"
	echo "$out"
fi

# security: the unit as shipped, then with the drop-in for a tcp:// listener.
security() { # name, unit file
	out=$(systemd-analyze security --offline=true --threshold=$threshold "$2" 2>&1)
	rc=$?
	echo "$1: $(echo "$out" | grep 'Overall exposure level' | sed 's/.*: //')"
	if [ $rc -ne 0 ]; then
		fail "$1: exposure above $threshold (exit $rc):"
		echo "$out" | grep -v '✓'
	fi
	echo "$out" | grep -q 'char-nvidia-uvm:rw' || fail "$1: systemd does not allow char-nvidia-uvm"
}
cp "$unit" "$dir/hsamemd.service"
security "unit" "$dir/hsamemd.service"
mkdir -p "$dir/tcp"
{
	cat "$unit"
	printf '[Service]\nPrivateNetwork=no\nRestrictAddressFamilies=AF_INET AF_INET6\n'
	printf 'IPAddressAllow=localhost\n'
} >"$dir/tcp/hsamemd.service"
security "unit with the tcp drop-in" "$dir/tcp/hsamemd.service"

[ $failures -eq 0 ] || { echo "$failures failure(s)"; exit 1; }
echo "test_unit: passed"
