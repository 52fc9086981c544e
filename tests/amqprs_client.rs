//! The same core paths with a second, independent client: amqprs.

mod common;

use amqprs::callbacks::{ChannelCallback, DefaultConnectionCallback};
use amqprs::channel::{
    BasicAckArguments, BasicConsumeArguments, BasicGetArguments, BasicPublishArguments, Channel,
    ConfirmSelectArguments, QueueDeclareArguments, QueueDeleteArguments,
};
use amqprs::connection::{Connection, OpenConnectionArguments};
use amqprs::{Ack, BasicProperties, Cancel, CloseChannel, Nack, Return};
use common::{run, unique, within, Broker};
use tokio::sync::mpsc;

async fn open(b: &Broker) -> (Connection, Channel) {
    let args = OpenConnectionArguments::new(b.host(), b.port(), b.user(), b.pass());
    let conn = within("amqprs open", Connection::open(&args))
        .await
        .expect("amqprs open");
    within("callback", conn.register_callback(DefaultConnectionCallback))
        .await
        .expect("callback");
    let ch = within("amqprs channel", conn.open_channel(None))
        .await
        .expect("channel");
    (conn, ch)
}

/// Forwards publisher acks and nacks as (tag, multiple, is_ack).
struct Confirms(mpsc::UnboundedSender<(u64, bool, bool)>);

#[async_trait::async_trait]
impl ChannelCallback for Confirms {
    async fn close(&mut self, _: &Channel, close: CloseChannel) -> Result<(), amqprs::error::Error> {
        panic!("channel closed by the server: {close:?}");
    }
    async fn cancel(&mut self, _: &Channel, _: Cancel) -> Result<(), amqprs::error::Error> {
        Ok(())
    }
    async fn flow(&mut self, _: &Channel, active: bool) -> Result<bool, amqprs::error::Error> {
        Ok(active)
    }
    async fn publish_ack(&mut self, _: &Channel, ack: Ack) {
        let _ = self.0.send((ack.delivery_tag(), ack.mutiple(), true));
    }
    async fn publish_nack(&mut self, _: &Channel, nack: Nack) {
        let _ = self.0.send((nack.delivery_tag(), nack.multiple(), false));
    }
    async fn publish_return(&mut self, _: &Channel, _: Return, _: BasicProperties, _: Vec<u8>) {}
}

async fn declare(ch: &Channel, q: &str) -> (String, u32, u32) {
    within(
        "queue.declare",
        ch.queue_declare(QueueDeclareArguments::new(q).exclusive(true).finish()),
    )
    .await
    .expect("queue.declare")
    .expect("declare-ok")
}

#[test]
fn amqprs_publish_consume_ack() {
    let b = Broker::new();
    run(async {
        let (conn, ch) = open(&b).await;
        let q = unique("q-amqprs");
        let (name, messages, consumers) = declare(&ch, &q).await;
        assert_eq!((name.as_str(), messages, consumers), (q.as_str(), 0, 0));
        for i in 1..=3 {
            let props = BasicProperties::default().with_message_id(&format!("id{i}")).finish();
            within(
                "publish",
                ch.basic_publish(props, format!("m{i}").into_bytes(), BasicPublishArguments::new("", &q)),
            )
            .await
            .expect("publish");
        }
        let args = BasicConsumeArguments::new(&q, "amqprs-consumer")
            .manual_ack(true)
            .finish();
        let (tag, mut rx) = within("consume", ch.basic_consume_rx(args)).await.expect("consume");
        assert_eq!(tag, "amqprs-consumer");
        for i in 1..=3u64 {
            let msg = within("delivery", rx.recv()).await.expect("delivery");
            let deliver = msg.deliver.expect("deliver");
            assert_eq!(deliver.delivery_tag(), i);
            assert!(!deliver.redelivered());
            assert_eq!(deliver.routing_key(), &q);
            assert_eq!(msg.content.expect("content"), format!("m{i}").into_bytes());
            let props = msg.basic_properties.expect("properties");
            assert_eq!(props.message_id().map(|s| s.as_str()), Some(format!("id{i}").as_str()));
        }
        within("ack", ch.basic_ack(BasicAckArguments::new(3, true)))
            .await
            .expect("ack multiple");
        // All three acked: the queue is empty.
        let (_, messages, consumers) = within(
            "passive",
            ch.queue_declare(QueueDeclareArguments::new(&q).passive(true).finish()),
        )
        .await
        .expect("passive")
        .expect("declare-ok");
        assert_eq!((messages, consumers), (0, 1));
        within("close", ch.close()).await.expect("close channel");
        within("close", conn.close()).await.expect("close connection");
    });
}

