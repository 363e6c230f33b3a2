#!/usr/bin/env bash
# security-patches.sh [OUTDIR [FIX...]]: the test bed of real fixes. Takes nginx from Debian's source packages
# (bench/debian-source.sh), builds its upstream tree (the .orig tarball, none of Debian's patches) the way a
# deployment would, starts it (a master and one worker) and then, one fix at a time, for every security patch of
# debian/patches (series entries named CVE-* or FIX-*; parts of one CVE such as CVE-X-1 and CVE-X-2 are one fix):
#   does it apply to the upstream tree (patch --dry-run), does `suture build` make a live patch of it for the
#   running binary, which functions it replaces and which it leaves out as changed only in line numbers, and
#   whether `suture apply` then `suture revert` on both running processes work while two clients fetch a page
#   in a loop without one failed request; how long the build took and the longest pause of each transaction.
# Writes OUTDIR/results.tsv (one row per fix) and prints the table. FIX... limits the run to those fixes (names as
# in the table). Everything goes under OUTDIR (default bench/out/nginx, ignored by git). Needs root (apt-get for
# the source and build dependencies; ptrace). SUTURE names the suture launcher to use (default: this tree's).
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$root/bench/out/nginx}
shift || true
only=" $* "
mkdir -p "$out"
out=$(cd "$out" && pwd)
suture=${SUTURE:-$root/suture}
port=${SUTURE_BENCH_PORT:-18080}

for dev in libpcre2-dev libssl-dev zlib1g-dev; do
  dpkg -s "$dev" >/dev/null 2>&1 || apt-get install -y -qq "$dev" >&2
done

# The source package, then its upstream tree: the same source unpacked without Debian's patches.
src=$("$root/bench/debian-source.sh" nginx "$out/debian-src" | tail -n 1)
dsc=$(ls "$out"/debian-src/nginx_*.dsc | tail -n 1)
version=$(sed -n 's/^Version: //p' "$dsc")
upstream=$out/upstream
if [ ! -f "$upstream/configure" ]; then
  rm -rf "$upstream"
  dpkg-source --skip-patches -x "$dsc" "$upstream" >/dev/null
  rm -rf "$upstream/debian"
fi
patches=$src/debian/patches

# The modules the security patches touch (mp4, dav, mail, stream, SSL, HTTP/2) are built in; nginx's own flags
# (-O -g ...) are kept.
configure="./configure --prefix=$out/run --with-http_ssl_module --with-http_v2_module --with-http_mp4_module \
--with-http_dav_module --with-http_stub_status_module --with-mail --with-mail_ssl_module --with-stream \
--with-stream_ssl_module"
deployed=$out/deployed
if [ ! -x "$deployed/objs/nginx" ]; then
  rm -rf "$deployed"
  cp -a "$upstream" "$deployed"
  (cd "$deployed" && sh -c "$configure" >"$out/deployed.log" 2>&1 && make -j"$(nproc)" >>"$out/deployed.log" 2>&1)
fi

gcc -O2 -Wall -o "$out/http-load" "$root/bench/http-load.c"
"$suture" --version >/dev/null    # builds the jar before anything is timed

# The running instance: a master and one worker, serving a page the clients check.
run=$out/run
mkdir -p "$run/conf" "$run/logs" "$run/html"
marker="suture test bed $version"
echo "<html><body>$marker</body></html>" > "$run/html/index.html"
cp "$deployed/conf/mime.types" "$run/conf/"
cat > "$run/conf/nginx.conf" <<CONF
user root;
worker_processes 1;
daemon off;
pid $run/logs/nginx.pid;
error_log $run/logs/error.log;
events { worker_connections 256; }
http {
    include mime.types;
    access_log off;
    server {
        listen 127.0.0.1:$port;
        root $run/html;
    }
}
CONF

master=
cleanup() {
  if [ -n "$master" ]; then kill "$master" 2>/dev/null || true; fi
}
trap cleanup EXIT
rm -f "$run/logs/nginx.pid"
setsid "$deployed/objs/nginx" -p "$run" -c "$run/conf/nginx.conf" </dev/null >"$run/logs/stdout" 2>&1 &
for _ in $(seq 100); do
  [ -s "$run/logs/nginx.pid" ] && break
  sleep 0.1
done
master=$(cat "$run/logs/nginx.pid")
worker=
for _ in $(seq 100); do
  worker=$(pgrep -P "$master" | head -n 1 || true)
  [ -n "$worker" ] && break
  sleep 0.1
done
[ -n "$worker" ] || { echo "nginx did not start a worker; see $run/logs" >&2; exit 1; }

# The fixes, in series order: the CVE-* and FIX-* entries, parts of one CVE grouped.
fixes=()
declare -A parts
for p in $(grep -E '^(CVE-|FIX-)' "$patches/series" | awk '{print $1}'); do
  fix=$(echo "${p%.patch}" | sed -E 's/^(CVE-[0-9]+-[0-9]+)[-.][0-9]+$/\1/')
  if [ -z "${parts[$fix]:-}" ]; then fixes+=("$fix"); fi
  parts[$fix]="${parts[$fix]:-} $p"
