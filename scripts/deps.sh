#!/bin/sh
# Installs what hsamem needs to build and test, with apt-get, when something is missing.
# Run by quickstart.sh, and by test.sh as `deps.sh test`; safe to run again. `deps.sh packages`
# adds what building the Debian packages (debian/) and tests/test_packages.sh need; `deps.sh test`
# adds it too when HSAMEM_TEST_PACKAGES=1 (CI).
set -eu

HSAMEM_PACKAGES="build-essential pkg-config autoconf automake libtool \
liblmdb-dev libnng-dev libprotobuf-c-dev protobuf-c-compiler libjansson-dev libmicrohttpd-dev libopenblas-dev python3"
# The test suite also builds with clang, runs the libFuzzer target of tests/stress (libFuzzer and
# the sanitizers' runtimes are in libclang-rt-dev), checks the sources' formatting, judges the
# service unit with systemd-analyze (in package systemd, which minimal images such as Docker's
# debian:12 leave out), and makes throwaway TLS certificates with openssl (tests/test_access.sh).
# tests/test_mcp.sh drives hsamem mcp with the official MCP TypeScript SDK, which needs node 18 or
# newer (Debian 12's nodejs is 18.19) and npm; a node from elsewhere (it may bundle npm) is kept.
if [ "${1:-}" = test ]; then
	HSAMEM_PACKAGES="$HSAMEM_PACKAGES clang libclang-rt-dev clang-format systemd openssl"
	command -v node >/dev/null 2>&1 || HSAMEM_PACKAGES="$HSAMEM_PACKAGES nodejs"
	command -v npm >/dev/null 2>&1 || HSAMEM_PACKAGES="$HSAMEM_PACKAGES npm"
fi
# dpkg-buildpackage with debhelper and dh-python, lintian, and debootstrap for the fresh root that
# tests/test_packages.sh installs the packages into.
if [ "${1:-}" = packages ] || { [ "${1:-}" = test ] && [ "${HSAMEM_TEST_PACKAGES:-0}" = 1 ]; }; then
	HSAMEM_PACKAGES="$HSAMEM_PACKAGES dpkg-dev debhelper dh-python debootstrap lintian"
fi

missing=""
for p in $HSAMEM_PACKAGES; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
	echo "hsamem: installing:$missing"
	if [ "$(id -u)" -ne 0 ]; then
		if command -v sudo >/dev/null 2>&1; then SUDO=sudo; else
			echo "hsamem: run as root, or install these packages first:$missing" >&2
			exit 1
		fi
	else
		SUDO=""
	fi
	export DEBIAN_FRONTEND=noninteractive
	$SUDO apt-get update -qq
	# shellcheck disable=SC2086
	$SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi

# The SDK, at the version tests/mcp/package-lock.json pins, into tests/mcp/node_modules.
if [ "${1:-}" = test ]; then
	mcp="$(dirname "$0")/../tests/mcp"
	if [ ! -f "$mcp/node_modules/.package-lock.json" ] ||
		[ "$mcp/package-lock.json" -nt "$mcp/node_modules/.package-lock.json" ]; then
		echo "hsamem: installing the MCP SDK for the tests (npm ci in tests/mcp)"
		(cd "$mcp" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
	fi
fi
