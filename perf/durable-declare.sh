#!/usr/bin/env bash
# Times N durable queue declares on one channel against a ringmq binary, on a
# fresh data directory: `ringmqperf durable-declare` prints the time per declare
# for each tenth of the run (flat: O(N) in all; growing: O(N^2)).
#
#   perf/durable-declare.sh RINGMQ RINGMQPERF N [DATA_ROOT] [PORT]
#
# DATA_ROOT (default /tmp) holds the data directory: /dev/shm takes the disk's
# fsync latency out and leaves the broker's own cost per declare.
set -eu
BIN=$1 PERF=$2 N=$3 ROOT=${4:-/tmp} PORT=${5:-5799}
D=$(mktemp -d "$ROOT/ringmq-declare.XXXXXX")
trap 'kill $PID 2>/dev/null; wait $PID 2>/dev/null; rm -rf "$D" "$D.log"' EXIT
"$BIN" -D "$D" -p "$PORT" --http-port=-1 --metrics-http-port=-1 --mqtt-port=-1 -l warn >"$D.log" 2>&1 &
PID=$!
i=0
until (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; do
    i=$((i + 1)); [ $i -lt 100 ] || { echo "broker did not start" >&2; exit 1; }; sleep 0.1
done
"$PERF" durable-declare -x "$N" -u dq --uri "amqp://guest:guest@127.0.0.1:$PORT/"
