#!/usr/bin/env bash
# Runs the stop-the-world benchmark (src/test/java/dev/suture/bench/StopTheWorldBench.java): builds the jar and the
# test classes, then runs its main(). Argument: cycles per row (default 200).
set -eu
. "$(dirname "$(readlink -f "$0")")/../scripts/env.sh"
find_jdk || exit 2
require_maven || exit 2
cd "$SUTURE_ROOT"
export JAVA_HOME="$SUTURE_JAVA_HOME"
log=$(mktemp)
# package builds target/suture.jar (shaded: it holds the runtime dependencies) and compiles the test classes;
# the dependency plugin is not used because it is not available offline
if ! mvn -B -ntp -o -q -DskipTests package >"$log" 2>&1; then
  grep -v WARNING "$log" >&2; rm -f "$log"; exit 1
fi
rm -f "$log"
exec "$JAVA_HOME/bin/java" --enable-native-access=ALL-UNNAMED \
  -cp "target/classes:target/test-classes:target/suture.jar" \
  dev.suture.bench.StopTheWorldBench "$@"
