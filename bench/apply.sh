#!/usr/bin/env bash
# Runs the apply benchmark (src/test/java/dev/suture/bench/ApplyBench.java): root only, it reads the kernel's
# scheduler trace (tracefs, mounted on /sys/kernel/tracing if absent). Builds the jar (./suture) and the test
# classes, then runs its main(). Arguments: repetitions per row (default 5), then optionally the thread counts
# (default 1,8,32,128). SUTURE_BENCH_ROOTS=dirA,dirB compares builds (checkouts with a built jar), interleaving
# their runs so that both meet the same machine load.
# SUTURE_BENCH_PATCH=simple|far|ifunc|busy picks the fix (a one-line change; one that also reads libc's environ;
# one that calls a library's IFUNC nobody resolved; one that also replaces a function a thread sleeps 200 ms in).
set -eu
. "$(dirname "$(readlink -f "$0")")/../scripts/env.sh"
run_bench -Dsuture.root="${SUTURE_BENCH_ROOTS:-$SUTURE_ROOT}" -Dsuture.bench.patch="${SUTURE_BENCH_PATCH:-simple}" \
  ApplyBench "$@"
