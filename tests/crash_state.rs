//! What a queue remembers across kill -9 besides its messages (issue 15):
//! acks, rejects and length-limit drops reach the ack files within a bounded
//! time even on a queue with no later publish (defect 2: they sat in a buffer
//! written only by a group commit, and came back after a crash); every message
//! that may have been delivered comes back flagged redelivered, priority queues
//! too; tx.commit-ok means on disk (defect 11); delivery counts of
//! `x-delivery-limit` survive restarts (defect 12). RabbitMQ 3.10, checked with
//! `RINGMQ_TEST_URI`: acked m1 gone, m2 flagged redelivered, no duplicate.
//! These restart the broker, so they skip against `RINGMQ_TEST_URI`.

mod common;

use std::time::Duration;

use common::*;

/// Longer than the broker's bound on buffered acks (`ACK_FLUSH_DELAY_MS`).
const SETTLE: Duration = Duration::from_millis(1_000);

fn durable() -> QueueDeclareOptions {
    QueueDeclareOptions {
        durable: true,
        ..Default::default()
    }
}

fn persistent() -> BasicProperties {
    BasicProperties::default().with_delivery_mode(2)
}

async fn publish_confirmed(ch: &lapin::Channel, exchange: &str, key: &str, bodies: &[&str]) {
    for body in bodies {
        let c = publish_with(
            ch,
            exchange,
            key,
            body.as_bytes(),
            persistent(),
            BasicPublishOptions::default(),
        )
        .await;
        assert!(c.is_ack(), "{body} not confirmed: {c:?}");
    }
}

async fn get(ch: &lapin::Channel, q: &str) -> Option<lapin::message::BasicGetMessage> {
    within("basic.get", ch.basic_get(q.into(), BasicGetOptions { no_ack: false }))
        .await
        .expect("basic.get")
}

/// Every message left in `q` as (body, redelivered), acked.
async fn drain(ch: &lapin::Channel, q: &str) -> Vec<(String, bool)> {
    let mut out = Vec::new();
    while let Some(m) = get(ch, q).await {
        out.push((
            String::from_utf8_lossy(&m.delivery.data).into_owned(),
            m.delivery.redelivered,
        ));
        within("ack", m.delivery.acker.ack(BasicAckOptions::default()))
            .await
            .expect("ack");
    }
    out
}

fn crash(b: &mut Broker) {
    b.kill9();
    b.start();
}

fn pair(body: &str, redelivered: bool) -> (String, bool) {
    (body.to_string(), redelivered)
}

/// The reproduction: ack m1 on a quiet queue, wait, kill -9.
#[test]
fn acked_message_stays_gone_after_kill9_on_a_quiet_queue() {
    let mut b = Broker::new();
    if b.skip_external("acked_message_stays_gone_after_kill9_on_a_quiet_queue") {
        return;
    }
    let q = unique("acked");
    run(async {
        let conn = connect(&b).await;
        let ch = confirm_channel(&conn).await;
        declare_queue(&ch, &q, durable(), FieldTable::default()).await;
        publish_confirmed(&ch, "", &q, &["m1", "m2"]).await;
        let m1 = get(&ch, &q).await.expect("m1");
        assert_eq!(m1.delivery.data, b"m1");
        m1.delivery.acker.ack(BasicAckOptions::default()).await.expect("ack");
        tokio::time::sleep(SETTLE).await;
    });
    crash(&mut b);
    run(async {
        let (_conn, ch) = open(&b).await;
        assert_eq!(drain(&ch, &q).await, vec![pair("m2", true)]);
    });
}

