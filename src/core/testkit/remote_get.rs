//! basic.get of another shard's queue, and the settling of what it got
//! (`docs/shards.md`, step 3; `amqp::remote`, `model::cross::settle`):
//! getters on every shard take messages of queues of every shard, then ack
//! (one or `multiple`), nack with requeue, reject, recover, close their
//! channel or go away, while the batches between shards are handed over in
//! a seeded order. At the end every message was consumed (acked, or got
//! with `no_ack`) or discarded exactly once, none twice and none lost
//! (a message got for a connection that went meanwhile goes back); a
//! message got again after it went back is marked redelivered.
//!
//! Seeds are printed; replay one with `RINGMQ_SIM_SEED`.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use ringmq_codec::{
    BasicAck, BasicGet, BasicNack, BasicProperties, BasicRecover, BasicReject, ChannelClose, Method, ShortStr,
};

use super::client::{self, method, name, Event};
use super::harness::Harness;
use super::sim::seeds;
use super::wires::{carry, hand_over, settle_all, Wires};
use crate::core::model::ids::ConnId;
use crate::core::model::meta::MetaLog;

const QUEUES: [&str; 6] = ["c0", "c1", "c2", "c3", "c4", "c5"];
const STEPS: usize = 600;

#[test]
fn gets_across_shards_are_settled_with_the_owner_exactly_once() {
    for seed in seeds(8) {
        let n = 2 + (seed % 2) as u16;
        eprintln!("remote get seed {seed} ({n} shards)");
        run(seed, n);
    }
}

struct Getter {
    shard: usize,
    conn: ConnId,
    channel: u16,
    /// Messages got on the open channel and not settled: tag -> body.
    held: BTreeMap<u64, String>,
    /// Each get not answered yet, in order: its `no_ack`, and whether a
    /// recover sent after it gives back what it gets.
    asked: VecDeque<(bool, bool)>,
    /// Settled something while parked: that input is not read yet, and a
    /// disconnect now would lose what the test counted as settled.
    settled_unread: bool,
}

#[derive(Default)]
struct Tally {
    published: BTreeSet<String>,
    /// Acked, or got with no_ack.
    consumed: BTreeSet<String>,
    discarded: BTreeSet<String>,
    /// Got without the redelivered mark (once at most).
    firsts: BTreeSet<String>,
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
    let mut getters: Vec<Getter> = (0..usize::from(n) * 2)
        .map(|i| {
            let shard = i % usize::from(n);
            Getter {
                shard,
                conn: shards[shard].connect(0, &[1]),
                channel: 1,
                held: BTreeMap::new(),
                asked: VecDeque::new(),
                settled_unread: false,
            }
        })
        .collect();
    let mut tally = Tally::default();
    let mut wires = Wires::new();

    for step in 0..STEPS {
        match rng.random_range(0..12) {
            0..=2 => {
                let s = rng.random_range(0..usize::from(n));
                let q = QUEUES[rng.random_range(0..QUEUES.len())];
                let body = format!("m{step}");
                let props = BasicProperties::default();
                shards[s].send(publishers[s], &client::publish(1, "", q, &props, body.as_bytes()));
                tally.published.insert(body);
            }
            3..=5 => {
                let i = rng.random_range(0..getters.len());
                let g = &mut getters[i];
                let no_ack = rng.random_bool(0.2);
                let q = QUEUES[rng.random_range(0..QUEUES.len())];
                g.asked.push_back((no_ack, false));
                let m = Method::BasicGet(BasicGet {
                    ticket: 0,
                    queue: name(q),
                    no_ack,
                });
                shards[g.shard].send(g.conn, &method(g.channel, m));
            }
            6 | 7 => {
                let i = rng.random_range(0..getters.len());
                let g = &mut getters[i];
                if let Some(bytes) = settle_some(&mut rng, g, &mut tally) {
                    g.settled_unread |= shards[g.shard].is_parked(g.conn);
                    shards[g.shard].send(g.conn, &bytes);
                }
            }
            8 => {
                let i = rng.random_range(0..getters.len());
                let g = &mut getters[i];
                if rng.random_bool(0.5) {
                    // The channel goes: what it held goes back to its queues.
                    let close = Method::ChannelClose(ChannelClose {
                        reply_code: 200,
                        reply_text: ShortStr::EMPTY,
                        class_id: 0,
                        method_id: 0,
                    });
                    g.channel += 1;
                    let bytes = [method(g.channel - 1, close), client::channel_open(g.channel)].concat();
                    shards[g.shard].send(g.conn, &bytes);
                    g.held.clear();
                } else if g.asked.iter().all(|(no_ack, _)| !no_ack) && !g.settled_unread {
                    // The connection goes, maybe parked with gets on their
                    // way (what they get goes back), but not with a no-ack
                    // get on its way (that message is lost with it, at most
                    // once, as in RabbitMQ) nor with settlements it has not
                    // read (the test counted them).
                    let h = &mut shards[g.shard];
                    h.disconnect(g.conn);
                    h.forget(g.conn);
                    g.conn = h.connect(0, &[1]);
                    g.channel = 1;
                    g.held.clear();
                    g.asked.clear();
                    g.settled_unread = false;
                }
            }
            _ => hand_over(&mut rng, &mut shards, &mut wires),
        }
        carry(&mut shards, &mut wires);
        observe(seed, &mut shards, &mut getters, &mut tally);
    }

