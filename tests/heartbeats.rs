//! Heartbeats both ways: the broker sends heartbeats at half the negotiated
//! interval, and closes a connection whose peer stays silent for two intervals.

mod common;

use std::time::{Duration, Instant};

use common::raw::{plain, RawConn};
use common::*;
use ringmq_codec::{ConnectionOpen, ConnectionTuneOk, Method};

/// Handshake with a heartbeat of `secs` in tune-ok.
async fn connect_with_heartbeat(b: &Broker, secs: u16) -> RawConn {
    let mut c = RawConn::connect(b.addr()).await;
    c.start().await;
    c.start_ok("PLAIN", &plain(b.user(), b.pass())).await;
    let g = c.expect("connection.tune").await;
    let (channel_max, frame_max, _) = g.tune.expect("tune fields");
    let ok = ConnectionTuneOk {
        channel_max,
        frame_max,
        heartbeat: secs,
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

#[test]
fn broker_sends_heartbeats_and_drops_a_silent_peer() {
    let b = Broker::new();
    if b.is_external() {
        // RabbitMQ behaves the same, but its timer granularity makes a bounded
        // test slow; the spawned broker is the one under test here.
        eprintln!("skipped against an external broker");
        return;
    }
    run(async {
        let mut c = connect_with_heartbeat(&b, 1).await;
        let mut heartbeats = 0;
        // We never send anything: the broker must heartbeat us, then give up on
        // us. Each recv is bounded by the harness, so a broker that never acts
        // fails the test instead of hanging it.
        loop {
            match c.recv().await {
                Some(g) if g.name == "heartbeat" => heartbeats += 1,
                Some(g) => panic!("unexpected frame {g:?}"),
                None => break,
            }
        }
        // Heartbeats go out every half interval, on the broker's 0.5 s tick, and
        // the peer is dropped after two silent intervals (2 s), noticed on the
        // tick after: at least 2 heartbeats come first wherever in a tick the
        // handshake ended. Counting them checks the protocol without a
        // wall-clock assertion.
        assert!(heartbeats >= 2, "only {heartbeats} heartbeats before the close");
    });
}

#[test]
fn a_peer_that_heartbeats_stays_connected() {
    let b = Broker::new();
    if b.is_external() {
        eprintln!("skipped against an external broker");
        return;
    }
    run(async {
        let mut c = connect_with_heartbeat(&b, 1).await;
        let until = Instant::now() + Duration::from_millis(3500);
        while Instant::now() < until {
            c.send(&[8, 0, 0, 0, 0, 0, 0, 0xCE]).await;
            tokio::time::sleep(Duration::from_millis(400)).await;
        }
        // Still open: a channel opens fine.
        c.open_channel(1).await;
    });
}

/// A consumer that reads nothing and sends nothing: the broker's writes to it
/// block on a full socket while its heartbeats stop. It must still be dropped
/// (two silent intervals), its consumer gone from the queue, whatever its
/// writer is waiting for; the broker goes on serving others.
#[test]
fn a_peer_that_reads_nothing_is_dropped_when_its_heartbeats_stop() {
    let b = Broker::new();
    if b.is_external() {
        eprintln!("skipped against an external broker");
        return;
    }
    run(async {
        let queue = "hb-stuck";
        let mut consumer = connect_with_heartbeat(&b, 1).await;
        consumer.open_channel(1).await;
        let declare = |passive| {
            Method::QueueDeclare(ringmq_codec::QueueDeclare {
                ticket: 0,
                queue: ringmq_codec::ShortStr::new(queue).expect("short"),
                passive,
                durable: false,
                exclusive: false,
                auto_delete: false,
                no_wait: false,
                arguments: ringmq_codec::Table::EMPTY,
            })
        };
        consumer.send_method(1, &declare(false)).await;
        consumer.expect("queue.declare-ok").await;
        let consume = Method::BasicConsume(ringmq_codec::BasicConsume {
            ticket: 0,
            queue: ringmq_codec::ShortStr::new(queue).expect("short"),
            consumer_tag: ringmq_codec::ShortStr::new("stuck").expect("short"),
            no_local: false,
            no_ack: true,
            exclusive: false,
            no_wait: false,
            arguments: ringmq_codec::Table::EMPTY,
        });
        consumer.send_method(1, &consume).await;
        consumer.expect("basic.consume-ok").await;
        // From here the consumer reads nothing. 32 MiB of deliveries fill its
        // socket's buffers (and the broker's output up to its high-water mark).
        let (mut publisher, _, _) = RawConn::handshake(&b).await;
        publisher.open_channel(1).await;
        let body = vec![7u8; 64 * 1024];
        for _ in 0..8 {
            let mut out = Vec::new();
            for _ in 0..64 {
                let m = Method::BasicPublish(ringmq_codec::BasicPublish {
                    ticket: 0,
                    exchange: ringmq_codec::ShortStr::EMPTY,
                    routing_key: ringmq_codec::ShortStr::new(queue).expect("short"),
                    mandatory: false,
                    immediate: false,
                });
                ringmq_codec::encode_method(&mut out, 1, &m);
                ringmq_codec::encode_content(&mut out, 1, 60, &[0, 0], &body, 131_072);
            }
            publisher.send(&out).await;
        }
        // The consumer's connection is dropped after its heartbeats stop: its
        // consumer leaves the queue. Polled through the publisher (each
        // declare-ok bounded by the harness; the loop by its count).
        let mut consumers = u32::MAX;
        for _ in 0..60 {
            publisher.send_method(1, &declare(true)).await;
            let ok = publisher.expect("queue.declare-ok").await;
            consumers = ok.declare_ok.expect("counts").1;
            if consumers == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        assert_eq!(consumers, 0, "the silent, unread consumer is still attached");
        drop(consumer);
    });
}
