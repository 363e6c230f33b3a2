#!/usr/bin/env bash
# Runs the suture build benchmark (src/test/java/dev/suture/bench/BuildBench.java): compiles the test classes,
# builds the jar (for picocli and Jackson), then runs its main(). Arguments: C files in the generated project
# (default 40), rounds (default 3).
set -eu
. "$(dirname "$(readlink -f "$0")")/../scripts/env.sh"
find_jdk || exit 2
require_maven || exit 2
cd "$SUTURE_ROOT"
export JAVA_HOME="$SUTURE_JAVA_HOME"
export MAVEN_OPTS="${MAVEN_OPTS:-} --sun-misc-unsafe-memory-access=allow"
./suture --version >/dev/null
mvn -B -ntp -o -q test-compile >/dev/null
exec "$JAVA_HOME/bin/java" --enable-native-access=ALL-UNNAMED \
  -cp "target/classes:target/test-classes:target/suture.jar" dev.suture.bench.BuildBench "$@"
