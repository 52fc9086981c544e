//! A durable queue deleted and declared again keeps the messages confirmed to
//! its new incarnation across restarts (issue 15, defect 1: replaying declare,
//! delete, declare from the definitions log wiped them, 7 confirmed messages
//! became 0; RabbitMQ 3.10 keeps all 7). Clean restarts and kill -9, an empty
//! and a non-empty queue before the delete, and several cycles with restarts in
//! between. These restart the broker, so they skip against `RINGMQ_TEST_URI`.

mod common;

use common::*;

fn durable() -> QueueDeclareOptions {
    QueueDeclareOptions {
        durable: true,
        ..Default::default()
    }
}

#[derive(Clone, Copy, Debug)]
enum Restart {
    Clean,
    Kill9,
}

fn restart(b: &mut Broker, how: Restart) {
    match how {
        Restart::Clean => b.restart(),
        Restart::Kill9 => {
            b.kill9();
            b.start();
        }
    }
}

/// Publishes `bodies` persistent to `q` with confirms; all must be acked.
async fn publish_confirmed(ch: &lapin::Channel, q: &str, bodies: &[String]) {
    for body in bodies {
        let props = BasicProperties::default().with_delivery_mode(2);
        let c = publish_with(ch, "", q, body.as_bytes(), props, BasicPublishOptions::default()).await;
        assert!(c.is_ack(), "{body} not confirmed: {c:?}");
    }
}

async fn delete(ch: &lapin::Channel, q: &str) {
    within("queue.delete", ch.queue_delete(q.into(), QueueDeleteOptions::default()))
        .await
        .expect("queue.delete");
}

fn bodies(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}{i}")).collect()
}

/// Declare Q, (publish `before`), delete Q, declare Q again, publish 7 with
/// confirms, restart: Q holds exactly the 7, in order.
fn redeclared_queue_keeps_confirmed_messages(how: Restart, before: usize) {
    let mut b = Broker::new();
    if b.skip_external("redeclared_queue_keeps_confirmed_messages") {
        return;
    }
    let q = unique("redeclared");
    let seven = bodies("new", 7);
    run(async {
        let conn = connect(&b).await;
        let ch = confirm_channel(&conn).await;
        declare_queue(&ch, &q, durable(), FieldTable::default()).await;
        publish_confirmed(&ch, &q, &bodies("old", before)).await;
        delete(&ch, &q).await;
        declare_queue(&ch, &q, durable(), FieldTable::default()).await;
        publish_confirmed(&ch, &q, &seven).await;
    });
    restart(&mut b, how);
    run(async {
        let (_conn, ch) = open(&b).await;
        let got = declare_queue(&ch, &q, durable(), FieldTable::default()).await;
        assert_eq!(got.message_count(), 7, "after {how:?} restart");
        assert_eq!(get_all(&ch, &q).await, seven);
    });
    // And once more: the first restart's compaction must keep the new data too.
    restart(&mut b, how);
    run(async {
        let (_conn, ch) = open(&b).await;
        let got = declare_queue(&ch, &q, durable(), FieldTable::default()).await;
        assert_eq!(got.message_count(), 0, "all 7 were consumed before the second restart");
    });
}

#[test]
fn empty_queue_deleted_and_redeclared_keeps_messages_over_clean_restart() {
    redeclared_queue_keeps_confirmed_messages(Restart::Clean, 0);
}

#[test]
fn empty_queue_deleted_and_redeclared_keeps_messages_over_kill9() {
    redeclared_queue_keeps_confirmed_messages(Restart::Kill9, 0);
}

#[test]
fn full_queue_deleted_and_redeclared_keeps_only_new_messages_over_clean_restart() {
    redeclared_queue_keeps_confirmed_messages(Restart::Clean, 5);
}

#[test]
fn full_queue_deleted_and_redeclared_keeps_only_new_messages_over_kill9() {
    redeclared_queue_keeps_confirmed_messages(Restart::Kill9, 5);
}