/// reject without requeue, nack without requeue, and a drop at max-length:
/// none comes back; with a DLX the rejected one is in the DLQ only.
#[test]
fn rejected_nacked_and_dropped_stay_gone_after_kill9() {
    let mut b = Broker::new();
    if b.skip_external("rejected_nacked_and_dropped_stay_gone_after_kill9") {
        return;
    }
    let (q, dlq, lim) = (unique("rej"), unique("rej-dlq"), unique("lim"));
    run(async {
        let conn = connect(&b).await;
        let ch = confirm_channel(&conn).await;
        declare_queue(&ch, &dlq, durable(), FieldTable::default()).await;
        let dl = table(&[
            ("x-dead-letter-exchange", lstr("")),
            ("x-dead-letter-routing-key", lstr(&dlq)),
        ]);
        declare_queue(&ch, &q, durable(), dl).await;
        declare_queue(&ch, &lim, durable(), table(&[("x-max-length", AMQPValue::LongInt(1))])).await;
        publish_confirmed(&ch, "", &q, &["r1", "n1", "keep"]).await;
        publish_confirmed(&ch, "", &lim, &["d1", "d2", "d3"]).await;
        let r1 = get(&ch, &q).await.expect("r1");
        r1.delivery
            .acker
            .reject(BasicRejectOptions { requeue: false })
            .await
            .expect("reject");
        let n1 = get(&ch, &q).await.expect("n1");
        let nack = BasicNackOptions {
            requeue: false,
            multiple: false,
        };
        n1.delivery.acker.nack(nack).await.expect("nack");
        eventually("both dead-lettered", || async {
            let d = declare_queue(&ch, &dlq, durable(), FieldTable::default()).await;
            d.message_count() == 2
        })
        .await;
        tokio::time::sleep(SETTLE).await;
    });
    crash(&mut b);
    run(async {
        let (_conn, ch) = open(&b).await;
        let got = drain(&ch, &q).await;
        assert_eq!(got.iter().map(|g| g.0.as_str()).collect::<Vec<_>>(), ["keep"]);
        let dead = drain(&ch, &dlq).await;
        assert_eq!(dead.iter().map(|g| g.0.as_str()).collect::<Vec<_>>(), ["r1", "n1"]);
        assert_eq!(
            drain(&ch, &lim).await.len(),
            1,
            "x-max-length 1 must hold after recovery"
        );
    });
}

/// Delivered and never acked: back after kill -9, flagged; also in a
/// priority queue, and also when the crash follows right after the delivery.
#[test]
fn delivered_unacked_comes_back_redelivered_after_kill9() {
    let mut b = Broker::new();
    if b.skip_external("delivered_unacked_comes_back_redelivered_after_kill9") {
        return;
    }
    let (q, pq) = (unique("unacked"), unique("unacked-prio"));
    run(async {
        let conn = connect(&b).await;
        let ch = confirm_channel(&conn).await;
        declare_queue(&ch, &q, durable(), FieldTable::default()).await;
        declare_queue(
            &ch,
            &pq,
            durable(),
            table(&[("x-max-priority", AMQPValue::ShortShortUInt(5))]),
        )
        .await;
        publish_confirmed(&ch, "", &q, &["a1", "a2"]).await;
        for (body, prio) in [("p-low", 1u8), ("p-high", 4)] {
            let props = persistent().with_priority(prio);
            let c = publish_with(&ch, "", &pq, body.as_bytes(), props, BasicPublishOptions::default()).await;
            assert!(c.is_ack());
        }
        let a1 = get(&ch, &q).await.expect("a1");
        assert!(!a1.delivery.redelivered);
        let top = get(&ch, &pq).await.expect("p-high");
        assert_eq!(top.delivery.data, b"p-high");
        // No wait: the flag must be safe before the delivery leaves.
    });
    crash(&mut b);
    run(async {
        let (_conn, ch) = open(&b).await;
        assert_eq!(drain(&ch, &q).await, vec![pair("a1", true), pair("a2", true)]);
        let got = drain(&ch, &pq).await;
        assert_eq!(got[0], pair("p-high", true), "{got:?}");
        assert_eq!(got.len(), 2, "{got:?}");
    });
    // A clean restart after all that: nothing left, nothing flagged wrongly.
    b.restart();
    run(async {
        let (_conn, ch) = open(&b).await;
        let conf = confirm_channel(&_conn).await;
        publish_confirmed(&conf, "", &q, &["fresh"]).await;
        assert_eq!(drain(&ch, &q).await, vec![pair("fresh", false)]);
    });
}

/// tx.commit-ok arrives for persistent messages (after the group commit), and
/// a kill -9 right after it keeps them all, in order (defect 11). kill -9 keeps
/// the page cache, so this shows crash consistency; that commit-ok waits for
/// the fsync is checked in the core (`core::tx_tests`).
#[test]
fn committed_messages_survive_kill9_right_after_commit_ok() {
    let mut b = Broker::new();
    if b.skip_external("committed_messages_survive_kill9_right_after_commit_ok") {
        return;
    }
    let q = unique("tx");
    let bodies: Vec<String> = (0..50).map(|i| format!("t{i}")).collect();
    run(async {
        let (_conn, ch) = open(&b).await;
        declare_queue(&ch, &q, durable(), FieldTable::default()).await;
        within("tx.select", ch.tx_select()).await.expect("tx.select");
        for body in &bodies {
            within(
                "publish",
                ch.basic_publish(
                    "".into(),
                    q.as_str().into(),
                    BasicPublishOptions::default(),
                    body.as_bytes(),
                    persistent(),
                ),
            )
            .await
            .expect("publish");
        }
        within("tx.commit", ch.tx_commit()).await.expect("tx.commit");
    });
    crash(&mut b);
    run(async {
        let (_conn, ch) = open(&b).await;
        let got: Vec<String> = drain(&ch, &q).await.into_iter().map(|g| g.0).collect();
        assert_eq!(got, bodies);
    });
}

