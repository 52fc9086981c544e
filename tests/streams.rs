//! Stream queues over AMQP 0-9-1 (issue 20): declare with RabbitMQ's checks,
//! consumers reading from every kind of `x-stream-offset`, acks that only
//! return credit, the methods a stream refuses, the API's view, definitions,
//! restart and kill -9. Also passes against RabbitMQ 3.10 (`RINGMQ_TEST_URI`,
//! `RINGMQ_TEST_HTTP_URI`), except what restarts the broker or needs
//! ringmq's segment sizes.

mod common;

use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use common::http::Api;
use common::streams::*;
use common::*;
use lapin::Channel;
use serde_json::json;

#[test]
fn declare_is_validated_as_rabbitmq_does() {
    let b = Broker::new();
    run(async {
        let conn = connect(&b).await;
        let q = unique("s-decl");
        let props = [
            (QueueDeclareOptions::default(), "non-durable"),
            (
                QueueDeclareOptions {
                    durable: true,
                    auto_delete: true,
                    ..Default::default()
                },
                "auto-delete",
            ),
            (
                QueueDeclareOptions {
                    durable: true,
                    exclusive: true,
                    ..Default::default()
                },
                "exclusive-owner",
            ),
        ];
        for (opts, property) in props {
            let ch = channel(&conn).await;
            let r = within("declare", ch.queue_declare(q.as_str().into(), opts, stream(&[]))).await;
            let text = format!("PRECONDITION_FAILED - invalid property '{property}' for queue '{q}' in vhost '/'");
            assert_amqp_err(r, 406, &text);
        }
        let refused = [
            ("x-max-priority", AMQPValue::LongInt(5)),
            ("x-message-ttl", AMQPValue::LongInt(1000)),
            ("x-expires", AMQPValue::LongInt(1000)),
            ("x-max-length", AMQPValue::LongInt(5)),
            ("x-dead-letter-exchange", lstr("x")),
            ("x-overflow", lstr("reject-publish")),
            ("x-single-active-consumer", AMQPValue::Boolean(true)),
            ("x-delivery-limit", AMQPValue::LongInt(3)),
        ];
        for (k, v) in refused {
            let ch = channel(&conn).await;
            let r = within(
                "declare",
                ch.queue_declare(q.as_str().into(), durable(), stream(&[(k, v)])),
            )
            .await;
            let text = format!(
                "PRECONDITION_FAILED - invalid arg '{k}' for queue '{q}' in vhost '/' of queue type rabbit_stream_queue"
            );
            assert_amqp_err(r, 406, &text);
        }
        for (v, detail) in [
            (lstr("1X"), "invalid_max_age"),
            (AMQPValue::LongInt(5), "{unacceptable_type,signedint}"),
        ] {
            let ch = channel(&conn).await;
            let r = within(
                "declare",
                ch.queue_declare(q.as_str().into(), durable(), stream(&[("x-max-age", v)])),
            )
            .await;
            let text = format!("PRECONDITION_FAILED - invalid arg 'x-max-age' for queue '{q}' in vhost '/': {detail}");
            assert_amqp_err(r, 406, &text);
        }
        let ch = channel(&conn).await;
        let args = [
            ("x-max-age", lstr("7D")),
            ("x-max-length-bytes", AMQPValue::LongLongInt(1 << 30)),
            ("x-stream-max-segment-size-bytes", AMQPValue::LongInt(1 << 20)),
        ];
        declare_stream(&ch, &q, &args).await;
        declare_stream(&ch, &q, &args).await;
        let api = Api::new(b.http_url(), b.user(), b.pass());
        assert_eq!(api.ok(&format!("/api/queues/%2F/{q}"))["type"], "stream");
        delete(&ch, &q).await;
    });
}

