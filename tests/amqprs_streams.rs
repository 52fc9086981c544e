//! Stream queues (issue 20) with amqprs, the second independent client (the
//! lapin tests are tests/streams.rs): consumers from `first`, a numeric offset
//! and a timestamp, each delivery's `x-stream-offset`, manual acks that only
//! return the prefetch's credit, and what a stream refuses (basic.get, a
//! consumer without a prefetch, automatic acks) with RabbitMQ's codes and
//! texts. Also passes against RabbitMQ 3.10 (`RINGMQ_TEST_URI`).

mod common;

use std::time::{SystemTime, UNIX_EPOCH};

use amqprs::callbacks::{ChannelCallback, ConnectionCallback};
use amqprs::channel::{
    BasicAckArguments, BasicConsumeArguments, BasicGetArguments, BasicPublishArguments, BasicQosArguments, Channel,
    ConfirmSelectArguments, ConsumerMessage, QueueDeclareArguments, QueueDeleteArguments,
};
use amqprs::connection::{Connection, OpenConnectionArguments};
use amqprs::{Ack, BasicProperties, Cancel, Close, CloseChannel, FieldTable, FieldValue, Nack, Return};
use common::{run, unique, within, Broker, QUIET};
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};

/// What the server told a connection or channel: a close (code, text) or a
/// publisher ack (tag).
#[derive(Debug, PartialEq)]
enum Event {
    Closed(u16, String),
    Ack(u64),
}

struct Events(UnboundedSender<Event>);

#[async_trait::async_trait]
impl ConnectionCallback for Events {
    async fn close(&mut self, _: &Connection, close: Close) -> Result<(), amqprs::error::Error> {
        let _ = self
            .0
            .send(Event::Closed(close.reply_code(), close.reply_text().clone()));
        Ok(())
    }
    async fn blocked(&mut self, _: &Connection, _: String) {}
    async fn unblocked(&mut self, _: &Connection) {}
    async fn secret_updated(&mut self, _: &Connection) {}
}

#[async_trait::async_trait]
impl ChannelCallback for Events {
    async fn close(&mut self, _: &Channel, close: CloseChannel) -> Result<(), amqprs::error::Error> {
        let _ = self
            .0
            .send(Event::Closed(close.reply_code(), close.reply_text().clone()));
        Ok(())
    }
    async fn cancel(&mut self, _: &Channel, _: Cancel) -> Result<(), amqprs::error::Error> {
        Ok(())
    }
    async fn flow(&mut self, _: &Channel, active: bool) -> Result<bool, amqprs::error::Error> {
        Ok(active)
    }
    async fn publish_ack(&mut self, _: &Channel, ack: Ack) {
        let _ = self.0.send(Event::Ack(ack.delivery_tag()));
    }
    async fn publish_nack(&mut self, _: &Channel, nack: Nack) {
        panic!("basic.nack for publish {}", nack.delivery_tag());
    }
    async fn publish_return(&mut self, _: &Channel, _: Return, _: BasicProperties, _: Vec<u8>) {}
}

/// A connection whose closes by the server come out of the receiver.
async fn open(b: &Broker) -> (Connection, UnboundedReceiver<Event>) {
    let args = OpenConnectionArguments::new(b.host(), b.port(), b.user(), b.pass());
    let conn = within("amqprs open", Connection::open(&args))
        .await
        .expect("amqprs open");
    let (tx, rx) = unbounded_channel();
    within("callback", conn.register_callback(Events(tx)))
        .await
        .expect("callback");
    (conn, rx)
}

/// A channel whose closes and publisher acks come out of the receiver.
async fn channel(conn: &Connection) -> (Channel, UnboundedReceiver<Event>) {
    let ch = within("channel", conn.open_channel(None)).await.expect("channel");
    let (tx, rx) = unbounded_channel();
    within("callback", ch.register_callback(Events(tx)))
        .await
        .expect("callback");
    (ch, rx)
}

fn table(entries: &[(&str, FieldValue)]) -> FieldTable {
    let mut t = FieldTable::new();
    for (k, v) in entries {
        t.insert((*k).try_into().expect("field name"), v.clone());
    }
    t
}

async fn declare_stream(ch: &Channel, q: &str) {
    let args = QueueDeclareArguments::new(q)
        .durable(true)
        .arguments(table(&[("x-queue-type", "stream".into())]))
        .finish();
    within("queue.declare", ch.queue_declare(args))
        .await
        .expect("queue.declare");
}

