#!/usr/bin/env bash
# RabbitMQ's own rabbitmqadmin (v1, the Python script) against a broker's
# management API: list queues, exchanges, bindings, users, vhosts, connections
# and channels; declare, publish, get, delete. The script is not in this
# repository: /usr/bin/rabbitmqadmin when Debian's rabbitmq-server is
# installed, else taken out of that package's .deb (apt-get download, not
# installed) into tests/clients/.cache/.
#   bash tests/clients/rabbitmqadmin.sh AMQP_URL http://USER:PASS@HOST:PORT
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
url=${1:?usage: rabbitmqadmin.sh AMQP_URL HTTP_URL}
http=${2:?usage: rabbitmqadmin.sh AMQP_URL HTTP_URL}
url=${url%/}

admin_script() {
  if [ -f /usr/bin/rabbitmqadmin ]; then echo /usr/bin/rabbitmqadmin; return; fi
  local cache="$here/.cache/rabbitmqadmin"
  if [ ! -f "$cache" ]; then
    local tmp
    tmp=$(mktemp -d)
    (cd "$tmp" && { apt-get download rabbitmq-server >/dev/null 2>&1 ||
      { apt-get update -qq >/dev/null && apt-get download rabbitmq-server >/dev/null; }; })
    dpkg-deb -x "$tmp"/rabbitmq-server_*.deb "$tmp/x"
    mkdir -p "$(dirname "$cache")"
    cp "$tmp/x/usr/bin/rabbitmqadmin" "$cache"
    rm -rf "$tmp"
  fi
  echo "$cache"
}
script=$(admin_script)

# http://user:pass@host:port -> rabbitmqadmin's -H -P -u -p.
rest=${http#*://}
creds=guest:guest
if [[ $rest == *@* ]]; then creds=${rest%%@*}; rest=${rest#*@}; fi
hostport=${rest%%/*}
user=${creds%%:*}
admin() { python3 "$script" -H "${hostport%:*}" -P "${hostport##*:}" -u "$user" -p "${creds#*:}" "$@"; }
# `-f raw_json` output, queried with a Python expression over `rows`.
check() {
  local what=$1 expr=$2
  shift 2
  admin -f raw_json "$@" | python3 -c "import json, sys; rows = json.load(sys.stdin); sys.exit(0 if ($expr) else 1)" ||
    { echo "rabbitmqadmin: FAILED: $what"; admin "$@" || true; exit 1; }
}

x="rabbitmqadmin-x-$$"
q="rabbitmqadmin-q-$$"
qc="rabbitmqadmin-c-$$"
consumer=""
cleanup() {
  [ -n "$consumer" ] && kill "$consumer" 2>/dev/null || true
  for what in "queue name=$q" "queue name=$qc" "exchange name=$x"; do
    # shellcheck disable=SC2086
    admin delete $what >/dev/null 2>&1 || true
  done
}
trap cleanup EXIT

check "vhosts" 'any(r["name"] == "/" for r in rows)' list vhosts
check "users" "any(r['name'] == '$user' for r in rows)" list users
admin declare exchange name="$x" type=topic durable=false >/dev/null
admin declare queue name="$q" durable=false >/dev/null
admin declare queue name="$qc" durable=false >/dev/null
admin declare binding source="$x" destination="$q" routing_key='a.#' >/dev/null
check "exchanges" "any(r['name'] == '$x' and r['type'] == 'topic' for r in rows)" list exchanges
check "queues" "{'$q', '$qc'} <= {r['name'] for r in rows}" list queues
check "bindings" "any(r['source'] == '$x' and r['destination'] == '$q' and r['routing_key'] == 'a.#' for r in rows)" list bindings

[ "$(admin publish exchange="$x" routing_key=a.b payload=hello properties='{"content_type": "text/plain"}')" = "Message published" ]
check "get" "len(rows) == 1 and rows[0]['payload'] == 'hello' and rows[0]['routing_key'] == 'a.b' and rows[0]['properties']['content_type'] == 'text/plain'" \
  get queue="$q" ackmode=ack_requeue_false
check "get on an empty queue" 'rows == []' get queue="$q"

# A consumer's connection and channel (RabbitMQ lists them after its next
# stats round, up to 5 s).
amqp-consume --url="$url" -q "$qc" cat >/dev/null 2>&1 &
consumer=$!
seen=""
for _ in $(seq 100); do
  if admin -f raw_json list connections | python3 -c "import json, sys; sys.exit(0 if any(r.get('user') == '$user' for r in json.load(sys.stdin)) else 1)" &&
    admin -f raw_json list channels | python3 -c "import json, sys; sys.exit(0 if any(r.get('user') == '$user' for r in json.load(sys.stdin)) else 1)"; then
    seen=1
    break
  fi
  sleep 0.2
done
[ -n "$seen" ] || { echo "rabbitmqadmin: FAILED: connections and channels"; admin list connections; admin list channels; exit 1; }
kill "$consumer"
wait "$consumer" 2>/dev/null || true
consumer=""

admin delete binding source="$x" destination="$q" destination_type=queue properties_key='a.#' >/dev/null
check "binding deleted" "not any(r['source'] == '$x' for r in rows)" list bindings
admin delete queue name="$q" >/dev/null
admin delete queue name="$qc" >/dev/null
admin delete exchange name="$x" >/dev/null
check "queues deleted" "not {'$q', '$qc'} & {r['name'] for r in rows}" list queues
check "exchange deleted" "not any(r['name'] == '$x' for r in rows)" list exchanges
admin show overview >/dev/null
echo "rabbitmqadmin: ok (list vhosts, users, exchanges, queues, bindings, connections, channels; declare, publish, get, delete)"
