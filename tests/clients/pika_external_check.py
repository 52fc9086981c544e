"""pika (Python, blocking) logging in with SASL EXTERNAL over AMQPS: the
client certificate's CN (guest) is the user, no password is sent
(pika.credentials.ExternalCredentials). The broker runs with
--tls-verify-peer --ca-cert CA.pem --tls-cert-login-from common_name, so a
client without a certificate is refused in the TLS handshake.

    python tests/clients/pika_external_check.py amqps://localhost:5671/ CA.pem CLIENT.pem CLIENT.key
"""
import ssl
import sys
import urllib.parse
import uuid

import pika


def params(url: str, context: ssl.SSLContext) -> pika.ConnectionParameters:
    u = urllib.parse.urlparse(url)
    return pika.ConnectionParameters(
        host=u.hostname,
        port=u.port or 5671,
        credentials=pika.credentials.ExternalCredentials(),
        ssl_options=pika.SSLOptions(context, server_hostname=u.hostname),
        connection_attempts=1,
    )


def main(url: str, ca: str, cert: str, key: str) -> None:
    context = ssl.create_default_context(cafile=ca)
    context.load_cert_chain(cert, key)
    conn = pika.BlockingConnection(params(url, context))
    ch = conn.channel()
    q = f"pika-external-{uuid.uuid4().hex[:8]}"
    ch.queue_declare(q, exclusive=True)
    ch.basic_publish("", q, b"over EXTERNAL")
    _, _, body = ch.basic_get(q, auto_ack=True)
    assert body == b"over EXTERNAL", body
    conn.close()
    # Without a certificate: the broker ends the handshake.
    try:
        pika.BlockingConnection(params(url, ssl.create_default_context(cafile=ca)))
    except (pika.exceptions.AMQPConnectionError, ssl.SSLError, ConnectionError) as e:
        print(f"refused without a certificate: {type(e).__name__}")
    else:
        raise AssertionError("a client without a certificate got in")
    print("pika (EXTERNAL): ok")


if __name__ == "__main__":
    main(*sys.argv[1:5])
