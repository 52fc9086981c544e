//! Several shards keep equal copies of the routing data through the metadata
//! log (`docs/shards.md`, step 3): seeded clients spread over 2 to 4 shards
//! (each shard a broker of its own in this one thread, joined to one
//! [`MetaLog`]) declare, bind, unbind and delete exchanges and queues, use
//! exclusive, auto-delete and x-expires queues, import definitions through the
//! management API, and close connections, in a
//! seeded interleaving of the shards. At the end every shard has applied the
//! log, and:
//!
//! - every shard's copy holds the same exchanges, queues and bindings;
//! - the ops in shard 0's order rebuild the same on a broker of one shard (so
//!   the log's order, not the shards', decided everything);
//! - a queue's folder exists only on its owner shard (the copies have no files).
//!
//! Consumers are kept on their queue's shard: a consumer on another shard's
//! queue needs the cross-shard deliveries that come later in step 3.
//! Seeds are printed; replay one with `RINGMQ_SIM_SEED`.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::client;
use super::harness::Harness;
use super::meta_replay::{random_method, routing, EXPIRES_MS, QUEUES};
use super::sim::seeds;
use crate::core::model::ids::ConnId;
use crate::core::model::meta::{MetaLog, ShardId};

const STEPS: usize = 600;

#[test]
fn shards_keep_equal_copies_of_the_routing_data() {
    for seed in seeds(8) {
        let shards = 2 + (seed % 3) as u16;
        eprintln!("meta shards seed {seed} ({shards} shards)");
        run(seed, shards);
    }
}

struct Client {
    shard: usize,
    conn: ConnId,
    channels: u16,
}

