#!/usr/bin/env bash
# Runs the standard scenario set against ringmq and (when available) RabbitMQ
# through `ringmqperf compare`, and prints one markdown table.
#
#   benches/compare.sh                 # DURATION=5 s per run, ROUNDS=2 (A B A B)
#   DURATION=10 ROUNDS=3 benches/compare.sh
#   NO_RABBITMQ=1 benches/compare.sh   # ringmq only
#   PEER_URI=amqp://guest:guest@127.0.0.1:5674 PEER_PID=1234 PEER_NAME=lavinmq benches/compare.sh
#                                      # one more broker (LavinMQ or any other) in the same table
#
# Columns: each broker's median, then ringmq divided by each peer (ringmq is
# named last and `compare --against-last` divides it by every earlier one).
# PEER_PID lets the table report the peer's CPU per message; without it the
# CPU rows say "-" for that broker.
# ringmq runs from a fresh temp data dir on a free port; RabbitMQ comes from
# ../shared/peers/rabbitmq.sh (AMQP 127.0.0.1:5673), started if it is not up,
# and stopped again only if this script started it.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-5}
ROUNDS=${ROUNDS:-2}
PEER=../shared/peers/rabbitmq.sh

# RINGMQ_BIN=path runs that broker binary instead of building one (a known
# build, or while the tree does not compile).
if [ -n "${RINGMQ_BIN:-}" ]; then
  cargo build --release --bin ringmqperf >&2
else
  cargo build --release --bin ringmq --bin ringmqperf >&2
  RINGMQ_BIN=target/release/ringmq
fi
PERF=target/release/ringmqperf

free_port() {
  local p
  for p in $(seq 5700 5799); do
    if ! (exec 3<>/dev/tcp/127.0.0.1/$p) 2>/dev/null; then echo "$p"; return; fi
  done
  echo "no free port in 5700-5799" >&2; exit 1
}

DATA=$(mktemp -d /tmp/ringmq-bench.XXXXXX)
PORT=$(free_port)
"$RINGMQ_BIN" -D "$DATA" --amqp-port "$PORT" > "$DATA.log" 2>&1 &
RINGMQ_PID=$!
STARTED_RABBIT=0
cleanup() {
  kill "$RINGMQ_PID" 2>/dev/null || true
  wait "$RINGMQ_PID" 2>/dev/null || true
  rm -rf "$DATA" "$DATA.log"
  if [ "$STARTED_RABBIT" = 1 ]; then bash "$PEER" stop >&2 || true; fi
}
trap cleanup EXIT
for _ in $(seq 100); do
  (exec 3<>/dev/tcp/127.0.0.1/$PORT) 2>/dev/null && break
  sleep 0.1
done

URIS=()
PIDS=()
NAMES=()
if [ "${NO_RABBITMQ:-0}" != 1 ] && [ -f "$PEER" ]; then
  if ! bash "$PEER" status >/dev/null 2>&1; then STARTED_RABBIT=1; fi
  if bash "$PEER" start >&2; then
    URIS+=(--uri amqp://guest:guest@127.0.0.1:5673)
    PIDS+=(--pid "$(cat /tmp/ringmq-peers/rabbitmq/rabbitmq.pid 2>/dev/null || echo 0)")
    NAMES+=(--name rabbitmq)
  fi
fi
if [ -n "${PEER_URI:-}" ]; then
  URIS+=(--uri "$PEER_URI")
  PIDS+=(--pid "${PEER_PID:-0}")
  NAMES+=(--name "${PEER_NAME:-peer}")
fi
URIS+=(--uri "amqp://guest:guest@127.0.0.1:$PORT")
PIDS+=(--pid "$RINGMQ_PID")
NAMES+=(--name ringmq)

header="| scenario | metric |"
sep="|---|---|"
for ((i = 1; i < ${#NAMES[@]}; i += 2)); do header+=" ${NAMES[$i]} |"; sep+="---|"; done
last=$((${#NAMES[@]} - 1))
for ((i = 1; i < last; i += 2)); do header+=" ${NAMES[$last]}/${NAMES[$i]} |"; sep+="---|"; done

run() {
  local label=$1
  shift
  "$PERF" compare "${URIS[@]}" "${NAMES[@]}" "${PIDS[@]}" --rounds "$ROUNDS" --row "$label" --against-last -q -- "$@"
}

Q10=(--queue-pattern 'perf-q%d' --queue-pattern-from 1 --queue-pattern-to 10)
{
  echo "$header"
  echo "$sep"
  run "1p1c 16 B" throughput -x 1 -y 1 -s 16 -z "$DURATION"
  run "publish only 16 B" throughput -x 1 -y 0 -s 16 -z "$DURATION"
  run "consume only (1M prefilled)" throughput -x 0 -y 1 -s 16 --prefill 1000000 -z "$DURATION"
  run "1p1c 1 KiB" throughput -x 1 -y 1 -s 1024 -z "$DURATION"
  run "1p1c 64 KiB" throughput -x 1 -y 1 -s 65536 -z "$DURATION"
  run "persistent, confirms 1000, ack 100" throughput -x 1 -y 1 -s 16 -p -c 1000 -a 100 -P 1000 -z "$DURATION"
  run "10p10c, 10 queues" throughput -x 10 -y 10 -s 16 "${Q10[@]}" -z "$DURATION"
  run "fanout to 10 queues" throughput -x 1 -y 10 -s 16 -e perf-fanout --exchange-type fanout \
    --queue-pattern 'perf-f%d' --queue-pattern-from 1 --queue-pattern-to 10 -z "$DURATION"
  run "TTL queue (60 s) with DLX, 1p1c" throughput -x 1 -y 1 -s 16 -u perf-ttl \
    --queue-args '{"x-message-ttl": 60000, "x-dead-letter-exchange": "amq.fanout"}' -z "$DURATION"
  run "priority queue (max 10), 1p1c" throughput -x 1 -y 1 -s 16 -u perf-prio \
    --queue-args '{"x-max-priority": 10}' -z "$DURATION"
  run "latency at 10k msgs/s" latency --rates 10000 -s 16 -z "$DURATION"
}
echo
echo "broker: $RINGMQ_BIN ($(sha1sum < "$RINGMQ_BIN" | cut -c1-12), built $(date -r "$RINGMQ_BIN" '+%F %T')), tree at $(git rev-parse --short HEAD)"
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(uname -r); ${DURATION} s per run, ${ROUNDS} rounds"
echo "tool ceiling: run \`$PERF sink\` / \`$PERF source\` and the same scenarios against them"
