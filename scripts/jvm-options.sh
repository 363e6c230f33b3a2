# Sourced by ./suture and by the installed /usr/bin/suture: the JVM options suture runs with.
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