fn run(seed: u64, n: u16) {
    let mut rng = StdRng::seed_from_u64(seed);
    // One cursor more than shards: the reference's, a broker of one shard
    // that applies the log in its order after every step.
    let log = MetaLog::new(n + 1);
    let mut reference = Harness::new(seed, false, |_| {});
    let mut read = 0;
    let mut shards = Harness::shards(seed, n, &log, false);
    shards[0].broker_mut().model.tap_meta_ops(true);
    let mut clients: Vec<Client> = (0..usize::from(n) * 2)
        .map(|i| {
            let shard = i % usize::from(n);
            Client {
                shard,
                conn: shards[shard].connect(0, &[]),
                channels: 0,
            }
        })
        .collect();
    let mut made = 0;
    for _ in 0..STEPS {
        let pick = rng.random_range(0..clients.len());
        let c = &mut clients[pick];
        let h = &mut shards[c.shard];
        // Whether the step reads input (which catches the shard up first);
        // a timer or a connection's end catches up only when it makes an op.
        let input = if rng.random_bool(0.03) {
            // A connection ends: its exclusive queues go, on every shard.
            h.disconnect(c.conn);
            h.forget(c.conn);
            c.conn = h.connect(0, &[]);
            c.channels = 0;
            false
        } else if rng.random_bool(0.02) {
            // The management API imports definitions on this shard.
            let q = QUEUES[rng.random_range(0..QUEUES.len())];
            let d = serde_json::json!({
                "exchanges": [{"name": "x1", "vhost": "/", "type": "topic", "durable": true,
                    "auto_delete": false, "internal": false, "arguments": {}}],
                "queues": [{"name": q, "vhost": "/", "durable": true, "auto_delete": false,
                    "arguments": {}}],
                "bindings": [{"source": "x1", "vhost": "/", "destination": q,
                    "destination_type": "queue", "routing_key": "i", "arguments": {}}],
            });
            // Refused when x1 or the queue exists otherwise (a 4xx, nothing applied).
            let _ = h
                .broker_mut()
                .import_definitions(serde_json::from_value(d).expect("definitions"), None, None, 0);
            false
        } else if rng.random_bool(0.05) {
            // x-expires runs on the queue's owner, which deletes it for all.
            h.advance(rng.random_range(0..=EXPIRES_MS as u64 * 2));
            h.fire_timers();
            false
        } else {
            if rng.random_bool(0.1) {
                h.sync_all();
            }
            c.channels += 1;
            let me = ShardId(c.shard as u16);
            let may_consume = |q: &str| ShardId::owner_of_queue("/", q, n) == me;
            let mut bytes = client::channel_open(c.channels);
            bytes.extend(random_method(&mut rng, c.channels, &may_consume));
            h.send(c.conn, &bytes);
            let _ = h.events(c.conn);
            true
        };
        let new_ops = log.lock().since(read);
        read += new_ops.len() as u64;
        log.lock().advance(ShardId(n), read);
        for op in &new_ops {
            let _ = reference.broker_mut().apply_logged_op(op).expect("op applies");
        }
        made += new_ops.len();
        // The shard that acted decided on a current copy and applied its ops
        // in the log's order: its copy is what the log says.
        if input || !new_ops.is_empty() {
            assert_eq!(
                routing(&h.broker().model, false),
                routing(&reference.broker().model, false),
                "seed {seed}: shard {} after its step, against the log",
                c.shard
            );
        }
        // Questions to other shards' queues (a delete, purge or declare's
        // counts) and their answers are handed over; what the owners do
        // (a delete) goes into the log, and to the reference now.
        settle(&mut shards);
        let settled = log.lock().since(read);
        read += settled.len() as u64;
        log.lock().advance(ShardId(n), read);
        for op in &settled {
            let _ = reference.broker_mut().apply_logged_op(op).expect("op applies");
        }
        made += settled.len();
    }
    eprintln!("  {made} ops");
    for h in &mut shards {
        h.sync_all();
        h.broker_mut().catch_up_meta();
    }
    assert_eq!(log.lock().held(), 0, "seed {seed}: every shard applied the log");

    let first = routing(&shards[0].broker().model, false);
    for (i, h) in shards.iter().enumerate().skip(1) {
        assert_eq!(
            first,
            routing(&h.broker().model, false),
            "seed {seed}: shard {i}'s copy differs from shard 0's"
        );
    }

    let ops = shards[0].broker_mut().model.take_meta_ops();
    let mut one = Harness::new(seed, false, |_| {});
    for op in &ops {
        let applied = one.broker_mut().model.apply(op).expect("op applies");
        assert!(applied.changed, "seed {seed}: {op:?} changed nothing on one shard");
    }
    assert_eq!(
        first,
        routing(&one.broker().model, false),
        "seed {seed}: the log's {} ops rebuild another model on one shard",
        ops.len()
    );

    for (i, h) in shards.iter().enumerate() {
        let v = &h.broker().model.vhosts["/"];
        for q in v.queues.values() {
            let local = q.owner() == ShardId(i as u16);
            assert_eq!(
                q.owner(),
                ShardId::owner_of_queue("/", q.name().as_str(), n),
                "seed {seed}: queue {} has the wrong owner",
                q.name()
            );
            // One data directory: a durable queue's folder is there, made by
            // its owner; a copy never opens its store.
            if q.is_durable() {
                let dir = v.queue_dir(q.name().as_str(), true, q.store_gen());
                assert!(
                    dir.exists(),
                    "seed {seed}: no folder for durable queue {} of shard {}",
                    q.name(),
                    q.owner().0
                );
            }
            assert!(
                local || !q.is_store_open(),
                "seed {seed}: shard {i} opened the store of queue {} of shard {}",
                q.name(),
                q.owner().0
            );
        }
    }
    let owned: usize = QUEUES
        .iter()
        .filter(|q| ShardId::owner_of_queue("/", q, n) == ShardId(0))
        .count();
    assert!(
        owned < QUEUES.len(),
        "seed {seed}: shard 0 owns every queue; the run shows little"
    );
}

