//! Quorum queues on one node (issue 16, item 7): RabbitMQ's validation and texts,
//! type `quorum` in the API, every redelivery counted in `x-delivery-count`, the
//! delivery limit, at-least-once dead-lettering, and imports of RabbitMQ exports
//! that hold quorum and stream queues. Also passes against RabbitMQ 3.10
//! (`RINGMQ_TEST_URI`, `RINGMQ_TEST_HTTP_URI`), except what restarts the broker.

mod common;

use common::http::Api;
use common::*;
use serde_json::json;

fn quorum(extra: &[(&str, AMQPValue)]) -> FieldTable {
    let mut t = table(extra);
    t.insert("x-queue-type".into(), lstr("quorum"));
    t
}

fn durable() -> QueueDeclareOptions {
    QueueDeclareOptions {
        durable: true,
        ..Default::default()
    }
}

async fn delete(ch: &lapin::Channel, q: &str) {
    within("delete", ch.queue_delete(q.into(), QueueDeleteOptions::default()))
        .await
        .expect("queue.delete");
}

fn delivery_count(m: &lapin::message::BasicGetMessage) -> Option<AMQPValue> {
    let headers = m.delivery.properties.headers().as_ref()?;
    headers.inner().get("x-delivery-count").cloned()
}

#[test]
fn declare_is_validated_as_rabbitmq_does() {
    let b = Broker::new();
    run(async {
        let conn = connect(&b).await;
        let q = unique("qq");
        let cases: [(QueueDeclareOptions, FieldTable, String); 4] = [
            (
                QueueDeclareOptions::default(),
                quorum(&[]),
                format!("invalid property 'non-durable' for queue '{q}' in vhost '/'"),
            ),
            (
                QueueDeclareOptions {
                    durable: true,
                    auto_delete: true,
                    ..Default::default()
                },
                quorum(&[]),
                format!("invalid property 'auto-delete' for queue '{q}' in vhost '/'"),
            ),
            (
                QueueDeclareOptions {
                    durable: true,
                    exclusive: true,
                    ..Default::default()
                },
                quorum(&[]),
                format!("invalid property 'exclusive-owner' for queue '{q}' in vhost '/'"),
            ),
            (
                durable(),
                quorum(&[("x-max-priority", AMQPValue::LongInt(5))]),
                format!("invalid arg 'x-max-priority' for queue '{q}' in vhost '/' of queue type rabbit_quorum_queue"),
            ),
        ];
        for (opts, args, text) in cases {
            let ch = channel(&conn).await;
            let r = within("declare", ch.queue_declare(q.as_str().into(), opts, args)).await;
            assert_amqp_err(r, 406, &format!("PRECONDITION_FAILED - {text}"));
        }
        let ch = channel(&conn).await;
        let args = quorum(&[
            ("x-delivery-limit", AMQPValue::LongInt(3)),
            ("x-quorum-initial-group-size", AMQPValue::LongInt(3)),
        ]);
        declare_queue(&ch, &q, durable(), args.clone()).await;
        declare_queue(&ch, &q, durable(), args).await;
        // Declared as quorum, redeclared as classic: inequivalent, as RabbitMQ.
        let r = within(
            "classic",
            ch.queue_declare(q.as_str().into(), durable(), FieldTable::default()),
        )
        .await;
        assert_amqp_err(r, 406, "PRECONDITION_FAILED - inequivalent arg 'x-queue-type'");
        let ch = channel(&conn).await;
        let api = Api::new(b.http_url(), b.user(), b.pass());
        assert_eq!(api.ok(&format!("/api/queues/%2F/{q}"))["type"], "quorum");
        delete(&ch, &q).await;
    });
}

#[test]
fn every_redelivery_is_counted_and_the_limit_dead_letters() {
    let b = Broker::new();
    run(async {
        let (_conn, ch) = open(&b).await;
        let (q, dlq) = (unique("qq-count"), unique("qq-dlq"));
        declare_queue(&ch, &dlq, durable(), FieldTable::default()).await;
        let args = quorum(&[
            ("x-delivery-limit", AMQPValue::LongInt(2)),
            ("x-dead-letter-exchange", lstr("")),
            ("x-dead-letter-routing-key", lstr(&dlq)),
        ]);
        declare_queue(&ch, &q, durable(), args).await;
        publish(&ch, "", &q, b"poison").await;
        // Delivered three times (counts 0, 1, 2: quorum queues always say it),
        // then past the limit of 2.
        for round in 0..3 {
            let m = eventually_get(&ch, &q).await;
            let want = Some(AMQPValue::LongLongInt(round));
            assert_eq!(delivery_count(&m), want, "round {round}");
            within(
                "nack",
                ch.basic_nack(
                    m.delivery.delivery_tag,
                    BasicNackOptions {
                        requeue: true,
                        ..Default::default()
                    },
                ),
            )
            .await
            .unwrap();
        }
        let dead = eventually_get(&ch, &dlq).await;
        assert_eq!(dead.delivery.data, b"poison");
        within(
            "ack",
            ch.basic_ack(dead.delivery.delivery_tag, BasicAckOptions::default()),
        )
        .await
        .unwrap();
        for name in [&q, &dlq] {
            delete(&ch, name).await;
        }
    });
}

