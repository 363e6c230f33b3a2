#!/usr/bin/env bash
# debian-source.sh PACKAGE[=VERSION] DIR: unpacks the Debian source package PACKAGE (at VERSION; else at the installed
# version, when a package built from it is installed; else the newest version whose source can still be fetched)
# into DIR with `apt-get source`
# (prints the unpacked directory). When apt has no deb-src entry, adds one that reuses the mirrors and suites of
# the configured deb entries. Needs root for apt-get update; the source is fetched once and reused.
set -eu
pkg=${1%%=*}
asked=
case $1 in *=*) asked=${1#*=} ;; esac
dest=$2
mkdir -p "$dest"

existing=$(find "$dest" -mindepth 1 -maxdepth 1 -type d -name "$pkg-*" | head -n 1)
if [ -n "$existing" ]; then
  echo "$existing"
  exit 0
fi

has_deb_src() {
  grep -qsE '^[[:space:]]*(Types:.*\bdeb-src\b|deb-src[[:space:]])' /etc/apt/sources.list /etc/apt/sources.list.d/* 2>/dev/null
}

if ! has_deb_src; then
  added=/etc/apt/sources.list.d/suture-deb-src.sources
  : > "$added.tmp"
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    # deb822 stanzas: the same stanza with Types: deb-src
    sed -n '/^Types:/,/^$/p' "$f" | sed 's/^Types:.*/Types: deb-src/' >> "$added.tmp"
    echo >> "$added.tmp"
  done
  if [ -f /etc/apt/sources.list ]; then
    grep -E '^[[:space:]]*deb[[:space:]]' /etc/apt/sources.list | sed 's/^\([[:space:]]*\)deb\([[:space:]]\)/\1deb-src\2/' \
      > /etc/apt/sources.list.d/suture-deb-src.list || true
  fi
  mv "$added.tmp" "$added"
  echo "debian-source: added deb-src entries ($added)" >&2
  apt-get update -qq >&2
fi

command -v dpkg-source >/dev/null || apt-get install -y -qq dpkg-dev >&2

cd "$dest"
# The installed version's source, when a package built from it is installed: an unversioned `apt-get source` picks
# the newest version apt knows of, and the security archive drops the sources of superseded ones (a 404). With no
# version asked and none installed, each version apt lists is tried, newest first.
installed=$(dpkg-query -W -f='${source:Package} ${source:Version}\n' 2>/dev/null | awk -v p="$pkg" '$1 == p {print $2; exit}')
versions=${asked:-$installed}
[ -n "$versions" ] || versions=$(apt-cache showsrc "$pkg" 2>/dev/null | sed -n 's/^Version: //p' | sort -u -r -V)
[ -n "$versions" ] || { apt-get update -qq >&2; versions=$(apt-cache showsrc "$pkg" | sed -n 's/^Version: //p' | sort -u -r -V); }
fetched=
for v in $versions ""; do
  if apt-get source -qq "$pkg${v:+=$v}" >&2 2>/dev/null; then fetched=yes; break; fi
done
if [ -z "$fetched" ]; then
  apt-get update -qq >&2
  apt-get source -qq "$pkg${asked:+=$asked}" >&2
fi
find "$dest" -mindepth 1 -maxdepth 1 -type d -name "$pkg-*" | head -n 1
