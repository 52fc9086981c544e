#!/usr/bin/env bash
# A test CA and a server certificate for localhost/127.0.0.1 signed by it (ECDSA
# P-256, 30 days), for running the broker's AMQPS listener in CI:
#   DIR/ca.pem (what clients trust), DIR/cert.pem (leaf + CA), DIR/key.pem,
#   and a client certificate for CN=guest: DIR/client.pem, DIR/client.key
#
#   bash tests/clients/tls_cert.sh DIR
set -euo pipefail
dir=${1:?usage: tls_cert.sh DIR}
mkdir -p "$dir"
cd "$dir"
ec=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes)
# The extensions a CA and a server certificate need for strict path validation
# (sslyze's, which checks the listener against Mozilla's configuration in CI).
openssl req -x509 "${ec[@]}" -keyout ca.key -out ca.pem -days 30 -subj "/CN=ringmq CI CA" \
  -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
openssl req "${ec[@]}" -keyout key.pem -out leaf.csr -subj /CN=localhost 2>/dev/null
printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n' >leaf.ext
openssl x509 -req -in leaf.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 30 \
  -extfile leaf.ext -out leaf.pem 2>/dev/null
cat leaf.pem ca.pem >cert.pem
# A client certificate for SASL EXTERNAL (CN=guest), signed by the same CA:
#   DIR/client.pem (leaf + CA), DIR/client.key
openssl req "${ec[@]}" -keyout client.key -out client.csr -subj /CN=guest 2>/dev/null
printf 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n' >client.ext
openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 30 \
  -extfile client.ext -out client-leaf.pem 2>/dev/null
cat client-leaf.pem ca.pem >client.pem
