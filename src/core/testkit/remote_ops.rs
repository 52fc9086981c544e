//! Methods on another shard's queue (`docs/shards.md`, step 3;
//! `amqp::remote`): a declare's counts, purge, delete with `if-empty` and
//! `if-unused`, asked of the queue's owner while the asking connection is
//! parked. A client per shard works on queues of every shard (its own
//! among them) and sends its methods without waiting for replies; the
//! batches between shards are handed over in a seeded order and group
//! commits run when the seed says. Each queue is used by one client only,
//! so its counts are known exactly whatever the interleaving:
//!
//! - every client gets exactly the replies one shard would give, in the
//!   order it sent the methods (a remote reply is not overtaken by a local
//!   one, and publishes before a declare or purge on the same channel are
//!   counted by it);
//! - at the end no connection is parked, and every shard's copy has the
//!   queues the replies said exist.
//!
//! Seeds are printed; replay one with `RINGMQ_SIM_SEED`.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use ringmq_codec::{BasicConsume, BasicProperties, Method, QueueDeclare, QueueDelete, QueuePurge, Table};

use super::client::{self, method, name, Event};
use super::harness::Harness;
use super::sim::seeds;
use super::wires::{carry, hand_over, Wires};
use crate::core::model::ids::{ConnId, VhostName};
use crate::core::model::meta::{MetaLog, ShardId};

const QUEUES: [&str; 6] = ["c0", "c1", "c2", "c3", "c4", "c5"];
/// A queue with a consumer on its owner and never a message.
const BUSY: &str = "busy";
const STEPS: usize = 400;
/// Channels a client may use: each one closed by an error is left for the next.
const CHANNELS: u16 = 15;

#[test]
fn methods_on_other_shards_queues_answer_as_one_shard_would_in_order() {
    for seed in seeds(8) {
        let n = 2 + (seed % 2) as u16;
        eprintln!("remote queue ops seed {seed} ({n} shards)");
        run(seed, n);
    }
}

/// A reply a client is owed, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Want {
    Ok {
        name: &'static str,
        messages: u32,
        consumers: u32,
    },
    Close {
        code: u16,
    },
}

struct User {
    shard: usize,
    conn: ConnId,
    channel: u16,
    want: Vec<Want>,
    got: Vec<Want>,
}

/// What the test knows of a queue.
#[derive(Default, Clone, Copy)]
struct Known {
    exists: bool,
    ready: u32,
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

    // The busy queue and its consumer, on its owner.
    let b = owner(BUSY);
    let consumer = shards[b].connect(0, &[1]);
    let mut bytes = method(1, Method::QueueDeclare(client::queue_decl(BUSY, true)));
    bytes.extend(method(
        1,
        Method::BasicConsume(BasicConsume {
            ticket: 0,
            queue: name(BUSY),
            consumer_tag: name("c"),
            no_local: false,
            no_ack: false,
            exclusive: false,
            no_wait: false,
            arguments: Table::EMPTY,
        }),
    ));
    shards[b].send(consumer, &bytes);
    shards[b].sync_all();

    let mut users: Vec<User> = (0..usize::from(n))
        .map(|s| User {
            shard: s,
            conn: shards[s].connect(0, &[1]),
            channel: 1,
            want: Vec::new(),
            got: Vec::new(),
        })
        .collect();
    for u in &mut users {
        shards[u.shard].events(u.conn);
    }
    let mut known = [Known::default(); QUEUES.len()];
    let mut wires = Wires::new();

