#!/bin/sh
# crash.sh: the short runs of crash_trial for `make check` (tests/stress/README.md): SIGKILL trials
# with appends, imports and deletes, then SIGTERM trials with appends and deletes only. SIGTERM
# while an import's batch is being received can leave hsamemd hung in nng_close (NNG 1.5.2; the
# README has the figures), so imports stay out of the SIGTERM trials here until that is fixed;
# the long runs include them.
top=${HSAMEM_TOP_BUILDDIR:-.}
"$top/tests/stress/crash_trial" --mode kill --trials 4 || exit 1
"$top/tests/stress/crash_trial" --mode term --trials 3 --no-imports || exit 1
