//! TTL 0 (issue 15, defect 0): one publish with `x-message-ttl: 0` or
//! `expiration: "0"` and no consumer used to livelock the broker (the head timer
//! was re-armed at `now` and popped again without end). RabbitMQ 3.10 delivers
//! such a message to a consumer that can take it at once and otherwise expires
//! it (dead-lettering it when the queue has a DLX); the broker keeps serving.
//! Checked against RabbitMQ 3.10 with `RINGMQ_TEST_URI`.

mod common;

use std::time::{Duration, Instant};

use common::raw::{plain, RawConn};
use common::*;
use lapin::types::ShortString;
use ringmq_codec::{ConnectionOpen, ConnectionTuneOk, Method};

const MESSAGES: usize = 5;

fn exclusive() -> QueueDeclareOptions {
    QueueDeclareOptions {
        exclusive: true,
        ..Default::default()
    }
}

/// A raw connection that asked for 1 s heartbeats.
async fn heartbeat_conn(b: &Broker) -> RawConn {
    let mut c = RawConn::connect(b.addr()).await;
    c.start().await;
    c.start_ok("PLAIN", &plain(b.user(), b.pass())).await;
    let g = c.expect("connection.tune").await;
    let (channel_max, frame_max, _) = g.tune.expect("tune fields");
    let ok = ConnectionTuneOk {
        channel_max,
        frame_max,
        heartbeat: 1,
    };
    c.send_method(0, &Method::ConnectionTuneOk(ok)).await;
    let open = ConnectionOpen {
        virtual_host: ringmq_codec::short!("/"),
        capabilities: ringmq_codec::short!(""),
        insist: false,
    };
    c.send_method(0, &Method::ConnectionOpen(open)).await;
    c.expect("connection.open-ok").await;
    c
}

/// The broker still serves: a connection opened before the publishes gets the
/// broker's heartbeat (a livelocked loop sends none), and a new connection
/// completes a round trip, each bounded by the harness's wait.
async fn assert_serving(b: &Broker, hb: &mut RawConn) {
    hb.send(&[8, 0, 0, 0, 0, 0, 0, 0xCE]).await;
    match tokio::time::timeout(Duration::from_secs(3), hb.recv()).await {
        Ok(Some(g)) if g.name == "heartbeat" => {}
        Ok(other) => panic!("expected a heartbeat, got {other:?}"),
        Err(_) => panic!("no heartbeat from the broker within 3 s"),
    }
    let (conn, ch) = open(b).await;
    let q = unique("alive");
    declare_queue(&ch, &q, exclusive(), FieldTable::default()).await;
    publish(&ch, "", &q, b"ping").await;
    assert_eq!(get_all(&ch, &q).await, strs(&["ping"]));
    within("close", conn.close(200, "bye".into())).await.expect("close");
}

/// Publishes `MESSAGES` to `q` with `props`, with confirms (all acked).
async fn publish_confirmed(ch: &lapin::Channel, q: &str, props: BasicProperties) {
    for i in 0..MESSAGES {
        let c = publish_with(
            ch,
            "",
            q,
            format!("m{i}").as_bytes(),
            props.clone(),
            BasicPublishOptions::default(),
        )
        .await;
        assert!(c.is_ack(), "publish {i} not acked: {c:?}");
    }
}

