#!/bin/sh
# crash.sh: the short runs of crash_trial for `make check` (tests/stress/README.md): SIGKILL trials
# and SIGTERM trials, both with appends, imports and deletes. Each SIGTERM trial must end with the
# daemon gone within 5 s (srv_close bounds NNG's close, hsamemd(8) SHUTDOWN).
top=${HSAMEM_TOP_BUILDDIR:-.}
"$top/tests/stress/crash_trial" --mode kill --trials 4 || exit 1
"$top/tests/stress/crash_trial" --mode term --trials 4 || exit 1
