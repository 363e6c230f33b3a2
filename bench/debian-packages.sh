#!/usr/bin/env bash
# debian-packages.sh build|apply [OUTDIR]: suture build --deb on installed library packages, and the pause of the
# live patch. `build` (a heavy command: four Debian package builds, each twice) runs
#   suture build --deb PKG --diff DIFF --build-deps --add-deb-src --json
# for zlib1g (zlib's deflateBound fix), libbz2-1.0, libyaml-0-2 and liblz4-1 (each library's version-string
# function), printing whether each rebuild reproduces the installed file and the fetch, build and diff times.
# `apply` (run it alone on the machine: it measures pauses) starts two processes per library that call the
# patched function every 50 ms, in a pid namespace of their own (src/test/resources/dev/suture/generate/
# pidns-apply-all.sh, so `apply --all` reaches no other process of the machine), applies the patch with
# `suture apply --all`, reverts it in one, and prints the pause apply and revert report. Everything goes under
# OUTDIR (default bench/out/debian, ignored by git). Needs root (apt-get, ptrace) and the packages installed.
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
mode=${1:?usage: debian-packages.sh build|apply [OUTDIR]}
out=${2:-$root/bench/out/debian}
res=$root/src/test/resources/dev/suture/generate
mkdir -p "$out"

# package, installed library, diff, C call printed before and after the patch
cases=(
  "zlib1g|libz.so.1.2.13|zlib-deflatebound.diff|#include <zlib.h>|z_stream s = {0}; deflateInit2(&s, 0, Z_DEFLATED, 15, 9, Z_DEFAULT_STRATEGY);|printf(\"%lu\\n\", deflateBound(&s, 100000))|-lz"
  "libbz2-1.0|libbz2.so.1.0.4|bzip2-version.diff|#include <bzlib.h>||printf(\"%s\\n\", BZ2_bzlibVersion())|-lbz2"
  "libyaml-0-2|libyaml-0.so.2.0.9|libyaml-version.diff|#include <yaml.h>||printf(\"%s\\n\", yaml_get_version_string())|-lyaml"
  "liblz4-1|liblz4.so.1.9.4|lz4-version.diff|const char *LZ4_versionString(void);||printf(\"%s\\n\", LZ4_versionString())|-l:liblz4.so.1"
)

"$root/suture" --version >/dev/null    # builds the jar outside the timed part
for c in "${cases[@]}"; do
  IFS='|' read -r pkg lib diff include setup call libs <<< "$c"
  dir=$out/$pkg
  mkdir -p "$dir"
  if [ "$mode" = build ]; then
    rm -rf "$dir/patches"; mkdir -p "$dir/patches"
    start=$(date +%s%N)
    if "$root/suture" build --deb "$pkg" --diff "$res/$diff" -o "$dir/patches" --build-deps --add-deb-src --json \
        > "$dir/build.json" 2> "$dir/build.err"; then rc=0; else rc=$?; fi
    end=$(date +%s%N)
    num() { sed -n "s/^  \"$1\" : \([0-9.]*\).*/\1/p" "$dir/build.json"; }
    reproduced=$(grep -m1 '"reproduced"' "$dir/build.json" | sed 's/.*: \(true\|false\).*/\1/')
    echo "$pkg ($lib): exit $rc, reproduced ${reproduced:-?}, fetch $(num fetchSeconds) s, both builds" \
      "$(num buildSeconds) s, diff $(num diffSeconds) s, $(( (end - start) / 1000000 )) ms wall"
    [ "$rc" -eq 0 ] || tail -n 5 "$dir/build.err"
  else
    cat > "$dir/prog.c" <<C
#include <stdio.h>
#include <unistd.h>
$include
int main(void) {
    alarm(120);
    $setup
    for (;;) { $call; fflush(stdout); usleep(50000); }
}
C
    gcc -O2 -o "$dir/prog" "$dir/prog.c" $libs
    before=$(timeout 5 "$dir/prog" | head -n 1)
    case $pkg in zlib1g) after=103967 ;; *) after="$before+suture" ;; esac
    rm -rf "$dir/run"; mkdir -p "$dir/run"
    mapfile -t suture < <(printf '%s\n' "$root/suture")
    unshare --pid --fork --mount-proc bash "$res/pidns-apply-all.sh" "$dir/prog" "$dir/patches" "$dir/run" \
      "$before" "$after" "${suture[@]}" > "$dir/run/ns.log" 2>&1 || true
    echo "$pkg ($lib): steps $(tr '\n' ' ' < "$dir/run/steps")"
    grep -h -o 'pid [0-9]* ([^)]*): [a-z]* .*pause [0-9.]* ms' "$dir/run/apply.txt" "$dir/run/revert.txt" \
      | sed 's/^/  /; s/: applied .*pause/: apply pause/; s/: reverted .*pause/: revert pause/'
  fi
done
