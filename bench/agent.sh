#!/usr/bin/env bash
# Runs the agent benchmark (src/test/java/dev/suture/bench/AgentBench.java): starts ./suture agent on a store of its
# own, then measures (1) for N new processes of a patched program (default 100) the delay from exec to running on
# with the new code and the share patched before main, and (2) the wall time of ./suture apply through the agent
# against a cold CLI (SUTURE_NO_AGENT=1) and the JVM start alone (./suture --version). Run it alone on the
# machine (/work/heavy -x bench/agent.sh).
set -eu
. "$(dirname "$(readlink -f "$0")")/../scripts/env.sh"
run_bench -Dsuture.root="$SUTURE_ROOT" AgentBench "$@"
