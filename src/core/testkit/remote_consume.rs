//! Consumers on another shard's queue (`docs/shards.md`, step 3;
//! `amqp::remote_consume`): consumers on every shard, with and without
//! acks and prefetch, consume queues of every shard while publishers send;
//! they ack (one or `multiple`), nack, reject, cancel and consume again,
//! close their channel or go away, and the batches between shards are
//! handed over in a seeded order. Checked:
//!
//! - a consumer with a prefetch never holds more unacked deliveries;
//! - each consumer gets a publisher's first deliveries of a queue in
//!   publish order;
//! - at the end every message was consumed (acked, or delivered without
//!   acks) or discarded exactly once, none twice and none lost.
//!
//! Seeds are printed; replay one with `RINGMQ_SIM_SEED`.

use std::collections::{BTreeMap, BTreeSet};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use ringmq_codec::{
    BasicAck, BasicCancel, BasicConsume, BasicGet, BasicNack, BasicProperties, BasicQos, BasicReject, ChannelClose,
    Method, ShortStr, Table,
};

use super::client::{self, method, name, Event};
use super::harness::Harness;
use super::sim::seeds;
use super::wires::{carry, hand_over, settle_all, Wires};
use crate::core::model::ids::ConnId;
use crate::core::model::meta::{MetaLog, ShardId};

const QUEUES: [&str; 6] = ["c0", "c1", "c2", "c3", "c4", "c5"];
const STEPS: usize = 700;

#[test]
fn consumers_across_shards_get_each_message_once_within_their_prefetch() {
    for seed in seeds(8) {
        let n = 2 + (seed % 2) as u16;
        eprintln!("remote consume seed {seed} ({n} shards)");
        run(seed, n);
    }
}

struct Consumer {
    shard: usize,
    conn: ConnId,
    channel: u16,
    queue: usize,
    no_ack: bool,
    prefetch: u16,
    /// The prefetch is the channel's (basic.qos global), shared by the
    /// channel's consumers of every round.
    global: bool,
    /// The consumer's tag number (a new one for each consume).
    round: u32,
    /// Consuming now (not cancelled).
    active: bool,
    /// Unsettled deliveries on the open channel: tag -> (body, round).
    held: BTreeMap<u64, (String, u32)>,
    /// Settled something while parked (input not read yet).
    settled_unread: bool,
    /// Per publisher, the last first-delivery's sequence number.
    order: BTreeMap<usize, u64>,
}

#[derive(Default)]
struct Tally {
    published: BTreeSet<String>,
    consumed: BTreeSet<String>,
    discarded: BTreeSet<String>,
}

