//! Publishes that cross shards (`docs/shards.md`, step 3; `model::cross`):
//! publishers with confirms on every shard send to queues of every shard
//! through a direct and a fanout exchange, persistent and transient, while
//! each queue's consumer runs on the queue's own shard. The batches between
//! shards are held and handed over in a seeded interleaving (each pair in
//! order, as the rings keep them), and each shard's group commit runs when
//! the seed says. At the end:
//!
//! - every publish is confirmed once, with an ack, in each channel's order,
//!   and only once every shard it routed to has stored it (and synced it,
//!   when persistent to a durable queue, which the shard's confirm waits
//!   for): a confirmed message is in every queue it routed to;
//! - each queue delivered exactly the messages routed to it, each
//!   publisher's in publish order.
//!
//! Seeds are printed; replay one with `RINGMQ_SIM_SEED`.

use std::collections::BTreeMap;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use ringmq_codec::{BasicConsume, BasicProperties, ConfirmSelect, Method, QueueBind, Table};

use super::client::{self, method, name, Event};
use super::harness::Harness;
use super::sim::seeds;
use super::wires::{carry, hand_over, Wires};
use crate::core::model::cross::CrossMsg;
use crate::core::model::ids::ConnId;
use crate::core::model::meta::{MetaLog, ShardId};

const QUEUES: [&str; 6] = ["c0", "c1", "c2", "c3", "c4", "c5"];
const PUBLISHES: usize = 300;

#[test]
fn publishes_across_shards_are_confirmed_once_stored_everywhere_and_delivered_in_order() {
    for seed in seeds(8) {
        let n = 2 + (seed % 2) as u16;
        eprintln!("cross shards seed {seed} ({n} shards)");
        run(seed, n);
    }
}

/// A publisher: its shard, connection, and what it is owed.
struct Publisher {
    shard: usize,
    conn: ConnId,
    /// Per publish sequence number: the queues it routed to.
    sent: Vec<Vec<usize>>,
    confirmed: u64,
}

fn run(seed: u64, n: u16) {
    let mut rng = StdRng::seed_from_u64(seed);
    let log = MetaLog::new(n);
    let mut shards = Harness::shards(seed, n, &log, true);
    let owner = |q: &str| usize::from(ShardId::owner_of_queue("/", q, n).0);
    assert!(
        (0..usize::from(n)).all(|s| QUEUES.iter().any(|q| owner(q) == s)),
        "every shard owns a queue"
    );

    // The queues, declared and bound on shard 0 (every shard has them through
    // the log): to amq.direct by name, and all of them to amq.fanout.
    let admin = shards[0].connect(0, &[1]);
    let mut bytes = Vec::new();
    for q in QUEUES {
        bytes.extend(method(1, Method::QueueDeclare(client::queue_decl(q, true))));
        for x in ["amq.direct", "amq.fanout"] {
            bytes.extend(method(
                1,
                Method::QueueBind(QueueBind {
                    ticket: 0,
                    queue: name(q),
                    exchange: name(x),
                    routing_key: name(q),
                    no_wait: false,
                    arguments: Table::EMPTY,
                }),
            ));
        }
    }
    shards[0].send(admin, &bytes);
    shards[0].sync_all();

    // A consumer per queue, on its owner (no-ack: deliveries are what we count).
    let mut consumers: BTreeMap<usize, (usize, ConnId)> = BTreeMap::new();
    for (i, q) in QUEUES.iter().enumerate() {
        let s = owner(q);
        let c = shards[s].connect(0, &[1]);
        let m = method(
            1,
            Method::BasicConsume(BasicConsume {
                ticket: 0,
                queue: name(q),
                consumer_tag: name("c"),
                no_local: false,
                no_ack: true,
                exclusive: false,
                no_wait: false,
                arguments: Table::EMPTY,
            }),
        );
        shards[s].send(c, &m);
        consumers.insert(i, (s, c));
    }

    let mut publishers: Vec<Publisher> = (0..usize::from(n))
        .map(|s| {
            let conn = shards[s].connect(0, &[1]);
            shards[s].send(
                conn,
                &method(1, Method::ConfirmSelect(ConfirmSelect { no_wait: false })),
            );
            Publisher {
                shard: s,
                conn,
                sent: Vec::new(),
                confirmed: 0,
            }
        })
        .collect();

    // Batches in flight between each ordered pair of shards.
    let mut wires = Wires::new();
    let mut delivered: BTreeMap<usize, Vec<String>> = BTreeMap::new();
    let mut published = 0;
    while published < PUBLISHES || wires.values().any(|w| !w.is_empty()) || pending_syncs(&shards) {
        match rng.random_range(0..10) {
            0..=4 if published < PUBLISHES => {
                let p = rng.random_range(0..publishers.len());
                let pb = &mut publishers[p];
                let fanout = rng.random_bool(0.2);
                let q = rng.random_range(0..QUEUES.len());
                let persistent = rng.random_bool(0.5);
                let props = BasicProperties {
                    delivery_mode: Some(if persistent { 2 } else { 1 }),
                    ..Default::default()
                };
                let seq = pb.sent.len() + 1;
                let body = format!("p{p} s{seq}");
                let (x, key) = if fanout {
                    ("amq.fanout", "")
                } else {
                    ("amq.direct", QUEUES[q])
                };
                pb.sent.push(if fanout { (0..QUEUES.len()).collect() } else { vec![q] });
                shards[pb.shard].send(pb.conn, &client::publish(1, x, key, &props, body.as_bytes()));
                published += 1;
            }
            5..=7 => hand_over(&mut rng, &mut shards, &mut wires),
            _ => {
                let s = rng.random_range(0..shards.len());
                shards[s].sync_all();
            }
        }
        // What each shard made for the others this step goes on the wires.
        carry(&mut shards, &mut wires);
        // Deliveries, then confirms: a confirmed message is in every queue
        // it routed to already, on whichever shard (each consumer takes what
        // its queue stores at once).
        for (&q, &(s, c)) in &consumers {
            for e in shards[s].events(c) {
                if let Event::Delivery(d) = e {
                    delivered
                        .entry(q)
                        .or_default()
                        .push(String::from_utf8(d.body).expect("utf-8"));
                }
            }
        }
        for (p, pb) in publishers.iter_mut().enumerate() {
            for e in shards[pb.shard].events(pb.conn) {
                let Event::Confirm { tag, multiple, ack, .. } = e else {
                    continue;
                };
                assert!(ack, "seed {seed}: publish {tag} of publisher {p} was nacked");
                let from = if multiple { pb.confirmed + 1 } else { tag };
                assert_eq!(from, pb.confirmed + 1, "seed {seed}: confirm {tag} out of order");
                for seq in from..=tag {
                    let body = format!("p{p} s{seq}");
                    for &q in &pb.sent[seq as usize - 1] {
                        assert!(
                            delivered.get(&q).is_some_and(|d| d.contains(&body)),
                            "seed {seed}: '{body}' confirmed before queue {} stored it",
                            QUEUES[q]
                        );
                    }
                }
                pb.confirmed = tag;
            }
        }
    }

    for (p, pb) in publishers.iter().enumerate() {
        assert_eq!(
            pb.confirmed,
            pb.sent.len() as u64,
            "seed {seed}: publisher {p} on shard {} has confirms missing",
            pb.shard
        );
    }
    for (q, _) in QUEUES.iter().enumerate() {
        let mut want: BTreeMap<usize, Vec<String>> = BTreeMap::new();
        for (p, pb) in publishers.iter().enumerate() {
            for (i, routed) in pb.sent.iter().enumerate() {
                if routed.contains(&q) {
                    want.entry(p).or_default().push(format!("p{p} s{}", i + 1));
                }
            }
        }
        let got = delivered.remove(&q).unwrap_or_default();
        let mut by_publisher: BTreeMap<usize, Vec<String>> = BTreeMap::new();
        for body in got {
            let p: usize = body[1..body.find(' ').expect("p s")].parse().expect("a number");
            by_publisher.entry(p).or_default().push(body);
        }
        assert_eq!(by_publisher, want, "seed {seed}: queue {}", QUEUES[q]);
    }
}

