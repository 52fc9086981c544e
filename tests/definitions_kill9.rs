//! Durable definitions across kill -9: every declare, bind and delete the broker
//! answered is there after a restart (its record was written and synced before the
//! reply), while several connections declare concurrently (one group commit
//! covers many records). Needs the spawned binary, so it skips against
//! `RINGMQ_TEST_URI`.

mod common;

use std::sync::{Arc, Mutex};

use common::*;

#[derive(Debug, Clone)]
enum Done {
    Exchange(String),
    Queue(String),
    Bound(String, String),
    /// A queue.delete was sent: without its delete-ok, the kill may have come
    /// before or after it took effect, so the queue may be there or not.
    Deleting(String),
    Deleted(String),
}

/// Declares exchanges and queues, binds them, deletes every third queue, until
/// the connection fails (the kill); each answered step is pushed to `done`.
async fn declare_until_killed(uri: String, client: usize, done: Arc<Mutex<Vec<Done>>>) {
    let Ok(conn) = lapin::Connection::connect(&uri, lapin::ConnectionProperties::default()).await else {
        return;
    };
    let Ok(ch) = conn.create_channel().await else { return };
    let durable_x = ExchangeDeclareOptions {
        durable: true,
        ..Default::default()
    };
    let durable_q = QueueDeclareOptions {
        durable: true,
        ..Default::default()
    };
    for i in 0.. {
        let (x, q) = (format!("x-{client}-{i}"), format!("q-{client}-{i}"));
        let step = async {
            ch.exchange_declare(
                x.as_str().into(),
                ExchangeKind::Direct,
                durable_x,
                FieldTable::default(),
            )
            .await?;
            done.lock().expect("lock").push(Done::Exchange(x.clone()));
            ch.queue_declare(q.as_str().into(), durable_q, FieldTable::default())
                .await?;
            done.lock().expect("lock").push(Done::Queue(q.clone()));
            let bind = QueueBindOptions::default();
            ch.queue_bind(
                q.as_str().into(),
                x.as_str().into(),
                "k".into(),
                bind,
                FieldTable::default(),
            )
            .await?;
            done.lock().expect("lock").push(Done::Bound(q.clone(), x.clone()));
            if i % 3 == 2 {
                done.lock().expect("lock").push(Done::Deleting(q.clone()));
                ch.queue_delete(q.as_str().into(), QueueDeleteOptions::default())
                    .await?;
                done.lock().expect("lock").push(Done::Deleted(q.clone()));
            }
            Ok::<_, lapin::Error>(())
        };
        if step.await.is_err() {
            return;
        }
    }
}

#[test]
fn every_answered_declare_bind_and_delete_survives_kill_9() {
    const CLIENTS: usize = 4;
    const ANSWERED_AT_LEAST: usize = 200;
    let mut b = Broker::new();
    if b.skip_external("every_answered_declare_bind_and_delete_survives_kill_9") {
        return;
    }
    run(async {
        let done = Arc::new(Mutex::new(Vec::new()));
        let tasks: Vec<_> = (0..CLIENTS)
            .map(|c| tokio::spawn(declare_until_killed(b.uri().to_string(), c, done.clone())))
            .collect();
        eventually("enough declares answered", || {
            let n = done.lock().expect("lock").len();
            async move { n >= ANSWERED_AT_LEAST }
        })
        .await;
        // Killed while every client has a declare, bind or delete in flight.
        b.kill9();
        let answered = done.lock().expect("lock").clone();
        for t in tasks {
            let _ = t.await;
        }
        b.start();
        let conn = connect(&b).await;
        // Queues whose delete was sent, answered or not: not checked for presence.
        let deleted: std::collections::HashSet<&str> = (answered.iter())
            .filter_map(|d| match d {
                Done::Deleting(q) => Some(q.as_str()),
                _ => None,
            })
            .collect();
        let passive = |q: bool, name: &str| {
            let conn = &conn;
            let name = name.to_string();
            async move {
                let ch = channel(conn).await;
                let r = if q {
                    let o = QueueDeclareOptions {
                        passive: true,
                        ..Default::default()
                    };
                    ch.queue_declare(name.as_str().into(), o, FieldTable::default())
                        .await
                        .map(drop)
                } else {
                    let o = ExchangeDeclareOptions {
                        passive: true,
                        ..Default::default()
                    };
                    let kind = ExchangeKind::Direct;
                    ch.exchange_declare(name.as_str().into(), kind, o, FieldTable::default())
                        .await
                };
                (r.is_ok(), ch)
            }
        };
        for d in &answered {
            match d {
                Done::Exchange(x) => assert!(passive(false, x).await.0, "exchange {x} lost"),
                Done::Queue(q) if !deleted.contains(q.as_str()) => {
                    assert!(passive(true, q).await.0, "queue {q} lost")
                }
                Done::Bound(q, x) if !deleted.contains(q.as_str()) => {
                    // The binding routes: a message to x with key k lands in q.
                    let (_, ch) = passive(true, q).await;
                    let props = BasicProperties::default();
                    let opts = BasicPublishOptions::default();
                    within(
                        "publish",
                        ch.basic_publish(x.as_str().into(), "k".into(), opts, b"m", props),
                    )
                    .await
                    .expect("publish");
                    assert_eq!(get_all(&ch, q).await, ["m"], "binding {q} <- {x} lost");
                }
                Done::Deleted(q) => assert!(!passive(true, q).await.0, "deleted queue {q} is back"),
                _ => {}
            }
        }
    });
}
