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
# left, no consumer. The user and the queue are deleted at the end.
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
cleanup() {
  curl_api -o /dev/null -X DELETE "$api/queues/%2F/$queue" 2>/dev/null || true
  curl_api -o /dev/null -X DELETE "$api/users/$user" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

curl_api -o /dev/null -X DELETE "$api/queues/%2F/$queue" 2>/dev/null || true
curl_api -o /dev/null -X PUT "$api/users/$user" -d "{\"password\":\"$pass\",\"tags\":\"\"}"
curl_api -o /dev/null -X PUT "$api/permissions/%2F/$user" -d '{"configure":".*","write":".*","read":".*"}'

query="host=$host&port=$port&user=$user&pass=$pass&queue=$queue&body=hello-from-chromium&large=300000"
if [ "$api_user" = guest ]; then
  # The password URL-encoded: the page reads it with URLSearchParams.
  query+="&refuse=guest:$(python3 -c 'import sys, urllib.parse; print(urllib.parse.quote(sys.argv[1], safe=""))' "$api_pass")"
fi
# First, so it wins: the page takes the first value of each parameter.
if [ -n "${BROWSER_WS_QUERY:-}" ]; then query="$BROWSER_WS_QUERY&$query"; fi

# The page closes its window when it has its outcome, which ends Chromium; the
# timeout only guards against a hang. The console messages are in the log.
rc=0
timeout -k 5 60 "$chromium" --headless=new --no-sandbox --disable-gpu --no-first-run \
  --user-data-dir="$work/profile" --enable-logging=stderr --v=0 \
  "file://$here/browser_ws/amqp.html?$query" >"$work/chromium.log" 2>&1 || rc=$?

# The page's console messages, one a line: [...:INFO:CONSOLE:N] "RINGMQ-WHAT text", source: URL (N)
console() { sed -n "s/.*:INFO:CONSOLE[^]]*] \"RINGMQ-$1 \(.*\)\", source: .*/\1/p" "$work/chromium.log"; }
result=$(console RESULT | tail -1)
refused=$(console REFUSED | tail -1)
failed=
fail() {
  echo "browser-ws: FAIL: $*"
  failed=1
}
if [ "$rc" != 0 ]; then fail "chromium exited with $rc (124: no outcome within 60 s)"; fi
want="OK body=hello-from-chromium large=300000"
if [ "$result" != "$want" ]; then fail "the page says '${result:-nothing}', expected '$want'"; fi
if [ "$api_user" = guest ] && [[ $refused != "refused guest: 403 ACCESS_REFUSED"* ]]; then
  fail "guest from a file:// page (Origin null): '${refused:-nothing}', expected a 403 refusal"
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
  echo "--- the page's <pre>s"
  console DOM | python3 -c 'import json, sys; [print(json.loads(l)) for l in sys.stdin]' || true
  echo "--- chromium's log (last 30 lines)"
  tail -30 "$work/chromium.log"
  exit 1
fi
echo "browser-ws: OK: Chromium $("$chromium" --version 2>/dev/null | awk '{print $2}'), $result; $refused; API: $seen"
