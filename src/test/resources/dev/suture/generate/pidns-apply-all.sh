#!/bin/bash
# pidns-apply-all.sh PROG PATCHES OUT BEFORE AFTER SUTURE...: run as PID 1 of a pid namespace of its own
# (unshare --pid --fork --mount-proc) by DebianPackageTest and bench/debian-packages.sh, so that `apply --all` sees
# only the two processes started here and never patches a process of the machine that maps the same library.
# Starts PROG twice (each prints the line BEFORE over and over, and AFTER once patched), applies the patches in
# PATCHES to every process with `SUTURE... apply --all`, then reverts the first. Each step's exit status goes to
# OUT/steps, each command's output to OUT/<step>.txt.
set -u
prog=$1; patches=$2; out=$3; before=$4; after=$5; shift 5
a=""; b=""
trap 'kill -9 $a $b 2>/dev/null' EXIT
setsid "$prog" > "$out/a.out" 2>&1 < /dev/null & a=$!
setsid "$prog" > "$out/b.out" 2>&1 < /dev/null & b=$!
# await FILE LINE: until FILE's last line is LINE, for at most 60 s
await() {
  for _ in $(seq 600); do [ "$(tail -n 1 "$1")" = "$2" ] && return 0; sleep 0.1; done
  echo "timeout: $1 never printed '$2'" >> "$out/steps"
  exit 1
}
await "$out/a.out" "$before"
await "$out/b.out" "$before"
"$@" apply --all "$patches" > "$out/apply.txt" 2>&1
echo "apply $?" >> "$out/steps"
await "$out/a.out" "$after"
await "$out/b.out" "$after"
"$@" revert -p "$a" --all > "$out/revert.txt" 2>&1
echo "revert $?" >> "$out/steps"
await "$out/a.out" "$before"
sleep 0.3
await "$out/b.out" "$after"
echo "done" >> "$out/steps"
