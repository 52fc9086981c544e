//! At-least-once dead-lettering to another shard's queue (`dead_letter_hold`,
//! `model::cross`): the original stays in its queue, taken and not acked,
//! until the other shard says the copy is stored and synced; when that
//! shard's commit fails, the original goes back as ready.

use ringmq_codec::{BasicGet, BasicProperties, BasicReject, FieldTable, Method, QueueDeclare};

use super::client::{self, method, name, Event};
use super::harness::Harness;
use crate::core::model::ids::VhostName;
use crate::core::model::meta::{MetaLog, ShardId};

/// Queue names owned by shard 0 and 1 of 2.
fn names() -> (String, String) {
    let of = |s: u16| {
        (0..)
            .map(|i| format!("q{i}"))
            .find(|q| ShardId::owner_of_queue("/", q, 2) == ShardId(s))
            .expect("a name")
    };
    (of(0), of(1))
}

/// Shard 0 holds `src` (at-least-once to `dlq` on shard 1) with one message,
/// got and rejected: its dead letter is on its way to shard 1.
fn setup() -> (Vec<Harness>, String) {
    let log = MetaLog::new(2);
    let mut shards = Harness::shards(0, 2, &log, true);
    let (src, dlq) = names();
    let mut args = FieldTable::new();
    args.insert(ringmq_codec::short!("x-queue-type"), "quorum");
    args.insert(ringmq_codec::short!("x-dead-letter-exchange"), "");
    args.insert(ringmq_codec::short!("x-dead-letter-routing-key"), dlq.as_str());
    args.insert(ringmq_codec::short!("x-dead-letter-strategy"), "at-least-once");
    args.insert(ringmq_codec::short!("x-overflow"), "reject-publish");
    let args = args.to_bytes();
    let c = shards[0].connect(0, &[1]);
    let mut bytes = method(1, Method::QueueDeclare(client::queue_decl(&dlq, true)));
    bytes.extend(method(
        1,
        Method::QueueDeclare(QueueDeclare {
            arguments: ringmq_codec::Table::parse(&args).expect("table"),
            ..client::queue_decl(&src, true)
        }),
    ));
    let props = BasicProperties {
        delivery_mode: Some(2),
        ..Default::default()
    };
    bytes.extend(client::publish(1, "", &src, &props, b"m"));
    bytes.extend(method(
        1,
        Method::BasicGet(BasicGet {
            ticket: 0,
            queue: name(&src),
            no_ack: false,
        }),
    ));
    shards[0].send(c, &bytes);
    shards[0].sync_all();
    let tag = shards[0]
        .events(c)
        .into_iter()
        .find_map(|e| match e {
            Event::Delivery(d) => Some(d.tag),
            _ => None,
        })
        .expect("got");
    let reject = Method::BasicReject(BasicReject {
        delivery_tag: tag,
        requeue: false,
    });
    shards[0].send(c, &method(1, reject));
    shards[0].sync_all();
    (shards, src)
}

/// (ready, held for a dead letter) of `src` on shard 0.
fn source(h: &Harness, src: &str) -> (u32, bool) {
    let v = &h.broker().model().vhosts[&VhostName::new("/").expect("name")];
    let q = &v.queues[&v.queue_id(src).expect("src")];
    (q.message_count(), !h.broker().model().held_dead_letters.is_empty())
}

/// Hands what `from` made to `to`.
fn hand(shards: &mut [Harness], from: usize, to: usize) {
    let mut out = Vec::new();
    shards[from].broker_mut().take_cross(&mut out);
    for (s, batch) in out {
        assert_eq!(usize::from(s.0), to);
        shards[to].handle_cross(ShardId(from as u16), batch);
    }
}

#[test]
fn the_original_waits_for_the_other_shards_synced_copy() {
    let (mut shards, src) = setup();
    assert_eq!(source(&shards[0], &src), (0, true), "held, its own commit done");
    hand(&mut shards, 0, 1);
    hand(&mut shards, 1, 0);
    assert_eq!(
        source(&shards[0], &src),
        (0, true),
        "held until shard 1 synced the copy"
    );
    shards[1].sync_all();
    hand(&mut shards, 1, 0);
    assert_eq!(source(&shards[0], &src), (0, false), "released: the copy is durable");
}

#[test]
fn a_failed_commit_on_the_other_shard_puts_the_original_back() {
    let (mut shards, src) = setup();
    hand(&mut shards, 0, 1);
    assert!(shards[1].start_sync(), "the copy waits for shard 1's commit");
    shards[1].fail_sync();
    hand(&mut shards, 1, 0);
    assert_eq!(source(&shards[0], &src), (1, false), "ready again, to die again");
}
