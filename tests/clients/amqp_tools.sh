#!/usr/bin/env bash
# Debian's amqp-tools (C, librabbitmq) against a broker: declare, publish
# (persistent, with a header and a content type), get, consume, delete.
#   bash tests/clients/amqp_tools.sh amqp://guest:guest@127.0.0.1:5672/
set -euo pipefail
url=${1:?usage: amqp_tools.sh AMQP_URL}
# librabbitmq reads "amqp://host/" as the vhost "" (as the AMQP URI spec says);
# without the slash it is the default vhost "/".
url=${url%/}
q="amqp-tools-$$"
out=$(mktemp -d)
trap 'rm -rf "$out"; amqp-delete-queue --url="$url" -q "$q" >/dev/null 2>&1 || true' EXIT

[ "$(amqp-declare-queue --url="$url" -d -q "$q")" = "$q" ]
for i in 1 2 3; do
  amqp-publish --url="$url" -r "$q" -p -C text/plain -H "n: $i" -b "body-$i"
done
# amqp-get takes one message (and acks it).
[ "$(amqp-get --url="$url" -q "$q")" = "body-1" ]
# amqp-consume runs the command per message with the body on stdin; -c 2 stops after two.
printf '#!/bin/sh\ncat >> "%s/consumed"; echo >> "%s/consumed"\n' "$out" "$out" > "$out/save"
chmod +x "$out/save"
amqp-consume --url="$url" -q "$q" -c 2 "$out/save"
[ "$(cat "$out/consumed")" = "$(printf 'body-2\nbody-3')" ] || { echo "consumed: $(cat "$out/consumed")"; exit 1; }
# Nothing left: amqp-get exits 2 on an empty queue.
if amqp-get --url="$url" -q "$q" >/dev/null 2>&1; then echo "queue not empty"; exit 1; fi
amqp-delete-queue --url="$url" -q "$q" >/dev/null
echo "amqp-tools: ok (declare, publish x3 persistent with header, get, consume x2, delete)"
