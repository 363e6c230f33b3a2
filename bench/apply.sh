#!/usr/bin/env bash
# Runs the apply benchmark (src/test/java/dev/suture/bench/ApplyBench.java): builds the jar (./suture) and the
# test classes, then runs its main() on them. Argument: repetitions per row (default 3).
set -eu
. "$(dirname "$(readlink -f "$0")")/../scripts/env.sh"
find_jdk || exit 2
require_maven || exit 2
cd "$SUTURE_ROOT"
export JAVA_HOME="$SUTURE_JAVA_HOME"
./suture --version >/dev/null
mvn -B -ntp -o -q test-compile >/dev/null
exec "$JAVA_HOME/bin/java" --enable-native-access=ALL-UNNAMED \
  -cp "target/test-classes:target/suture.jar" \
  -Dsuture.root="$SUTURE_ROOT" dev.suture.bench.ApplyBench "$@"
