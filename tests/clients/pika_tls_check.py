"""pika (Python, blocking) over AMQPS: TLS 1.2 and 1.3 with the CA the broker's
certificate was signed by (ssl_options), a publish with confirms, a get and a
consume of a body larger than a TLS record; then a context trusting another
CA (none: the system's, which do not include the test CA) must be refused.

    python tests/clients/pika_tls_check.py amqps://guest:guest@localhost:5671/ CA.pem
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
        virtual_host=urllib.parse.unquote(u.path[1:]) or "/",
        credentials=pika.PlainCredentials(u.username or "guest", u.password or "guest"),
        ssl_options=pika.SSLOptions(context, server_hostname=u.hostname),
        connection_attempts=1,
    )


def round_trip(url: str, context: ssl.SSLContext, want: str) -> None:
    conn = pika.BlockingConnection(params(url, context))
    sock = conn._impl._transport._sock  # the SSLSocket: which version was agreed
    assert sock.version() == want, (sock.version(), want)
    ch = conn.channel()
    ch.confirm_delivery()
    q = f"pika-tls-{uuid.uuid4().hex[:8]}"
    ch.queue_declare(q, exclusive=True)
    big = bytes(range(256)) * 300  # 76,800 bytes: several TLS records
    for i in range(20):
        ch.basic_publish("", q, f"m{i}".encode())
    ch.basic_publish("", q, big)
    method, _, body = ch.basic_get(q, auto_ack=True)
    assert body == b"m0", body
    got = []
    for method, _, body in ch.consume(q, inactivity_timeout=5):
        assert method is not None, f"only {len(got)} deliveries"
        ch.basic_ack(method.delivery_tag)
        got.append(body)
        if len(got) == 20:
            break
    ch.cancel()
    assert got[:19] == [f"m{i}".encode() for i in range(1, 20)], got[:19]
    assert got[19] == big, len(got[19])
    conn.close()


def main(url: str, ca: str) -> None:
    for version, want in [(ssl.TLSVersion.TLSv1_2, "TLSv1.2"), (ssl.TLSVersion.TLSv1_3, "TLSv1.3")]:
        context = ssl.create_default_context(cafile=ca)
        context.minimum_version = context.maximum_version = version
        round_trip(url, context, want)
    # Without the test CA: the client refuses the certificate.
    try:
        pika.BlockingConnection(params(url, ssl.create_default_context()))
    except (pika.exceptions.AMQPConnectionError, ssl.SSLError) as e:
        assert "CERTIFICATE_VERIFY_FAILED" in repr(e), repr(e)
    else:
        raise AssertionError("a certificate of an unknown CA was accepted")
    print("pika (TLS): ok")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