async fn eventually_get(ch: &lapin::Channel, q: &str) -> lapin::message::BasicGetMessage {
    for _ in 0..200 {
        if let Some(m) = within("basic.get", ch.basic_get(q.into(), BasicGetOptions::default()))
            .await
            .expect("basic.get")
        {
            return m;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("nothing to get from {q}");
}

/// At-least-once: a rejected message is in the dead-letter queue, or back in its
/// own queue, after a kill -9 at any point; never in neither.
#[test]
fn at_least_once_dead_letters_survive_a_crash() {
    let mut b = Broker::new();
    if b.skip_external("at_least_once_dead_letters_survive_a_crash") {
        return;
    }
    const N: usize = 200;
    let (q, dlq) = (unique("qq-alo"), unique("qq-alo-dlq"));
    run(async {
        let (_conn, ch) = open(&b).await;
        declare_queue(&ch, &dlq, durable(), FieldTable::default()).await;
        let args = quorum(&[
            ("x-dead-letter-exchange", lstr("")),
            ("x-dead-letter-routing-key", lstr(&dlq)),
            ("x-dead-letter-strategy", lstr("at-least-once")),
            ("x-overflow", lstr("reject-publish")),
        ]);
        declare_queue(&ch, &q, durable(), args).await;
        let confirm = confirm_channel(&_conn).await;
        let persistent = BasicProperties::default().with_delivery_mode(2);
        for i in 0..N {
            let body = i.to_string();
            let c = within(
                "publish",
                confirm.basic_publish(
                    "".into(),
                    q.as_str().into(),
                    BasicPublishOptions::default(),
                    body.as_bytes(),
                    persistent.clone(),
                ),
            )
            .await
            .unwrap();
            assert!(within("confirm", c).await.unwrap().is_ack());
        }
        within("qos", ch.basic_qos(N as u16, BasicQosOptions::default()))
            .await
            .unwrap();
        for _ in 0..N {
            let m = eventually_get(&ch, &q).await;
            ch.basic_reject(m.delivery.delivery_tag, BasicRejectOptions { requeue: false })
                .await
                .unwrap();
        }
    });
    b.kill9();
    b.start();
    run(async {
        let (_conn, ch) = open(&b).await;
        let mut seen = std::collections::BTreeSet::new();
        for name in [&q, &dlq] {
            while let Some(m) = within(
                "get",
                ch.basic_get(name.as_str().into(), BasicGetOptions { no_ack: true }),
            )
            .await
            .unwrap()
            {
                seen.insert(String::from_utf8(m.delivery.data.clone()).unwrap());
            }
        }
        assert_eq!(seen.len(), N, "lost dead letters");
    });
}

#[test]
fn import_with_quorum_and_stream_queues() {
    let b = Broker::new();
    let a = Api::new(b.http_url(), b.user(), b.pass());
    let (qq, stream, x) = (unique("imp-qq"), unique("imp-stream"), unique("imp-x"));
    let defs = json!({
        "queues": [
            {"name": qq, "vhost": "/", "durable": true, "auto_delete": false,
             "arguments": {"x-queue-type": "quorum", "x-delivery-limit": 5}},
            {"name": stream, "vhost": "/", "durable": true, "auto_delete": false,
             "arguments": {"x-queue-type": "stream", "x-max-length-bytes": 1000000}}],
        "exchanges": [{"name": x, "vhost": "/", "type": "fanout", "durable": true, "auto_delete": false,
                       "internal": false, "arguments": {}}],
        "bindings": [
            {"source": x, "vhost": "/", "destination": qq, "destination_type": "queue", "routing_key": "", "arguments": {}},
            {"source": x, "vhost": "/", "destination": stream, "destination_type": "queue", "routing_key": "", "arguments": {}}],
    });
    let r = a.post("/api/definitions", defs);
    assert!(r.status < 300, "{:?}", r.json);
    assert_eq!(a.ok(&format!("/api/queues/%2F/{qq}"))["type"], "quorum");
    assert_eq!(a.ok(&format!("/api/queues/%2F/{stream}"))["type"], "stream");
    let bindings = a.ok(&format!("/api/exchanges/%2F/{x}/bindings/source"));
    assert!(bindings
        .as_array()
        .unwrap()
        .iter()
        .any(|b| b["destination"] == qq.as_str()));
    for path in [
        format!("/api/queues/%2F/{qq}"),
        format!("/api/queues/%2F/{stream}"),
        format!("/api/exchanges/%2F/{x}"),
    ] {
        assert_eq!(a.delete(&path).status, 204);
    }
}
