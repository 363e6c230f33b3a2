# Sourced by ./suture and ./run-tests: finds a JDK 25 and Maven, or says in one sentence what is missing.
# Sets SUTURE_JAVA_HOME and SUTURE_ROOT.

SUTURE_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

# java_major HOME: prints the feature version of the JDK at HOME, or nothing.
java_major() {
  [ -x "$1/bin/java" ] || return 1
  local spec
  spec=$(sed -n 's/^JAVA_VERSION="\([0-9]*\).*/\1/p' "$1/release" 2>/dev/null)
  if [ -z "$spec" ]; then
    spec=$("$1/bin/java" -version 2>&1 | sed -n '1s/.*version "\([0-9]*\).*/\1/p')
  fi
  [ -n "$spec" ] && echo "$spec"
}

is_jdk25() {
  local m
  m=$(java_major "$1") || return 1
  [ -n "$m" ] && [ "$m" -ge 25 ] && [ -x "$1/bin/javac" -o -x "$1/bin/jlink" ]
}

find_jdk() {
  local candidate
  if [ -n "${JAVA_HOME:-}" ] && is_jdk25 "$JAVA_HOME"; then
    SUTURE_JAVA_HOME=$JAVA_HOME; return 0
  fi
  if command -v java >/dev/null 2>&1; then
    candidate=$(dirname "$(dirname "$(readlink -f "$(command -v java)")")")
    if is_jdk25 "$candidate"; then SUTURE_JAVA_HOME=$candidate; return 0; fi
  fi
  for candidate in /usr/lib/jvm/*25*; do
    if is_jdk25 "$candidate"; then SUTURE_JAVA_HOME=$candidate; return 0; fi
  done
  echo "suture: no JDK 25 found (looked at JAVA_HOME, java on PATH and /usr/lib/jvm/*25*); install one, e.g. Temurin 25, or set JAVA_HOME to it." >&2
  return 1
}

require_maven() {
  if ! command -v mvn >/dev/null 2>&1; then
    echo "suture: Maven (mvn) is needed to build suture and is not on PATH; install it (apt-get install maven)." >&2
    return 1
  fi
}
