#!/usr/bin/env bash
# Runs the signing benchmark (src/test/java/dev/suture/bench/SignBench.java): what signing adds to writing a patch
# and verifying adds to reading one, warm. Arguments: functions in the large patch (default 200), rounds (300).
set -eu
. "$(dirname "$(readlink -f "$0")")/../scripts/env.sh"
run_bench SignBench "$@"