#[test]
fn consumers_start_at_every_kind_of_offset() {
    let b = Broker::new();
    run(async {
        let conn = connect(&b).await;
        let pub_ch = confirm_channel(&conn).await;
        let q = unique("s-offsets");
        declare_stream(&pub_ch, &q, &[]).await;
        publish_all(&pub_ch, &q, bodies_of(0..10)).await;
        let (ch, mut c) = reader(&conn, &q, 100, Some(lstr("first"))).await;
        assert_eq!(take(&ch, &mut c, 10).await, numbered(0..10));
        let (ch, mut c) = reader(&conn, &q, 100, Some(AMQPValue::LongLongInt(6))).await;
        assert_eq!(take(&ch, &mut c, 4).await, numbered(6..10));
        let (ch, mut c) = reader(&conn, &q, 100, Some(AMQPValue::LongInt(-3))).await;
        assert_eq!(take(&ch, &mut c, 10).await, numbered(0..10));
        let (lch, mut last) = reader(&conn, &q, 100, Some(lstr("last"))).await;
        assert_eq!(take(&lch, &mut last, 1).await, numbered(9..10));
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
        let (ch, mut c) = reader(&conn, &q, 100, Some(AMQPValue::Timestamp(now - 60))).await;
        assert_eq!(take(&ch, &mut c, 10).await, numbered(0..10));
        let (ch, mut c) = reader(&conn, &q, 100, Some(lstr("1h"))).await;
        assert_eq!(take(&ch, &mut c, 10).await, numbered(0..10));
        // From the future (RabbitMQ attaches at the end), from `next` and by
        // default: only what comes next.
        let (fch, mut future) = reader(&conn, &q, 100, Some(AMQPValue::Timestamp(now + 3600))).await;
        let (nch, mut next_c) = reader(&conn, &q, 100, Some(lstr("next"))).await;
        let (dch, mut default) = reader(&conn, &q, 100, None).await;
        let (ach, mut ahead) = reader(&conn, &q, 100, Some(AMQPValue::LongLongInt(11))).await;
        assert_quiet(&mut next_c).await;
        assert_quiet(&mut default).await;
        assert_quiet(&mut future).await;
        publish_all(&pub_ch, &q, bodies_of(10..12)).await;
        assert_eq!(take(&nch, &mut next_c, 2).await, numbered(10..12));
        assert_eq!(take(&dch, &mut default, 2).await, numbered(10..12));
        assert_eq!(take(&fch, &mut future, 2).await, numbered(10..12));
        assert_eq!(
            take(&ach, &mut ahead, 1).await,
            numbered(11..12),
            "an offset ahead waits for it"
        );
        assert_eq!(take(&lch, &mut last, 2).await, numbered(10..12), "readers go on");
        delete(&pub_ch, &q).await;
    });
}

/// `--default-stream-offset first` (LavinMQ's default): a consumer without
/// `x-stream-offset` reads from the start; one that names an offset still
/// gets it. Needs the spawned binary's flag: skipped against `RINGMQ_TEST_URI`.
#[test]
fn the_default_offset_is_one_setting_away() {
    let b = Broker::with_args(&["--default-stream-offset", "first"]);
    if b.skip_external("the_default_offset_is_one_setting_away") {
        return;
    }
    run(async {
        let conn = connect(&b).await;
        let pub_ch = confirm_channel(&conn).await;
        let q = unique("s-default-first");
        declare_stream(&pub_ch, &q, &[]).await;
        publish_all(&pub_ch, &q, bodies_of(0..5)).await;
        let (dch, mut default) = reader(&conn, &q, 100, None).await;
        assert_eq!(take(&dch, &mut default, 5).await, numbered(0..5), "from the start");
        let (nch, mut next_c) = reader(&conn, &q, 100, Some(lstr("next"))).await;
        assert_quiet(&mut next_c).await;
        publish_all(&pub_ch, &q, bodies_of(5..6)).await;
        assert_eq!(take(&nch, &mut next_c, 1).await, numbered(5..6), "next is still next");
        delete(&pub_ch, &q).await;
    });
}

