//! Helpers of the stream tests (`tests/streams.rs`, `tests/stream_features.rs`).

use lapin::{Channel, Connection, Consumer};

use super::*;

pub fn stream(extra: &[(&str, AMQPValue)]) -> FieldTable {
    let mut t = table(extra);
    t.insert("x-queue-type".into(), lstr("stream"));
    t
}

pub fn durable() -> QueueDeclareOptions {
    QueueDeclareOptions {
        durable: true,
        ..Default::default()
    }
}

pub async fn declare_stream(ch: &Channel, q: &str, extra: &[(&str, AMQPValue)]) {
    declare_queue(ch, q, durable(), stream(extra)).await;
}

pub async fn delete(ch: &Channel, q: &str) {
    within("delete", ch.queue_delete(q.into(), QueueDeleteOptions::default()))
        .await
        .expect("queue.delete");
}

/// Publishes `bodies` one confirm at a time: each is its own chunk on both
/// brokers (RabbitMQ's `last` is the newest chunk).
pub async fn publish_all(ch: &Channel, q: &str, bodies: impl IntoIterator<Item = String>) {
    for b in bodies {
        assert!(publish(ch, "", q, b.as_bytes()).await.is_ack());
    }
}

/// A consumer with a prefetch on a channel of its own, from `offset`.
pub async fn reader(conn: &Connection, q: &str, prefetch: u16, offset: Option<AMQPValue>) -> (Channel, Consumer) {
    let ch = channel(conn).await;
    within("qos", ch.basic_qos(prefetch, BasicQosOptions::default()))
        .await
        .unwrap();
    let args = offset.map_or_else(FieldTable::default, |o| table(&[("x-stream-offset", o)]));
    let c = within(
        "consume",
        ch.basic_consume(q.into(), "".into(), BasicConsumeOptions::default(), args),
    )
    .await
    .expect("basic.consume");
    (ch, c)
}

pub fn offset_of(d: &lapin::message::Delivery) -> i64 {
    let headers = d.properties.headers().as_ref().expect("headers");
    match headers.inner().get("x-stream-offset") {
        Some(AMQPValue::LongLongInt(n)) => *n,
        other => panic!("x-stream-offset is {other:?}"),
    }
}

/// The next `n` deliveries as (offset, body), each acked.
pub async fn take(ch: &Channel, c: &mut Consumer, n: usize) -> Vec<(i64, String)> {
    let mut out = Vec::new();
    for _ in 0..n {
        let d = next(c).await;
        assert!(!d.redelivered);
        out.push((offset_of(&d), String::from_utf8(d.data.clone()).unwrap()));
        within("ack", ch.basic_ack(d.delivery_tag, BasicAckOptions::default()))
            .await
            .unwrap();
    }
    out
}

pub fn numbered(range: std::ops::Range<i64>) -> Vec<(i64, String)> {
    range.map(|i| (i, format!("m{i}"))).collect()
}

pub fn bodies_of(range: std::ops::Range<i64>) -> impl Iterator<Item = String> {
    range.map(|i| format!("m{i}"))
}
