#!/usr/bin/env bash
# Shovel throughput ringmq -> ringmq: N persistent messages of SIZE bytes preloaded into a
# durable queue on one broker, then a shovel (on-confirm, the default) moves them to the
# other; the time from the shovel's PUT until the destination holds all N.
# With RMQ_AMQP (a RabbitMQ's AMQP URI, e.g. amqp://guest:guest@127.0.0.1:5694/%2F) also
# ringmq -> RabbitMQ: a ringmq shovel (on A) and RabbitMQ's own shovel (on RabbitMQ)
# each move N from A into RabbitMQ, timed until A's queue is empty (on-confirm: the
# source's ack follows the destination's confirm, so all N are then in RabbitMQ).
# With a RabbitMQ with the shovel plugins on RMQ_HTTP (default
# http://127.0.0.1:15694), a RabbitMQ shovel moves the same between the same
# two ringmq brokers in the same run, for comparison (URIs name the vhost as
# %2F: RabbitMQ reads a bare `/` path as the empty vhost).
#   benches/shovel_throughput.sh RINGMQ RINGMQPERF [N] [SIZE]
set -euo pipefail
ringmq=${1:?path to a release ringmq}; perf=${2:?path to ringmqperf}
n=${3:-200000}; size=${4:-16}
rmq_http=${RMQ_HTTP:-http://127.0.0.1:15694}
dir=$(mktemp -d)
"$ringmq" -D "$dir/a" --bind 127.0.0.1 -p 35611 --http-port 35711 --metrics-http-port -1 --mqtt-port -1 >"$dir/a.log" 2>&1 &
a=$!
"$ringmq" -D "$dir/b" --bind 127.0.0.1 -p 35612 --http-port 35712 --metrics-http-port -1 --mqtt-port -1 >"$dir/b.log" 2>&1 &
b=$!
trap 'kill $a $b 2>/dev/null; wait $a $b 2>/dev/null; rm -rf "$dir"' EXIT
for port in 35711 35712; do
  for _ in $(seq 100); do curl -sf -o /dev/null -u guest:guest "http://127.0.0.1:$port/api/overview" && break; sleep 0.1; done
done
api() { curl -sf -u guest:guest -H 'content-type: application/json' "$@"; }
# The destination queue's depth (0 until the shovel declared it).
depth() { { api "http://127.0.0.1:$1/api/queues/%2F/$2" || echo '{}'; } | python3 -c 'import json,sys; print(json.load(sys.stdin).get("messages", 0))'; }

# One run: preload queue $1 on A, PUT the shovel with $2 (curl args), wait for $1-out on B.
run() {
  local q=$1 name=$2; shift 2
  "$perf" throughput --uri amqp://guest:guest@127.0.0.1:35611/ -q -x 1 -y 0 -p -s "$size" -C "$n" -c 1000 \
    -u "$q" --keep-queues >/dev/null
  local t0 t1
  t0=$(date +%s.%N)
  "$@"
  while [ "$(depth 35712 "$q-out")" -lt "$n" ]; do sleep 0.05; done
  t1=$(date +%s.%N)
  python3 -c "import sys; t=$t1-$t0; print(f'$name: $n x $size B in {t:.2f} s = {$n/t:,.0f} msg/s')"
}

value() { printf '{"value":{"src-uri":"%s","src-queue":"%s","dest-uri":"%s","dest-queue":"%s-out"}}' "$1" "$2" "$3" "$2"; }
run ringmq "ringmq shovel (on A)" \
  api -X PUT http://127.0.0.1:35711/api/parameters/shovel/%2F/bench \
  -d "$(value amqp:// ringmq amqp://guest:guest@127.0.0.1:35612/%2F ringmq)"
if curl -sf -o /dev/null -u guest:guest "$rmq_http/api/shovels"; then
  run rabbit "RabbitMQ shovel (A -> B)" \
    api -X PUT "$rmq_http/api/parameters/shovel/%2F/ringmq-bench" \
    -d "$(value amqp://guest:guest@127.0.0.1:35611/%2F rabbit amqp://guest:guest@127.0.0.1:35612/%2F rabbit)"
  api -X DELETE "$rmq_http/api/parameters/shovel/%2F/ringmq-bench" >/dev/null
else
  echo "no RabbitMQ with the shovel plugins at $rmq_http: its shovel not measured"
fi

# ringmq -> RabbitMQ: timed until A's source queue is empty.
drain_run() {
  local q=$1 name=$2; shift 2
  "$perf" throughput --uri amqp://guest:guest@127.0.0.1:35611/ -q -x 1 -y 0 -p -s "$size" -C "$n" -c 1000 \
    -u "$q" --keep-queues >/dev/null
  local t0 t1
  t0=$(date +%s.%N)
  "$@"
  while [ "$(depth 35711 "$q")" -gt 0 ]; do sleep 0.05; done
  t1=$(date +%s.%N)
  python3 -c "import sys; t=$t1-$t0; print(f'$name: $n x $size B in {t:.2f} s = {$n/t:,.0f} msg/s')"
}
if [ -n "${RMQ_AMQP:-}" ] && curl -sf -o /dev/null -u guest:guest "$rmq_http/api/shovels"; then
  drain_run to-rmq "ringmq shovel (on A) A -> RabbitMQ" \
    api -X PUT http://127.0.0.1:35711/api/parameters/shovel/%2F/to-rmq \
    -d "$(value amqp:// to-rmq "$RMQ_AMQP" to-rmq)"
  api -X DELETE http://127.0.0.1:35711/api/parameters/shovel/%2F/to-rmq >/dev/null
  drain_run rmq-pull "RabbitMQ shovel (on RabbitMQ) A -> RabbitMQ" \
    api -X PUT "$rmq_http/api/parameters/shovel/%2F/rmq-pull" \
    -d "$(value amqp://guest:guest@127.0.0.1:35611/%2F rmq-pull amqp:// rmq-pull)"
  api -X DELETE "$rmq_http/api/parameters/shovel/%2F/rmq-pull" >/dev/null
  # Leave RabbitMQ as found.
  for q in to-rmq-out rmq-pull-out; do api -X DELETE "$rmq_http/api/queues/%2F/$q" >/dev/null || true; done
fi