/// Acks remove nothing: every consumer reads every message, a later one from
/// the start again; the prefetch bounds what a consumer has unacked.
#[test]
fn acks_only_return_credit() {
    let b = Broker::new();
    run(async {
        let conn = connect(&b).await;
        let pub_ch = confirm_channel(&conn).await;
        let q = unique("s-acks");
        // A segment per message: an ack that dropped anything would show.
        // (Not on RabbitMQ: its offsets skip one per segment that small.)
        let seg = [("x-stream-max-segment-size-bytes", AMQPValue::LongInt(100))];
        let seg = if b.is_external() { &[][..] } else { &seg[..] };
        declare_stream(&pub_ch, &q, seg).await;
        publish_all(&pub_ch, &q, bodies_of(0..6)).await;
        let (ach, mut a) = reader(&conn, &q, 100, Some(lstr("first"))).await;
        let (bch, mut b2) = reader(&conn, &q, 100, Some(lstr("first"))).await;
        assert_eq!(take(&ach, &mut a, 6).await, numbered(0..6));
        assert_eq!(take(&bch, &mut b2, 6).await, numbered(0..6));
        // Prefetch 2, nothing acked: two, then nothing until an ack.
        let (pch, mut p) = reader(&conn, &q, 2, Some(lstr("first"))).await;
        let d0 = next(&mut p).await;
        let d1 = next(&mut p).await;
        assert_eq!((offset_of(&d0), offset_of(&d1)), (0, 1));
        assert_quiet(&mut p).await;
        within(
            "ack",
            pch.basic_ack(d1.delivery_tag, BasicAckOptions { multiple: true }),
        )
        .await
        .unwrap();
        assert_eq!(take(&pch, &mut p, 4).await, numbered(2..6));
        let (ch, mut again) = reader(&conn, &q, 100, Some(lstr("first"))).await;
        assert_eq!(take(&ch, &mut again, 6).await, numbered(0..6), "acked, and still there");
        let api = Api::new(b.http_url(), b.user(), b.pass());
        let view = api.ok(&format!("/api/queues/%2F/{q}"));
        assert_eq!(view["type"], "stream");
        if !b.is_external() {
            // RabbitMQ's counts lag by its stats interval.
            assert_eq!(
                (view["messages"].clone(), view["messages_ready"].clone()),
                (json!(6), json!(6))
            );
            assert_eq!(view["messages_unacknowledged"], 0);
            assert_eq!(view["stream"]["last_offset"], 5);
            // The vhost's and the overview's totals count them too.
            assert_eq!(api.ok("/api/vhosts/%2F")["messages_ready"], 6);
            assert_eq!(api.ok("/api/overview")["queue_totals"]["messages_ready"], 6);
        }
        delete(&pub_ch, &q).await;
    });
}

