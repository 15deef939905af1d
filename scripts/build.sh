#!/bin/sh
# Configures (once) and builds hsamem in the source tree. Extra arguments go to configure.
set -eu
cd "$(dirname "$0")/.."
if [ ! -x configure ] || [ configure.ac -nt configure ]; then
	autoreconf -fi >/dev/null 2>&1 || autoreconf -fi
fi
if [ ! -f Makefile ] || [ configure -nt Makefile ]; then
	./configure -q "$@"
fi
make -j"$(nproc)" >/dev/null
