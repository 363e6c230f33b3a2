#!/usr/bin/env bash
# real-project.sh [OUTDIR]: suture build on a real project, timed. Debian bookworm's zlib source (apt-get source,
# via bench/debian-source.sh) with a diff mirroring zlib's upstream deflateBound fix
# (src/test/resources/dev/suture/generate/zlib-deflatebound.diff). A "deployed" copy is first built the way
# Debian's debian/rules builds it (its CFLAGS, configure flags, plain make, no wrapper); suture build then
# patches against that copy's libz.so and minigzip. Prints build and diff times. Everything goes under OUTDIR
# (default bench/out/zlib, ignored by git).
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$root/bench/out/zlib}
mkdir -p "$out"
src=$("$root/bench/debian-source.sh" zlib "$out/debian-src" | tail -n 1)
version=$(sed -n 's/^#define ZLIB_VERSION "\(.*\)"/\1/p' "$src/zlib.h")
flags='-g -O2 -fstack-protector-strong -Wformat -Werror=format-security -Wdate-time -D_FORTIFY_SOURCE=2 -Wall -D_REENTRANT -O3 -DUNALIGNED_OK'
configure="CFLAGS='$flags' LDFLAGS='-Wl,-z,relro' uname=GNU ./configure --shared --prefix=/usr --libdir=/usr/lib/x86_64-linux-gnu"

deployed=$out/deployed
if [ ! -f "$deployed/libz.so.$version" ]; then
  rm -rf "$deployed"
  cp -a "$src" "$deployed"
  (cd "$deployed" && sh -c "$configure" >/dev/null && make -s >/dev/null 2>&1)
fi

"$root/suture" --version >/dev/null    # builds the jar outside the timed part
rm -rf "$out/patches"
start=$(date +%s%N)
"$root/suture" build --src "$src" --diff "$root/src/test/resources/dev/suture/generate/zlib-deflatebound.diff" \
    --make "$configure && make" \
    --target "libz.so.$version=$deployed/libz.so.$version" --target "minigzip=$deployed/minigzip" \
    -o "$out/patches" --json > "$out/result.json"
end=$(date +%s%N)

field() { sed -n "s/^  \"$1\" : \(.*\),\?$/\1/p" "$out/result.json" | tr -d ','; }
echo "zlib $version ($(basename "$src")), $(nproc) cores, load $(cut -d' ' -f1 /proc/loadavg)"
echo "  copies + patch:  $(field copySeconds) s"
echo "  both builds:     $(field buildSeconds) s (original and patched in parallel: ./configure && make)"
echo "  diff:            $(field diffSeconds) s (all targets)"
echo "  suture build:    $(( (end - start) / 1000000 )) ms wall, JVM start included"
grep -E '"(target|replaced|patch)"' "$out/result.json" | tr -d '\n' | sed 's/  */ /g; s/"target"/\n  "target"/g'
echo
