//! Queue features (issue 7): TTL, dead-lettering with x-death, length limits,
//! delivery limits, single active consumer, queue expiry, argument validation.
//! Behaviour and texts follow RabbitMQ 3.x classic queues; `x-delivery-limit` is
//! a quorum-queue feature in RabbitMQ, so that test runs against ringmq only.

mod common;

use std::time::Duration;

use common::*;
use lapin::types::{AMQPValue, ShortString};

fn exclusive() -> QueueDeclareOptions {
    QueueDeclareOptions {
        exclusive: true,
        ..Default::default()
    }
}

/// The first x-death entry of a message, as (name -> value).
fn first_death(props: &BasicProperties) -> FieldTable {
    let headers = props.headers().as_ref().expect("headers");
    let Some(AMQPValue::FieldArray(a)) = headers.inner().get("x-death") else {
        panic!("no x-death in {headers:?}")
    };
    match a.as_slice().first() {
        Some(AMQPValue::FieldTable(t)) => t.clone(),
        other => panic!("x-death entry {other:?}"),
    }
}

fn text(t: &FieldTable, k: &str) -> String {
    match t.inner().get(k) {
        Some(AMQPValue::LongString(s)) => String::from_utf8_lossy(s.as_bytes()).into_owned(),
        other => panic!("{k}: {other:?}"),
    }
}

fn int(t: &FieldTable, k: &str) -> i64 {
    match t.inner().get(k) {
        Some(AMQPValue::LongLongInt(n)) => *n,
        Some(AMQPValue::LongInt(n)) => *n as i64,
        other => panic!("{k}: {other:?}"),
    }
}

