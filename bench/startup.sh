#!/usr/bin/env bash
# Measures cold start: `./suture --help` with and without the AOT cache, and the launcher's own overhead
# (./suture vs. the same java command run directly). Prints medians of N runs (default 10); asserts nothing.
#   bench/startup.sh [N] [DEB]: with DEB (from ./suture-package), also the installed /usr/bin/suture (the package's
#   jlinked runtime and the AOT cache its postinst makes), installed in a scratch root over this machine (an overlay
#   of / in a mount namespace of its own, removed afterwards; needs root).
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
n=${1:-10}
deb=${2:+$(readlink -f "$2")}
"$root/suture" --version >/dev/null            # builds the jar and the AOT cache if needed
. "$root/scripts/env.sh"; find_jdk
java="$SUTURE_JAVA_HOME/bin/java"
jar="$root/target/suture.jar"; aot="$root/target/suture.aot"
tmp=$(mktemp); trap 'rm -f "$tmp"' EXIT
base=(--enable-native-access=ALL-UNNAMED -XX:+UseSerialGC -XX:TieredStopAtLevel=1)

# median_ms CMD...: runs CMD n times, prints the median wall ms and the median CPU (user+sys) ms. On a loaded
# machine the wall time mostly measures waiting for a core; the CPU time is the more stable figure.
median_ms() {
  local i out walls=() cpus=()
  for ((i = 0; i < n; i++)); do
    /usr/bin/time -o "$tmp" -f '%e %U %S' "$@" >/dev/null 2>&1 || true
    out=$(tail -n 1 "$tmp")
    walls+=($(awk '{printf "%d", $1 * 1000}' <<<"$out"))
    cpus+=($(awk '{printf "%d", ($2 + $3) * 1000}' <<<"$out"))
  done
  printf '%6s %6s' "$(printf '%s\n' "${walls[@]}" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')" \
    "$(printf '%s\n' "${cpus[@]}" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')"
}

echo "load average: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) cores; $n runs each, medians"
printf '%-48s %6s %6s\n' "" "wall" "cpu"
printf '%-48s %s\n' "./suture --help (launcher + AOT cache)" "$(median_ms "$root/suture" --help)"
printf '%-48s %s\n' "java -XX:AOTCache -jar suture.jar --help" "$(median_ms "$java" "${base[@]}" -XX:AOTCache="$aot" -jar "$jar" --help)"
printf '%-48s %s\n' "java -jar suture.jar --help (no AOT cache)" "$(median_ms "$java" "${base[@]}" -jar "$jar" --help)"
printf '%-48s %s\n' "java -Xshare:off -jar suture.jar --help" "$(median_ms "$java" "${base[@]}" -Xshare:off -jar "$jar" --help)"
printf '%-48s %s\n' "launcher alone (bash: source env.sh, find_jdk)" "$(median_ms bash -c ". '$root/scripts/env.sh'; find_jdk")"
printf '%-48s %s\n' "bash -c true (floor of any shell script)" "$(median_ms bash -c true)"
printf '%-48s %s\n' "./suture inspect /bin/ls" "$(median_ms "$root/suture" inspect /bin/ls)"
printf '%-48s %s\n' "./suture inspect --symbols --relocs libc.so.6" "$(median_ms "$root/suture" inspect --symbols --relocs /lib/x86_64-linux-gnu/libc.so.6)"

if [ -n "$deb" ]; then
  scratch=$(mktemp -d); mkdir "$scratch"/{u,w,m}
  { declare -f median_ms; echo "n=$n; tmp=$scratch/time"; } > "$scratch/median.sh"
  unshare -m --propagation private bash -c 'mount -t overlay overlay -o lowerdir=/,upperdir=$0/u,workdir=$0/w $0/m \
      && for d in proc dev sys; do mount --rbind /$d $0/m/$d; done && exec chroot $0/m bash -c "$1"' "$scratch" "
    /usr/bin/time -f '%e s' dpkg -i '$deb' 2>&1 >/dev/null | sed 's/^/dpkg -i (with the postinst'\''s AOT cache, man-db trigger): /'
    . '$scratch/median.sh'
    printf '%-48s %s\n' 'installed suture --help' \"\$(median_ms suture --help)\"
    printf '%-48s %s\n' 'installed suture --version' \"\$(median_ms suture --version)\"
    printf '%-48s %s\n' 'installed suture inspect /bin/ls' \"\$(median_ms suture inspect /bin/ls)\"
    rm -f /var/cache/suture/suture.aot
    printf '%-48s %s\n' 'installed suture --help (no AOT cache)' \"\$(median_ms suture --help)\""
  rm -rf "$scratch"
fi