/// Waits until `dlq` holds all `MESSAGES` dead letters and returns their bodies.
async fn dead_letters(ch: &lapin::Channel, dlq: &str) -> Vec<String> {
    let mut got = Vec::new();
    let deadline = Instant::now() + WAIT;
    while got.len() < MESSAGES {
        got.extend(get_all(ch, dlq).await);
        assert!(Instant::now() < deadline, "only {} dead letters: {got:?}", got.len());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    got
}

fn expected() -> Vec<String> {
    (0..MESSAGES).map(|i| format!("m{i}")).collect()
}

/// A spawned broker must exit cleanly on SIGTERM (the livelocked one ignored it).
fn stop_if_spawned(b: &mut Broker) {
    if !b.is_external() {
        b.stop();
    }
}

/// TTL 0 as a queue argument (`queue_ttl`) or as a per-message `expiration: "0"`.
fn ttl_zero_expires_without_consumer(queue_ttl: bool) {
    let mut b = Broker::new();
    run(async {
        let mut hb = if b.is_external() {
            None
        } else {
            Some(heartbeat_conn(&b).await)
        };
        let conn = connect(&b).await;
        let ch = confirm_channel(&conn).await;
        let dlq = unique("ttl0-dlq");
        declare_queue(&ch, &dlq, exclusive(), FieldTable::default()).await;
        let q = unique("ttl0");
        let mut args = vec![
            ("x-dead-letter-exchange", lstr("")),
            ("x-dead-letter-routing-key", lstr(&dlq)),
        ];
        if queue_ttl {
            args.push(("x-message-ttl", AMQPValue::LongInt(0)));
        }
        declare_queue(&ch, &q, exclusive(), table(&args)).await;
        let props = if queue_ttl {
            BasicProperties::default()
        } else {
            BasicProperties::default().with_expiration(ShortString::from("0"))
        };
        publish_confirmed(&ch, &q, props).await;
        if let Some(hb) = hb.as_mut() {
            assert_serving(&b, hb).await;
        }
        // Expired, not kept: each message dead-lettered once, in order.
        assert_eq!(dead_letters(&ch, &dlq).await, expected());
        assert!(get_all(&ch, &q).await.is_empty(), "expired messages left in {q}");
        // And the broker keeps serving after the expiry too.
        let ch2 = channel(&conn).await;
        let passive = QueueDeclareOptions {
            passive: true,
            exclusive: true,
            ..Default::default()
        };
        within(
            "passive declare",
            ch2.queue_declare(q.as_str().into(), passive, FieldTable::default()),
        )
        .await
        .expect("queue still there");
    });
    stop_if_spawned(&mut b);
}

#[test]
fn queue_ttl_zero_without_consumer_expires_and_broker_keeps_serving() {
    ttl_zero_expires_without_consumer(true);
}

#[test]
fn expiration_zero_without_consumer_expires_and_broker_keeps_serving() {
    ttl_zero_expires_without_consumer(false);
}

#[test]
fn ttl_zero_without_dlx_drops_and_broker_keeps_serving() {
    let mut b = Broker::new();
    run(async {
        let mut hb = if b.is_external() {
            None
        } else {
            Some(heartbeat_conn(&b).await)
        };
        let conn = connect(&b).await;
        let ch = confirm_channel(&conn).await;
        let q = unique("ttl0-drop");
        declare_queue(&ch, &q, exclusive(), table(&[("x-message-ttl", AMQPValue::LongInt(0))])).await;
        publish_confirmed(&ch, &q, BasicProperties::default()).await;
        let p = unique("exp0-drop");
        declare_queue(&ch, &p, exclusive(), FieldTable::default()).await;
        let props = BasicProperties::default().with_expiration(ShortString::from("0"));
        publish_confirmed(&ch, &p, props).await;
        if let Some(hb) = hb.as_mut() {
            assert_serving(&b, hb).await;
        }
        assert!(get_all(&ch, &q).await.is_empty(), "TTL 0 messages kept in {q}");
        assert!(get_all(&ch, &p).await.is_empty(), "expiration 0 messages kept in {p}");
    });
    stop_if_spawned(&mut b);
}

#[test]
fn ttl_zero_goes_to_a_waiting_consumer() {
    let b = Broker::new();
    run(async {
        let conn = connect(&b).await;
        let ch = confirm_channel(&conn).await;
        let q = unique("ttl0-consumed");
        declare_queue(&ch, &q, exclusive(), table(&[("x-message-ttl", AMQPValue::LongInt(0))])).await;
        let consume_ch = channel(&conn).await;
        let mut consumer = consume_no_ack(&consume_ch, &q).await;
        publish_confirmed(&ch, &q, BasicProperties::default()).await;
        let mut got = Vec::new();
        for _ in 0..MESSAGES {
            got.push(String::from_utf8_lossy(&next(&mut consumer).await.data).into_owned());
        }
        assert_eq!(got, expected());
    });
}

/// Shutdown works while the loop is busy: many messages expire at once and are
/// dead-lettered down a chain of TTL queues (bounded batches per turn), and
/// SIGTERM arrives in the middle; the broker exits cleanly within the bound.
/// The longest loop turn is a metric.
#[test]
fn sigterm_is_seen_while_the_loop_is_busy_expiring() {
    const N: usize = 20_000;
    let mut b = Broker::new();
    if b.skip_external("sigterm_is_seen_while_the_loop_is_busy_expiring") {
        return;
    }
    run(async {
        let (conn, ch) = open(&b).await;
        let chain: Vec<String> = (0..3).map(|i| unique(&format!("busy{i}"))).collect();
        for (i, q) in chain.iter().enumerate() {
            let mut args = vec![("x-message-ttl", AMQPValue::LongInt(300))];
            if let Some(next) = chain.get(i + 1) {
                args.push(("x-dead-letter-exchange", lstr("")));
                args.push(("x-dead-letter-routing-key", lstr(next)));
            }
            declare_queue(&ch, q, QueueDeclareOptions::default(), table(&args)).await;
        }
        for i in 0..N {
            ch.basic_publish(
                "".into(),
                chain[0].as_str().into(),
                BasicPublishOptions::default(),
                format!("{i}").as_bytes(),
                BasicProperties::default(),
            )
            .await
            .expect("publish");
        }
        // A round trip: every publish reached the broker.
        declare_queue(
            &ch,
            &chain[0],
            QueueDeclareOptions {
                passive: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await;
        within("close", conn.close(200, "bye".into())).await.expect("close");
        // Into the expiry of the first queue's messages.
        tokio::time::sleep(Duration::from_millis(300)).await;
    });
    let metrics = common::http::Api::anonymous(&b.metrics_url()).get("/metrics?prefix=ringmq");
    let longest = metrics
        .text
        .lines()
        .find_map(|l| l.strip_prefix("ringmq_loop_turn_longest_seconds "))
        .unwrap_or_else(|| panic!("no ringmq_loop_turn_longest_seconds in:\n{}", metrics.text));
    let longest: f64 = longest.trim().parse().expect("a number");
    assert!(longest > 0.0, "longest loop turn {longest}");
    assert!(
        metrics.text.contains("ringmq_loop_turns_slow_total "),
        "{}",
        metrics.text
    );
    b.stop();
}
