//! Durable state across a graceful restart and across kill -9. These need the
//! spawned binary (they restart it), so they skip against `RINGMQ_TEST_URI`.

mod common;

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use common::*;

fn durable_q() -> QueueDeclareOptions {
    QueueDeclareOptions {
        durable: true,
        ..Default::default()
    }
}

fn persistent() -> BasicProperties {
    BasicProperties::default().with_delivery_mode(2)
}

#[test]
fn durable_topology_and_persistent_messages_survive_restart() {
    let mut b = Broker::new();
    if b.skip_external("durable_topology_and_persistent_messages_survive_restart") {
        return;
    }
    run(async {
        let (x, tx) = ("durable-x".to_string(), "transient-x".to_string());
        let (q, tq) = ("durable-q".to_string(), "transient-q".to_string());
        {
            let conn = connect(&b).await;
            let ch = confirm_channel(&conn).await;
            declare_exchange(
                &ch,
                &x,
                ExchangeKind::Topic,
                ExchangeDeclareOptions {
                    durable: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await;
            declare_exchange(
                &ch,
                &tx,
                ExchangeKind::Fanout,
                ExchangeDeclareOptions::default(),
                FieldTable::default(),
            )
            .await;
            declare_queue(
                &ch,
                &q,
                durable_q(),
                table(&[("x-max-length", AMQPValue::LongInt(1000))]),
            )
            .await;
            declare_queue(&ch, &tq, QueueDeclareOptions::default(), FieldTable::default()).await;
            bind(&ch, &q, &x, "a.#", FieldTable::default()).await;
            for i in 1..=3 {
                publish_with(
                    &ch,
                    &x,
                    "a.b",
                    format!("p{i}").as_bytes(),
                    persistent(),
                    BasicPublishOptions::default(),
                )
                .await;
            }
            // A transient message in a durable queue does not survive.
            publish(&ch, &x, "a.t", b"transient").await;
            publish_with(&ch, "", &tq, b"gone", persistent(), BasicPublishOptions::default()).await;
            // p1 delivered but not acked at shutdown: back, redelivered.
            let m = within("get", ch.basic_get(q.as_str().into(), BasicGetOptions::default()))
                .await
                .expect("get")
                .expect("p1");
            assert_eq!(m.delivery.data, b"p1");
            b.restart();
            drop(conn);
        }
        let conn = connect(&b).await;
        let ch = confirm_channel(&conn).await;
        // Durable things are back, with their arguments (a redeclare with others is 406).
        declare_exchange(
            &ch,
            &x,
            ExchangeKind::Topic,
            ExchangeDeclareOptions {
                passive: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await;
        let d = declare_queue(
            &ch,
            &q,
            durable_q(),
            table(&[("x-max-length", AMQPValue::LongInt(1000))]),
        )
        .await;
        assert_eq!(d.message_count(), 3);
        let r = within(
            "redeclare",
            ch.queue_declare(q.as_str().into(), durable_q(), FieldTable::default()),
        )
        .await;
        assert_amqp_err(r, 406, "PRECONDITION_FAILED - inequivalent arg 'x-max-length'");
        let ch = confirm_channel(&conn).await;
        // Transient things are not.
        let r = within(
            "transient exchange",
            ch.exchange_declare(
                tx.as_str().into(),
                ExchangeKind::Fanout,
                ExchangeDeclareOptions {
                    passive: true,
                    ..Default::default()
                },
                FieldTable::default(),
            ),
        )
        .await;
        assert_amqp_err(r, 404, "NOT_FOUND - no exchange 'transient-x'");
        let ch = confirm_channel(&conn).await;
        let r = within(
            "transient queue",
            ch.queue_declare(
                tq.as_str().into(),
                QueueDeclareOptions {
                    passive: true,
                    ..Default::default()
                },
                FieldTable::default(),
            ),
        )
        .await;
        assert_amqp_err(r, 404, "NOT_FOUND - no queue 'transient-q'");
        let ch = confirm_channel(&conn).await;
        // The binding is back: routes a new message.
        publish_with(&ch, &x, "a.new", b"p4", persistent(), BasicPublishOptions::default()).await;
        let mut got = Vec::new();
        while let Some(m) = within("get", ch.basic_get(q.as_str().into(), BasicGetOptions { no_ack: true }))
            .await
            .expect("get")
        {
            got.push((
                String::from_utf8_lossy(&m.delivery.data).into_owned(),
                m.delivery.redelivered,
            ));
        }
        let want: Vec<(String, bool)> = vec![
            ("p1".into(), true),
            ("p2".into(), false),
            ("p3".into(), false),
            ("p4".into(), false),
        ];
        assert_eq!(got, want);
        // A second restart after everything was consumed: the queue stays empty.
        drop(conn);
        b.restart();
        let conn = connect(&b).await;
        let ch = channel(&conn).await;
        let d = declare_queue(
            &ch,
            &q,
            QueueDeclareOptions {
                passive: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await;
        assert_eq!(d.message_count(), 0, "acked messages came back after a restart");
    });
}

#[test]
fn confirmed_messages_survive_kill_9_in_order() {
    const N: usize = 2000;
    let mut b = Broker::new();
    if b.skip_external("confirmed_messages_survive_kill_9_in_order") {
        return;
    }
    run(async {
        let q = "crash-q";
        let confirmed = Arc::new(Mutex::new(BTreeSet::new()));
        {
            let conn = connect(&b).await;
            let ch = confirm_channel(&conn).await;
            declare_queue(&ch, q, durable_q(), FieldTable::default()).await;
            let mut waiters = Vec::new();
            let mut i = 0;
            // Publish in pipelined batches; kill once at least half are confirmed,
            // while the next batch is still in flight.
            while i < N {
                let batch_end = (i + 100).min(N);
                let mut batch = Vec::new();
                while i < batch_end {
                    let body = format!("{i:06}");
                    let c = within(
                        "publish",
                        ch.basic_publish(
                            "".into(),
                            q.into(),
                            BasicPublishOptions::default(),
                            body.as_bytes(),
                            persistent(),
                        ),
                    )
                    .await
                    .expect("publish");
                    batch.push((i, c));
                    i += 1;
                }
                if confirmed.lock().expect("lock").len() >= N / 2 {
                    // Record confirms that land before the kill; the rest are unknown.
                    for (n, c) in batch {
                        let confirmed = confirmed.clone();
                        waiters.push(tokio::spawn(async move {
                            if let Ok(Ok(Confirmation::Ack(_))) = tokio::time::timeout(WAIT, c).await {
                                confirmed.lock().expect("lock").insert(n);
                            }
                        }));
                    }
                    break;
                }
                for (n, c) in batch {
                    let r = within("confirm", c).await.expect("confirm");
                    assert!(matches!(r, Confirmation::Ack(None)), "message {n}: {r:?}");
                    confirmed.lock().expect("lock").insert(n);
                }
            }
            let at_kill: BTreeSet<usize> = confirmed.lock().expect("lock").clone();
            b.kill9();
            for w in waiters {
                let _ = w.await;
            }
            assert!(at_kill.len() >= N / 2);
            drop(conn);
        }
        let confirmed: BTreeSet<usize> = confirmed.lock().expect("lock").clone();
        b.start();
        let conn = connect(&b).await;
        let ch = channel(&conn).await;
        let got: Vec<usize> = get_all(&ch, q)
            .await
            .iter()
            .map(|s| s.parse().expect("a number"))
            .collect();
        // In order, no duplicates, nothing invented.
        assert!(
            got.windows(2).all(|w| w[0] < w[1]),
            "out of order or duplicated after the crash"
        );
        assert!(got.iter().all(|&n| n < N));
        let have: BTreeSet<usize> = got.iter().copied().collect();
        let lost: Vec<usize> = confirmed.difference(&have).copied().collect();
        assert!(
            lost.is_empty(),
            "{} confirmed messages lost, first {:?}",
            lost.len(),
            &lost[..lost.len().min(10)]
        );
        eprintln!("kill -9: {} confirmed, {} recovered", confirmed.len(), got.len());
    });
}