/// Hands every batch between shards over until none is made.
fn settle(shards: &mut [Harness]) {
    loop {
        let mut moved = false;
        for from in 0..shards.len() {
            let mut out = Vec::new();
            shards[from].broker_mut().take_cross(&mut out);
            for (to, batch) in out {
                moved = true;
                shards[usize::from(to.0)].handle_cross(ShardId(from as u16), batch);
            }
        }
        if !moved {
            return;
        }
    }
}

/// The same clients on real threads, one per shard, at once: the log's lock
/// and cursors under true concurrency (the seeded run above interleaves
/// whole steps only). Each shard's clients declare, bind and delete as fast
/// as they can; when all are done every shard catches up, and every copy
/// must be the same, and equal to the log's ops applied on one shard in
/// shard 0's order.
#[test]
fn shards_on_threads_keep_equal_copies() {
    for seed in seeds(3) {
        let n: u16 = 2 + (seed % 3) as u16;
        eprintln!("meta shards on threads seed {seed} ({n} shards)");
        let log = MetaLog::new(n);
        // Opened here, shard 0 first (it makes the data directory's vhost),
        // then each moved to a thread of its own.
        let threads: Vec<_> = (Harness::shards(seed, n, &log, false).into_iter().enumerate())
            .map(|(i, mut h)| {
                let i = i as u16;
                std::thread::spawn(move || {
                    h.broker_mut().model.tap_meta_ops(true);
                    let mut rng = StdRng::seed_from_u64(seed ^ u64::from(i) << 32);
                    let me = ShardId(i);
                    let may_consume = |q: &str| ShardId::owner_of_queue("/", q, n) == me;
                    let mut conn = h.connect(0, &[]);
                    let mut channels = 0u16;
                    for _ in 0..STEPS {
                        // No rings join these threads: a connection parked
                        // for another shard's answer (a delete, purge or
                        // declare of its queue) gets none, and is replaced.
                        if rng.random_bool(0.03) || h.is_parked(conn) {
                            h.disconnect(conn);
                            h.forget(conn);
                            conn = h.connect(0, &[]);
                            channels = 0;
                            continue;
                        }
                        channels += 1;
                        let mut bytes = client::channel_open(channels);
                        bytes.extend(random_method(&mut rng, channels, &may_consume));
                        h.send(conn, &bytes);
                        let _ = h.events(conn);
                    }
                    h.disconnect(conn);
                    h
                })
            })
            .collect();
        // Every shard is done: each catches up, here (a thread that failed
        // fails the test; no other waits for it).
        let done: Vec<Harness> = threads.into_iter().map(|t| t.join().expect("a shard thread")).collect();
        let results: Vec<_> = done
            .into_iter()
            .map(|mut h| {
                h.broker_mut().catch_up_meta();
                let ops = h.broker_mut().model.take_meta_ops();
                (routing(&h.broker().model, false), ops)
            })
            .collect();
        let (first, ops) = &results[0];
        for (i, (_, other)) in results.iter().enumerate().skip(1) {
            let same = ops.iter().zip(other).take_while(|(a, b)| a == b).count();
            assert!(
                ops.len() == other.len() && same == ops.len(),
                "seed {seed}: shard {i} applied {} ops, shard 0 {}; the same first {same}: {:?} / {:?}",
                other.len(),
                ops.len(),
                ops.get(same),
                other.get(same)
            );
        }
        for (i, (copy, _)) in results.iter().enumerate().skip(1) {
            assert_eq!(first, copy, "seed {seed}: shard {i}'s copy differs from shard 0's");
        }
        let mut one = Harness::new(seed, false, |_| {});
        for op in ops {
            let _ = one.broker_mut().model.apply(op).expect("op applies");
        }
        assert_eq!(
            first,
            &routing(&one.broker().model, false),
            "seed {seed}: shard 0's order of {} ops rebuilds another model",
            ops.len()
        );
        assert_eq!(log.lock().held(), 0, "seed {seed}: every shard applied the log");
    }
}
