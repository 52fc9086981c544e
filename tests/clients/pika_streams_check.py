"""pika (blocking) against a broker's stream queues (issue 20): declare, publish
with confirms, consumers from `first`, an offset and `last` with their
`x-stream-offset` headers, acks that remove nothing, and the methods a stream
refuses (basic.get, queue.purge, no-ack consumers: 540). Passes against
RabbitMQ 3.10 as against ringmq.

    python tests/clients/pika_streams_check.py amqp://guest:guest@127.0.0.1:5672/
"""
import sys
import time
import uuid

import pika


def read(conn, q, offset, n, prefetch=50):
    ch = conn.channel()
    ch.basic_qos(prefetch_count=prefetch)
    got = []

    def on_message(c, method, props, body):
        got.append((props.headers["x-stream-offset"], body.decode()))
        c.basic_ack(method.delivery_tag)

    ch.basic_consume(q, on_message, arguments={"x-stream-offset": offset})
    deadline = time.time() + 10
    while len(got) < n and time.time() < deadline:
        conn.process_data_events(0.1)
    ch.close()
    return got


def refused(params, q, call):
    conn = pika.BlockingConnection(params)
    try:
        call(conn.channel(), q)
    except pika.exceptions.ConnectionClosedByBroker as e:
        return e.reply_code
    finally:
        if conn.is_open:
            conn.close()
    return None


def main(url):
    params = pika.URLParameters(url)
    conn = pika.BlockingConnection(params)
    ch = conn.channel()
    q = f"pika-stream-{uuid.uuid4().hex[:8]}"
    ch.queue_declare(q, durable=True, arguments={"x-queue-type": "stream"})
    ch.confirm_delivery()
    for i in range(10):
        ch.basic_publish("", q, f"m{i}".encode(), properties=pika.BasicProperties(headers={"i": i}))
    want = [(i, f"m{i}") for i in range(10)]
    assert read(conn, q, "first", 10) == want, "first"
    assert read(conn, q, "first", 10) == want, "acked, and still there"
    assert read(conn, q, 6, 4) == want[6:], "offset 6"
    assert read(conn, q, "last", 1) == want[9:], "last"
    assert refused(params, q, lambda c, q: c.basic_get(q)) == 540, "basic.get"
    assert refused(params, q, lambda c, q: c.queue_purge(q)) == 540, "queue.purge"

    def no_ack(c, q):
        c.basic_qos(prefetch_count=10)
        c.basic_consume(q, lambda *a: None, auto_ack=True)

    assert refused(params, q, no_ack) == 540, "no-ack consumer"
    ch.queue_delete(q)
    conn.close()
    print("pika (streams): ok (declare, 10 confirmed, first/offset/last readers, acks keep, get/purge/no-ack refused)")


if __name__ == "__main__":
    main(sys.argv[1])
