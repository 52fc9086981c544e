//! The shards of one broker on one data directory across a restart
//! (`amqp::broker::open`, `model::vhost_files`): durable queues declared,
//! bound and deleted through any shard, persistent messages published with
//! confirms through any shard (crossing to their queue's owner), a user made
//! through the last shard; then every shard closes (or is dropped, as by
//! kill -9) and the shards open again on the directory.
//!
//! After the restart every shard has the same routing data, which is what
//! was declared and not deleted (the records made by every shard are in the
//! one definitions log, in order); each queue's owner has every confirmed
//! message, flagged redelivered exactly when the stop was not clean (the
//! vhost's `running` marker is released by the last shard to close only, so
//! one shard killed while the others closed makes it unclean);
//! the user logs in on every shard; the deleted queue's folder is gone.
//!
//! Seeds are printed; replay one with `RINGMQ_SIM_SEED`.

use std::collections::{BTreeMap, BTreeSet};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use ringmq_codec::{BasicGet, BasicProperties, ConfirmSelect, Method, QueueBind, QueueDelete, Table};

use super::client::{self, method, name, Event};
use super::harness::Harness;
use super::meta_replay::routing;
use super::sim::seeds;
use super::wires::{carry, hand_over, Wires};
use crate::core::access::permissions::PermissionDef;
use crate::core::mgmt::commands::UserSpec;
use crate::core::model::meta::{MetaLog, ShardId};

const QUEUES: [&str; 6] = ["d0", "d1", "d2", "d3", "d4", "d5"];
/// Deleted before the restart, through some shard.
const DELETED: &str = "d5";
const PUBLISHES: usize = 120;

#[test]
fn durable_state_made_through_any_shard_survives_a_restart_of_all() {
    for seed in seeds(6) {
        let n = 2 + (seed % 3) as u16;
        // Every shard closes, all are killed, or one is killed and the
        // others close (the stop is not clean then either).
        let killed: Vec<usize> = match seed % 3 {
            0 => Vec::new(),
            1 => (0..usize::from(n)).collect(),
            _ => vec![(seed / 3 % u64::from(n)) as usize],
        };
        eprintln!("shards restart seed {seed} ({n} shards, killed: {killed:?})");
        run(seed, n, &killed);
    }
}

