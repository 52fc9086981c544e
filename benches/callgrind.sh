#!/usr/bin/env bash
# Instructions the broker executes per message, counted by callgrind: a stable
# number on a shared, noisy machine (wall-clock rates are not), for A/B builds.
#
#   benches/callgrind.sh [RINGMQ_BIN ...]     # default: target/release/ringmq
#   MESSAGES=20000 SIZE=16 benches/callgrind.sh old/ringmq new/ringmq
#
# For each binary: the broker runs under valgrind --tool=callgrind (--io=epoll:
# valgrind does not know io_uring), ringmqperf publishes and consumes a fixed
# count of messages (1 publisher, 1 consumer, auto-ack; then manual acks, one
# multiple ack per 100 with prefetch 1000; then auto-ack with persistent
# messages and confirms), twice: MESSAGES and 2 x MESSAGES. The
# difference of the two totals over MESSAGES is the cost of one message
# published + routed + delivered, start-up and shutdown cancelled out.
set -euo pipefail
cd "$(dirname "$0")/.."
MESSAGES=${MESSAGES:-20000}
SIZE=${SIZE:-16}
PERF=${PERF:-target/release/ringmqperf}
[ -x "$PERF" ] || cargo build --release --bin ringmqperf >&2
bins=("$@")
if [ ${#bins[@]} -eq 0 ]; then
  cargo build --release --bin ringmq >&2
  bins=(target/release/ringmq)
fi
command -v valgrind >/dev/null || { echo "callgrind.sh: needs valgrind (apt-get install valgrind)" >&2; exit 1; }

# Instructions of one broker run: start under callgrind, run the scenario, stop.
one_run() {
  local bin=$1 count=$2 shift_args=("${@:3}")
  local dir port pid out
  dir=$(mktemp -d /tmp/ringmq-cg.XXXXXX)
  port=$((20000 + RANDOM % 20000))
  valgrind --tool=callgrind --callgrind-out-file="$dir/cg.out" \
    "$bin" -D "$dir/data" --bind 127.0.0.1 --amqp-port "$port" --http-port -1 --metrics-http-port -1 --mqtt-port -1 \
    --io=epoll >"$dir/log" 2>&1 &
  pid=$!
  for _ in $(seq 600); do
    (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null && break
    sleep 0.1
  done
  "$PERF" throughput --uri "amqp://guest:guest@127.0.0.1:$port/%2f" -x 1 -y 1 -s "$SIZE" \
    -C "$count" -D "$count" -q "${shift_args[@]}" >/dev/null
  kill -TERM "$pid"
  wait "$pid" || true
  out=$(grep -E '^(summary|totals):' "$dir/cg.out" | head -1 | awk '{print $2}')
  rm -rf "$dir"
  echo "$out"
}

printf '| scenario | binary | instructions per message |\n|---|---|---|\n'
for scenario in "transient:" "acked:-a 100 -P 1000" "persistent+confirm:-p -c 100"; do
  name=${scenario%%:*}
  # shellcheck disable=SC2206
  args=(${scenario#*:})
  for bin in "${bins[@]}"; do
    a=$(one_run "$bin" "$MESSAGES" "${args[@]}")
    b=$(one_run "$bin" $((2 * MESSAGES)) "${args[@]}")
    printf '| %s | %s | %s |\n' "$name" "$bin" $(((b - a) / MESSAGES))
  done
done