fn run(seed: u64, n: u16) {
    let mut rng = StdRng::seed_from_u64(seed);
    let log = MetaLog::new(n);
    let mut shards = Harness::shards(seed, n, &log, false);
    let admin = shards[0].connect(0, &[1]);
    let mut bytes = Vec::new();
    for q in QUEUES {
        bytes.extend(method(1, Method::QueueDeclare(client::queue_decl(q, false))));
    }
    shards[0].send(admin, &bytes);
    let publishers: Vec<ConnId> = (0..usize::from(n)).map(|s| shards[s].connect(0, &[1])).collect();
    let mut published = vec![0u64; usize::from(n)];
    let mut consumers: Vec<Consumer> = (0..usize::from(n) * 2)
        .map(|i| Consumer {
            shard: i % usize::from(n),
            conn: ConnId(0),
            channel: 1,
            queue: rng.random_range(0..QUEUES.len()),
            no_ack: rng.random_bool(0.25),
            prefetch: [0, 1, 3, 10][rng.random_range(0..4)],
            global: rng.random_bool(0.3),
            round: 0,
            active: false,
            held: BTreeMap::new(),
            settled_unread: false,
            order: BTreeMap::new(),
        })
        .collect();
    for c in &mut consumers {
        c.conn = shards[c.shard].connect(0, &[1]);
        let bytes = consume(c);
        shards[c.shard].send(c.conn, &bytes);
    }
    let mut tally = Tally::default();
    let mut wires = Wires::new();

    for _ in 0..STEPS {
        match rng.random_range(0..14) {
            0..=3 => {
                // A burst: more than a consumer's window of permits crosses.
                let s = rng.random_range(0..usize::from(n));
                let q = QUEUES[rng.random_range(0..QUEUES.len())];
                let mut bytes = Vec::new();
                for _ in 0..rng.random_range(1..=12) {
                    published[s] += 1;
                    let body = format!("p{s} s{}", published[s]);
                    let props = BasicProperties::default();
                    bytes.extend(client::publish(1, "", q, &props, body.as_bytes()));
                    tally.published.insert(body);
                }
                shards[s].send(publishers[s], &bytes);
            }
            4..=6 => {
                let i = rng.random_range(0..consumers.len());
                let c = &mut consumers[i];
                if let Some(bytes) = settle_some(&mut rng, c, &mut tally) {
                    c.settled_unread |= shards[c.shard].is_parked(c.conn);
                    shards[c.shard].send(c.conn, &bytes);
                }
            }
            7 => {
                let i = rng.random_range(0..consumers.len());
                let c = &mut consumers[i];
                let bytes = if c.active {
                    // Cancelled: what it holds stays unacked until settled.
                    c.active = false;
                    let t = tag(c);
                    method(
                        c.channel,
                        Method::BasicCancel(BasicCancel {
                            consumer_tag: name(&t),
                            no_wait: false,
                        }),
                    )
                } else {
                    consume(c)
                };
                shards[c.shard].send(c.conn, &bytes);
            }
            8 => {
                let i = rng.random_range(0..consumers.len());
                let c = &mut consumers[i];
                if rng.random_bool(0.5) {
                    // The channel goes, and what it held back to the queues.
                    let close = Method::ChannelClose(ChannelClose {
                        reply_code: 200,
                        reply_text: ShortStr::EMPTY,
                        class_id: 0,
                        method_id: 0,
                    });
                    let mut bytes = method(c.channel, close);
                    c.channel += 1;
                    bytes.extend(client::channel_open(c.channel));
                    c.held.clear();
                    bytes.extend(consume(c));
                    shards[c.shard].send(c.conn, &bytes);
                } else if !c.settled_unread {
                    // The connection goes (deliveries on their way go back,
                    // a no-ack consumer's too: none was written yet).
                    let h = &mut shards[c.shard];
                    h.disconnect(c.conn);
                    h.forget(c.conn);
                    c.conn = h.connect(0, &[1]);
                    c.channel = 1;
                    c.held.clear();
                    let bytes = consume(c);
                    h.send(c.conn, &bytes);
                }
            }
            _ => hand_over(&mut rng, &mut shards, &mut wires),
        }
        carry(&mut shards, &mut wires);
        observe(seed, &mut shards, &mut consumers, &mut tally);
    }

    // The end: everything handed over, a consumer with room holds what its
    // queue had (none starves while its owner has messages); then every
    // consumer acks what it holds and leaves, and what is left in the queues
    // is taken with no-ack gets.
    settle_all(&mut shards, &mut wires);
    observe(seed, &mut shards, &mut consumers, &mut tally);
    let vhost = crate::core::model::ids::VhostName::new("/").expect("name");
    for c in &consumers {
        let q = QUEUES[c.queue];
        let owner = usize::from(ShardId::owner_of_queue("/", q, n).0);
        let v = &shards[owner].broker().model().vhosts[&vhost];
        let ready = v.queue_id(q).map_or(0, |id| v.queues[&id].message_count());
        let held = if c.global {
            c.held.len()
        } else {
            c.held.values().filter(|(_, r)| *r == c.round).count()
        };
        let room = c.no_ack || c.prefetch == 0 || held < usize::from(c.prefetch);
        assert!(
            !(c.active && room && ready > 0),
            "seed {seed}: a consumer of {q} on shard {} with room ({held} held, prefetch {}) while {ready} wait",
            c.shard,
            c.prefetch
        );
    }
    for i in 0..consumers.len() {
        let c = &mut consumers[i];
        let mut bytes = Vec::new();
        if let Some(&last) = c.held.keys().next_back() {
            let ack = Method::BasicAck(BasicAck {
                delivery_tag: last,
                multiple: true,
            });
            bytes.extend(method(c.channel, ack));
            for (body, _) in std::mem::take(&mut c.held).into_values() {
                assert!(
                    tally.consumed.insert(body.clone()),
                    "seed {seed}: {body} consumed twice"
                );
            }
        }
        if c.active {
            c.active = false;
            let t = tag(c);
            let cancel = Method::BasicCancel(BasicCancel {
                consumer_tag: name(&t),
                no_wait: false,
            });
            bytes.extend(method(c.channel, cancel));
        }
        let (s, conn) = (c.shard, c.conn);
        shards[s].send(conn, &bytes);
        settle_all(&mut shards, &mut wires);
        observe(seed, &mut shards, &mut consumers, &mut tally);
    }
    for c in &consumers {
        assert!(c.held.is_empty(), "seed {seed}: delivered after its cancel");
    }
    let getter = shards[0].connect(0, &[1]);
    for q in QUEUES {
        loop {
            let m = Method::BasicGet(BasicGet {
                ticket: 0,
                queue: name(q),
                no_ack: true,
            });
            shards[0].send(getter, &method(1, m));
            settle_all(&mut shards, &mut wires);
            let got: Vec<Event> = shards[0].events(getter);
            let Some(Event::Delivery(d)) = got.into_iter().find(|e| !matches!(e, Event::Other { .. })) else {
                break; // get-empty
            };
            let body = String::from_utf8(d.body).expect("utf-8");
            assert!(
                tally.consumed.insert(body.clone()),
                "seed {seed}: {body} consumed twice"
            );
        }
    }
    assert!(
        tally.consumed.is_disjoint(&tally.discarded),
        "seed {seed}: a message both consumed and discarded"
    );
    let settled: BTreeSet<String> = tally.consumed.union(&tally.discarded).cloned().collect();
    let lost: Vec<_> = tally.published.difference(&settled).collect();
    assert!(lost.is_empty(), "seed {seed}: lost {lost:?}");
}