/// Several delete/re-declare cycles, with and without restarts between them,
/// restarts alternating clean and kill -9: after each restart the queue holds
/// exactly what was confirmed to its current incarnation.
#[test]
fn delete_redeclare_cycles_with_restarts_lose_nothing() {
    let mut b = Broker::new();
    if b.skip_external("delete_redeclare_cycles_with_restarts_lose_nothing") {
        return;
    }
    let q = unique("cycles");
    let other = unique("bystander");
    let mut expected: Vec<String> = Vec::new();
    let bystander = bodies("by", 3);
    run(async {
        let conn = connect(&b).await;
        let ch = confirm_channel(&conn).await;
        declare_queue(&ch, &other, durable(), FieldTable::default()).await;
        publish_confirmed(&ch, &other, &bystander).await;
    });
    for cycle in 0..6usize {
        let fresh = bodies(&format!("c{cycle}-"), cycle + 1);
        run(async {
            let conn = connect(&b).await;
            let ch = confirm_channel(&conn).await;
            // Two quick cycles per round: the log holds declare, delete, declare, ...
            for _ in 0..2 {
                declare_queue(&ch, &q, durable(), FieldTable::default()).await;
                publish_confirmed(&ch, &q, &bodies("doomed", 2)).await;
                delete(&ch, &q).await;
            }
            declare_queue(&ch, &q, durable(), FieldTable::default()).await;
            publish_confirmed(&ch, &q, &fresh).await;
        });
        expected = fresh;
        if cycle % 3 != 2 {
            let how = if cycle % 2 == 0 { Restart::Kill9 } else { Restart::Clean };
            restart(&mut b, how);
            run(async {
                let (_conn, ch) = open(&b).await;
                let got = declare_queue(&ch, &q, durable(), FieldTable::default()).await;
                assert_eq!(
                    got.message_count() as usize,
                    expected.len(),
                    "cycle {cycle}, after {how:?} restart"
                );
                let by = declare_queue(&ch, &other, durable(), FieldTable::default()).await;
                assert_eq!(by.message_count(), 3, "the other queue is untouched");
            });
        }
        // The next cycle deletes this incarnation (and its messages) again.
    }
    restart(&mut b, Restart::Kill9);
    run(async {
        let (_conn, ch) = open(&b).await;
        assert_eq!(get_all(&ch, &q).await, expected);
        assert_eq!(get_all(&ch, &other).await, bystander);
    });
}

/// A durable delayed exchange deleted and declared again keeps the messages it
/// holds across restarts (the follow-up to defect 1: its held messages were in
/// one folder per exchange name, and replaying the delete wiped it).
fn redeclared_delayed_exchange_keeps_held_messages(how: Restart) {
    let mut b = Broker::new();
    if b.skip_external("redeclared_delayed_exchange_keeps_held_messages") {
        return;
    }
    let (x, q) = (unique("delayed-x"), unique("delayed-q"));
    let declare_x = |ch: lapin::Channel, x: String| async move {
        within(
            "exchange.declare",
            ch.exchange_declare(
                x.as_str().into(),
                ExchangeKind::Custom("x-delayed-message".into()),
                ExchangeDeclareOptions {
                    durable: true,
                    ..Default::default()
                },
                table(&[("x-delayed-type", lstr("direct"))]),
            ),
        )
        .await
        .expect("exchange.declare");
    };
    run(async {
        let conn = connect(&b).await;
        let ch = confirm_channel(&conn).await;
        declare_queue(&ch, &q, durable(), FieldTable::default()).await;
        declare_x(ch.clone(), x.clone()).await;
        within(
            "exchange.delete",
            ch.exchange_delete(x.as_str().into(), ExchangeDeleteOptions::default()),
        )
        .await
        .expect("exchange.delete");
        declare_x(ch.clone(), x.clone()).await;
        bind(&ch, &q, &x, "k", FieldTable::default()).await;
        let props = BasicProperties::default()
            .with_delivery_mode(2)
            .with_headers(table(&[("x-delay", AMQPValue::LongInt(1_500))]));
        let c = publish_with(&ch, &x, "k", b"held", props, BasicPublishOptions::default()).await;
        assert!(c.is_ack(), "{c:?}");
    });
    restart(&mut b, how);
    run(async {
        let (_conn, ch) = open(&b).await;
        eventually("the held message routed after the restart", || async {
            declare_queue(&ch, &q, durable(), FieldTable::default())
                .await
                .message_count()
                == 1
        })
        .await;
    });
}

#[test]
fn redeclared_delayed_exchange_keeps_held_messages_clean_restart() {
    redeclared_delayed_exchange_keeps_held_messages(Restart::Clean);
}

#[test]
fn redeclared_delayed_exchange_keeps_held_messages_kill9() {
    redeclared_delayed_exchange_keeps_held_messages(Restart::Kill9);
}