fn delivery_count(m: &lapin::message::BasicGetMessage) -> Option<i64> {
    let headers = m.delivery.properties.headers().as_ref()?;
    match headers.inner().get("x-delivery-count")? {
        AMQPValue::LongLongInt(n) => Some(*n),
        AMQPValue::LongInt(n) => Some(i64::from(*n)),
        AMQPValue::LongUInt(n) => Some(i64::from(*n)),
        other => panic!("x-delivery-count {other:?}"),
    }
}

/// A poison message gets no fresh set of deliveries from a restart: the count
/// of `x-delivery-limit` survives a clean restart and kill -9 (defect 12).
#[test]
fn delivery_counts_survive_restarts() {
    let mut b = Broker::new();
    if b.skip_external("delivery_counts_survive_restarts") {
        return;
    }
    let q = unique("poison");
    let requeue = BasicRejectOptions { requeue: true };
    run(async {
        let conn = connect(&b).await;
        let ch = confirm_channel(&conn).await;
        declare_queue(
            &ch,
            &q,
            durable(),
            table(&[("x-delivery-limit", AMQPValue::LongInt(3))]),
        )
        .await;
        publish_confirmed(&ch, "", &q, &["poison", "other"]).await;
        for _ in 0..2 {
            let m = get(&ch, &q).await.expect("poison");
            assert_eq!(m.delivery.data, b"poison");
            m.delivery.acker.reject(requeue).await.expect("reject");
        }
        tokio::time::sleep(SETTLE).await;
    });
    crash(&mut b);
    run(async {
        let (_conn, ch) = open(&b).await;
        let m = get(&ch, &q).await.expect("poison after kill -9");
        assert_eq!(m.delivery.data, b"poison");
        assert_eq!(delivery_count(&m), Some(2), "count after kill -9");
        m.delivery.acker.reject(requeue).await.expect("reject");
    });
    b.restart();
    run(async {
        let (_conn, ch) = open(&b).await;
        let m = get(&ch, &q).await.expect("poison after restart");
        assert_eq!(delivery_count(&m), Some(3), "count after a clean restart");
        // The fourth return is past the limit of 3: the message is gone.
        m.delivery.acker.reject(requeue).await.expect("reject");
        let rest: Vec<String> = drain(&ch, &q).await.into_iter().map(|g| g.0).collect();
        assert_eq!(rest, ["other"]);
    });
}

/// Unacked messages at a kill -9 come back ready, and only ready ones count
/// against max-length: the queue is trimmed from the head (and dead-lettered)
/// when the broker starts, as RabbitMQ 3.10 does when a queue starts
/// (`init_max_length`; checked: it keeps d, e and dead-letters a, b, c).
/// ringmq kept all four (found by tests/model.rs). The connection stays open
/// until the kill: closing it would requeue, and trim, before.
#[test]
fn max_length_holds_after_kill9_with_unacked_messages() {
    let mut b = Broker::new();
    if b.skip_external("max_length_holds_after_kill9_with_unacked_messages") {
        return;
    }
    let (q, dlq) = (unique("limit"), unique("limit-dlq"));
    let rt = runtime();
    let held = rt.block_on(async {
        let conn = connect(&b).await;
        let ch = confirm_channel(&conn).await;
        declare_queue(&ch, &dlq, durable(), FieldTable::default()).await;
        let args = table(&[
            ("x-max-length", AMQPValue::LongInt(2)),
            ("x-dead-letter-exchange", lstr("")),
            ("x-dead-letter-routing-key", lstr(&dlq)),
        ]);
        declare_queue(&ch, &q, durable(), args).await;
        publish_confirmed(&ch, "", &q, &["a", "b", "c"]).await;
        for body in ["b", "c"] {
            let m = get(&ch, &q).await.expect("a message");
            assert_eq!(m.delivery.data, body.as_bytes());
        }
        // Two ready, two unacked: within the limit.
        publish_confirmed(&ch, "", &q, &["d", "e"]).await;
        conn
    });
    crash(&mut b);
    drop(held);
    rt.block_on(async {
        let (_conn, ch) = open(&b).await;
        let got: Vec<String> = drain(&ch, &q).await.into_iter().map(|g| g.0).collect();
        assert_eq!(got, ["d", "e"], "x-max-length 2 after recovery");
        let dead: Vec<String> = drain(&ch, &dlq).await.into_iter().map(|g| g.0).collect();
        assert_eq!(dead, ["a", "b", "c"]);
    });
}