    let mut step = 0;
    while step < STEPS || wires.values().any(|w| !w.is_empty()) || shards.iter().any(Harness::sync_wanted) {
        step += 1;
        match rng.random_range(0..10) {
            0..=4 if step < STEPS => {
                // Queue i belongs to user i mod n: one user per queue.
                let q = rng.random_range(0..QUEUES.len());
                let u = &mut users[q % usize::from(n)];
                if u.channel > CHANNELS {
                    continue;
                }
                let bytes = act(&mut rng, u, q, &mut known[q]);
                shards[u.shard].send(u.conn, &bytes);
            }
            5..=7 => hand_over(&mut rng, &mut shards, &mut wires),
            _ => {
                let s = rng.random_range(0..shards.len());
                shards[s].sync_all();
            }
        }
        carry(&mut shards, &mut wires);
        for u in &mut users {
            for e in shards[u.shard].events(u.conn) {
                match e {
                    Event::QueueOk {
                        name,
                        messages,
                        consumers,
                        ..
                    } => u.got.push(Want::Ok {
                        name,
                        messages,
                        consumers,
                    }),
                    Event::ChannelClose { code, .. } => u.got.push(Want::Close { code }),
                    Event::ConnectionClose { code, text } => {
                        panic!("seed {seed}: user on shard {} closed: {code} {text}", u.shard)
                    }
                    _ => {}
                }
            }
        }
    }

    for u in &users {
        assert!(
            !shards[u.shard].is_parked(u.conn),
            "seed {seed}: user on shard {} still parked",
            u.shard
        );
        assert_eq!(u.got, u.want, "seed {seed}: replies of the user on shard {}", u.shard);
    }
    let vhost = VhostName::new("/").expect("name");
    for (s, h) in shards.iter_mut().enumerate() {
        // A shard applies the log's ops before its next input: this is one.
        h.broker_mut().catch_up_meta();
        let v = h.broker().model().vhosts.get(&vhost).expect("vhost");
        for (q, k) in QUEUES.iter().zip(&known) {
            assert_eq!(
                v.queue_id(q).is_some(),
                k.exists,
                "seed {seed}: shard {s}'s copy of queue {q}"
            );
        }
    }
}

/// One method of user `u` on queue `q` (or on the busy queue), and the
/// reply it is owed.
fn act(rng: &mut StdRng, u: &mut User, q: usize, k: &mut Known) -> Vec<u8> {
    let ch = u.channel;
    let queue = QUEUES[q];
    let ok = |name, messages, consumers| Want::Ok {
        name,
        messages,
        consumers,
    };
    let close = |u: &mut User, code: u16| {
        // The channel is closed by the error; the next method goes on a
        // new one (opened now: its open waits behind the failing method).
        u.want.push(Want::Close { code });
        u.channel += 1;
        client::channel_open(u.channel)
    };
    match rng.random_range(0..9) {
        0..=2 if k.exists => {
            let count = rng.random_range(1..=3u32);
            let props = BasicProperties {
                delivery_mode: Some(if rng.random_bool(0.5) { 2 } else { 1 }),
                ..Default::default()
            };
            k.ready += count;
            (0..count)
                .flat_map(|i| client::publish(ch, "", queue, &props, format!("m{i}").as_bytes()))
                .collect()
        }
        3 => {
            let passive = rng.random_bool(0.5);
            let m = method(
                ch,
                Method::QueueDeclare(QueueDeclare {
                    passive,
                    ..client::queue_decl(queue, true)
                }),
            );
            if k.exists || !passive {
                k.exists = true;
                u.want.push(ok("queue.declare-ok", k.ready, 0));
                m
            } else {
                [m, close(u, 404)].concat()
            }
        }
        4 => {
            let m = method(
                ch,
                Method::QueuePurge(QueuePurge {
                    ticket: 0,
                    queue: name(queue),
                    no_wait: false,
                }),
            );
            if k.exists {
                u.want.push(ok("queue.purge-ok", k.ready, 0));
                k.ready = 0;
                m
            } else {
                [m, close(u, 404)].concat()
            }
        }
        5 | 6 => {
            let if_empty = rng.random_bool(0.5);
            let m = delete(ch, queue, false, if_empty);
            if if_empty && k.ready > 0 {
                [m, close(u, 406)].concat()
            } else {
                u.want.push(ok("queue.delete-ok", k.ready, 0));
                *k = Known::default();
                m
            }
        }
        7 => {
            let m = method(
                ch,
                Method::QueueDeclare(QueueDeclare {
                    passive: true,
                    ..client::queue_decl(BUSY, true)
                }),
            );
            u.want.push(ok("queue.declare-ok", 0, 1));
            m
        }
        8 => [delete(ch, BUSY, true, false), close(u, 406)].concat(),
        _ => Vec::new(),
    }
}

