//! ringmq-client against the real broker: publisher confirms tracked over the
//! wire (single and multiple acks settle exactly the publishes they name), a
//! consumer's prefetch window (the broker sends no more than it allows until
//! acks open it), kept content, and heartbeats the broker accepts.

mod common;

use std::time::Duration;

use common::*;
use ringmq_client::{Confirms, ConnectOptions, Connection, Consumer, Event, Outcome, QueueOptions, Uri};
use ringmq_codec::{BasicProperties, ShortStr};

async fn client(b: &Broker, heartbeat_secs: u16) -> Connection {
    let uri = Uri::parse(b.uri()).expect("uri");
    let opts = ConnectOptions {
        heartbeat_secs,
        ..ConnectOptions::default()
    };
    within("client connect", Connection::connect_with(&uri, &opts))
        .await
        .expect("connect")
}

#[test]
fn confirms_settle_every_publish_once() {
    let b = Broker::new();
    run(async {
        let mut c = client(&b, 0).await;
        let ch = c.open_channel().await.unwrap();
        let q = unique("confirms");
        c.queue_declare(ch, &q, QueueOptions::default()).await.unwrap();
        c.confirm_select(ch).await.unwrap();
        let mut confirms = Confirms::default();
        let mut props = Vec::new();
        BasicProperties::default().encode(&mut props);
        for i in 0..200u64 {
            c.push_publish_raw(ch, "", &q, &props, format!("m{i}").as_bytes())
                .unwrap();
            confirms.handle_publish(i);
        }
        c.flush().await.unwrap();
        let mut settled = Vec::new();
        while confirms.outstanding() > 0 {
            match within("confirm", c.next()).await.unwrap() {
                Event::Ack {
                    delivery_tag, multiple, ..
                } => confirms.handle_confirm(delivery_tag, multiple, Outcome::Ack, &mut settled),
                other => panic!("unexpected {other:?}"),
            }
        }
        let got: Vec<u64> = settled
            .iter()
            .map(|(v, o)| {
                assert_eq!(*o, Outcome::Ack);
                *v
            })
            .collect();
        assert_eq!(got, (0..200).collect::<Vec<_>>(), "each publish settled once, in order");
    });
}

#[test]
fn the_prefetch_window_bounds_deliveries_until_acks_open_it() {
    let b = Broker::new();
    run(async {
        let mut c = client(&b, 0).await;
        let ch = c.open_channel().await.unwrap();
        let q = unique("prefetch");
        c.queue_declare(ch, &q, QueueOptions::default()).await.unwrap();
        let mut props = Vec::new();
        BasicProperties {
            message_id: Some(ShortStr::truncate("id")),
            ..Default::default()
        }
        .encode(&mut props);
        for i in 0..10 {
            c.push_publish_raw(ch, "", &q, &props, format!("m{i}").as_bytes())
                .unwrap();
        }
        c.flush().await.unwrap();
        let cch = c.open_channel().await.unwrap();
        c.keep_content();
        let mut consumer = Consumer::start(&mut c, cch, &q, 3, false, &[]).await.unwrap();
        let mut bodies = Vec::new();
        // The broker may send 3; a 4th within the quiet time is a broken window.
        loop {
            match tokio::time::timeout(QUIET, c.next()).await {
                Err(_) => break,
                Ok(Ok(Event::Delivery { delivery_tag, .. })) => {
                    consumer.handle_delivery(delivery_tag).expect("within the prefetch");
                    let content = c.take_content().expect("kept");
                    assert_eq!(
                        (content.exchange.as_str(), content.routing_key.as_str()),
                        ("", q.as_str())
                    );
                    assert_eq!(content.properties_raw, props);
                    bodies.push(String::from_utf8(content.body).unwrap());
                }
                Ok(other) => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(bodies, ["m0", "m1", "m2"]);
        assert_eq!(consumer.credit(), Some(0));
        // One multiple ack for the first two: two more come, and no more.
        consumer.push_ack(&mut c, 2, true);
        c.flush().await.unwrap();
        let mut more = 0;
        while let Ok(ev) = tokio::time::timeout(QUIET, c.next()).await {
            let Ok(Event::Delivery { delivery_tag, .. }) = ev else {
                panic!("{ev:?}")
            };
            consumer.handle_delivery(delivery_tag).expect("within the prefetch");
            more += 1;
        }
        assert_eq!((more, consumer.unacked()), (2, 3));
    });
}

#[test]
fn an_idle_connection_with_heartbeats_stays_open() {
    let b = Broker::new();
    run(async {
        let mut c = client(&b, 1).await;
        assert_eq!(c.heartbeat_secs(), 1);
        // 3.5 s idle: without our heartbeats the broker closes us after 2 s.
        let r = tokio::time::timeout(Duration::from_millis(3500), c.next()).await;
        assert!(r.is_err(), "nothing came and nothing failed: {r:?}");
        let ch = c.open_channel().await.expect("still open");
        c.close_channel(ch).await.unwrap();
    });
}