    // The end: everything handed over, every held message acked, then the
    // queues emptied with no-ack gets.
    settle_all(&mut shards, &mut wires);
    observe(seed, &mut shards, &mut getters, &mut tally);
    for g in &mut getters {
        assert!(g.asked.is_empty(), "seed {seed}: a get on shard {} unanswered", g.shard);
        if let Some(&last) = g.held.keys().next_back() {
            let ack = Method::BasicAck(BasicAck {
                delivery_tag: last,
                multiple: true,
            });
            shards[g.shard].send(g.conn, &method(g.channel, ack));
            tally.consumed.extend(std::mem::take(&mut g.held).into_values());
        }
    }
    settle_all(&mut shards, &mut wires);
    let g = 0;
    for q in QUEUES {
        loop {
            getters[g].asked.push_back((true, false));
            let m = Method::BasicGet(BasicGet {
                ticket: 0,
                queue: name(q),
                no_ack: true,
            });
            let (shard, conn, ch) = (getters[g].shard, getters[g].conn, getters[g].channel);
            shards[shard].send(conn, &method(ch, m));
            settle_all(&mut shards, &mut wires);
            let before = tally.consumed.len();
            observe(seed, &mut shards, &mut getters, &mut tally);
            if tally.consumed.len() == before {
                break; // get-empty
            }
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

/// Settles some of what `g` holds, as a client would; None when it holds nothing.
fn settle_some(rng: &mut StdRng, g: &mut Getter, tally: &mut Tally) -> Option<Vec<u8>> {
    let tags: Vec<u64> = g.held.keys().copied().collect();
    let tag = *tags.get(rng.random_range(0..tags.len().max(1)))?;
    let ch = g.channel;
    let (m, consumed) = match rng.random_range(0..5) {
        0 | 1 => {
            let multiple = rng.random_bool(0.3);
            let m = Method::BasicAck(BasicAck {
                delivery_tag: tag,
                multiple,
            });
            (m, true)
        }
        2 => {
            let multiple = rng.random_bool(0.3);
            let requeue = rng.random_bool(0.7);
            let m = Method::BasicNack(BasicNack {
                delivery_tag: tag,
                multiple,
                requeue,
            });
            (m, false)
        }
        3 => {
            let requeue = rng.random_bool(0.5);
            let m = Method::BasicReject(BasicReject {
                delivery_tag: tag,
                requeue,
            });
            (m, false)
        }
        _ => {
            // Everything held goes back, and what gets asked before it bring.
            let m = Method::BasicRecover(BasicRecover { requeue: true });
            g.held.clear();
            for (_, recovered) in &mut g.asked {
                *recovered = true;
            }
            return Some(method(ch, m));
        }
    };
    // Which tags the method settles, and how.
    let (multiple, requeue) = match &m {
        Method::BasicAck(a) => (a.multiple, false),
        Method::BasicNack(n) => (n.multiple, n.requeue),
        Method::BasicReject(r) => (false, r.requeue),
        _ => unreachable!(),
    };
    let settled: Vec<u64> = if multiple {
        g.held.range(..=tag).map(|(t, _)| *t).collect()
    } else {
        vec![tag]
    };
    for t in settled {
        let body = g.held.remove(&t).expect("held");
        if consumed {
            assert!(tally.consumed.insert(body.clone()), "{body} consumed twice");
        } else if !requeue {
            assert!(tally.discarded.insert(body.clone()), "{body} discarded twice");
        }
    }
    Some(method(ch, m))
}

/// The getters' replies: what they got, on which channel.
fn observe(seed: u64, shards: &mut [Harness], getters: &mut [Getter], tally: &mut Tally) {
    for g in getters.iter_mut() {
        g.settled_unread &= shards[g.shard].is_parked(g.conn);
        for e in shards[g.shard].events(g.conn) {
            match e {
                Event::Delivery(d) => {
                    assert!(d.consumer_tag.is_none(), "seed {seed}: only gets here");
                    let (no_ack, recovered) = g.asked.pop_front().expect("a get was asked");
                    let body = String::from_utf8(d.body).expect("utf-8");
                    // Only a message's first delivery is not redelivered
                    // (one delivered to a connection that went may never
                    // be seen unredelivered).
                    if !d.redelivered {
                        assert!(
                            tally.firsts.insert(body.clone()),
                            "seed {seed}: {body} got again must be marked redelivered"
                        );
                    }
                    // (Within one step the getters' events are read in
                    // getter order, not in the order they happened: a second
                    // consumption shows as a double insert, here or at an ack,
                    // and a discarded message got again as consumed at the end.)
                    if no_ack {
                        assert!(
                            tally.consumed.insert(body.clone()),
                            "seed {seed}: {body} consumed twice"
                        );
                    } else if d.channel == g.channel && !recovered {
                        g.held.insert(d.tag, body);
                    }
                    // A get on a channel closed since goes back with it, as
                    // does one a recover sent since gave back.
                }
                Event::GetEmpty { .. } => {
                    g.asked.pop_front().expect("a get was asked");
                }
                Event::ChannelClose { code, text, .. } | Event::ConnectionClose { code, text } => {
                    panic!("seed {seed}: getter on shard {} closed: {code} {text}", g.shard)
                }
                _ => {}
            }
        }
    }
}
