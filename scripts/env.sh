# Sourced by ./suture and ./run-tests: finds a JDK 25 and Maven, or says in one sentence what is missing.
# Sets SUTURE_JAVA_HOME and SUTURE_ROOT. Uses shell builtins only on the common path (no dirname/sed/readlink
# processes): every process spawned here is paid by each `./suture` start.

_suture_dir=${BASH_SOURCE[0]%/*}
[ "$_suture_dir" = "${BASH_SOURCE[0]}" ] && _suture_dir=.
_suture_old=$PWD
CDPATH= cd -P "$_suture_dir/.." && SUTURE_ROOT=$PWD
CDPATH= cd "$_suture_old"
unset _suture_dir _suture_old

# java_major HOME: prints the feature version of the JDK at HOME, or nothing.
java_major() {
  [ -x "$1/bin/java" ] || return 1
  local line spec=
  if [ -r "$1/release" ]; then
    while IFS= read -r line; do
      case $line in
        JAVA_VERSION=*) spec=${line#JAVA_VERSION=\"}; spec=${spec%%[.\"+-]*}; break ;;
      esac
    done < "$1/release"
  fi
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

# find_jdk remembers the JDK found for a given JAVA_HOME and PATH java in target/.jdk-home, so later starts spawn
# nothing to find it.
find_jdk() {
  local candidate key cached cached_key cache=$SUTURE_ROOT/target/.jdk-home
  key="${JAVA_HOME:-}|$(command -v java 2>/dev/null)"
  if [ -r "$cache" ]; then
    { IFS= read -r cached_key; IFS= read -r cached; } < "$cache"
    if [ "$cached_key" = "$key" ] && [ -x "$cached/bin/java" ]; then
      SUTURE_JAVA_HOME=$cached; return 0
    fi
  fi
  if [ -n "${JAVA_HOME:-}" ] && is_jdk25 "$JAVA_HOME"; then
    SUTURE_JAVA_HOME=$JAVA_HOME
  elif command -v java >/dev/null 2>&1 \
      && candidate=$(readlink -f "$(command -v java)") && candidate=${candidate%/bin/java} \
      && is_jdk25 "$candidate"; then
    SUTURE_JAVA_HOME=$candidate
  else
    SUTURE_JAVA_HOME=
    for candidate in /usr/lib/jvm/*25*; do
      if is_jdk25 "$candidate"; then SUTURE_JAVA_HOME=$candidate; break; fi
    done
  fi
  if [ -z "$SUTURE_JAVA_HOME" ]; then
    echo "suture: no JDK 25 found (looked at JAVA_HOME, java on PATH and /usr/lib/jvm/*25*); install one, e.g. Temurin 25, or set JAVA_HOME to it." >&2
    return 1
  fi
  if [ -d "$SUTURE_ROOT/target" ] || mkdir -p "$SUTURE_ROOT/target" 2>/dev/null; then
    printf '%s\n%s\n' "$key" "$SUTURE_JAVA_HOME" > "$cache" 2>/dev/null || true
  fi
  return 0
}

require_maven() {
  if ! command -v mvn >/dev/null 2>&1; then
    echo "suture: Maven (mvn) is needed to build suture and is not on PATH; install it (apt-get install maven)." >&2
    return 1
  fi
}

# run_bench [JVM-OPTION...] CLASS [ARG...]: what every bench/*.sh does: finds the JDK and Maven, builds the jar
# (./suture) and the test classes, then runs dev.suture.bench.CLASS's main() on them with ARGs. Does not return.
run_bench() {
  local opts=()
  while [ $# -gt 0 ] && [ "${1#-}" != "$1" ]; do
    opts+=("$1"); shift
  done
  local class=$1; shift
  find_jdk || exit 2
  require_maven || exit 2
  cd "$SUTURE_ROOT"
  export JAVA_HOME="$SUTURE_JAVA_HOME"
  export MAVEN_OPTS="${MAVEN_OPTS:-} --sun-misc-unsafe-memory-access=allow"
  ./suture --version >/dev/null
  mvn -B -ntp -o -q test-compile >/dev/null
  exec "$JAVA_HOME/bin/java" --enable-native-access=ALL-UNNAMED "${opts[@]}" \
    -cp "target/classes:target/test-classes:target/suture.jar" "dev.suture.bench.$class" "$@"
}

# build_client OUT: compiles the agent's client (src/main/c/suture-client.c, docs/agent.md "The fast path") to OUT,
# hardened like a distribution's binaries; fails when there is no C compiler or it does not compile.
build_client() {
  command -v cc >/dev/null || return 1
  cc -O2 -Wall -D_FORTIFY_SOURCE=2 -fstack-protector-strong -fPIE -pie -Wl,-z,relro,-z,now \
      -o "$1.new" "$SUTURE_ROOT/src/main/c/suture-client.c" && mv -f "$1.new" "$1" || { rm -f "$1.new"; return 1; }
}
