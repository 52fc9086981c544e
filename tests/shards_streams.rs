//! Stream queues with `--shards 2` (issue 20), on both backends: publishes
//! from either shard land at the stream's offsets on its owner; a consumer on
//! either shard reads with `x-stream-offset` headers and acks that return
//! credit (its reader is on the owner, which sends a consumer on the other
//! shard what its permits allow: `amqp::stream`), and server-side offset
//! tracking resumes after its last ack (the acks cross back). The Unix
//! socket is always shard 0's; TCP connections land where the kernel puts
//! them. Needs the spawned binary's shards: skipped against `RINGMQ_TEST_URI`.

mod common;

use common::http::Api;
use common::raw::RawConn;
use common::streams::*;
use common::*;
use ringmq::core::model::meta::ShardId;
use ringmq_codec::{
    BasicConsume, BasicQos, FieldTable as CodecTable, FieldValue, Method, QueueDeclare, ShortStr, Table,
};

/// A queue name with `prefix` that shard `shard` owns (of 2).
fn owned_by(shard: u16, prefix: &str) -> String {
    (0..)
        .map(|i| format!("{prefix}-{i}"))
        .find(|n| ShardId::owner_of_queue("/", n, 2) == ShardId(shard))
        .expect("some name")
}

/// `x-stream-offset` = `value` (a string: first, last, next).
fn stream_consume(_q: &str, value: &str, _tag: &str) -> CodecTable {
    let mut args = CodecTable::default();
    args.insert(
        ringmq_codec::short!("x-stream-offset"),
        FieldValue::LongString(value.as_bytes().to_vec()),
    );
    args
}

/// basic.consume of `q` with `args` and consumer tag `tag`, manual acks.
fn consume_of<'a>(q: &'a str, args: &CodecTable, tag: &'a str) -> BasicConsume<'a> {
    let mut entries = Vec::new();
    args.encode_entries(&mut entries);
    BasicConsume {
        ticket: 0,
        queue: ShortStr::new(q).unwrap(),
        consumer_tag: ShortStr::new(tag).unwrap(),
        no_local: false,
        no_ack: false,
        exclusive: false,
        no_wait: false,
        arguments: Table::parse(Box::leak(entries.into_boxed_slice())).unwrap(),
    }
}

/// The next `n` deliveries on a raw connection: their delivery tags, their
/// `x-stream-offset` headers and their bodies (one body frame each: small).
async fn deliveries(raw: &mut RawConn, n: usize) -> (Vec<u64>, Vec<i64>, Vec<String>) {
    let (mut tags, mut offsets, mut bodies) = (Vec::new(), Vec::new(), Vec::new());
    while tags.len() < n {
        let d = raw.expect("basic.deliver").await;
        tags.push(d.deliver.unwrap());
        let h = raw.expect("header").await;
        offsets.push(h.stream_offset.expect("x-stream-offset"));
        // An empty body has no body frame; these are one frame each.
        let body = match h.body_size.unwrap() {
            0 => String::new(),
            _ => String::from_utf8(raw.expect("body").await.body.unwrap()).unwrap(),
        };
        bodies.push(body);
    }
    (tags, offsets, bodies)
}

/// Nothing more comes for a moment (the prefetch holds it back).
async fn assert_quiet_raw(raw: &mut RawConn) {
    if let Ok(Some(g)) = tokio::time::timeout(std::time::Duration::from_millis(300), raw.recv_any()).await {
        assert_eq!(g.name, "heartbeat", "nothing while the prefetch is used up: {g:?}");
    }
}