/// Polls basic.get until a message arrives.
async fn get_one(ch: &lapin::Channel, q: &str) -> lapin::message::BasicGetMessage {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let m = within("basic.get", ch.basic_get(q.into(), BasicGetOptions { no_ack: true }))
            .await
            .expect("basic.get");
        if let Some(m) = m {
            return m;
        }
        assert!(std::time::Instant::now() < deadline, "nothing arrived in {q}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[test]
fn queue_ttl_dead_letters_with_x_death() {
    let b = Broker::new();
    run(async {
        let (_conn, ch) = open(&b).await;
        let dlq = unique("dlq");
        declare_queue(&ch, &dlq, exclusive(), FieldTable::default()).await;
        let q = unique("ttl");
        let args = table(&[
            ("x-message-ttl", AMQPValue::LongInt(100)),
            ("x-dead-letter-exchange", lstr("")),
            ("x-dead-letter-routing-key", lstr(&dlq)),
        ]);
        declare_queue(&ch, &q, exclusive(), args).await;
        publish(&ch, "", &q, b"expires").await;
        // No consumer: the queue's timer must expire it, not a later publish.
        let m = get_one(&ch, &dlq).await;
        assert_eq!(m.delivery.data, b"expires");
        let d = first_death(&m.delivery.properties);
        assert_eq!(text(&d, "reason"), "expired");
        assert_eq!(text(&d, "queue"), q);
        assert_eq!(text(&d, "exchange"), "");
        assert_eq!(int(&d, "count"), 1);
        let headers = m.delivery.properties.headers().clone().unwrap();
        assert_eq!(
            headers.inner().get("x-first-death-reason"),
            Some(&AMQPValue::LongString("expired".into()))
        );
        assert!(get_all(&ch, &q).await.is_empty());
    });
}

#[test]
fn per_message_expiration_and_original_expiration() {
    let b = Broker::new();
    run(async {
        let (_conn, ch) = open(&b).await;
        let dlq = unique("dlq");
        declare_queue(&ch, &dlq, exclusive(), FieldTable::default()).await;
        let q = unique("exp");
        let args = table(&[
            ("x-dead-letter-exchange", lstr("")),
            ("x-dead-letter-routing-key", lstr(&dlq)),
        ]);
        declare_queue(&ch, &q, exclusive(), args).await;
        let props = BasicProperties::default().with_expiration(ShortString::from("50"));
        publish_with(&ch, "", &q, b"short", props, BasicPublishOptions::default()).await;
        publish(&ch, "", &q, b"forever").await;
        let m = get_one(&ch, &dlq).await;
        assert_eq!(m.delivery.data, b"short");
        assert!(m.delivery.properties.expiration().is_none(), "expiration is removed");
        let d = first_death(&m.delivery.properties);
        assert_eq!(text(&d, "original-expiration"), "50");
        assert_eq!(get_all(&ch, &q).await, strs(&["forever"]));
    });
}

#[test]
fn max_length_drop_head_and_reject_publish() {
    let b = Broker::new();
    run(async {
        let conn = connect(&b).await;
        let ch = confirm_channel(&conn).await;
        let q = unique("maxlen");
        declare_queue(&ch, &q, exclusive(), table(&[("x-max-length", AMQPValue::LongInt(2))])).await;
        for m in ["a", "b", "c"] {
            publish(&ch, "", &q, m.as_bytes()).await;
        }
        assert_eq!(get_all(&ch, &q).await, strs(&["b", "c"]));

        let r = unique("reject");
        let args = table(&[
            ("x-max-length", AMQPValue::LongInt(1)),
            ("x-overflow", lstr("reject-publish")),
        ]);
        declare_queue(&ch, &r, exclusive(), args).await;
        assert!(matches!(publish(&ch, "", &r, b"first").await, Confirmation::Ack(_)));
        assert!(matches!(publish(&ch, "", &r, b"second").await, Confirmation::Nack(_)));
        assert_eq!(get_all(&ch, &r).await, strs(&["first"]));

        let bytes = unique("bytes");
        declare_queue(
            &ch,
            &bytes,
            exclusive(),
            table(&[("x-max-length-bytes", AMQPValue::LongInt(10))]),
        )
        .await;
        for m in ["12345", "67890", "abcde"] {
            publish(&ch, "", &bytes, m.as_bytes()).await;
        }
        assert_eq!(get_all(&ch, &bytes).await, strs(&["67890", "abcde"]));
    });
}

#[test]
fn rejected_message_is_dead_lettered() {
    let b = Broker::new();
    run(async {
        let (_conn, ch) = open(&b).await;
        let dlx = unique("dlx");
        declare_exchange(
            &ch,
            &dlx,
            ExchangeKind::Fanout,
            ExchangeDeclareOptions::default(),
            FieldTable::default(),
        )
        .await;
        let dlq = unique("dlq");
        declare_queue(&ch, &dlq, exclusive(), FieldTable::default()).await;
        bind(&ch, &dlq, &dlx, "", FieldTable::default()).await;
        let q = unique("work");
        declare_queue(&ch, &q, exclusive(), table(&[("x-dead-letter-exchange", lstr(&dlx))])).await;
        publish(&ch, "", &q, b"bad").await;
        let m = within("get", ch.basic_get(q.as_str().into(), BasicGetOptions::default()))
            .await
            .unwrap()
            .expect("message");
        within(
            "reject",
            ch.basic_reject(m.delivery.delivery_tag, BasicRejectOptions { requeue: false }),
        )
        .await
        .unwrap();
        let d = get_one(&ch, &dlq).await;
        assert_eq!(d.delivery.data, b"bad");
        assert_eq!(d.delivery.routing_key.as_str(), q, "original routing key kept");
        let x = first_death(&d.delivery.properties);
        assert_eq!(text(&x, "reason"), "rejected");
        within(
            "delete dlx",
            ch.exchange_delete(dlx.as_str().into(), ExchangeDeleteOptions::default()),
        )
        .await
        .unwrap();
    });
}

#[test]
fn delivery_limit_dead_letters_after_n_redeliveries() {
    let b = Broker::new();
    if b.is_external() {
        eprintln!("skipped: x-delivery-limit is a quorum-queue feature in RabbitMQ");
        return;
    }
    run(async {
        let (_conn, ch) = open(&b).await;
        let dlq = unique("dlq");
        declare_queue(&ch, &dlq, exclusive(), FieldTable::default()).await;
        let q = unique("limited");
        let args = table(&[
            ("x-delivery-limit", AMQPValue::LongInt(1)),
            ("x-dead-letter-exchange", lstr("")),
            ("x-dead-letter-routing-key", lstr(&dlq)),
        ]);
        declare_queue(&ch, &q, exclusive(), args).await;
        publish(&ch, "", &q, b"poison").await;
        for round in 0..2 {
            let m = within("basic.get", ch.basic_get(q.as_str().into(), BasicGetOptions::default()))
                .await
                .unwrap()
                .expect("message");
            let count = m
                .delivery
                .properties
                .headers()
                .as_ref()
                .and_then(|h| h.inner().get("x-delivery-count").cloned());
            assert_eq!(
                count,
                (round > 0).then_some(AMQPValue::LongLongInt(1)),
                "x-delivery-count"
            );
            let m = m.delivery.delivery_tag;
            within(
                "nack",
                ch.basic_nack(
                    m,
                    BasicNackOptions {
                        requeue: true,
                        multiple: false,
                    },
                ),
            )
            .await
            .unwrap();
        }
        let d = get_one(&ch, &dlq).await;
        assert_eq!(d.delivery.data, b"poison");
        assert_eq!(text(&first_death(&d.delivery.properties), "reason"), "delivery_limit");
        assert!(get_all(&ch, &q).await.is_empty());
    });
}

#[test]
fn single_active_consumer() {
    let b = Broker::new();
    run(async {
        let (_conn, ch) = open(&b).await;
        let q = unique("sac");
        declare_queue(
            &ch,
            &q,
            exclusive(),
            table(&[("x-single-active-consumer", AMQPValue::Boolean(true))]),
        )
        .await;
        let opts = BasicConsumeOptions {
            no_ack: true,
            ..Default::default()
        };
        let mut first = within(
            "consume",
            ch.basic_consume(q.as_str().into(), "first".into(), opts, FieldTable::default()),
        )
        .await
        .unwrap();
        let mut second = within(
            "consume",
            ch.basic_consume(q.as_str().into(), "second".into(), opts, FieldTable::default()),
        )
        .await
        .unwrap();
        for m in ["1", "2", "3"] {
            publish(&ch, "", &q, m.as_bytes()).await;
        }
        for m in ["1", "2", "3"] {
            assert_eq!(next(&mut first).await.data, m.as_bytes());
        }
        assert_quiet(&mut second).await;
        within("cancel", ch.basic_cancel("first".into(), BasicCancelOptions::default()))
            .await
            .unwrap();
        publish(&ch, "", &q, b"4").await;
        assert_eq!(next(&mut second).await.data, b"4");
    });
}

#[test]
fn unused_queue_expires() {
    let b = Broker::new();
    run(async {
        let (conn, ch) = open(&b).await;
        let q = unique("expiring");
        declare_queue(
            &ch,
            &q,
            QueueDeclareOptions::default(),
            table(&[("x-expires", AMQPValue::LongInt(200))]),
        )
        .await;
        tokio::time::sleep(Duration::from_millis(700)).await;
        let r = within(
            "passive",
            ch.queue_declare(
                q.as_str().into(),
                QueueDeclareOptions {
                    passive: true,
                    ..Default::default()
                },
                FieldTable::default(),
            ),
        )
        .await;
        assert_amqp_err(r, 404, &format!("NOT_FOUND - no queue '{q}' in vhost '/'"));
        drop(conn);
    });
}

#[test]
fn invalid_arguments_are_406() {
    let b = Broker::new();
    run(async {
        let conn = connect(&b).await;
        let cases: [(&str, AMQPValue, &str); 3] = [
            ("x-message-ttl", AMQPValue::LongInt(-1), "{value_negative,-1}"),
            ("x-max-priority", AMQPValue::LongInt(300), "{max_value_exceeded,300}"),
            ("x-message-ttl", lstr("10"), "\"expected integer, got longstr\""),
        ];
        for (k, v, detail) in cases {
            let ch = channel(&conn).await;
            let q = unique("badarg");
            let r = within(
                "declare",
                ch.queue_declare(q.as_str().into(), exclusive(), table(&[(k, v)])),
            )
            .await;
            assert_amqp_err(
                r,
                406,
                &format!("PRECONDITION_FAILED - invalid arg '{k}' for queue '{q}' in vhost '/': {detail}"),
            );
        }
    });
}

#[test]
fn priority_queue_delivers_highest_first_and_survives_restart() {
    let mut b = Broker::new();
    run(async {
        let q = unique("prio");
        {
            let conn = connect(&b).await;
            let ch = confirm_channel(&conn).await;
            let durable = QueueDeclareOptions {
                durable: true,
                ..Default::default()
            };
            declare_queue(
                &ch,
                &q,
                durable,
                table(&[("x-max-priority", AMQPValue::ShortShortUInt(10))]),
            )
            .await;
            for (body, p) in [("p1", 1u8), ("p5", 5), ("p9", 9), ("p0", 0), ("p5b", 5), ("p20", 20)] {
                let props = BasicProperties::default().with_priority(p).with_delivery_mode(2);
                publish_with(&ch, "", &q, body.as_bytes(), props, BasicPublishOptions::default()).await;
            }
            if b.is_external() {
                // Priorities above x-max-priority count as the maximum.
                assert_eq!(get_all(&ch, &q).await, strs(&["p20", "p9", "p5", "p5b", "p1", "p0"]));
                within(
                    "delete",
                    ch.queue_delete(q.as_str().into(), QueueDeleteOptions::default()),
                )
                .await
                .unwrap();
                return;
            }
        }
        b.restart();
        let conn = connect(&b).await;
        let ch = channel(&conn).await;
        assert_eq!(get_all(&ch, &q).await, strs(&["p20", "p9", "p5", "p5b", "p1", "p0"]));
        within(
            "delete",
            ch.queue_delete(q.as_str().into(), QueueDeleteOptions::default()),
        )
        .await
        .unwrap();
    });
}

#[test]
fn delayed_message_exchange_routes_when_due_and_survives_restart() {
    let mut b = Broker::new();
    if b.is_external() {
        eprintln!("skipped: the reference RabbitMQ has no delayed-message plugin");
        return;
    }
    run(async {
        let x = unique("delayed");
        let q = unique("delayed-q");
        let delay = |ms: i64| {
            BasicProperties::default()
                .with_delivery_mode(2)
                .with_headers(table(&[("x-delay", AMQPValue::LongLongInt(ms))]))
        };
        {
            let conn = connect(&b).await;
            let ch = confirm_channel(&conn).await;
            let durable = ExchangeDeclareOptions {
                durable: true,
                ..Default::default()
            };
            declare_exchange(
                &ch,
                &x,
                ExchangeKind::Custom("x-delayed-message".into()),
                durable,
                table(&[("x-delayed-type", lstr("direct"))]),
            )
            .await;
            let qopts = QueueDeclareOptions {
                durable: true,
                ..Default::default()
            };
            declare_queue(&ch, &q, qopts, FieldTable::default()).await;
            bind(&ch, &q, &x, "k", FieldTable::default()).await;
            let opts = BasicPublishOptions::default();
            publish_with(&ch, &x, "k", b"later", delay(400), opts).await;
            publish_with(&ch, &x, "k", b"sooner", delay(150), opts).await;
            publish_with(&ch, &x, "k", b"now", delay(0), opts).await;
            publish_with(&ch, &x, "k", b"after-restart", delay(2_500), opts).await;
            assert_eq!(get_all(&ch, &q).await, strs(&["now"]), "only the undelayed one at once");
            assert_eq!(get_one(&ch, &q).await.delivery.data, b"sooner");
            assert_eq!(get_one(&ch, &q).await.delivery.data, b"later");
        }
        b.restart();
        let conn = connect(&b).await;
        let ch = channel(&conn).await;
        assert_eq!(get_one(&ch, &q).await.delivery.data, b"after-restart");
        within(
            "delete",
            ch.queue_delete(q.as_str().into(), QueueDeleteOptions::default()),
        )
        .await
        .unwrap();
        within(
            "delete x",
            ch.exchange_delete(x.as_str().into(), ExchangeDeleteOptions::default()),
        )
        .await
        .unwrap();
    });
}

#[test]
fn consistent_hash_exchange_is_stable_and_weighted() {
    let b = Broker::new();
    if b.is_external() {
        eprintln!("skipped: the reference RabbitMQ has no consistent-hash plugin enabled");
        return;
    }
    run(async {
        let (_conn, ch) = open(&b).await;
        let x = unique("chash");
        let kind = ExchangeKind::Custom("x-consistent-hash".into());
        declare_exchange(&ch, &x, kind, ExchangeDeclareOptions::default(), FieldTable::default()).await;
        let (q1, q2) = (unique("ch1"), unique("ch2"));
        for (q, w) in [(&q1, "1"), (&q2, "3")] {
            declare_queue(&ch, q, exclusive(), FieldTable::default()).await;
            bind(&ch, q, &x, w, FieldTable::default()).await;
        }
        // A weight that is not a number is refused as RabbitMQ refuses it.
        let ch2 = channel(&_conn).await;
        let bad = within(
            "bind",
            ch2.queue_bind(
                q1.as_str().into(),
                x.as_str().into(),
                "abc".into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            ),
        )
        .await;
        assert_amqp_err(bad, 406, "PRECONDITION_FAILED - The binding key must be an integer");
        for i in 0..400 {
            publish(&ch, &x, &format!("key-{i}"), format!("{i}").as_bytes()).await;
        }
        let a = get_all(&ch, &q1).await.len();
        let c = get_all(&ch, &q2).await.len();
        assert_eq!(a + c, 400);
        assert!((50..=150).contains(&a), "weight 1 of 4 got {a} of 400");
        // The same key lands on the same queue every time.
        for _ in 0..5 {
            publish(&ch, &x, "key-7", b"again").await;
        }
        let (a, c) = (get_all(&ch, &q1).await.len(), get_all(&ch, &q2).await.len());
        assert!(a == 5 && c == 0 || a == 0 && c == 5, "key-7 split {a}/{c}");
    });
}

#[test]
fn message_deduplication_on_exchange_and_queue() {
    let b = Broker::new();
    if b.is_external() {
        eprintln!("skipped: deduplication is a LavinMQ feature");
        return;
    }
    run(async {
        let (_conn, ch) = open(&b).await;
        let dedup = |id: &str| BasicProperties::default().with_headers(table(&[("x-deduplication-header", lstr(id))]));
        let q = unique("dedup-q");
        let args = table(&[
            ("x-message-deduplication", AMQPValue::Boolean(true)),
            ("x-cache-size", AMQPValue::LongInt(10)),
        ]);
        declare_queue(&ch, &q, exclusive(), args.clone()).await;
        let opts = BasicPublishOptions::default();
        for id in ["a", "b", "a", "c", "b"] {
            publish_with(&ch, "", &q, id.as_bytes(), dedup(id), opts).await;
        }
        assert_eq!(get_all(&ch, &q).await, strs(&["a", "b", "c"]));

        let x = unique("dedup-x");
        declare_exchange(&ch, &x, ExchangeKind::Fanout, ExchangeDeclareOptions::default(), args).await;
        let q2 = unique("dedup-q2");
        declare_queue(&ch, &q2, exclusive(), FieldTable::default()).await;
        bind(&ch, &q2, &x, "", FieldTable::default()).await;
        for id in ["1", "1", "2"] {
            publish_with(&ch, &x, "", id.as_bytes(), dedup(id), opts).await;
        }
        publish(&ch, &x, "", b"no-header").await;
        assert_eq!(get_all(&ch, &q2).await, strs(&["1", "2", "no-header"]));
        within(
            "delete x",
            ch.exchange_delete(x.as_str().into(), ExchangeDeleteOptions::default()),
        )
        .await
        .unwrap();
    });
}

#[test]
fn consumer_timeout_closes_the_channel_with_406() {
    let b = Broker::new();
    if b.is_external() {
        eprintln!("skipped: x-consumer-timeout needs RabbitMQ 3.12+");
        return;
    }
    run(async {
        let (conn, ch) = open(&b).await;
        let q = unique("slow");
        declare_queue(
            &ch,
            &q,
            QueueDeclareOptions::default(),
            table(&[("x-consumer-timeout", AMQPValue::LongInt(200))]),
        )
        .await;
        publish(&ch, "", &q, b"never acked").await;
        let mut c = within(
            "consume",
            ch.basic_consume(
                q.as_str().into(),
                "c".into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            ),
        )
        .await
        .unwrap();
        let _d = next(&mut c).await;
        eventually("channel closed by timeout", || {
            let ch = ch.clone();
            async move { !ch.status().connected() }
        })
        .await;
        // The message is back in the queue, the connection lives on.
        let ch2 = channel(&conn).await;
        assert_eq!(get_all(&ch2, &q).await, strs(&["never acked"]));
        within(
            "delete",
            ch2.queue_delete(q.as_str().into(), QueueDeleteOptions::default()),
        )
        .await
        .unwrap();
    });
}

#[test]
fn dead_lettered_persistent_messages_survive_restart() {
    let mut b = Broker::new();
    if b.is_external() {
        eprintln!("skipped: needs a broker restart");
        return;
    }
    run(async {
        let (q, dlq) = (unique("dl-src"), unique("dl-target"));
        let durable = QueueDeclareOptions {
            durable: true,
            ..Default::default()
        };
        {
            let conn = connect(&b).await;
            let ch = confirm_channel(&conn).await;
            declare_queue(&ch, &dlq, durable, FieldTable::default()).await;
            let args = table(&[
                ("x-message-ttl", AMQPValue::LongInt(50)),
                ("x-dead-letter-exchange", lstr("")),
                ("x-dead-letter-routing-key", lstr(&dlq)),
            ]);
            declare_queue(&ch, &q, durable, args).await;
            let props = BasicProperties::default().with_delivery_mode(2);
            publish_with(&ch, "", &q, b"dies", props, BasicPublishOptions::default()).await;
            eventually("dead-lettered", || {
                let ch = ch.clone();
                let dlq = dlq.clone();
                async move {
                    let ok = ch
                        .queue_declare(
                            dlq.as_str().into(),
                            QueueDeclareOptions {
                                passive: true,
                                ..Default::default()
                            },
                            FieldTable::default(),
                        )
                        .await;
                    ok.is_ok_and(|d| d.message_count() == 1)
                }
            })
            .await;
        }
        b.restart();
        let conn = connect(&b).await;
        let ch = channel(&conn).await;
        let m = get_one(&ch, &dlq).await;
        assert_eq!(m.delivery.data, b"dies");
        assert_eq!(text(&first_death(&m.delivery.properties), "reason"), "expired");
        for name in [&q, &dlq] {
            within(
                "delete",
                ch.queue_delete(name.as_str().into(), QueueDeleteOptions::default()),
            )
            .await
            .unwrap();
        }
    });
}

/// RabbitMQ applies drop-head after a requeue too (`maybe_drop_head` in
/// `requeue_and_run`): requeued messages go back to the head and are the ones
/// dropped when the queue is then over its max-length.
#[test]
fn requeue_over_max_length_drops_from_the_head() {
    let b = Broker::new();
    run(async {
        let conn = connect(&b).await;
        let ch = confirm_channel(&conn).await;
        let q = unique("maxlen-requeue");
        declare_queue(
            &ch,
            &q,
            exclusive(),
            table(&[("x-max-length", AMQPValue::LongLongInt(2))]),
        )
        .await;
        for m in ["m1", "m2"] {
            publish(&ch, "", &q, m.as_bytes()).await;
        }
        // Take both without acking: nothing ready, two unacked.
        let getter = channel(&conn).await;
        for _ in 0..2 {
            getter
                .basic_get(q.as_str().into(), BasicGetOptions { no_ack: false })
                .await
                .unwrap()
                .expect("a message");
        }
        for m in ["m3", "m4"] {
            publish(&ch, "", &q, m.as_bytes()).await;
        }
        // Closing the channel requeues m1 and m2 ahead of m3, m4: four ready, limit two.
        getter.close(200, "bye".into()).await.unwrap();
        assert_eq!(get_all(&ch, &q).await, strs(&["m3", "m4"]));
    });
}

/// A dead letter routed back to a queue it died in is dropped unless a
/// rejection happened since that death (RabbitMQ's `is_cycle`); an older
/// rejection does not count. Two rejected messages in an `x-max-length: 1`
/// queue that dead-letters to itself: the first is pushed out by the second
/// (maxlen) and dropped as a cycle. ringmq counted any rejection in x-death
/// and the two pushed each other out forever (found by tests/model.rs).
/// RabbitMQ 3.10 keeps B only, as here.
#[test]
fn dead_letter_cycle_after_a_rejection_ends() {
    let b = Broker::new();
    run(async {
        let (_conn, ch) = open(&b).await;
        let q = unique("dl-cycle");
        let args = table(&[
            ("x-max-length", AMQPValue::LongInt(1)),
            ("x-dead-letter-exchange", lstr("")),
            ("x-dead-letter-routing-key", lstr(&q)),
        ]);
        declare_queue(&ch, &q, exclusive(), args).await;
        let mut tags = Vec::new();
        for body in ["A", "B"] {
            publish(&ch, "", &q, body.as_bytes()).await;
            let m = within("get", ch.basic_get(q.as_str().into(), BasicGetOptions::default()))
                .await
                .unwrap()
                .expect("a message");
            tags.push(m.delivery.delivery_tag);
        }
        for tag in tags {
            let reject = BasicRejectOptions { requeue: false };
            within("reject", ch.basic_reject(tag, reject)).await.unwrap();
        }
        // The dead letters are routed before this round trip's reply.
        let passive = QueueDeclareOptions {
            passive: true,
            exclusive: true,
            ..Default::default()
        };
        declare_queue(&ch, &q, passive, FieldTable::default()).await;
        tokio::time::sleep(QUIET).await;
        assert_eq!(get_all(&ch, &q).await, strs(&["B"]));
        tokio::time::sleep(QUIET).await;
        assert_eq!(get_all(&ch, &q).await, strs(&[] as &[&str]), "nothing keeps coming");
    });
}