fn run(seed: u64, n: u16, killed: &[usize]) {
    let kill = !killed.is_empty();
    let mut rng = StdRng::seed_from_u64(seed);
    let shards_n = usize::from(n);
    let mut shards = Harness::shards(seed, n, &MetaLog::new(n), true);
    let owner = |q: &str| usize::from(ShardId::owner_of_queue("/", q, n).0);

    // Each queue declared and bound through a shard the seed picks (its
    // record written by that shard into the shared log), a durable exchange
    // bound to the first queue through yet another.
    let mut declared_through = BTreeSet::new();
    for q in QUEUES {
        let s = rng.random_range(0..shards_n);
        declared_through.insert(s);
        let c = shards[s].connect(0, &[1]);
        let mut bytes = method(1, Method::QueueDeclare(client::queue_decl(q, true)));
        bytes.extend(bind(q, "amq.direct", q));
        shards[s].send(c, &bytes);
        shards[s].sync_all();
        let ok = shards[s].events(c);
        assert!(
            ok.iter()
                .filter(|e| matches!(e, Event::Other { name, .. } if *name == "queue.bind-ok"))
                .count()
                == 1,
            "seed {seed}: declare and bind of {q} through shard {s}: {ok:?}"
        );
    }
    let s = rng.random_range(0..shards_n);
    let c = shards[s].connect(0, &[1]);
    let mut bytes = method(
        1,
        Method::ExchangeDeclare(ringmq_codec::ExchangeDeclare {
            ticket: 0,
            exchange: name("xd"),
            kind: name("fanout"),
            passive: false,
            durable: true,
            auto_delete: false,
            internal: false,
            no_wait: false,
            arguments: Table::EMPTY,
        }),
    );
    bytes.extend(bind(QUEUES[0], "xd", ""));
    shards[s].send(c, &bytes);
    shards[s].sync_all();

    // Persistent messages with confirms, from every shard, to every queue.
    let mut wires = Wires::new();
    let publishers: Vec<_> = (0..shards_n)
        .map(|s| {
            let c = shards[s].connect(0, &[1]);
            shards[s].send(c, &method(1, Method::ConfirmSelect(ConfirmSelect { no_wait: false })));
            (s, c)
        })
        .collect();
    let mut sent: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
    // Per publisher: publishes sent, and the highest tag confirmed (confirms
    // come in order, so that is how many are).
    let (mut published, mut confirmed) = (vec![0u64; shards_n], vec![0u64; shards_n]);
    let props = BasicProperties {
        delivery_mode: Some(2),
        ..Default::default()
    };
    let take_confirms = |shards: &mut [Harness], confirmed: &mut [u64]| {
        for &(s, c) in &publishers {
            for e in shards[s].events(c) {
                if let Event::Confirm { ack, tag, .. } = e {
                    assert!(ack, "seed {seed}: publish {tag} on shard {s} nacked");
                    confirmed[s] = confirmed[s].max(tag);
                }
            }
        }
    };
    for i in 0..PUBLISHES {
        let p = rng.random_range(0..shards_n);
        let (s, c) = publishers[p];
        let q = QUEUES[rng.random_range(0..QUEUES.len() - 1)];
        let body = format!("m{i}");
        shards[s].send(c, &client::publish(1, "amq.direct", q, &props, body.as_bytes()));
        sent.entry(q).or_default().insert(body);
        published[p] += 1;
        carry(&mut shards, &mut wires);
        if rng.random_bool(0.3) {
            hand_over(&mut rng, &mut shards, &mut wires);
        }
        take_confirms(&mut shards, &mut confirmed);
    }
    // Until every publish is confirmed: batches handed over, commits run.
    for _ in 0..10_000 {
        if confirmed == published {
            break;
        }
        carry(&mut shards, &mut wires);
        hand_over(&mut rng, &mut shards, &mut wires);
        let s = rng.random_range(0..shards_n);
        shards[s].sync_all();
        take_confirms(&mut shards, &mut confirmed);
    }
    assert_eq!(confirmed, published, "seed {seed}: confirms missing");

    // A queue deleted and a user made, each through a shard the seed picks.
    let s = rng.random_range(0..shards_n);
    let c = shards[s].connect(0, &[1]);
    shards[s].send(
        c,
        &method(
            1,
            Method::QueueDelete(QueueDelete {
                ticket: 0,
                queue: name(DELETED),
                if_unused: false,
                if_empty: false,
                no_wait: false,
            }),
        ),
    );
    let alice = UserSpec {
        password: Some("secret".into()),
        tags: vec!["administrator".into()],
        ..UserSpec::default()
    };
    let last = shards_n - 1;
    shards[last]
        .broker_mut()
        .admin_put_user("alice", &alice)
        .expect("alice");
    shards[last]
        .broker_mut()
        .admin_set_permission(PermissionDef {
            user: "alice".into(),
            vhost: "/".into(),
            configure: ".*".into(),
            write: ".*".into(),
            read: ".*".into(),
        })
        .expect("alice's permission");
    for h in &mut shards {
        h.broker_mut().catch_up_meta();
        h.sync_all();
    }
    let before = routing(&shards[0].broker().model, true);
    let deleted_dir = {
        let v = &shards[0].broker().model.vhosts["/"];
        v.queue_dir(DELETED, true, 0)
    };

    let log = MetaLog::new(n);
    let mut shards = Harness::restart_shards(shards, &log, killed);

    for (i, h) in shards.iter().enumerate() {
        assert_eq!(
            routing(&h.broker().model, true),
            before,
            "seed {seed}: shard {i}'s durable routing data after the restart (declared through shards {declared_through:?})"
        );
    }
    assert!(!deleted_dir.exists(), "seed {seed}: the deleted queue's folder is back");
    for q in &QUEUES[..QUEUES.len() - 1] {
        let s = owner(q);
        let c = shards[s].connect(0, &[1]);
        let mut got = BTreeSet::new();
        loop {
            let get = Method::BasicGet(BasicGet {
                ticket: 0,
                queue: name(q),
                no_ack: true,
            });
            shards[s].send(c, &method(1, get));
            let events = shards[s].events(c);
            let Some(Event::Delivery(d)) = events.into_iter().find(|e| !matches!(e, Event::Other { .. })) else {
                break;
            };
            assert_eq!(
                d.redelivered,
                kill,
                "seed {seed}: {q}'s message after a {} stop",
                if kill { "kill -9" } else { "clean" }
            );
            got.insert(String::from_utf8(d.body).expect("utf-8"));
        }
        let want = sent.remove(q).unwrap_or_default();
        assert_eq!(got, want, "seed {seed}: queue {q} on shard {s} after the restart");
    }
    for (i, h) in shards.iter_mut().enumerate() {
        let c = h.connect_as("alice", "secret", "/");
        let events = h.events(c);
        assert!(
            events
                .iter()
                .any(|e| matches!(e, Event::Other { name, .. } if *name == "connection.open-ok")),
            "seed {seed}: alice on shard {i} after the restart: {events:?}"
        );
    }
}

fn bind(queue: &str, exchange: &str, key: &str) -> Vec<u8> {
    method(
        1,
        Method::QueueBind(QueueBind {
            ticket: 0,
            queue: name(queue),
            exchange: name(exchange),
            routing_key: name(key),
            no_wait: false,
            arguments: Table::EMPTY,
        }),
    )
}