#[test]
fn stream_consumers_read_on_either_shard() {
    for io in common::tls::BACKENDS {
        let dir = tempfile::Builder::new().prefix("ringmq-unix-").tempdir().unwrap();
        let sock = dir.path().join("amqp.sock");
        let b = Broker::with_args(&["--shards", "2", "--io", io, "--amqp-unix-path", sock.to_str().unwrap()]);
        if b.skip_external("stream_consumers_read_on_either_shard") {
            return;
        }
        // Boxed: the body's future is too large for the test thread's stack
        // in a debug build.
        run(Box::pin(async {
            let q = owned_by(1, &unique("s-shards"));
            // Published from shard 0 (the Unix socket: every publish crosses)
            // and from TCP connections (either shard), with confirms.
            let setup = connect(&b).await;
            let ch = confirm_channel(&setup).await;
            declare_stream(&ch, &q, &[]).await;
            let mut raw = RawConn::unix_guest(&sock).await; // shard 0's
            let mut out = Vec::new();
            for _ in 0..3 {
                RawConn::encode_publish(&mut out, 1, "", &q);
            }
            raw.send(&out).await;
            // Counted through shard 0 too: its queue.declare-ok asks the owner.
            let mut counted = 0;
            for _ in 0..500 {
                let passive = QueueDeclare {
                    ticket: 0,
                    queue: ShortStr::new(&q).unwrap(),
                    passive: true,
                    durable: false,
                    exclusive: false,
                    auto_delete: false,
                    no_wait: false,
                    arguments: Table::EMPTY,
                };
                raw.send_method(1, &Method::QueueDeclare(passive)).await;
                counted = raw.expect("queue.declare-ok").await.declare_ok.unwrap().0;
                if counted == 3 {
                    break;
                }
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
            assert_eq!(counted, 3, "shard 0's publishes, counted through shard 0");
            for i in 3..6 {
                let conn = connect(&b).await;
                let ch = confirm_channel(&conn).await;
                assert!(publish(&ch, "", &q, format!("m{i}").as_bytes()).await.is_ack());
            }
            // A consumer on shard 0, not the stream's: its reader is on the
            // owner, which sends it what the prefetch allows.
            let qos = BasicQos {
                prefetch_size: 0,
                prefetch_count: 2,
                global: false,
            };
            raw.send_method(1, &Method::BasicQos(qos)).await;
            raw.expect("basic.qos-ok").await;
            let first = stream_consume(&q, "first", "reader-0");
            raw.send_method(1, &Method::BasicConsume(consume_of(&q, &first, "reader-0")))
                .await;
            raw.expect("basic.consume-ok").await;
            let (tags, offsets, bodies) = deliveries(&mut raw, 2).await;
            assert_eq!(offsets, [0, 1], "from first, each with its x-stream-offset");
            assert_eq!(bodies, ["", ""], "shard 0's own publishes");
            // Two unacked: the prefetch holds the rest back.
            assert_quiet_raw(&mut raw).await;
            let ack = ringmq_codec::BasicAck {
                delivery_tag: tags[1],
                multiple: true,
            };
            raw.send_method(1, &Method::BasicAck(ack)).await;
            let (tags, offsets, bodies) = deliveries(&mut raw, 2).await;
            assert_eq!(offsets, [2, 3]);
            assert_eq!(bodies, ["", "m3"]);
            let ack = ringmq_codec::BasicAck {
                delivery_tag: tags[1],
                multiple: true,
            };
            raw.send_method(1, &Method::BasicAck(ack)).await;
            let (_, offsets, bodies) = deliveries(&mut raw, 2).await;
            assert_eq!(offsets, [4, 5]);
            assert_eq!(bodies, ["m4", "m5"]);
            // The API lists the consumer by its connection's shard (0) and
            // its offset by the owner's reader (shard 1): both in one row,
            // in the queue's consumer_details and in /api/consumers.
            let api = Api::new(b.http_url(), b.user(), b.pass());
            let in_queue = api.ok(&format!("/api/queues/%2F/{q}"))["consumer_details"].clone();
            for (what, list) in [
                ("consumer_details", in_queue),
                ("/api/consumers", api.ok("/api/consumers")),
            ] {
                let row = (list.as_array().expect("a list").iter())
                    .find(|c| c["consumer_tag"] == "reader-0")
                    .unwrap_or_else(|| panic!("reader-0 in {what}: {list}"))
                    .clone();
                assert_eq!(row["stream_offset"], 6, "{what}: the owner's offset of reader-0: {row}");
                assert!(
                    row.get("_awaits_stream_offset").is_none(),
                    "{what}: no merge's mark left: {row}"
                );
            }
            // Server-side offset tracking from shard 0: the owner keeps the
            // reader's offset, moved by the acks that cross back.
            let tracked_on = |n: u16| {
                let mut args = CodecTable::default();
                args.insert(ringmq_codec::short!("x-stream-offset"), FieldValue::Void);
                (n, args)
            };
            let (n, args) = tracked_on(2);
            raw.open_channel(n).await;
            raw.send_method(n, &Method::BasicQos(qos)).await;
            raw.expect("basic.qos-ok").await;
            raw.send_method(n, &Method::BasicConsume(consume_of(&q, &args, "tracked")))
                .await;
            raw.expect("basic.consume-ok").await;
            let (tags, offsets, _) = deliveries(&mut raw, 2).await;
            assert_eq!(offsets, [0, 1], "null: from the start the first time");
            let ack = ringmq_codec::BasicAck {
                delivery_tag: tags[1],
                multiple: true,
            };
            raw.send_method(n, &Method::BasicAck(ack)).await;
            let (_, offsets, _) = deliveries(&mut raw, 2).await;
            assert_eq!(offsets, [2, 3], "sent, not acked");
            let close = ringmq_codec::ChannelClose {
                reply_code: 200,
                reply_text: ShortStr::new("bye").unwrap(),
                class_id: 0,
                method_id: 0,
            };
            raw.send_method(n, &Method::ChannelClose(close)).await;
            raw.expect("channel.close-ok").await;
            let (n, args) = tracked_on(3);
            raw.open_channel(n).await;
            raw.send_method(n, &Method::BasicQos(qos)).await;
            raw.expect("basic.qos-ok").await;
            raw.send_method(n, &Method::BasicConsume(consume_of(&q, &args, "tracked")))
                .await;
            raw.expect("basic.consume-ok").await;
            let (_, offsets, _) = deliveries(&mut raw, 2).await;
            assert_eq!(offsets, [2, 3], "resumed after the last ack");
            // On shard 1 (TCP, tried until a connection lands there: each
            // try is a coin toss, 32 of them all on shard 0 is 2^-32): every
            // message at its offset, the prefetch's credit returned by acks.
            let mut reader_on_1 = None;
            for _ in 0..32 {
                let conn = connect(&b).await;
                let ch = channel(&conn).await;
                within("qos", ch.basic_qos(2, BasicQosOptions::default()))
                    .await
                    .unwrap();
                let args = table(&[("x-stream-offset", lstr("first"))]);
                let consume = ch.basic_consume(q.as_str().into(), "".into(), BasicConsumeOptions::default(), args);
                match within("consume", consume).await {
                    Ok(c) => {
                        reader_on_1 = Some((conn, ch, c));
                        break;
                    }
                    Err(e) => {
                        let e = format!("{e:?}");
                        assert!(e.contains("on shard 0 (the stream is on shard 1)"), "{e}");
                    }
                }
            }
            let (_conn, rch, mut c) = reader_on_1.expect("a connection on shard 1 in 32 tries");
            let d0 = next(&mut c).await;
            let d1 = next(&mut c).await;
            assert_eq!((offset_of(&d0), offset_of(&d1)), (0, 1));
            assert_quiet(&mut c).await;
            within(
                "ack",
                rch.basic_ack(d1.delivery_tag, BasicAckOptions { multiple: true }),
            )
            .await
            .unwrap();
            let rest = take(&rch, &mut c, 4).await;
            let offsets: Vec<i64> = rest.iter().map(|r| r.0).collect();
            assert_eq!(offsets, [2, 3, 4, 5]);
            let bodies: Vec<&str> = rest.iter().map(|r| r.1.as_str()).collect();
            assert_eq!(bodies, ["", "m3", "m4", "m5"], "shard 0's three (empty), then the rest");
            delete(&ch, &q).await;
        }));
    }
}