/// The API lists a stream's consumers with the offset each reads next
/// (`stream_offset`, ringmq's field: RabbitMQ 3.10 shows none for AMQP
/// consumers), in the queue's `consumer_details` and in `/api/consumers`.
#[test]
fn the_api_shows_each_consumers_offset() {
    let b = Broker::new();
    run(async {
        let conn = connect(&b).await;
        let pub_ch = confirm_channel(&conn).await;
        let q = unique("s-api-offsets");
        declare_stream(&pub_ch, &q, &[]).await;
        publish_all(&pub_ch, &q, bodies_of(0..6)).await;
        // Prefetch 2, nothing acked: the broker has sent 0 and 1 and waits.
        let (pch, mut p) = reader(&conn, &q, 2, Some(lstr("first"))).await;
        let d1 = [next(&mut p).await, next(&mut p).await].map(|d| offset_of(&d));
        assert_eq!(d1, [0, 1]);
        let (_ach, mut at4) = reader(&conn, &q, 1, Some(AMQPValue::LongLongInt(4))).await;
        assert_eq!(offset_of(&next(&mut at4).await), 4);
        let api = Api::new(b.http_url(), b.user(), b.pass());
        let offsets = |path: &str, items: &dyn Fn(&serde_json::Value) -> serde_json::Value| {
            let v = api.ok(path);
            let mut got: Vec<(String, serde_json::Value)> = items(&v)
                .as_array()
                .expect("a list")
                .iter()
                .filter(|c| c["queue"]["name"] == q.as_str())
                .map(|c| {
                    (
                        c["consumer_tag"].as_str().unwrap().to_owned(),
                        c["stream_offset"].clone(),
                    )
                })
                .collect();
            got.sort_by(|a, b| a.0.cmp(&b.0));
            got
        };
        let (ptag, atag) = (p.tag().to_string(), at4.tag().to_string());
        let want = |p_at: i64| {
            let mut w = vec![(ptag.clone(), json!(p_at)), (atag.clone(), json!(5))];
            w.sort_by(|a, b| a.0.cmp(&b.0));
            w
        };
        let in_queue = |v: &serde_json::Value| v["consumer_details"].clone();
        let listed = |v: &serde_json::Value| v.clone();
        if !b.is_external() {
            assert_eq!(offsets(&format!("/api/queues/%2F/{q}"), &in_queue), want(2));
            assert_eq!(offsets("/api/consumers", &listed), want(2));
        }
        within("ack", pch.basic_ack(2, BasicAckOptions { multiple: true }))
            .await
            .unwrap();
        // Sent 2 and 3 (not acked: the offset stops at 4, not further).
        let d2 = [next(&mut p).await, next(&mut p).await].map(|d| offset_of(&d));
        assert_eq!(d2, [2, 3]);
        if !b.is_external() {
            assert_eq!(offsets("/api/consumers/%2F", &listed), want(4));
        }
        delete(&pub_ch, &q).await;
    });
}

#[test]
fn what_a_stream_refuses_is_answered_as_rabbitmq_does() {
    let b = Broker::new();
    run(async {
        let conn = connect(&b).await;
        let ch = confirm_channel(&conn).await;
        let q = unique("s-refuse");
        declare_stream(&ch, &q, &[]).await;
        publish_all(&ch, &q, bodies_of(0..2)).await;
        let not_impl =
            |what: &str| format!("NOT_IMPLEMENTED - {what} not supported by stream queues queue '{q}' in vhost '/'");
        let c = connect(&b).await;
        let r = within(
            "get",
            channel(&c)
                .await
                .basic_get(q.as_str().into(), BasicGetOptions::default()),
        )
        .await;
        assert_amqp_err(r, 540, &not_impl("basic.get"));
        let c = connect(&b).await;
        let r = within(
            "purge",
            channel(&c)
                .await
                .queue_purge(q.as_str().into(), QueuePurgeOptions::default()),
        )
        .await;
        assert_amqp_err(r, 540, &not_impl("queue.purge"));
        let c = connect(&b).await;
        let cch = channel(&c).await;
        within("qos", cch.basic_qos(10, BasicQosOptions::default()))
            .await
            .unwrap();
        let no_ack = BasicConsumeOptions {
            no_ack: true,
            ..Default::default()
        };
        let r = within(
            "consume",
            cch.basic_consume(q.as_str().into(), "".into(), no_ack, FieldTable::default()),
        )
        .await;
        assert_amqp_err(r, 540, &not_impl("automatic acknowledgement"));
        let c = connect(&b).await;
        let cch = channel(&c).await;
        let r = within(
            "consume",
            cch.basic_consume(
                q.as_str().into(),
                "".into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            ),
        )
        .await;
        let text = format!("PRECONDITION_FAILED - consumer prefetch count is not set for 'queue '{q}' in vhost '/''");
        assert_amqp_err(r, 406, &text);
        for requeue in [true, false] {
            let c = connect(&b).await;
            let (rch, mut rc) = reader(&c, &q, 10, Some(lstr("first"))).await;
            let d = next(&mut rc).await;
            let _ = rch
                .basic_nack(
                    d.delivery_tag,
                    BasicNackOptions {
                        requeue,
                        multiple: false,
                    },
                )
                .await;
            closed_by_server(&c).await;
        }
        delete(&ch, &q).await;
    });
}

