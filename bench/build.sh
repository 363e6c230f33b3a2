#!/usr/bin/env bash
# Runs the suture build benchmark (src/test/java/dev/suture/bench/BuildBench.java): compiles the test classes,
# builds the jar (for picocli and Jackson), then runs its main(). Arguments: C files in the generated project
# (default 40), rounds (default 3).
set -eu
. "$(dirname "$(readlink -f "$0")")/../scripts/env.sh"
run_bench BuildBench "$@"
