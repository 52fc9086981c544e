#!/usr/bin/env bash
# Real clients the integration tests do not use, against a running broker:
# Debian's amqp-tools (C), aio-pika (Python asyncio), a Celery worker (kombu),
# pika on stream queues
# and, given the management API's URL, RabbitMQ's rabbitmqadmin and headless
# Chromium speaking AMQP over WebSocket on the API's port (browser_ws_check.sh);
# given an AMQPS URL and the CA that signed the broker's certificate, pika over TLS.
# Installs what is missing (apt amqp-tools, and chromium when given the API's URL;
# a venv in tests/clients/.venv from requirements.txt), runs each, prints one line
# per client; exit 0 only if all pass.
#
#   bash tests/clients/run.sh amqp://guest:guest@127.0.0.1:5672/ [http://guest:guest@127.0.0.1:15672 \
#        [amqps://guest:guest@localhost:5671/ CA.pem]]
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
url=${1:?usage: run.sh AMQP_URL [HTTP_URL [AMQPS_URL CA_FILE]]}
http=${2:-}
amqps=${3:-}
ca=${4:-}

if ! command -v amqp-publish >/dev/null; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq amqp-tools >/dev/null
fi
if [ -n "$http" ] && [ -z "${CHROMIUM:-}" ] && ! command -v chromium >/dev/null; then
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null
fi
venv="$here/.venv"
stamp="$venv/.requirements"
if [ ! -x "$venv/bin/python" ] || ! cmp -s "$here/requirements.txt" "$stamp"; then
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check -r "$here/requirements.txt"
  cp "$here/requirements.txt" "$stamp"
fi

failed=0
run() {
  local name=$1; shift
  if ! timeout 120 "$@"; then
    echo "$name: FAILED"
    failed=1
  fi
}
run amqp-tools bash "$here/amqp_tools.sh" "$url"
run aio-pika "$venv/bin/python" "$here/aio_pika_check.py" "$url"
run celery "$venv/bin/python" "$here/celery_check.py" "$url"
run "pika (streams)" "$venv/bin/python" "$here/pika_streams_check.py" "$url"
if [ -n "$http" ]; then
  run rabbitmqadmin bash "$here/rabbitmqadmin.sh" "$url" "$http"
  run "chromium (AMQP over WebSocket)" bash "$here/browser_ws_check.sh" "$http"
fi
if [ -n "$amqps" ]; then
  run "pika (TLS)" "$venv/bin/python" "$here/pika_tls_check.py" "$amqps" "${ca:?the CA file after the AMQPS URL}"
fi
exit $failed