/// Offsets stay across a restart; retention drops whole old segments and
/// the first offset stays where it went.
#[test]
fn offsets_and_retention_survive_a_restart() {
    let mut b = Broker::new();
    if b.skip_external("offsets_and_retention_survive_a_restart") {
        return;
    }
    let q = unique("s-restart");
    let args = [
        ("x-stream-max-segment-size-bytes", AMQPValue::LongInt(4096)),
        ("x-max-length-bytes", AMQPValue::LongInt(16384)),
    ];
    let body = |i: i64| format!("m{i}-{}", "x".repeat(200));
    let first = run_get_first(&b, &q, &args, |ch, q| async move {
        for i in 0..300 {
            assert!(publish(&ch, "", &q, body(i).as_bytes()).await.is_ack());
        }
    });
    assert!(first > 0, "retention dropped old segments");
    b.restart();
    let again = run_get_first(&b, &q, &args, |_, _| async {});
    assert_eq!(again, first, "the first offset after the restart");
    run(async {
        let conn = connect(&b).await;
        let (ch, mut c) = reader(&conn, &q, 500, Some(lstr("first"))).await;
        let got = take(&ch, &mut c, (300 - first) as usize).await;
        let want: Vec<(i64, String)> = (first..300).map(|i| (i, body(i))).collect();
        assert_eq!(got, want);
    });
}

/// Declares `q`, runs `fill`, and returns the offset a `first` reader starts at.
fn run_get_first<F, Fut>(b: &Broker, q: &str, args: &[(&str, AMQPValue)], fill: F) -> i64
where
    F: FnOnce(Channel, String) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let out = Arc::new(Mutex::new(0));
    let o = out.clone();
    run(async move {
        let conn = connect(b).await;
        let ch = confirm_channel(&conn).await;
        declare_stream(&ch, q, args).await;
        fill(ch, q.to_owned()).await;
        let (_ch, mut c) = reader(&conn, q, 1, Some(lstr("first"))).await;
        *o.lock().unwrap() = offset_of(&next(&mut c).await);
    });
    let first = *out.lock().unwrap();
    first
}

/// Every confirmed message is at its offset after a kill -9 during publishing.
#[test]
fn confirmed_messages_are_at_their_offsets_after_kill_9() {
    const N: i64 = 3000;
    let mut b = Broker::new();
    if b.skip_external("confirmed_messages_are_at_their_offsets_after_kill_9") {
        return;
    }
    let q = unique("s-kill");
    let confirmed = Arc::new(Mutex::new(Vec::new()));
    let seg = [("x-stream-max-segment-size-bytes", AMQPValue::LongInt(8192))];
    run(async {
        let conn = connect(&b).await;
        let ch = confirm_channel(&conn).await;
        declare_stream(&ch, &q, &seg).await;
        let mut pending = Vec::new();
        for i in 0..N {
            let c = ch
                .basic_publish(
                    "".into(),
                    q.as_str().into(),
                    BasicPublishOptions::default(),
                    format!("m{i}").as_bytes(),
                    BasicProperties::default(),
                )
                .await;
            let Ok(c) = c else { break };
            pending.push((i, c));
            if pending.len() == 100 {
                for (i, c) in pending.drain(..) {
                    if let Ok(Confirmation::Ack(_)) = c.await {
                        confirmed.lock().unwrap().push(i);
                    }
                }
            }
            if i == N / 2 {
                b.kill9();
            }
        }
        for (i, c) in pending {
            if let Ok(Ok(Confirmation::Ack(_))) = tokio::time::timeout(QUIET, c).await {
                confirmed.lock().unwrap().push(i);
            }
        }
    });
    let confirmed = confirmed.lock().unwrap().clone();
    assert!(confirmed.len() >= (N / 3) as usize, "{} confirmed", confirmed.len());
    b.start();
    run(async {
        let conn = connect(&b).await;
        let (ch, mut c) = reader(&conn, &q, 1000, Some(lstr("first"))).await;
        // Everything up to the last confirmed one, each at its offset (one
        // publisher: a message's offset is its number).
        let n = confirmed.iter().max().expect("some confirmed") + 1;
        let got = take(&ch, &mut c, n as usize).await;
        for (i, (offset, body)) in got.iter().enumerate() {
            assert_eq!((*offset, body.as_str()), (i as i64, format!("m{i}").as_str()));
        }
    });
}

