# Sourced by ./suture and by the installed /usr/bin/suture: the JVM options suture runs with, and the fast path that
# starts no JVM at all when a running agent serves the command (suture_via_agent, below).
# suture_java_options ARG...: sets the array SUTURE_JAVA_OPTS for a suture run with these arguments. Builtins only:
# every process spawned here is paid by each start.
suture_java_options() {
  SUTURE_JAVA_OPTS=(--enable-native-access=ALL-UNNAMED -XX:+UseSerialGC -XX:TieredStopAtLevel=1)
  # The commands that hold a target's threads compile in the foreground (-Xbatch), so that the target's holds meet
  # the rehearsal's code compiled; not the others, whose start it slows (docs/apply.md, "What keeps the holds short").
  local arg
  for arg in "$@"; do
    case $arg in
      -*) ;;
      apply|revert|recover|stacks|demo) SUTURE_JAVA_OPTS+=(-Xbatch); break ;;
      *) break ;;
    esac
  done
}

# suture_via_agent CLIENT ARG...: the fast path (docs/agent.md). When the command is one a running agent serves and
# its socket is where the run directory is likely to be, runs CLIENT (suture-client, src/main/c) to send the
# command to the agent and exits with the command's exit code: no JVM starts. Returns when the command is to run in
# a JVM (no client, no agent, or the client exits 100: the agent declined, or the run directory or socket is not in
# trusted hands). The client checks the run directory as the Java code does; the guess here only spares a command
# the client's start when no agent runs: a wrong guess costs time, never a wrong answer.
suture_via_agent() {
  local client=$1 arg sock rc
  shift
  case ${1:-} in apply|revert|info) ;; *) return 0 ;; esac
  [ -n "${SUTURE_NO_AGENT:-}" ] && return 0
  [ -x "$client" ] || return 0
  for arg in "$@"; do
    case $arg in --help|-h) return 0 ;; esac
  done
  if [ -n "${SUTURE_RUN_DIR:-}" ]; then
    sock=$SUTURE_RUN_DIR/agent.sock
  elif [ -w /run/suture ] || { [ ! -e /run/suture ] && [ -w /run ]; }; then
    sock=/run/suture/agent.sock
  elif [ -n "${XDG_RUNTIME_DIR:-}" ] && [ -d "$XDG_RUNTIME_DIR" ]; then
    sock=$XDG_RUNTIME_DIR/suture/agent.sock
  else
    sock=/tmp/suture-${USER:-}/agent.sock
  fi
  [ -S "$sock" ] || return 0
  "$client" "$@" && rc=0 || rc=$?
  [ "$rc" -eq 100 ] || exit "$rc"
}