fn delete(channel: u16, queue: &str, if_unused: bool, if_empty: bool) -> Vec<u8> {
    method(
        channel,
        Method::QueueDelete(QueueDelete {
            ticket: 0,
            queue: name(queue),
            if_unused,
            if_empty,
            no_wait: false,
        }),
    )
}

/// A connection parked for another shard's answer is not read, so its
/// client's heartbeats are not heard: that is no reason to take it for dead.
#[test]
fn a_parked_connection_outlives_its_heartbeat_timeout() {
    let log = MetaLog::new(2);
    let mut shards = Harness::shards(0, 2, &log, false);
    let remote = *QUEUES
        .iter()
        .find(|q| ShardId::owner_of_queue("/", q, 2) == ShardId(1))
        .expect("shard 1 owns a queue");
    let c = shards[0].connect(1, &[1]);
    shards[0].send(c, &method(1, Method::QueueDeclare(client::queue_decl(remote, true))));
    shards[0].send(c, &delete(1, remote, false, false));
    assert!(shards[0].is_parked(c), "waits for shard 1");
    for _ in 0..10 {
        shards[0].advance(1_000);
        let closed = shards[0].fire_timers();
        assert!(
            !closed.contains(&c),
            "closed while parked, for heartbeats it could not read"
        );
    }
    let mut out = Vec::new();
    shards[0].broker_mut().take_cross(&mut out);
    for (to, batch) in out {
        shards[usize::from(to.0)].handle_cross(ShardId(0), batch);
    }
    let mut back = Vec::new();
    shards[1].broker_mut().take_cross(&mut back);
    for (_, batch) in back {
        shards[0].handle_cross(ShardId(1), batch);
    }
    assert!(!shards[0].is_parked(c), "answered");
    let events = shards[0].events(c);
    assert!(
        events.iter().any(|e| matches!(
            e,
            Event::QueueOk {
                name: "queue.delete-ok",
                ..
            }
        )),
        "{events:?}"
    );
}

/// A declare of a queue its owner deletes before the question comes: made
/// anew, as a declare after the delete would be (RabbitMQ's declare creates).
#[test]
fn a_declare_whose_queue_went_meanwhile_declares_it_again() {
    let log = MetaLog::new(2);
    let mut shards = Harness::shards(0, 2, &log, false);
    let remote = *QUEUES
        .iter()
        .find(|q| ShardId::owner_of_queue("/", q, 2) == ShardId(1))
        .expect("shard 1 owns a queue");
    let b = shards[1].connect(0, &[1]);
    shards[1].send(b, &method(1, Method::QueueDeclare(client::queue_decl(remote, true))));
    let a = shards[0].connect(0, &[1]);
    shards[0].send(a, &method(1, Method::QueueDeclare(client::queue_decl(remote, true))));
    assert!(shards[0].is_parked(a), "the counts are shard 1's");
    shards[1].send(b, &delete(1, remote, false, false));
    let mut out = Vec::new();
    shards[0].broker_mut().take_cross(&mut out);
    for (_, batch) in out {
        shards[1].handle_cross(ShardId(0), batch);
    }
    let mut back = Vec::new();
    shards[1].broker_mut().take_cross(&mut back);
    for (_, batch) in back {
        shards[0].handle_cross(ShardId(1), batch);
    }
    let events = shards[0].events(a);
    assert!(
        events.iter().any(|e| matches!(
            e,
            Event::QueueOk {
                name: "queue.declare-ok",
                messages: 0,
                consumers: 0,
                ..
            }
        )),
        "{events:?}"
    );
    assert!(
        !events.iter().any(|e| matches!(e, Event::ChannelClose { .. })),
        "{events:?}"
    );
    let vhost = VhostName::new("/").expect("name");
    for h in &mut shards {
        h.broker_mut().catch_up_meta();
        assert!(
            h.broker().model().vhosts[&vhost].queue_id(remote).is_some(),
            "declared anew"
        );
    }
}
