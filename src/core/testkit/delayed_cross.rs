//! A delayed exchange of another shard (`model::cross::delayed`): its store
//! and folder are on its owner only; a message published to it on another
//! shard crosses to the owner, its confirm waits for the owner's group
//! commit, and when due the owner routes it, here to a queue of the
//! publisher's shard, whose consumer gets it.

use ringmq_codec::{
    short, BasicConsume, BasicProperties, ConfirmSelect, ExchangeDeclare, FieldTable, Method, QueueBind, Table,
};

use super::client::{self, method, name, Event};
use super::harness::Harness;
use crate::core::model::ids::VhostName;
use crate::core::model::meta::{MetaLog, ShardId};

/// A name of 2 shards' shard `s`.
fn owned_by(s: u16, prefix: &str) -> String {
    (0..)
        .map(|i| format!("{prefix}{i}"))
        .find(|q| ShardId::owner_of_queue("/", q, 2) == ShardId(s))
        .expect("a name")
}

fn hand(shards: &mut [Harness], from: usize, to: usize) -> usize {
    let mut out = Vec::new();
    shards[from].broker_mut().take_cross(&mut out);
    let n = out.len();
    for (s, batch) in out {
        assert_eq!(usize::from(s.0), to);
        shards[to].handle_cross(ShardId(from as u16), batch);
    }
    n
}

#[test]
fn a_message_for_another_shards_delayed_exchange_is_held_there_and_routed_when_due() {
    let log = MetaLog::new(2);
    let mut shards = Harness::shards(0, 2, &log, true);
    let (x, q) = (owned_by(1, "x"), owned_by(0, "q"));
    let mut args = FieldTable::new();
    args.insert(short!("x-delayed-type"), "direct");
    let args = args.to_bytes();
    let c = shards[0].connect(0, &[1]);
    let mut bytes = method(
        1,
        Method::ExchangeDeclare(ExchangeDeclare {
            ticket: 0,
            exchange: name(&x),
            kind: short!("x-delayed-message"),
            passive: false,
            durable: true,
            auto_delete: false,
            internal: false,
            no_wait: false,
            arguments: Table::parse(&args).expect("table"),
        }),
    );
    bytes.extend(method(1, Method::QueueDeclare(client::queue_decl(&q, true))));
    bytes.extend(method(
        1,
        Method::QueueBind(QueueBind {
            ticket: 0,
            queue: name(&q),
            exchange: name(&x),
            routing_key: name("k"),
            no_wait: false,
            arguments: Table::EMPTY,
        }),
    ));
    bytes.extend(method(
        1,
        Method::BasicConsume(BasicConsume {
            ticket: 0,
            queue: name(&q),
            consumer_tag: name("c"),
            no_local: false,
            no_ack: true,
            exclusive: false,
            no_wait: false,
            arguments: Table::EMPTY,
        }),
    ));
    bytes.extend(method(1, Method::ConfirmSelect(ConfirmSelect { no_wait: false })));
    shards[0].send(c, &bytes);
    shards[0].sync_all();
    shards[1].broker_mut().catch_up_meta();
    shards[0].events(c);

    // The folder is the owner's only.
    let vhost = VhostName::new("/").expect("name");
    for (s, h) in shards.iter().enumerate() {
        let x = &h.broker().model().vhosts[&vhost].exchanges[x.as_str()];
        assert_eq!(x.delayed.is_some(), s == 1, "shard {s}: the store is shard 1's");
        assert!(x.is_delayed(), "shard {s}: a delayed exchange");
    }

    let mut headers = FieldTable::new();
    headers.insert(short!("x-delay"), 5_000i64);
    let headers = headers.to_bytes();
    let props = BasicProperties {
        headers: Some(Table::parse(&headers).expect("table")),
        ..Default::default()
    };
    shards[0].send(c, &client::publish(1, &x, "k", &props, b"later"));
    let confirmed = |h: &mut Harness| {
        h.events(c)
            .iter()
            .any(|e| matches!(e, Event::Confirm { ack: true, .. }))
    };
    assert!(!confirmed(&mut shards[0]), "confirmed before shard 1 has it");
    assert_eq!(
        hand(&mut shards, 0, 1),
        1,
        "the message crosses to the exchange's shard"
    );
    assert_eq!(hand(&mut shards, 1, 0), 0, "the word waits for shard 1's commit");
    shards[1].sync_all();
    hand(&mut shards, 1, 0);
    assert!(confirmed(&mut shards[0]), "confirmed once shard 1 synced it");

    shards[1].advance(6_000);
    shards[1].fire_timers();
    assert_eq!(hand(&mut shards, 1, 0), 1, "due: routed to the queue of shard 0");
    let got: Vec<Vec<u8>> = shards[0]
        .events(c)
        .into_iter()
        .filter_map(|e| match e {
            Event::Delivery(d) => Some(d.body),
            _ => None,
        })
        .collect();
    assert_eq!(got, vec![b"later".to_vec()]);
}
