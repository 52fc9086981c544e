#!/usr/bin/env bash
# A real browser speaking AMQP 0-9-1 over WebSocket to a running broker (#19):
# headless Chromium loads tests/clients/browser_ws/amqp.html from a file (Origin
# null, i.e. another site's page), whose JavaScript opens
# ws://HOST:PORT/ws with the subprotocol amqp and speaks AMQP written by hand:
# the broker's loopback-only guest is refused (403, when the API user below is
# guest: the page tries its password), then a user made here for the check
# declares a durable queue, publishes a text and a 300 kB message with confirms,
# consumes and acks both, cancels and closes. The page's outcome ("OK body=..."
# or "FAIL reason") comes back on Chromium's console log; the queue's counters
# in the API must then show both messages published, delivered and acked, none
# left, no consumer. Then the same page served from http://127.0.0.1:N (this
# host: Python's http.server) does it all as guest. The user and the queues are
# deleted at the end.
#
#   bash tests/clients/browser_ws_check.sh http://USER:PASS@HOST:PORT
#
# USER must be an administrator (it creates the check's user). Needs chromium
# (CHROMIUM=path overrides; tests/clients/run.sh installs Debian's when missing),
# curl and python3. BROWSER_WS_QUERY=k=v&... adds to the page's query (e.g.
# proto=mqtt, port=1: the check must then fail). Exit 0 only if all held.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
http=${1:?usage: browser_ws_check.sh http://USER:PASS@HOST:PORT}
chromium=${CHROMIUM:-$(command -v chromium || echo /usr/bin/chromium)}
if [ ! -x "$chromium" ]; then
  echo "browser-ws: no chromium ($chromium): apt-get install chromium" >&2
  exit 1
fi

# http://user:pass@host:port -> the API's credentials and address.
rest=${http#*://}
creds=guest:guest
if [[ $rest == *@* ]]; then creds=${rest%%@*}; rest=${rest#*@}; fi
hostport=${rest%%/*}
api_user=${creds%%:*}
api_pass=${creds#*:}
host=${hostport%:*}
port=${hostport##*:}
api="http://$hostport/api"
curl_api() { curl -sS --fail-with-body -u "$api_user:$api_pass" -H 'content-type: application/json' "$@"; }

user=browser-ws-check
pass=$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')
queue=browser-ws-check
work=$(mktemp -d)
web_pid=
cleanup() {
  if [ -n "$web_pid" ]; then kill "$web_pid" 2>/dev/null || true; fi
  for q in "$queue" "$queue-guest"; do curl_api -o /dev/null -X DELETE "$api/queues/%2F/$q" 2>/dev/null || true; done
  curl_api -o /dev/null -X DELETE "$api/users/$user" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

for q in "$queue" "$queue-guest"; do curl_api -o /dev/null -X DELETE "$api/queues/%2F/$q" 2>/dev/null || true; done
curl_api -o /dev/null -X PUT "$api/users/$user" -d "{\"password\":\"$pass\",\"tags\":\"\"}"
curl_api -o /dev/null -X PUT "$api/permissions/%2F/$user" -d '{"configure":".*","write":".*","read":".*"}'
urlenc() { python3 -c 'import sys, urllib.parse; print(urllib.parse.quote(sys.argv[1], safe=""))' "$1"; }

failed=
fail() {
  echo "browser-ws: FAIL: $*"
  failed=1
}
# page NAME URL: Chromium shows the page, which closes its window when it has its
# outcome, and that ends Chromium; the timeout only guards against a hang. Sets
# result and refused from the page's console messages in $work/NAME.log.
# BROWSER_WS_QUERY goes first in the query, so it wins: the page takes the first
# value of each parameter.
page() {
  local name=$1 url=$2 rc=0
  if [ -n "${BROWSER_WS_QUERY:-}" ]; then url="${url%%\?*}?$BROWSER_WS_QUERY&${url#*\?}"; fi
  timeout -k 5 60 "$chromium" --headless=new --no-sandbox --disable-gpu --no-first-run \
    --user-data-dir="$work/profile-$name" --enable-logging=stderr --v=0 \
    "$url" >"$work/$name.log" 2>&1 || rc=$?
  if [ "$rc" != 0 ]; then fail "$name: chromium exited with $rc (124: no outcome within 60 s)"; fi
  result=$(console "$name" RESULT | tail -1)
  refused=$(console "$name" REFUSED | tail -1)
}
# The page's console messages, one a line: [...:INFO:CONSOLE:N] "RINGMQ-WHAT text", source: URL (N)
console() { sed -n "s/.*:INFO:CONSOLE[^]]*] \"RINGMQ-$2 \(.*\)\", source: .*/\1/p" "$work/$1.log"; }
want="OK body=hello-from-chromium large=300000"
query="host=$host&port=$port&body=hello-from-chromium&large=300000"

# 1. From a file (Origin null: another site): guest refused, the check's user served.
refuse=
if [ "$api_user" = guest ]; then refuse="&refuse=guest:$(urlenc "$api_pass")"; fi
page file "file://$here/browser_ws/amqp.html?$query&user=$user&pass=$pass&queue=$queue$refuse"
if [ "$result" != "$want" ]; then fail "file:// page: '${result:-nothing}', expected '$want'"; fi
if [ -n "$refuse" ] && [[ $refused != "refused guest: 403 ACCESS_REFUSED"* ]]; then
  fail "guest from a file:// page (Origin null): '${refused:-nothing}', expected a 403 refusal"
fi
file_result=$result file_refused=$refused

# 2. The same page served from this host (http://127.0.0.1:N, Python's http.server):
# a page of this host may log in as the loopback-only guest.
loopback=
if [ "$api_user" = guest ]; then
  python3 -c '
import functools, http.server, sys
h = functools.partial(http.server.SimpleHTTPRequestHandler, directory=sys.argv[1])
s = http.server.ThreadingHTTPServer(("127.0.0.1", 0), h)
with open(sys.argv[2] + ".tmp", "w") as f: f.write(str(s.server_address[1]))
import os; os.rename(sys.argv[2] + ".tmp", sys.argv[2])
s.serve_forever()' "$here/browser_ws" "$work/web.port" 2>"$work/web.log" &
  web_pid=$!
  for _ in $(seq 50); do [ -s "$work/web.port" ] && break; sleep 0.1; done
  web_port=$(cat "$work/web.port" 2>/dev/null || echo 0)
  page loopback "http://127.0.0.1:$web_port/amqp.html?$query&user=guest&pass=$(urlenc "$api_pass")&queue=$queue-guest"
  if [ "$result" != "$want" ]; then fail "guest from http://127.0.0.1:$web_port/ (this host): '${result:-nothing}', expected '$want'"; fi
  loopback="; guest from http://127.0.0.1:$web_port/: ${result%% *}"
fi

# The broker's side: the queue the page left, its counters (they may lag a stats tick).
if [ -z "$failed" ]; then
  seen=
  for _ in $(seq 50); do
    seen=$(curl_api "$api/queues/%2F/$queue" | python3 -c '
import json, sys
q = json.load(sys.stdin)
s = q.get("message_stats", {})
print("messages=%s consumers=%s durable=%s publish=%s deliver=%s ack=%s" % (q.get("messages"),
      q.get("consumers"), q.get("durable"), s.get("publish"), s.get("deliver"), s.get("ack")))') || true
    [ "$seen" = "messages=0 consumers=0 durable=True publish=2 deliver=2 ack=2" ] && break
    sleep 0.1
  done
  if [ "$seen" != "messages=0 consumers=0 durable=True publish=2 deliver=2 ack=2" ]; then
    fail "the API's view of queue $queue: $seen"
  fi
  left=$(curl_api "$api/connections" | python3 -c "
import json, sys
print(sum(1 for c in json.load(sys.stdin) if c.get('user') == '$user'))")
  if [ "$left" != 0 ]; then fail "$left connection(s) of $user still listed after the page closed"; fi
fi

if [ -n "$failed" ]; then
  for name in file loopback; do
    [ -f "$work/$name.log" ] || continue
    echo "--- $name: the page's <pre>s"
    console "$name" DOM | python3 -c 'import json, sys; [print(json.loads(l)) for l in sys.stdin]' || true
    echo "--- $name: chromium's log (last 20 lines)"
    tail -20 "$work/$name.log"
  done
  exit 1
fi
echo "browser-ws: OK: Chromium $("$chromium" --version 2>/dev/null | awk '{print $2}'), $file_result; $file_refused$loopback; API: $seen"
