#!/usr/bin/env bash
# Runs the stop-the-world benchmark (src/test/java/dev/suture/bench/StopTheWorldBench.java): builds the jar and the
# test classes, then runs its main(). Argument: cycles per row (default 200).
set -eu
. "$(dirname "$(readlink -f "$0")")/../scripts/env.sh"
run_bench StopTheWorldBench "$@"
