"""aio-pika (asyncio, on aiormq/pamqp) against a broker: publish and consume with
confirms, RPC over direct reply-to, a deliberate channel error and the same
connection reused after it.

    python tests/clients/aio_pika_check.py amqp://guest:guest@127.0.0.1:5672/
"""
import asyncio
import sys
import uuid

import aio_pika
import aiormq


async def main(url: str) -> None:
    conn = await aio_pika.connect_robust(url, client_properties={"connection_name": "aio-pika check"})
    async with conn:
        ch = await conn.channel(publisher_confirms=True)
        q = await ch.declare_queue(f"aio-pika-{uuid.uuid4().hex[:8]}", durable=True)
        # Publish with confirms: each publish awaits the broker's basic.ack.
        for i in range(50):
            await ch.default_exchange.publish(
                aio_pika.Message(f"m{i}".encode(), delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                                 headers={"i": i}),
                routing_key=q.name,
            )
        got = []
        async with q.iterator() as it:
            async for m in it:
                async with m.process():
                    got.append(m.body.decode())
                    assert m.headers["i"] == len(got) - 1, m.headers
                if len(got) == 50:
                    break
        assert got == [f"m{i}" for i in range(50)], got

        # RPC over direct reply-to: the server consumes requests, replies to reply_to.
        rpc_q = await ch.declare_queue("", exclusive=True)

        async def serve(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            async with message.process():
                await ch.default_exchange.publish(
                    aio_pika.Message(b"pong:" + message.body, correlation_id=message.correlation_id),
                    routing_key=message.reply_to,
                )

        await rpc_q.consume(serve)
        client_ch = await conn.channel()
        replies: asyncio.Queue = asyncio.Queue()
        reply_to = await client_ch.get_queue("amq.rabbitmq.reply-to", ensure=False)
        await reply_to.consume(lambda m: replies.put_nowait(m), no_ack=True)
        corr = uuid.uuid4().hex
        await client_ch.default_exchange.publish(
            aio_pika.Message(b"ping", reply_to="amq.rabbitmq.reply-to", correlation_id=corr),
            routing_key=rpc_q.name,
        )
        reply = await asyncio.wait_for(replies.get(), 10)
        assert reply.body == b"pong:ping" and reply.correlation_id == corr, (reply.body, reply.correlation_id)

        # A deliberate channel error: passive declare of a missing queue -> 404, the
        # channel closes, the connection stays usable.
        bad = await conn.channel()
        try:
            await bad.declare_queue(f"missing-{uuid.uuid4().hex}", passive=True)
            raise AssertionError("passive declare of a missing queue succeeded")
        except aiormq.exceptions.ChannelNotFoundEntity as e:
            assert "NOT_FOUND" in str(e), e
        again = await conn.channel(publisher_confirms=True)
        q2 = await again.declare_queue("", exclusive=True)
        await again.default_exchange.publish(aio_pika.Message(b"after error"), routing_key=q2.name)
        m = await q2.get(timeout=5)
        assert m.body == b"after error"
        await m.ack()
        await q.delete(if_unused=False, if_empty=False)
    print("aio-pika: ok (50 confirmed publishes consumed in order, direct reply-to RPC, "
          "channel error 404 then the connection reused)")


if __name__ == "__main__":
    asyncio.run(asyncio.wait_for(main(sys.argv[1]), 60))