/// Publishes `range`'s messages (`m0`, `m1`...) on a channel in confirm
/// mode, each waiting for its confirm: a stream has them all at its offsets.
async fn publish_confirmed(ch: &Channel, events: &mut UnboundedReceiver<Event>, q: &str, range: std::ops::Range<i64>) {
    for i in range {
        let args = BasicPublishArguments::new("", q);
        within("publish", ch.basic_publish(BasicProperties::default(), body(i), args))
            .await
            .expect("publish");
        match within("confirm", events.recv()).await {
            Some(Event::Ack(_)) => {}
            other => panic!("publish {i}: {other:?}"),
        }
    }
}

fn body(i: i64) -> Vec<u8> {
    format!("m{i}").into_bytes()
}

/// A consumer with a prefetch on a channel of its own, from `offset`.
async fn reader(
    conn: &Connection,
    q: &str,
    prefetch: u16,
    offset: Option<FieldValue>,
) -> (Channel, UnboundedReceiver<ConsumerMessage>) {
    let (ch, _) = channel(conn).await;
    within("qos", ch.basic_qos(BasicQosArguments::new(0, prefetch, false)))
        .await
        .expect("qos");
    let args = offset.map_or_else(FieldTable::new, |o| table(&[("x-stream-offset", o)]));
    let consume = BasicConsumeArguments::new(q, "")
        .manual_ack(true)
        .arguments(args)
        .finish();
    let (_, rx) = within("consume", ch.basic_consume_rx(consume))
        .await
        .expect("basic.consume");
    (ch, rx)
}

/// The next delivery as (delivery tag, offset, body).
async fn next(rx: &mut UnboundedReceiver<ConsumerMessage>) -> (u64, i64, Vec<u8>) {
    let m = within("delivery", rx.recv()).await.expect("a delivery");
    let deliver = m.deliver.expect("deliver");
    assert!(!deliver.redelivered());
    let props = m.basic_properties.expect("properties");
    let headers = props.headers().expect("headers");
    let offset = match headers.get(&"x-stream-offset".try_into().unwrap()) {
        Some(FieldValue::l(n)) => *n,
        other => panic!("x-stream-offset is {other:?}"),
    };
    (deliver.delivery_tag(), offset, m.content.expect("content"))
}

/// The next `n` deliveries as (offset, body), each acked.
async fn take(ch: &Channel, rx: &mut UnboundedReceiver<ConsumerMessage>, n: usize) -> Vec<(i64, Vec<u8>)> {
    let mut out = Vec::new();
    for _ in 0..n {
        let (tag, offset, content) = next(rx).await;
        within("ack", ch.basic_ack(BasicAckArguments::new(tag, false)))
            .await
            .expect("ack");
        out.push((offset, content));
    }
    out
}

fn numbered(range: std::ops::Range<i64>) -> Vec<(i64, Vec<u8>)> {
    range.map(|i| (i, body(i))).collect()
}

async fn assert_quiet(rx: &mut UnboundedReceiver<ConsumerMessage>) {
    if let Ok(Some(m)) = tokio::time::timeout(QUIET, rx.recv()).await {
        panic!("unexpected delivery {:?}", m.deliver);
    }
}

async fn publisher(conn: &Connection) -> (Channel, UnboundedReceiver<Event>) {
    let (ch, events) = channel(conn).await;
    within("confirm.select", ch.confirm_select(ConfirmSelectArguments::default()))
        .await
        .expect("confirm.select");
    (ch, events)
}

async fn delete(ch: &Channel, q: &str) {
    within("delete", ch.queue_delete(QueueDeleteArguments::new(q)))
        .await
        .expect("queue.delete");
}

