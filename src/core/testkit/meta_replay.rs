//! The metadata ops alone rebuild the routing data (`docs/shards.md`, step 1):
//! a seeded stream of clients declaring, binding, unbinding and deleting
//! exchanges and queues (durable or not, exclusive, auto-delete, x-expires,
//! consumers that end, connections that close) is run through the broker with
//! the op tap on; applying the tapped ops, in order, to a second broker must
//! give the same exchanges, queues and bindings. A change to the routing data
//! that bypasses `Model::apply` (an auto-delete, an expiry, an exclusive queue
//! at a connection's end) shows up here as a difference.
//!
//! The durable part must also survive a clean restart as it was: the
//! definitions log records made from the ops replay to the same durable
//! exchanges, queues and bindings. Seeds are printed; replay one with
//! `RINGMQ_SIM_SEED`.

use std::collections::BTreeSet;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use ringmq_codec::{
    short, BasicCancel, BasicConsume, ExchangeBind, ExchangeDeclare, ExchangeDelete, ExchangeUnbind, FieldTable,
    Method, QueueBind, QueueDeclare, QueueDelete, QueueUnbind, Table,
};

use super::client::{self, method, name};
use super::harness::Harness;
use super::sim::seeds;
use crate::core::model::ids::{ConnId, Dest};
use crate::core::model::Model;

const EXCHANGES: [&str; 4] = ["x0", "x1", "x2", "xd"];
pub(super) const QUEUES: [&str; 5] = ["q0", "q1", "q2", "q3", "q4"];
const KEYS: [&str; 4] = ["a", "b", "a.*", "#"];
pub(super) const EXPIRES_MS: i64 = 50;
const STEPS: usize = 400;

#[test]
fn replaying_the_ops_rebuilds_the_routing_data() {
    for seed in seeds(8) {
        eprintln!("meta replay seed {seed}");
        run(seed);
    }
}

/// What one seed's clients do, and the two checks.
fn run(seed: u64) {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut h = Harness::new(seed, false, |_| {});
    h.broker_mut().model.tap_meta_ops(true);
    let mut conns: Vec<(ConnId, u16)> = vec![(h.connect(0, &[]), 0), (h.connect(0, &[]), 0)];
    for step in 0..STEPS {
        let c = rng.random_range(0..conns.len());
        if rng.random_bool(0.03) {
            // A connection ends: its exclusive queues go, its consumers' auto-delete
            // queues go.
            h.disconnect(conns[c].0);
            h.forget(conns[c].0);
            conns[c] = (h.connect(0, &[]), 0);
            continue;
        }
        if rng.random_bool(0.05) {
            h.advance(rng.random_range(0..=EXPIRES_MS as u64 * 2));
            h.fire_timers();
            continue;
        }
        if rng.random_bool(0.1) {
            h.sync_all();
        }
        // A fresh channel for every method: a refused one (404, 406) closes
        // only its channel.
        let (id, channels) = &mut conns[c];
        *channels += 1;
        let ch = *channels;
        let mut bytes = client::channel_open(ch);
        bytes.extend(random_method(&mut rng, ch, &|_| true));
        h.send(*id, &bytes);
        let _ = h.events(*id);
        if ch == 2000 {
            let old = conns[c].0;
            h.disconnect(old);
            h.forget(old);
            conns[c] = (h.connect(0, &[]), 0);
        }
        let _ = step;
    }
    h.sync_all();

    // The ops rebuild the model on a second broker.
    let ops = h.broker_mut().model.take_meta_ops();
    let mut other = Harness::new(seed, false, |_| {});
    for op in &ops {
        let applied = other.broker_mut().model.apply(op).expect("op applies");
        assert!(applied.changed, "seed {seed}: {op:?} changed nothing the second time");
    }
    let (live, rebuilt) = (routing(&h.broker().model, false), routing(&other.broker().model, false));
    assert_eq!(live, rebuilt, "seed {seed}: {} ops replayed", ops.len());

    // The durable part survives a clean restart from the definitions log. What
    // a restart drops (transient queues and exchanges) is deleted first, so that
    // what their going does to durable objects (an auto-delete exchange left
    // without bindings) is in the state compared.
    for (id, _) in &conns {
        h.disconnect(*id);
    }
    let c = h.connect(0, &[1]);
    let v = &h.broker().model.vhosts["/"];
    let mut bytes = Vec::new();
    for q in v.queues.values().filter(|q| !q.is_durable()) {
        bytes.extend(method(
            1,
            Method::QueueDelete(QueueDelete {
                ticket: 0,
                queue: name(q.name()),
                if_unused: false,
                if_empty: false,
                no_wait: true,
            }),
        ));
    }
    for x in v.exchanges.values().filter(|x| !x.durable) {
        bytes.extend(method(
            1,
            Method::ExchangeDelete(ExchangeDelete {
                ticket: 0,
                exchange: name(&x.name),
                if_unused: false,
                no_wait: true,
            }),
        ));
    }
    h.send(c, &bytes);
    h.disconnect(c);
    h.sync_all();
    let before = routing(&h.broker().model, true);
    h.restart();
    let after = routing(&h.broker().model, true);
    assert_eq!(before, after, "seed {seed}: durable routing data after a restart");
}

