//! Queues through ringmq-client, for the shovel tests (any broker by URI:
//! ringmq or the peer RabbitMQ): declare, publish with confirms, count, drain.

use std::time::Duration;

use ringmq_client::{Connection, Content, Event, QueueOptions, Uri};
use ringmq_codec::BasicProperties;

use super::{run, within};

pub async fn client(uri: &str) -> Connection {
    Connection::connect(&Uri::parse(uri).unwrap()).await.expect("connect")
}

pub fn persistent() -> Vec<u8> {
    let mut p = Vec::new();
    BasicProperties {
        delivery_mode: Some(2),
        ..Default::default()
    }
    .encode(&mut p);
    p
}

/// Declares durable `queue` on `b` (and binds it to `bind` = (exchange, key)).
pub fn declare(uri: &str, queue: &str, bind: Option<(&str, &str)>) {
    run(async {
        let mut c = client(uri).await;
        let ch = c.open_channel().await.unwrap();
        let o = QueueOptions {
            durable: true,
            ..QueueOptions::default()
        };
        c.queue_declare(ch, queue, o).await.unwrap();
        if let Some((x, k)) = bind {
            c.queue_bind(ch, queue, x, k).await.unwrap();
        }
        c.close().await.unwrap();
    });
}

/// Publishes `n` persistent messages `{prefix}{i}` to `exchange` with `key`,
/// waiting for the broker's confirms.
pub fn publish(uri: &str, exchange: &str, key: &str, prefix: &str, n: usize) {
    run(async {
        let mut c = client(uri).await;
        let ch = c.open_channel().await.unwrap();
        c.confirm_select(ch).await.unwrap();
        let props = persistent();
        for i in 0..n {
            c.push_publish_raw(ch, exchange, key, &props, format!("{prefix}{i}").as_bytes())
                .unwrap();
        }
        c.flush().await.unwrap();
        let mut confirmed = 0;
        while confirmed < n as u64 {
            match within("confirms", c.next()).await.unwrap() {
                Event::Ack { delivery_tag, .. } => confirmed = delivery_tag,
                other => panic!("unexpected {other:?}"),
            }
        }
        c.close().await.unwrap();
    });
}

/// (ready, unacknowledged-or-not: the count of a passive declare).
pub fn count(uri: &str, queue: &str) -> u32 {
    let mut n = 0;
    run(async {
        let mut c = client(uri).await;
        let ch = c.open_channel().await.unwrap();
        let o = QueueOptions {
            passive: true,
            ..QueueOptions::default()
        };
        n = c.queue_declare(ch, queue, o).await.unwrap().1;
        c.close().await.unwrap();
    });
    n
}

/// Takes every message of `queue` (acknowledged), in order: their bodies.
pub fn drain(uri: &str, queue: &str) -> Vec<String> {
    let bodies = drain_contents(uri, queue).into_iter().map(|c| c.body);
    bodies.map(|b| String::from_utf8(b).unwrap()).collect()
}

/// Takes every message of `queue` (acknowledged), in order, whole.
pub fn drain_contents(uri: &str, queue: &str) -> Vec<Content> {
    let mut out = Vec::new();
    run(async {
        let mut c = client(uri).await;
        let ch = c.open_channel().await.unwrap();
        c.keep_content();
        c.consume(ch, queue, true, &[]).await.unwrap();
        while let Ok(ev) = tokio::time::timeout(Duration::from_millis(500), c.next()).await {
            if let Event::Delivery { .. } = ev.unwrap() {
                out.push(c.take_content().unwrap());
            }
        }
        c.close().await.unwrap();
    });
    out
}
