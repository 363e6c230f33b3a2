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

# suture_via_agent CLIENT ARG...: the fast path (docs/agent.md). For a command a running agent may serve, runs CLIENT
# (suture-client, src/main/c): it finds the run directory, checks it, the socket and its peer, sends the command to
# the agent and exits with the command's exit code, so no JVM starts. Returns when the command is to run in a JVM
# (no client, or it exits 100: no agent, the agent declined, or the run directory or socket is not in trusted
# hands); a client that finds no socket costs about a millisecond.
suture_via_agent() {
  local client=$1 rc
  shift
  case ${1:-} in apply|revert|info) ;; *) return 0 ;; esac
  [ -n "${SUTURE_NO_AGENT:-}" ] && return 0
  [ -x "$client" ] || return 0
  "$client" "$@" && rc=0 || rc=$?
  [ "$rc" -eq 100 ] || exit "$rc"
}
