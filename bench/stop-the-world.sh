#!/usr/bin/env bash
# Runs the stop-the-world benchmark (src/test/java/dev/suture/bench/StopTheWorldBench.java): builds the test
# classes, then runs its main() with the compile classpath. Argument: cycles per row (default 200).
set -eu
. "$(dirname "$(readlink -f "$0")")/../scripts/env.sh"
find_jdk || exit 2
require_maven || exit 2
cd "$SUTURE_ROOT"
export JAVA_HOME="$SUTURE_JAVA_HOME"
mvn -B -ntp -o -q test-compile dependency:build-classpath -Dmdep.outputFile=target/bench.classpath >/dev/null
exec "$JAVA_HOME/bin/java" --enable-native-access=ALL-UNNAMED \
  -cp "target/classes:target/test-classes:$(cat target/bench.classpath)" \
  dev.suture.bench.StopTheWorldBench "$@"