fn tag(c: &Consumer) -> String {
    format!("t{}", c.round)
}

/// basic.qos and basic.consume on the consumer's channel, with a new tag.
fn consume(c: &mut Consumer) -> Vec<u8> {
    c.round += 1;
    c.active = true;
    let qos = Method::BasicQos(BasicQos {
        prefetch_size: 0,
        prefetch_count: c.prefetch,
        global: c.global,
    });
    let t = tag(c);
    let m = Method::BasicConsume(BasicConsume {
        ticket: 0,
        queue: name(QUEUES[c.queue]),
        consumer_tag: name(&t),
        no_local: false,
        no_ack: c.no_ack,
        exclusive: false,
        no_wait: false,
        arguments: Table::EMPTY,
    });
    [method(c.channel, qos), method(c.channel, m)].concat()
}

/// Settles some of what `c` holds; None when it holds nothing.
fn settle_some(rng: &mut StdRng, c: &mut Consumer, tally: &mut Tally) -> Option<Vec<u8>> {
    let tags: Vec<u64> = c.held.keys().copied().collect();
    let tag = *tags.get(rng.random_range(0..tags.len().max(1)))?;
    let (m, multiple, consumed, requeue) = match rng.random_range(0..6) {
        0..=3 => {
            let multiple = rng.random_bool(0.3);
            let m = Method::BasicAck(BasicAck {
                delivery_tag: tag,
                multiple,
            });
            (m, multiple, true, false)
        }
        4 => {
            let (multiple, requeue) = (rng.random_bool(0.3), rng.random_bool(0.7));
            let m = Method::BasicNack(BasicNack {
                delivery_tag: tag,
                multiple,
                requeue,
            });
            (m, multiple, false, requeue)
        }
        _ => {
            let requeue = rng.random_bool(0.5);
            let m = Method::BasicReject(BasicReject {
                delivery_tag: tag,
                requeue,
            });
            (m, false, false, requeue)
        }
    };
    let settled: Vec<u64> = if multiple {
        c.held.range(..=tag).map(|(t, _)| *t).collect()
    } else {
        vec![tag]
    };
    for t in settled {
        let (body, _) = c.held.remove(&t).expect("held");
        if consumed {
            assert!(tally.consumed.insert(body.clone()), "{body} consumed twice");
        } else if !requeue {
            assert!(tally.discarded.insert(body.clone()), "{body} discarded twice");
        }
    }
    Some(method(c.channel, m))
}