/// One random routing method on channel `ch`; a consumer only on a queue that
/// `may_consume` allows (the sharded run keeps consumers on their queue's shard).
pub(super) fn random_method(rng: &mut StdRng, ch: u16, may_consume: &dyn Fn(&str) -> bool) -> Vec<u8> {
    let x = EXCHANGES[rng.random_range(0..EXCHANGES.len())];
    let x2 = EXCHANGES[rng.random_range(0..EXCHANGES.len())];
    let q = QUEUES[rng.random_range(0..QUEUES.len())];
    let key = KEYS[rng.random_range(0..KEYS.len())];
    let flag = |rng: &mut StdRng, p: f64| rng.random_bool(p);
    let mut args = FieldTable::new();
    let m = match rng.random_range(0..100) {
        0..=14 => {
            let kind = if x == "xd" {
                args.insert(short!("x-delayed-type"), "direct");
                "x-delayed-message"
            } else {
                ["direct", "fanout", "topic"][rng.random_range(0..3)]
            };
            let bytes = args.to_bytes();
            return method(
                ch,
                Method::ExchangeDeclare(ExchangeDeclare {
                    ticket: 0,
                    exchange: name(x),
                    kind: name(kind),
                    passive: false,
                    durable: flag(rng, 0.5),
                    auto_delete: flag(rng, 0.3),
                    internal: false,
                    no_wait: false,
                    arguments: Table::parse(&bytes).expect("own table"),
                }),
            );
        }
        15..=19 => Method::ExchangeDelete(ExchangeDelete {
            ticket: 0,
            exchange: name(x),
            if_unused: flag(rng, 0.3),
            no_wait: false,
        }),
        20..=39 => {
            if flag(rng, 0.2) {
                args.insert(short!("x-expires"), EXPIRES_MS);
            }
            let bytes = args.to_bytes();
            return method(
                ch,
                Method::QueueDeclare(QueueDeclare {
                    exclusive: flag(rng, 0.2),
                    auto_delete: flag(rng, 0.3),
                    arguments: Table::parse(&bytes).expect("own table"),
                    ..client::queue_decl(q, flag(rng, 0.5))
                }),
            );
        }
        40..=44 => Method::QueueDelete(QueueDelete {
            ticket: 0,
            queue: name(q),
            if_unused: flag(rng, 0.3),
            if_empty: false,
            no_wait: false,
        }),
        45..=64 => Method::QueueBind(QueueBind {
            ticket: 0,
            queue: name(q),
            exchange: name(x),
            routing_key: name(key),
            no_wait: false,
            arguments: Table::EMPTY,
        }),
        65..=74 => Method::QueueUnbind(QueueUnbind {
            ticket: 0,
            queue: name(q),
            exchange: name(x),
            routing_key: name(key),
            arguments: Table::EMPTY,
        }),
        75..=82 => Method::ExchangeBind(ExchangeBind {
            ticket: 0,
            destination: name(x2),
            source: name(x),
            routing_key: name(key),
            no_wait: false,
            arguments: Table::EMPTY,
        }),
        83..=87 => Method::ExchangeUnbind(ExchangeUnbind {
            ticket: 0,
            destination: name(x2),
            source: name(x),
            routing_key: name(key),
            no_wait: false,
            arguments: Table::EMPTY,
        }),
        _ if !may_consume(q) => Method::QueueDeclare(QueueDeclare {
            passive: true,
            ..client::queue_decl(q, false)
        }),
        _ => {
            // A consumer that comes and goes: the end of an auto-delete
            // queue's last consumer deletes it.
            let mut bytes = method(
                ch,
                Method::BasicConsume(BasicConsume {
                    ticket: 0,
                    queue: name(q),
                    consumer_tag: short!("c"),
                    no_local: false,
                    no_ack: true,
                    exclusive: false,
                    no_wait: false,
                    arguments: Table::EMPTY,
                }),
            );
            if flag(rng, 0.7) {
                bytes.extend(method(
                    ch,
                    Method::BasicCancel(BasicCancel {
                        consumer_tag: short!("c"),
                        no_wait: false,
                    }),
                ));
            }
            return bytes;
        }
    };
    method(ch, m)
}

/// A vhost's exchanges, queues and bindings as comparable lines (`durable`:
/// only durable exchanges and queues, and bindings between durable ends).
pub(super) fn routing(model: &Model, durable: bool) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for (vname, v) in model.vhosts() {
        let queue_name = |d: &Dest| match d {
            Dest::Queue(id) => v
                .queues
                .get(id)
                .map(|q| (format!("queue {}", q.name()), q.is_durable())),
            Dest::Exchange(n) => v
                .exchanges
                .get(n.as_str())
                .map(|x| (format!("exchange {n}"), x.durable)),
        };
        for (name, x) in &v.exchanges {
            if durable && !x.durable {
                continue;
            }
            out.insert(format!(
                "{vname:?} exchange {name} {} durable={} auto_delete={} args={:?}",
                x.type_name(),
                x.durable,
                x.auto_delete,
                x.arguments
            ));
            for (dest, key, args) in x.bindings.iter() {
                let (dest, dest_durable) = queue_name(dest).expect("a binding's destination exists");
                if durable && !dest_durable {
                    continue;
                }
                out.insert(format!("{vname:?} binding {name} -> {dest} key={key} args={args:?}"));
            }
        }
        for q in v.queues.values() {
            if durable && !q.is_durable() {
                continue;
            }
            // Ids differ after a restart (they are handed out again), so the
            // durable view leaves them out.
            let id = if durable {
                String::new()
            } else {
                format!("{:?}", q.id())
            };
            out.insert(format!(
                "{vname:?} queue {} {id} durable={} auto_delete={} exclusive={:?} args={:?}",
                q.name(),
                q.is_durable(),
                q.is_auto_delete(),
                q.exclusive_owner(),
                q.arguments()
            ));
        }
    }
    out
}

