#!/usr/bin/env bash
# Runs the core's seeded simulation (src/core/testkit/sim.rs) for many seeds:
# every profile (basic, policies, full, timers, crash-delayed) gets SEEDS fresh
# random seeds.
# CI runs a bounded number per profile inside `cargo test`; this is for soaking.
#
#   tests/sim/run.sh [SEEDS]            # default 2000 seeds per profile
#   RELEASE=1 tests/sim/run.sh 20000    # optimised build: many more per minute
#   RINGMQ_SIM_STEPS=2000 tests/sim/run.sh 200   # longer runs
#   FILTER=sim::confirms tests/sim/run.sh        # one profile's test
#
# A failure prints the seed, profile, the last steps and the replay command:
#   RINGMQ_SIM_SEED=<seed> cargo test -p ringmq --lib core::testkit::sim
# (RINGMQ_SIM_TRAIL=<n> shows more steps). `delayed_messages_and_power_loss`
# and `redelivered_flag_after_power_loss` replay the seeds of fixed findings
# (with RINGMQ_SIM_SEED set they replay that seed instead).
# The summary line per seed (messages, restarts, crashes, snapshots) is in the
# log, which goes to $LOG (default target/sim-run.log).
set -euo pipefail
cd "$(dirname "$0")/../.."
seeds=${1:-2000}
filter=${FILTER:-core::testkit::sim::}
log=${LOG:-target/sim-run.log}
mkdir -p "$(dirname "$log")"
mode=()
if [ "${RELEASE:-0}" = 1 ]; then mode=(--release); fi
start=$(date +%s)
status=0
RINGMQ_SIM_SEEDS=$seeds cargo test "${mode[@]}" -p ringmq --lib "$filter" -- --nocapture \
    --include-ignored >"$log" 2>&1 || status=$?
end=$(date +%s)
runs=$(grep -c '^sim seed .*: .* messages' "$log" || true)
echo "sim: $runs seeds finished in $((end - start)) s ($seeds per profile); log: $log"
if [ "$status" -ne 0 ]; then
    grep -A3 'panicked' "$log" | grep -v '^stack' || true
    echo "sim: FAILED (replay the seed above with RINGMQ_SIM_SEED)"
fi
exit "$status"