/// The consumers' deliveries.
fn observe(seed: u64, shards: &mut [Harness], consumers: &mut [Consumer], tally: &mut Tally) {
    for c in consumers.iter_mut() {
        c.settled_unread &= shards[c.shard].is_parked(c.conn);
        for e in shards[c.shard].events(c.conn) {
            match e {
                Event::Delivery(d) => {
                    let body = String::from_utf8(d.body).expect("utf-8");
                    if !d.redelivered {
                        let (p, s) = body[1..].split_once(" s").expect("p s");
                        let (p, s): (usize, u64) = (p.parse().expect("p"), s.parse().expect("s"));
                        let last = c.order.entry(p).or_default();
                        assert!(s > *last, "seed {seed}: {body} after s{last} of its publisher");
                        *last = s;
                    }
                    if c.no_ack {
                        assert!(
                            tally.consumed.insert(body.clone()),
                            "seed {seed}: {body} consumed twice"
                        );
                    } else if d.channel == c.channel {
                        let t = d.consumer_tag.as_deref().expect("a delivery");
                        let round: u32 = t[1..].parse().expect("t<round>");
                        c.held.insert(d.tag, (body, round));
                        let of_round = if c.global {
                            c.held.len()
                        } else {
                            c.held.values().filter(|(_, r)| *r == round).count()
                        };
                        if c.prefetch > 0 {
                            assert!(
                                of_round <= usize::from(c.prefetch),
                                "seed {seed}: a consumer with prefetch {} holds {of_round}",
                                c.prefetch
                            );
                        }
                    }
                    // A delivery on a channel closed since went back with it.
                }
                Event::ChannelClose { code, text, .. } | Event::ConnectionClose { code, text } => {
                    panic!("seed {seed}: consumer on shard {} closed: {code} {text}", c.shard)
                }
                _ => {}
            }
        }
    }
}

/// A channel-wide prefetch (basic.qos global) over a consumer of this
/// shard's queue and one of another shard's: the two together never hold
/// more, the permits promised to the other shard counting as deliveries.
#[test]
fn a_channel_prefetch_bounds_local_and_remote_consumers_together() {
    let log = MetaLog::new(2);
    let mut shards = Harness::shards(0, 2, &log, false);
    let owned = |s: u16| {
        *QUEUES
            .iter()
            .find(|q| ShardId::owner_of_queue("/", q, 2) == ShardId(s))
            .expect("a queue")
    };
    let (local, remote) = (owned(0), owned(1));
    let c = shards[0].connect(0, &[1]);
    let mut bytes = Vec::new();
    for q in [local, remote] {
        bytes.extend(method(1, Method::QueueDeclare(client::queue_decl(q, false))));
    }
    let qos = Method::BasicQos(BasicQos {
        prefetch_size: 0,
        prefetch_count: 2,
        global: true,
    });
    bytes.extend(method(1, qos));
    shards[0].send(c, &bytes);
    let mut wires = Wires::new();
    for (i, q) in [remote, local].into_iter().enumerate() {
        let m = Method::BasicConsume(BasicConsume {
            ticket: 0,
            queue: name(q),
            consumer_tag: name(["r", "l"][i]),
            no_local: false,
            no_ack: false,
            exclusive: false,
            no_wait: false,
            arguments: Table::EMPTY,
        });
        shards[0].send(c, &method(1, m));
        settle_all(&mut shards, &mut wires);
    }
    let p = shards[0].connect(0, &[1]);
    let mut bytes = Vec::new();
    for i in 0..10 {
        for q in [local, remote] {
            bytes.extend(client::publish(
                1,
                "",
                q,
                &BasicProperties::default(),
                format!("{q} {i}").as_bytes(),
            ));
        }
    }
    shards[0].send(p, &bytes);
    settle_all(&mut shards, &mut wires);
    let held = shards[0]
        .events(c)
        .iter()
        .filter(|e| matches!(e, Event::Delivery(_)))
        .count();
    assert!(held >= 1, "something is delivered");
    assert!(held <= 2, "{held} deliveries held under a channel prefetch of 2");
}