/// A client's routing methods, each on a fresh channel.
struct Routing<'h> {
    h: &'h mut Harness,
    conn: ConnId,
    channel: u16,
}

impl Routing<'_> {
    fn send(&mut self, m: Method<'_>) {
        self.channel += 1;
        let mut bytes = client::channel_open(self.channel);
        bytes.extend(method(self.channel, m));
        self.h.send(self.conn, &bytes);
        self.h.sync_all();
    }

    fn exchange(&mut self, x: &str, durable: bool, auto_delete: bool) {
        self.send(Method::ExchangeDeclare(ExchangeDeclare {
            ticket: 0,
            exchange: name(x),
            kind: name("direct"),
            passive: false,
            durable,
            auto_delete,
            internal: false,
            no_wait: false,
            arguments: Table::EMPTY,
        }));
    }

    fn queue(&mut self, q: &str, durable: bool) {
        self.send(Method::QueueDeclare(client::queue_decl(q, durable)));
    }

    fn bind(&mut self, x: &str, q: &str, add: bool) {
        let (queue, exchange, routing_key) = (name(q), name(x), name("k"));
        self.send(if add {
            Method::QueueBind(QueueBind {
                ticket: 0,
                queue,
                exchange,
                routing_key,
                no_wait: false,
                arguments: Table::EMPTY,
            })
        } else {
            Method::QueueUnbind(QueueUnbind {
                ticket: 0,
                queue,
                exchange,
                routing_key,
                arguments: Table::EMPTY,
            })
        });
    }

    fn delete_queue(&mut self, q: &str) {
        self.send(Method::QueueDelete(QueueDelete {
            ticket: 0,
            queue: name(q),
            if_unused: false,
            if_empty: false,
            no_wait: false,
        }));
    }
}

fn routing_client(h: &mut Harness) -> Routing<'_> {
    let conn = h.connect(0, &[]);
    Routing { h, conn, channel: 0 }
}

fn has_exchange(h: &Harness, x: &str) -> bool {
    h.broker().model.vhosts["/"].exchanges.contains_key(x)
}

/// Regression (found by the test above): a durable auto-delete exchange that
/// went with its last binding came back at the next start, because only the
/// unbind or the queue's delete was logged, and replay did not delete it.
#[test]
fn an_auto_deleted_durable_exchange_stays_deleted_after_a_restart() {
    let mut h = Harness::new(1, false, |_| {});
    let mut c = routing_client(&mut h);
    // Its last binding removed by an unbind.
    c.exchange("xa", true, true);
    c.queue("durable", true);
    c.bind("xa", "durable", true);
    c.bind("xa", "durable", false);
    // Its last binding, to a transient queue, removed with the queue.
    c.exchange("xb", true, true);
    c.queue("transient", false);
    c.bind("xb", "transient", true);
    c.delete_queue("transient");
    assert!(
        !has_exchange(&h, "xa") && !has_exchange(&h, "xb"),
        "auto-deleted while running"
    );
    h.restart();
    assert!(
        !has_exchange(&h, "xa"),
        "auto-deleted by an unbind, back after a restart"
    );
    assert!(
        !has_exchange(&h, "xb"),
        "auto-deleted with a transient queue, back after a restart"
    );
}

/// Regression (found by the test above): replay deleted a durable auto-delete
/// exchange that the live broker kept (a binding to a transient queue held it),
/// and with it every durable binding made to it afterwards.
#[test]
fn replay_keeps_an_auto_delete_exchange_that_transient_bindings_kept() {
    let mut h = Harness::new(1, false, |_| {});
    let mut c = routing_client(&mut h);
    c.exchange("x", true, true);
    c.queue("first", true);
    c.queue("transient", false);
    c.queue("second", true);
    c.bind("x", "first", true);
    c.bind("x", "transient", true);
    c.delete_queue("first");
    c.bind("x", "second", true);
    h.restart();
    let v = &h.broker().model.vhosts["/"];
    let second = v.queue_id("second").expect("durable queue recovered");
    let x = v
        .exchanges
        .get("x")
        .expect("the exchange, which was never left without bindings");
    assert!(
        x.bindings
            .iter()
            .any(|(d, key, _)| *d == Dest::Queue(second) && key == "k"),
        "its durable binding to 'second' was lost"
    );
}