done

# Field N of a client's "requests R errors E" line (a client that printed nothing counts one error).
count() {
  local v
  v=$(awk -v f="$1" '/^requests/ {print $f}' "$2")
  if [ -n "$v" ]; then echo "$v"; elif [ "$1" = 4 ]; then echo 1; else echo 0; fi
}

results=$out/results.tsv
# The longest pause one process felt, of the lines "...; pause X ms" a log has.
pause() {
  sed -n 's/.*; pause \([0-9.]*\) ms.*/\1/p' "$1" | sort -g | tail -n 1
}

printf 'fix\tpatches\tapplies\tbuilt\tbuild s\treplaced\tline-only\tapply\tpause ms\trevert\tpause ms\trequests\terrors\tnote\n' \
    > "$results"
for fix in "${fixes[@]}"; do
  if [ "$only" != "  " ] && [[ $only != *" $fix "* ]]; then continue; fi
  files=${parts[$fix]# }
  diffs=()
  for p in $files; do diffs+=(--diff "$patches/$p"); done
  log=$out/logs/$fix
  rm -rf "$log" "$out/patches/$fix"
  mkdir -p "$log" "$out/patches/$fix"
  applies=yes built=no seconds=- replaced=- lineonly=- apply=- revert=- requests=- errors=- note=
  applypause=- revertpause=-
  check=$(mktemp -d)
  cp -a "$upstream/." "$check/"
  for p in $files; do
    patch -d "$check" -p1 --batch --forward -s < "$patches/$p" >"$log/dry-run.log" 2>&1 || applies=no
  done
  rm -rf "$check"
  if [ "$applies" = no ]; then
    note="does not apply to the upstream tree"
  elif "$suture" build --src "$upstream" "${diffs[@]}" --make "$configure && make -j$(nproc)" \
        --target "objs/nginx=$deployed/objs/nginx" -o "$out/patches/$fix" --json \
        >"$log/build.json" 2>"$log/build.err"; then
    built=yes
    seconds=$(jq -r '.buildSeconds' "$log/build.json")
    t='.targets[0]'
    replaced=$(jq -r "$t.replaced | join(\",\")" "$log/build.json")
    lineonly=$(jq -r "($t.lineOnly // []) | join(\",\")" "$log/build.json")
    [ -n "$lineonly" ] || lineonly=none
    patch=$(jq -r "$t.patch" "$log/build.json")
    stop=$log/stop
    rm -f "$stop"
    "$out/http-load" "$port" / "$marker" "$stop" >"$log/load1" 2>&1 &
    load1=$!
    "$out/http-load" "$port" / "$marker" "$stop" >"$log/load2" 2>&1 &
    load2=$!
    sleep 1
    apply=ok
    for pid in "$master" "$worker"; do
      "$suture" apply -p "$pid" "$patch" >>"$log/apply.log" 2>&1 || apply="failed (pid $pid, exit $?)"
    done
    sleep 1
    revert=ok
    if [ "$apply" = ok ]; then
      for pid in "$worker" "$master"; do
        "$suture" revert -p "$pid" --all >>"$log/revert.log" 2>&1 || revert="failed (pid $pid, exit $?)"
      done
    else
      revert="-"
      for pid in "$worker" "$master"; do "$suture" revert -p "$pid" --all >>"$log/revert.log" 2>&1 || true; done
    fi
    sleep 0.5
    touch "$stop"
    wait "$load1" "$load2" || true
    applypause=$(pause "$log/apply.log"); applypause=${applypause:--}
    revertpause=$(pause "$log/revert.log"); revertpause=${revertpause:--}
    requests=$(( $(count 2 "$log/load1") + $(count 2 "$log/load2") ))
    errors=$(( $(count 4 "$log/load1") + $(count 4 "$log/load2") ))
    [ "$apply" = ok ] || note=$(tail -n 3 "$log/apply.log" | tr '\n\t' '  ' | cut -c1-200)
  else
    # exit 3 with no function changed: the fix changes no x86-64 code (the build is right to make no patch)
    grep -q 'no function changed' "$log/build.err" && built="no code change"
    note=$(grep -v '^\s*$' "$log/build.err" | grep -v 'building the jar' | head -n 3 | tr '\n\t' '  ' | cut -c1-200)
  fi
  kill -0 "$master" 2>/dev/null && kill -0 "$worker" 2>/dev/null || note="$note; nginx died"
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$fix" "$files" "$applies" "$built" \
      "$seconds" "$replaced" "$lineonly" "$apply" "$applypause" "$revert" "$revertpause" "$requests" "$errors" \
      "$note" >> "$results"
  echo "$fix: applies $applies, built $built, replaced $replaced, line-only $lineonly, apply $apply," \
       "revert $revert, $requests requests, $errors errors${note:+ ($note)}" >&2
done

echo "nginx $version (upstream tree, Debian's security patches one at a time), $(nproc) cores"
column -t -s $'\t' "$results"