/// Whether a shard has a group commit to run (its confirms wait for it).
fn pending_syncs(shards: &[Harness]) -> bool {
    shards.iter().any(Harness::sync_wanted)
}

#[test]
fn a_commit_whose_publishes_cross_waits_for_the_other_shards_word() {
    let log = MetaLog::new(2);
    let mut shards = Harness::shards(0, 2, &log, true);
    let remote = *QUEUES
        .iter()
        .find(|q| ShardId::owner_of_queue("/", q, 2) == ShardId(1))
        .expect("shard 1 owns a queue");
    let c = shards[0].connect(0, &[1]);
    let mut bytes = method(1, Method::QueueDeclare(client::queue_decl(remote, true)));
    bytes.extend(method(1, Method::TxSelect(ringmq_codec::TxSelect)));
    let props = BasicProperties {
        delivery_mode: Some(2),
        ..Default::default()
    };
    for i in 0..3 {
        bytes.extend(client::publish(1, "", remote, &props, format!("m{i}").as_bytes()));
    }
    bytes.extend(method(1, Method::TxCommit(ringmq_codec::TxCommit)));
    shards[0].send(c, &bytes);
    shards[0].sync_all();
    let commit_ok = |events: Vec<Event>| events.iter().any(|e| matches!(e, Event::TxCommitOk { .. }));
    assert!(
        !commit_ok(shards[0].events(c)),
        "commit-ok before shard 1 has the messages"
    );

    let mut out = Vec::new();
    shards[0].broker_mut().take_cross(&mut out);
    let [(to, batch)] = <[_; 1]>::try_from(out).expect("one batch, for shard 1");
    assert_eq!(to, ShardId(1));
    let forwarded = |b: &[CrossMsg]| -> usize {
        b.iter()
            .map(|m| match m {
                CrossMsg::Forwards(f) => f.len(),
                _ => 0,
            })
            .sum()
    };
    assert_eq!(batch.len(), 1, "the publishes packed together");
    assert_eq!(forwarded(&batch), 3, "one forward per publish");
    shards[1].handle_cross(ShardId(0), batch);
    let mut back = Vec::new();
    shards[1].broker_mut().take_cross(&mut back);
    assert!(
        back.is_empty(),
        "persistent to a durable queue: the word waits for shard 1's commit"
    );
    shards[1].sync_all();
    shards[1].broker_mut().take_cross(&mut back);
    let [(to, words)] = <[_; 1]>::try_from(back).expect("the words, for shard 0");
    assert_eq!(to, ShardId(0));
    let (last, first) = words.split_last().expect("three words");
    shards[0].handle_cross(ShardId(1), first.to_vec());
    assert!(!commit_ok(shards[0].events(c)), "commit-ok before the last word");
    shards[0].handle_cross(ShardId(1), vec![last.clone()]);
    assert!(commit_ok(shards[0].events(c)), "commit-ok once every word came");
}
