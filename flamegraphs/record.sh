#!/usr/bin/env bash
# Profiles ringmq under one ringmqperf scenario and renders a flamegraph SVG.
#
#   flamegraphs/record.sh NAME [ringmqperf scenario args...]
#   flamegraphs/record.sh 1p1c-16b throughput -x 1 -y 1 -s 16 -z 10
#
# Builds release, starts ringmq on a free port with a temp data dir, runs the
# scenario against it while `perf record -e cpu-clock -g` samples the broker,
# then writes flamegraphs/NAME.svg and flamegraphs/NAME.txt (the command, the
# commit, the scenario's result). Needs linux-perf (apt-get install -y
# linux-perf) and inferno (cargo install inferno).
set -euo pipefail
cd "$(dirname "$0")/.."
NAME=${1:?usage: flamegraphs/record.sh NAME scenario args...}
shift
[ $# -gt 0 ] || set -- throughput -x 1 -y 1 -s 16 -z 10
FREQ=${FREQ:-999}

# RINGMQ_BIN=path profiles that broker binary instead of building one.
# RINGMQ_ARGS="--io=epoll" passes extra flags to the broker (e.g. the backend).
if [ -n "${RINGMQ_BIN:-}" ]; then
  cargo build --release --bin ringmqperf >&2
else
  cargo build --release --bin ringmq --bin ringmqperf >&2
  RINGMQ_BIN=target/release/ringmq
fi
PERF_TOOL=target/release/ringmqperf
command -v perf >/dev/null || { echo "perf not found: apt-get install -y linux-perf" >&2; exit 1; }
command -v inferno-flamegraph >/dev/null || PATH=$HOME/.cargo/bin:$PATH
command -v inferno-flamegraph >/dev/null || { echo "inferno not found: cargo install inferno" >&2; exit 1; }

PORT=
for p in $(seq 5800 5899); do
  if ! (exec 3<>/dev/tcp/127.0.0.1/$p) 2>/dev/null; then PORT=$p; break; fi
done
[ -n "$PORT" ] || { echo "no free port" >&2; exit 1; }
DATA=$(mktemp -d /tmp/ringmq-flame.XXXXXX)
# shellcheck disable=SC2086 # RINGMQ_ARGS is a flag list on purpose
"$RINGMQ_BIN" -D "$DATA" --amqp-port "$PORT" ${RINGMQ_ARGS:-} > "$DATA.log" 2>&1 &
PID=$!
PERF_PID=
cleanup() {
  [ -n "$PERF_PID" ] && kill -INT "$PERF_PID" 2>/dev/null || true
  kill "$PID" 2>/dev/null || true
  wait "$PID" 2>/dev/null || true
  rm -rf "$DATA" "$DATA.log"
}
trap cleanup EXIT
for _ in $(seq 100); do
  (exec 3<>/dev/tcp/127.0.0.1/$PORT) 2>/dev/null && break
  sleep 0.1
done

OUT=$(mktemp -d /tmp/ringmq-flame-out.XXXXXX)
perf record -e cpu-clock -F "$FREQ" -g -p "$PID" -o "$OUT/perf.data" 2> "$OUT/perf.err" &
PERF_PID=$!
sleep 0.5
RESULT=$("$PERF_TOOL" "$@" --uri "amqp://guest:guest@127.0.0.1:$PORT" -q)
kill -INT "$PERF_PID"
wait "$PERF_PID" || true
PERF_PID=
perf script -i "$OUT/perf.data" 2>/dev/null | inferno-collapse-perf > "$OUT/folded"
inferno-flamegraph --title "ringmq: ringmqperf $*" < "$OUT/folded" > "flamegraphs/$NAME.svg"
{
  echo "command: flamegraphs/record.sh $NAME $*"
  echo "profiler: perf record -e cpu-clock -F $FREQ -g -p <ringmq pid>; inferno-collapse-perf | inferno-flamegraph"
  echo "broker flags: ${RINGMQ_ARGS:-(defaults)}"
  echo "broker: $RINGMQ_BIN ($(sha1sum < "$RINGMQ_BIN" | cut -c1-12), built $(date -r "$RINGMQ_BIN" '+%F %T'))"
  echo "commit: $(git rev-parse HEAD)$(git diff --quiet HEAD -- src store codec || echo ' (with uncommitted changes in src/store/codec)')"
  echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(uname -r)"
  echo "result:"
  echo "$RESULT"
  echo
  echo "top frames (self time, % of samples):"
  awk '{n=$NF; $NF=""; split($0, f, ";"); leaf=f[length(f)]; gsub(/ +$/, "", leaf); s[leaf]+=n; t+=n}
       END {for (k in s) printf "%6.2f%% %s\n", 100*s[k]/t, k}' "$OUT/folded" | sort -rn | head -25
} > "flamegraphs/$NAME.txt"
rm -rf "$OUT"
echo "wrote flamegraphs/$NAME.svg and flamegraphs/$NAME.txt" >&2
