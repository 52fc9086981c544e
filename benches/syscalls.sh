#!/usr/bin/env bash
# Syscalls and server CPU per message of one ringmqperf scenario, on both
# transport backends (or the ones in IOS), one row per backend.
#
#   benches/syscalls.sh                                  # 1p1c 16 B, 5 s
#   benches/syscalls.sh throughput -x 1 -y 1 -s 65536 -z 5
#   IOS="uring" TRACE=strace benches/syscalls.sh ...
#
# Each backend runs twice from a fresh data dir: once under `perf trace -s -p
# PID` (TRACE=perf, default; or `strace -c -f -p PID` with TRACE=strace), for
# the syscall counts, and once untraced, for msgs/s and CPU per message (utime +
# stime of the broker from /proc/PID/stat over the run): tracing slows the
# broker down and changes how much each loop turn batches, so its msgs/s are not
# reported. "per message" divides by the messages consumed (published when
# there is no consumer). Needs linux-perf (or strace) and a built tree.
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -gt 0 ] || set -- throughput -x 1 -y 1 -s 16 -z 5
IOS=${IOS:-uring epoll}
TRACE=${TRACE:-perf}
if [ -z "${RINGMQ_BIN:-}" ]; then
  cargo build --release -p ringmq --bin ringmq >&2
  RINGMQ_BIN=target/release/ringmq
fi
cargo build --release --bin ringmqperf >&2
PERF_TOOL=target/release/ringmqperf
HZ=$(getconf CLK_TCK)

free_port() {
  local p
  for p in $(seq 5900 5999); do
    if ! (exec 3<>/dev/tcp/127.0.0.1/$p) 2>/dev/null; then echo "$p"; return; fi
  done
  echo "no free port in 5900-5999" >&2; exit 1
}

# run IO TRACED SCENARIO... -> "msgs publish_rate consume_rate cpu_ticks syscalls"
run() {
  local io=$1 traced=$2 port data pid tpid= out calls
  shift 2
  port=$(free_port)
  data=$(mktemp -d /tmp/ringmq-sys.XXXXXX)
  "$RINGMQ_BIN" -D "$data" --amqp-port "$port" --io="$io" --http-port -1 --metrics-http-port -1 --mqtt-port -1 \
    > "$data.log" 2>&1 &
  pid=$!
  for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null && break; sleep 0.1; done
  if [ "$traced" = 1 ]; then
    if [ "$TRACE" = strace ]; then
      strace -c -f -p "$pid" -o "$data.trace" 2>/dev/null &
    else
      perf trace -s -p "$pid" -o "$data.trace" 2>/dev/null &
    fi
    tpid=$!
    sleep 0.5
  fi
  local c0 c1
  c0=$(awk '{print $14+$15}' "/proc/$pid/stat")
  out=$("$PERF_TOOL" "$@" --uri "amqp://guest:guest@127.0.0.1:$port" -j -q | tail -1)
  c1=$(awk '{print $14+$15}' "/proc/$pid/stat")
  calls=0
  if [ -n "$tpid" ]; then
    kill -INT "$tpid"; wait "$tpid" 2>/dev/null || true
    if [ "$TRACE" = strace ]; then
      calls=$(awk '$NF=="total" {print $4}' "$data.trace" | tail -1)
    else
      calls=$(awk '/^ +[a-z_0-9]+ +[0-9]+ +[0-9]+ / {s += $2} END {print s + 0}' "$data.trace")
    fi
  fi
  kill "$pid"; wait "$pid" 2>/dev/null || true
  rm -rf "$data" "$data.log" "$data.trace"
  python3 -c "
import json, sys
d = json.loads(sys.argv[1])
print(d.get('consumed') or d.get('published'), d.get('publish_rate', 0), d.get('consume_rate', 0))" "$out" |
    { read -r n pr cr; echo "$n $pr $cr $(( c1 - c0 )) $calls"; }
}

echo "| backend | published / consumed msgs/s | server CPU per message | syscalls per message |"
echo "|---|---|---|---|"
for io in $IOS; do
  read -r n pr cr ticks _ < <(run "$io" 0 "$@")
  read -r tn _ _ _ calls < <(run "$io" 1 "$@")
  python3 -c "
import sys
io, n, pr, cr, ticks, tn, calls, hz = sys.argv[1:]
n, tn, ticks, calls, hz = int(n), int(tn), int(ticks), int(calls), int(hz)
print(f'| {io} | {float(pr):,.0f} / {float(cr):,.0f} | {ticks / hz * 1e6 / max(n, 1):.2f} µs | {calls / max(tn, 1):.4f} |')
" "$io" "$n" "$pr" "$cr" "$ticks" "$tn" "$calls" "$HZ"
done
echo
echo "scenario: ringmqperf $*; trace: $TRACE; broker: $RINGMQ_BIN ($(sha1sum < "$RINGMQ_BIN" | cut -c1-12)), tree at $(git rev-parse --short HEAD)"
