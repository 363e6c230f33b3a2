#!/usr/bin/env bash
# Runs the signing benchmark (src/test/java/dev/suture/bench/SignBench.java): what signing adds to writing a patch
# and verifying adds to reading one, warm. Arguments: functions in the large patch (default 200), rounds (300).
set -eu
. "$(dirname "$(readlink -f "$0")")/../scripts/env.sh"
find_jdk || exit 2
require_maven || exit 2
cd "$SUTURE_ROOT"
export JAVA_HOME="$SUTURE_JAVA_HOME"
./suture --version >/dev/null
mvn -B -ntp -o -q test-compile >/dev/null
exec "$JAVA_HOME/bin/java" -cp "target/test-classes:target/suture.jar" dev.suture.bench.SignBench "$@"