#[test]
fn amqprs_get_and_get_empty() {
    let b = Broker::new();
    run(async {
        let (_conn, ch) = open(&b).await;
        let q = unique("q-amqprs-get");
        declare(&ch, &q).await;
        let none = within("get", ch.basic_get(BasicGetArguments::new(&q).no_ack(true).finish()))
            .await
            .expect("get");
        assert!(none.is_none());
        for m in ["g1", "g2"] {
            within(
                "publish",
                ch.basic_publish(
                    BasicProperties::default(),
                    m.as_bytes().to_vec(),
                    BasicPublishArguments::new("", &q),
                ),
            )
            .await
            .expect("publish");
        }
        let mut got = Vec::new();
        for left in [1u32, 0] {
            let (ok, _, body) = within("get", ch.basic_get(BasicGetArguments::new(&q).no_ack(true).finish()))
                .await
                .expect("get")
                .expect("message");
            assert_eq!(ok.message_count(), left);
            got.push(String::from_utf8(body).expect("utf8"));
        }
        assert_eq!(got, ["g1", "g2"]);
        within("delete", ch.queue_delete(QueueDeleteArguments::new(&q)))
            .await
            .expect("delete");
    });
}

#[test]
fn amqprs_every_publish_acked_exactly_once() {
    const N: u64 = 2000;
    let b = Broker::new();
    run(async {
        let (_conn, ch) = open(&b).await;
        let (tx, mut rx) = mpsc::unbounded_channel();
        within("callback", ch.register_callback(Confirms(tx)))
            .await
            .expect("callback");
        within("confirm.select", ch.confirm_select(ConfirmSelectArguments::default()))
            .await
            .expect("confirm.select");
        let q = unique("q-amqprs-confirm");
        declare(&ch, &q).await;
        for i in 0..N {
            // Mix routed and unroutable publishes.
            let key = if i % 7 == 0 { "amqprs-nowhere" } else { q.as_str() };
            within(
                "publish",
                ch.basic_publish(
                    BasicProperties::default(),
                    i.to_be_bytes().to_vec(),
                    BasicPublishArguments::new("", key),
                ),
            )
            .await
            .expect("publish");
        }
        // Walk the ack frames. A single ack settles its tag; a multiple ack settles every
        // tag up to it not settled yet, and must settle at least one (else it repeats).
        // RabbitMQ does not ack in tag order (unroutable publishes are confirmed at
        // once, routed ones when the queue has them), so order is not asserted here.
        let mut acked = vec![0u32; N as usize + 1];
        let mut frames = 0usize;
        while acked[1..].contains(&0) {
            let (tag, multiple, is_ack) = within("publisher ack", rx.recv()).await.expect("ack stream");
            frames += 1;
            assert!(is_ack, "basic.nack for tag {tag}");
            assert!((1..=N).contains(&tag), "ack for unknown tag {tag}");
            if multiple {
                let mut settled = 0;
                for a in acked[1..=tag as usize].iter_mut().filter(|a| **a == 0) {
                    *a = 1;
                    settled += 1;
                }
                assert!(settled > 0, "multiple ack {tag} settled nothing new");
            } else {
                acked[tag as usize] += 1;
            }
        }
        let twice: Vec<usize> = (1..=N as usize).filter(|&t| acked[t] > 1).collect();
        assert!(twice.is_empty(), "tags acked more than once: {twice:?}");
        // Nothing more may arrive.
        let extra = tokio::time::timeout(common::QUIET, rx.recv()).await;
        assert!(extra.is_err(), "extra confirm after all were acked: {extra:?}");
        eprintln!("{N} publishes confirmed in {frames} ack frames");
        let (_, messages, _) = within(
            "passive",
            ch.queue_declare(QueueDeclareArguments::new(&q).passive(true).finish()),
        )
        .await
        .expect("passive")
        .expect("declare-ok");
        assert_eq!(u64::from(messages), N - N.div_ceil(7));
    });
}