#[test]
fn amqprs_consumers_start_at_first_an_offset_and_a_timestamp() {
    let b = Broker::new();
    run(async {
        let (conn, _) = open(&b).await;
        let (ch, mut events) = publisher(&conn).await;
        let q = unique("s-amqprs-offsets");
        declare_stream(&ch, &q).await;
        publish_confirmed(&ch, &mut events, &q, 0..10).await;
        let (fch, mut first) = reader(&conn, &q, 100, Some("first".into())).await;
        assert_eq!(take(&fch, &mut first, 10).await, numbered(0..10));
        let (och, mut at6) = reader(&conn, &q, 100, Some(FieldValue::l(6))).await;
        assert_eq!(take(&och, &mut at6, 4).await, numbered(6..10));
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
        let (tch, mut past) = reader(&conn, &q, 100, Some(FieldValue::T(now - 60))).await;
        assert_eq!(take(&tch, &mut past, 10).await, numbered(0..10));
        // From the future (RabbitMQ attaches at the end) and by default
        // (`next`): only what comes next.
        let (uch, mut future) = reader(&conn, &q, 100, Some(FieldValue::T(now + 3600))).await;
        let (dch, mut default) = reader(&conn, &q, 100, None).await;
        assert_quiet(&mut future).await;
        assert_quiet(&mut default).await;
        publish_confirmed(&ch, &mut events, &q, 10..12).await;
        assert_eq!(take(&uch, &mut future, 2).await, numbered(10..12));
        assert_eq!(take(&dch, &mut default, 2).await, numbered(10..12));
        assert_eq!(take(&fch, &mut first, 2).await, numbered(10..12), "readers go on");
        delete(&ch, &q).await;
    });
}

/// Acks remove nothing and only give the prefetch's credit back.
#[test]
fn amqprs_acks_only_return_credit() {
    let b = Broker::new();
    run(async {
        let (conn, _) = open(&b).await;
        let (ch, mut events) = publisher(&conn).await;
        let q = unique("s-amqprs-acks");
        declare_stream(&ch, &q).await;
        publish_confirmed(&ch, &mut events, &q, 0..6).await;
        let (pch, mut p) = reader(&conn, &q, 2, Some("first".into())).await;
        let (_, o0, _) = next(&mut p).await;
        let (tag1, o1, _) = next(&mut p).await;
        assert_eq!((o0, o1), (0, 1));
        assert_quiet(&mut p).await;
        within("ack", pch.basic_ack(BasicAckArguments::new(tag1, true)))
            .await
            .expect("ack");
        assert_eq!(take(&pch, &mut p, 4).await, numbered(2..6));
        let (ach, mut again) = reader(&conn, &q, 100, Some("first".into())).await;
        assert_eq!(
            take(&ach, &mut again, 6).await,
            numbered(0..6),
            "acked, and still there"
        );
        delete(&ch, &q).await;
    });
}

/// basic.get and automatic acks close the connection with 540, a consumer
/// without a prefetch its channel with 406, in RabbitMQ 3.10's words.
#[test]
fn amqprs_what_a_stream_refuses() {
    let b = Broker::new();
    run(async {
        let (conn, _) = open(&b).await;
        let (ch, mut events) = publisher(&conn).await;
        let q = unique("s-amqprs-refuse");
        declare_stream(&ch, &q).await;
        publish_confirmed(&ch, &mut events, &q, 0..2).await;
        let not_impl =
            |what: &str| format!("NOT_IMPLEMENTED - {what} not supported by stream queues queue '{q}' in vhost '/'");

        let (c, mut closes) = open(&b).await;
        let (gch, _) = channel(&c).await;
        let _ = tokio::time::timeout(QUIET, gch.basic_get(BasicGetArguments::new(&q))).await;
        let closed = within("connection.close", closes.recv()).await;
        assert_eq!(closed, Some(Event::Closed(540, not_impl("basic.get"))));

        let (c, mut closes) = open(&b).await;
        let (ach, _) = channel(&c).await;
        within("qos", ach.basic_qos(BasicQosArguments::new(0, 10, false)))
            .await
            .expect("qos");
        let auto_ack = BasicConsumeArguments::new(&q, "").manual_ack(false).finish();
        let _ = tokio::time::timeout(QUIET, ach.basic_consume_rx(auto_ack)).await;
        let closed = within("connection.close", closes.recv()).await;
        assert_eq!(closed, Some(Event::Closed(540, not_impl("automatic acknowledgement"))));

        let (c, _) = open(&b).await;
        let (nch, mut channel_events) = channel(&c).await;
        let no_prefetch = BasicConsumeArguments::new(&q, "").manual_ack(true).finish();
        let _ = tokio::time::timeout(QUIET, nch.basic_consume_rx(no_prefetch)).await;
        let closed = within("channel.close", channel_events.recv()).await;
        let text = format!("PRECONDITION_FAILED - consumer prefetch count is not set for 'queue '{q}' in vhost '/''");
        assert_eq!(closed, Some(Event::Closed(406, text)));
        // The channel only: the connection still serves.
        let (rch, mut r) = reader(&c, &q, 10, Some("first".into())).await;
        assert_eq!(take(&rch, &mut r, 2).await, numbered(0..2));
        delete(&ch, &q).await;
    });
}
