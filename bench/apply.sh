#!/usr/bin/env bash
# Runs the apply benchmark (src/test/java/dev/suture/bench/ApplyBench.java): root only, it reads the kernel's
# scheduler trace (tracefs, mounted on /sys/kernel/tracing if absent). Builds the jar (./suture) and the test
# classes, then runs its main(). Arguments: repetitions per row (default 5), then optionally the thread counts
# (default 1,8,32,128). SUTURE_BENCH_ROOTS=dirA,dirB compares builds (checkouts with a built jar), interleaving
# their runs so that both meet the same machine load.
set -eu
. "$(dirname "$(readlink -f "$0")")/../scripts/env.sh"
run_bench -Dsuture.root="${SUTURE_BENCH_ROOTS:-$SUTURE_ROOT}" ApplyBench "$@"