/// A RabbitMQ export with a stream and its binding imports whole; the
/// export has the stream back.
#[test]
fn definitions_import_and_export_streams() {
    let b = Broker::new();
    let a = Api::new(b.http_url(), b.user(), b.pass());
    let (s, x) = (unique("imp-stream"), unique("imp-x"));
    let defs = json!({
        "queues": [{"name": s, "vhost": "/", "durable": true, "auto_delete": false,
                    "arguments": {"x-queue-type": "stream", "x-max-length-bytes": 1000000}}],
        "exchanges": [{"name": x, "vhost": "/", "type": "fanout", "durable": true, "auto_delete": false,
                       "internal": false, "arguments": {}}],
        "bindings": [{"source": x, "vhost": "/", "destination": s, "destination_type": "queue",
                      "routing_key": "", "arguments": {}}],
    });
    let r = a.post("/api/definitions", defs);
    assert!(r.status < 300, "{:?}", r.json);
    assert_eq!(a.ok(&format!("/api/queues/%2F/{s}"))["type"], "stream");
    run(async {
        let conn = connect(&b).await;
        let ch = confirm_channel(&conn).await;
        assert!(publish(&ch, &x, "", b"via-x").await.is_ack());
        let (rch, mut c) = reader(&conn, &s, 10, Some(lstr("first"))).await;
        assert_eq!(take(&rch, &mut c, 1).await, vec![(0, "via-x".to_owned())]);
    });
    let export = a.ok("/api/definitions");
    let q = export["queues"]
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["name"] == s.as_str())
        .cloned();
    assert_eq!(q.expect("exported")["arguments"]["x-queue-type"], "stream");
    for path in [format!("/api/queues/%2F/{s}"), format!("/api/exchanges/%2F/{x}")] {
        assert_eq!(a.delete(&path).status, 204);
    }
}

/// Bodies larger than a frame (sent from the segment mapping) arrive whole,
/// to two readers.
#[test]
fn large_bodies_are_read_whole() {
    let b = Broker::new();
    run(async {
        let conn = connect(&b).await;
        let ch = confirm_channel(&conn).await;
        let q = unique("s-large");
        declare_stream(&ch, &q, &[]).await;
        let bodies: Vec<Vec<u8>> = (0..3u8).map(|i| vec![b'a' + i; 300_000 + usize::from(i)]).collect();
        for body in &bodies {
            assert!(publish(&ch, "", &q, body).await.is_ack());
        }
        for _ in 0..2 {
            let (rch, mut c) = reader(&conn, &q, 10, Some(lstr("first"))).await;
            for (i, want) in bodies.iter().enumerate() {
                let d = next(&mut c).await;
                assert_eq!((offset_of(&d), d.data.len()), (i as i64, want.len()));
                assert!(d.data == *want, "body {i}");
                within("ack", rch.basic_ack(d.delivery_tag, BasicAckOptions::default()))
                    .await
                    .unwrap();
            }
        }
        delete(&ch, &q).await;
    });
}
