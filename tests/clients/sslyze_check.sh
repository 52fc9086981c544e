#!/usr/bin/env bash
# sslyze (PyPI) scans the broker's TLS listeners and checks what they offer
# against Mozilla's server-side TLS configurations (https://ssl-config.mozilla.org):
# AMQPS and HTTPS with the default settings against "intermediate" (TLS 1.2 and
# 1.3 only, AEAD suites with forward secrecy, safe curves, no compression, no
# client renegotiation, a certificate that validates against the test CA), and
# with --tls-min-version 1.3 against "modern". sslyze exits non-zero when a
# listener is not compliant; its report is printed then.
#
#   bash tests/clients/sslyze_check.sh RINGMQ_BIN TLS_DIR   (TLS_DIR from tls_cert.sh)
set -euo pipefail
bin=${1:?usage: sslyze_check.sh RINGMQ_BIN TLS_DIR}
tls=${2:?usage: sslyze_check.sh RINGMQ_BIN TLS_DIR}
here=$(cd "$(dirname "$0")" && pwd)
sslyze="$here/.venv/bin/sslyze"
[ -x "$sslyze" ] || { echo "no $sslyze: run tests/clients/run.sh first (it makes the venv)"; exit 1; }
dir=$(mktemp -d)
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true' EXIT

# start NAME AMQP AMQPS HTTPS [FLAGS...]: a broker with both TLS listeners.
start() {
  local name=$1 amqp=$2 amqps=$3 https=$4
  shift 4
  "$bin" -D "$dir/$name" --bind 127.0.0.1 -p "$amqp" --http-port -1 --metrics-http-port -1 --mqtt-port -1 \
    --amqps-port "$amqps" --https-port "$https" --cert "$tls/cert.pem" --key "$tls/key.pem" "$@" \
    >"$dir/$name.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 100); do
    if "$(dirname "$bin")/ringmqctl" --timeout 1 ping "127.0.0.1:$amqp" >/dev/null 2>&1; then return; fi
    sleep 0.1
  done
  echo "broker $name did not start"; cat "$dir/$name.log"; exit 1
}

# scan CONFIG HOST:PORT...: sslyze's compliance check, its report shown on failure.
scan() {
  local config=$1
  shift
  if ! "$sslyze" --mozilla_config="$config" --certinfo_ca_file "$tls/ca.pem" "$@" >"$dir/scan.txt" 2>&1; then
    cat "$dir/scan.txt"
    echo "sslyze: $* not compliant with Mozilla's $config configuration"
    exit 1
  fi
  grep -E "OK - Compliant" "$dir/scan.txt"
}

start default 5781 5782 15782
scan intermediate localhost:5782 localhost:15782
start tls13 5783 5784 15784 --tls-min-version 1.3
scan modern localhost:5784 localhost:15784
echo "sslyze: ok"
