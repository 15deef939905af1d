#!/bin/sh
# crash.sh: the short runs of crash_trial for `make check` (tests/stress/README.md): SIGKILL trials
# with appends, imports and deletes. SIGTERM can leave hsamemd hung in nng_close (NNG 1.5.2; the
# README has the figures; about 1 run in 5 here), so the SIGTERM trials run only in `make stress`
# until shutdown is bounded.
top=${HSAMEM_TOP_BUILDDIR:-.}
"$top/tests/stress/crash_trial" --mode kill --trials 4 || exit 1
