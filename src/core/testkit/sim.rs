//! Deterministic simulation of many clients against the sans-IO core.
//!
//! A seeded generator drives several connections through random open, declare,
//! publish, consume, get, ack, nack, reject, cancel, channel close and connection
//! close steps, feeding encoded frames to [`Broker::handle_input`] and decoding
//! what comes back. Invariants checked: every delivery tag is settled at most once,
//! no message is lost or invented, a message delivered again after being acked
//! never happens, and queue counts match the model. Set RINGMQ_SIM_SEED to replay
//! a failing seed; the seed is printed in every assertion message.
//!
//! A second run also puts, changes and deletes max-length policies and operator
//! policies between steps: then messages may be dropped from queue heads, so the
//! checks become "settled at most once, never invented, never beyond the current
//! limit", and unacked messages are never trimmed.
//!
//! Time: steps advance `now` by 0 to 3 ms and fire the core's timers as the io
//! layer does. After `handle_timeout(now)` the next deadline must lie after
//! `now`, and pending work at one `now` must finish in a bounded number of
//! turns: a handler that re-arms a due timer for the same `now` fails the run
//! (issue 15: a TTL-0 head re-armed at `now` livelocked the broker). Queue `q3`
//! has `x-message-ttl: 0` and some publishes carry `expiration: "0"`; such
//! messages may expire unseen, so they count as "settled at most once".
//!
//! Durable state: steps also delete a queue and declare it again (its messages
//! go with it: settled for good) and restart the broker (clean close, then open
//! on the same directory; every client reconnects), so the log replay of
//! declare, delete, declare runs many times. Every published message is a
//! confirmed persistent message to a durable queue (`sync` off: confirmed once
//! routed), so the counts must match the model after each restart (issue 15: a
//! replayed delete wiped the re-declared queue's confirmed messages). kill -9
//! restarts are in `tests/queue_redeclare.rs`.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use ringmq_codec::*;

use crate::core::broker::Broker;
use crate::core::config::CoreConfig;
use crate::core::model::ids::ConnId;

const QUEUES: [&str; 4] = ["q0", "q1", "q2", "q3"];
/// The queue declared with `x-message-ttl: 0`.
const TTL_ZERO_QUEUE: &str = "q3";
/// `run_pending` calls at one `now` after which pending work counts as a livelock.
const PENDING_TURNS_MAX: usize = 10_000;

struct Client {
    id: ConnId,
    open: bool,
    /// Unsettled deliveries: tag -> message id.
    unacked: BTreeMap<u64, u64>,
    consuming: BTreeSet<String>,
}

struct Sim {
    seed: u64,
    broker: Broker,
    now: u64,
    clients: Vec<Client>,
    /// Message id -> times acked (must end at exactly 1 per message).
    acked: HashMap<u64, u32>,
    published: BTreeSet<u64>,
    /// Messages that may expire unseen (TTL 0): settled at most once.
    expirable: BTreeSet<u64>,
    /// The queue each message was published to.
    queue_of: HashMap<u64, &'static str>,
    /// Restarts so far (for failure messages).
    restarts: u32,
    next_msg: u64,
    /// Policies change between steps (messages may then be dropped by limits).
    policies: bool,
    _dir: tempfile::TempDir,
}

/// queue.declare of one of [`QUEUES`] (durable; `q3` with TTL 0) on channel 1.
fn encode_declare(out: &mut Vec<u8>, q: &str) {
    let ttl_zero: FieldTable = [(ringmq_codec::short!("x-message-ttl"), 0i64)].into_iter().collect();
    let ttl_zero = ttl_zero.to_bytes();
    let arguments = if q == TTL_ZERO_QUEUE {
        Table::parse(&ttl_zero).expect("own table")
    } else {
        Table::EMPTY
    };
    encode_method(
        out,
        1,
        &Method::QueueDeclare(QueueDeclare {
            ticket: 0,
            queue: ringmq_codec::ShortStr::new(q).unwrap(),
            passive: false,
            durable: true,
            exclusive: false,
            auto_delete: false,
            no_wait: false,
            arguments,
        }),
    );
}

fn encode(channel: u16, m: Method<'_>) -> Vec<u8> {
    let mut out = Vec::new();
    encode_method(&mut out, channel, &m);
    out
}

impl Sim {
    fn new(seed: u64) -> Sim {
        let dir = tempfile::tempdir().expect("tempdir");
        let cfg = CoreConfig::for_tests(dir.path());
        Sim {
            seed,
            broker: Broker::open(cfg, seed).expect("open broker"),
            now: 1_000,
            clients: Vec::new(),
            acked: HashMap::new(),
            published: BTreeSet::new(),
            expirable: BTreeSet::new(),
            queue_of: HashMap::new(),
            restarts: 0,
            next_msg: 1,
            policies: false,
            _dir: dir,
        }
    }

    /// Sends bytes from client `c` and processes everything that comes back to
    /// every client.
    fn send(&mut self, c: usize, bytes: &[u8]) {
        self.now += 1;
        let id = self.clients[c].id;
        let used = self.broker.handle_input(id, bytes, self.now);
        assert_eq!(used, bytes.len(), "seed {}: whole frames must be consumed", self.seed);
        self.drain();
    }

    /// Fires the timers due at `now`, as the io layer's timer does, and checks
    /// that none was re-armed for the same `now`.
    fn fire_timers(&mut self) {
        self.broker.handle_timeout(self.now);
        let next = self.broker.poll_timeout();
        assert!(
            next.is_none_or(|t| t > self.now),
            "seed {}: after handle_timeout({}) the next deadline is {next:?}",
            self.seed,
            self.now
        );
        self.drain();
    }

    fn drain(&mut self) {
        let mut dirty = Vec::new();
        loop {
            self.broker.take_dirty(&mut dirty);
            let mut turns = 0;
            while self.broker.has_pending_work() {
                turns += 1;
                assert!(
                    turns <= PENDING_TURNS_MAX,
                    "seed {}: pending work at now={} does not finish (re-armed for the same now?)",
                    self.seed,
                    self.now
                );
                self.broker.run_pending();
                self.broker.take_dirty(&mut dirty);
            }
            if dirty.is_empty() {
                return;
            }
            for id in dirty.drain(..) {
                let mut out = Vec::new();
                self.broker.poll_output(id, &mut out, self.now);
                // The newest client with the id: ids start again after a restart.
                let c = self.clients.iter().rposition(|c| c.id == id).expect("known client");
                self.receive(c, &out);
                self.broker.handle_output_drained(id);
            }
        }
    }

    fn receive(&mut self, c: usize, mut bytes: &[u8]) {
        let seed = self.seed;
        while !bytes.is_empty() {
            let (frame, used) =
                decode_frame(bytes, 0).unwrap_or_else(|e| panic!("seed {seed}: bad frame from broker: {e}"));
            bytes = &bytes[used..];
            let Frame::Method { method, .. } = frame else { continue };
            match method {
                Method::BasicDeliver(d) => {
                    // The body follows: header then one body frame (small messages).
                    let (_, u1) = decode_frame(bytes, 0).expect("header");
                    let (body, u2) = decode_frame(&bytes[u1..], 0).expect("body");
                    bytes = &bytes[u1 + u2..];
                    let Frame::Body { payload, .. } = body else {
                        panic!("seed {seed}: expected body")
                    };
                    let msg = u64::from_be_bytes(payload.try_into().expect("8-byte body"));
                    assert!(
                        self.acked.get(&msg).copied().unwrap_or(0) == 0,
                        "seed {seed}: message {msg} delivered again after it was acked"
                    );
                    let prev = self.clients[c].unacked.insert(d.delivery_tag, msg);
                    assert!(prev.is_none(), "seed {seed}: delivery tag {} reused", d.delivery_tag);
                }
                Method::BasicGetOk(g) => {
                    let (_, u1) = decode_frame(bytes, 0).expect("header");
                    let (body, u2) = decode_frame(&bytes[u1..], 0).expect("body");
                    bytes = &bytes[u1 + u2..];
                    let Frame::Body { payload, .. } = body else {
                        panic!("seed {seed}: expected body")
                    };
                    let msg = u64::from_be_bytes(payload.try_into().expect("8-byte body"));
                    self.clients[c].unacked.insert(g.delivery_tag, msg);
                }
                Method::ConnectionClose(cl) => panic!("seed {seed}: unexpected connection.close {}", cl.reply_text),
                Method::ChannelClose(cl) => panic!("seed {seed}: unexpected channel.close {}", cl.reply_text),
                _ => {}
            }
        }
    }

    fn connect(&mut self) -> usize {
        let id = self.broker.handle_connect("sim".into(), true, self.now);
        self.clients.push(Client {
            id,
            open: true,
            unacked: BTreeMap::new(),
            consuming: BTreeSet::new(),
        });
        let c = self.clients.len() - 1;
        let mut hs = PROTOCOL_HEADER.to_vec();
        let empty = Table::EMPTY;
        encode_method(
            &mut hs,
            0,
            &Method::ConnectionStartOk(ConnectionStartOk {
                client_properties: empty,
                mechanism: short!("PLAIN"),
                response: b"\0guest\0guest",
                locale: short!("en_US"),
            }),
        );
        encode_method(
            &mut hs,
            0,
            &Method::ConnectionTuneOk(ConnectionTuneOk {
                channel_max: 16,
                frame_max: 131072,
                heartbeat: 0,
            }),
        );
        encode_method(
            &mut hs,
            0,
            &Method::ConnectionOpen(ConnectionOpen {
                virtual_host: short!("/"),
                capabilities: short!(""),
                insist: false,
            }),
        );
        encode_method(
            &mut hs,
            1,
            &Method::ChannelOpen(ChannelOpen {
                out_of_band: short!(""),
            }),
        );
        for q in QUEUES {
            encode_declare(&mut hs, q);
        }
        self.send(c, &hs);
        c
    }

    /// Publishes the next message to `queue`; `expire_at_once` sets
    /// `expiration: "0"`.
    fn publish(&mut self, c: usize, queue: &'static str, expire_at_once: bool) {
        let msg = self.next_msg;
        self.next_msg += 1;
        self.published.insert(msg);
        self.queue_of.insert(msg, queue);
        if expire_at_once || queue == TTL_ZERO_QUEUE {
            self.expirable.insert(msg);
        }
        let mut out = encode(
            1,
            Method::BasicPublish(BasicPublish {
                ticket: 0,
                exchange: short!(""),
                routing_key: ringmq_codec::ShortStr::new(queue).unwrap(),
                mandatory: false,
                immediate: false,
            }),
        );
        let mut props = Vec::new();
        BasicProperties {
            delivery_mode: Some(2),
            expiration: expire_at_once.then_some(short!("0")),
            ..Default::default()
        }
        .encode(&mut props);
        encode_content(&mut out, 1, 60, &props, &msg.to_be_bytes(), 131072);
        self.send(c, &out);
    }

    fn settle(&mut self, c: usize, rng: &mut StdRng) {
        let Some((&tag, _)) = self.clients[c]
            .unacked
            .iter()
            .nth(rng.random_range(0..self.clients[c].unacked.len().max(1)))
        else {
            return;
        };
        let multiple = rng.random_bool(0.2);
        let tags: Vec<u64> = if multiple {
            self.clients[c].unacked.range(..=tag).map(|(t, _)| *t).collect()
        } else {
            vec![tag]
        };
        let requeue = rng.random_bool(0.3);
        let m = match rng.random_range(0..3) {
            0 => Method::BasicAck(BasicAck {
                delivery_tag: tag,
                multiple,
            }),
            1 => Method::BasicNack(BasicNack {
                delivery_tag: tag,
                multiple,
                requeue,
            }),
            _ => {
                if multiple {
                    return;
                }
                Method::BasicReject(BasicReject {
                    delivery_tag: tag,
                    requeue,
                })
            }
        };
        let acks = matches!(m, Method::BasicAck(_)) || !requeue;
        for t in tags {
            let msg = self.clients[c].unacked.remove(&t).expect("tracked tag");
            if acks {
                // A nack/reject without requeue discards: it counts as settled for good.
                *self.acked.entry(msg).or_default() += 1;
            }
        }
        let bytes = encode(1, m);
        self.send(c, &bytes);
    }

    /// Puts or deletes a max-length policy or operator policy on some queues.
    fn change_policy(&mut self, rng: &mut StdRng) {
        use crate::core::policy::{ApplyTo, PolicyDef, PolicyKind};
        let kind = if rng.random_bool(0.5) {
            PolicyKind::User
        } else {
            PolicyKind::Operator
        };
        let name = ["a", "b"][rng.random_range(0..2)];
        self.now += 1;
        if rng.random_bool(0.3) {
            let _ = self.broker.delete_policy("/", name, kind, self.now);
        } else {
            let pattern = ["^q0$", "^q[01]$", ".*"][rng.random_range(0..3)];
            let mut definition = serde_json::Map::new();
            definition.insert("max-length".into(), rng.random_range(0..6u64).into());
            let def = PolicyDef {
                name: name.into(),
                pattern: pattern.into(),
                apply_to: ApplyTo::Queues,
                priority: rng.random_range(0..3),
                definition,
            };
            self.broker.put_policy("/", def, kind, self.now).expect("valid policy");
        }
        self.drain();
        self.check_limits();
    }

    /// Client `c` deletes `q` and declares it again: its messages, ready or
    /// unacked anywhere, are gone with it (settled for good; clients forget
    /// their tags), its consumers cancelled.
    fn redeclare(&mut self, c: usize, q: &'static str) {
        let gone: Vec<u64> = self
            .queue_of
            .iter()
            .filter(|(m, qq)| **qq == q && self.acked.get(*m).copied().unwrap_or(0) == 0)
            .map(|(m, _)| *m)
            .collect();
        for m in gone {
            *self.acked.entry(m).or_default() += 1;
        }
        for cl in &mut self.clients {
            let queue_of = &self.queue_of;
            cl.unacked.retain(|_, m| queue_of.get(m) != Some(&q));
            cl.consuming.remove(q);
        }
        let mut bytes = encode(
            1,
            Method::QueueDelete(QueueDelete {
                ticket: 0,
                queue: ringmq_codec::ShortStr::new(q).unwrap(),
                if_unused: false,
                if_empty: false,
                no_wait: false,
            }),
        );
        encode_declare(&mut bytes, q);
        self.send(c, &bytes);
    }

    /// Every client goes, the broker closes cleanly and opens again on the same
    /// directory, and one client connects: the counts must hold.
    fn restart(&mut self) {
        for c in 0..self.clients.len() {
            if self.clients[c].open {
                let id = self.clients[c].id;
                self.clients[c].open = false;
                self.clients[c].unacked.clear();
                self.clients[c].consuming.clear();
                self.broker.handle_disconnect(id);
            }
        }
        self.drain();
        self.broker.close().expect("clean close");
        self.restarts += 1;
        let cfg = CoreConfig::for_tests(self._dir.path());
        self.broker = Broker::open(cfg, self.seed).expect("reopen broker");
        self.connect();
        self.check_counts();
    }

    /// No queue holds more ready messages than its effective max-length.
    fn check_limits(&self) {
        for q in self.broker.vhosts["/"].queues.values() {
            if let Some(max) = q.settings.max_length {
                assert!(
                    q.store.ready_count() <= max,
                    "seed {}: queue {} has {} ready, limit {max}",
                    self.seed,
                    q.name,
                    q.store.ready_count()
                );
            }
        }
    }

    fn step(&mut self, rng: &mut StdRng) {
        if self.policies && rng.random_bool(0.05) {
            self.change_policy(rng);
            return;
        }
        let open: Vec<usize> = (0..self.clients.len()).filter(|&i| self.clients[i].open).collect();
        if open.is_empty() || rng.random_bool(0.02) {
            self.connect();
            return;
        }
        let c = open[rng.random_range(0..open.len())];
        let q = QUEUES[rng.random_range(0..QUEUES.len())];
        if rng.random_bool(0.1) {
            // Time passes (or not: 0 ms is the case that used to livelock) and
            // the timers fire.
            self.now += rng.random_range(0..=3);
            self.fire_timers();
            self.check_counts();
            return;
        }
        if rng.random_bool(0.03) {
            self.redeclare(c, q);
            self.check_counts();
            return;
        }
        if rng.random_bool(0.01) {
            self.restart();
            return;
        }
        match rng.random_range(0..100) {
            0..=39 => self.publish(c, q, rng.random_bool(0.1)),
            40..=49 => {
                if self.clients[c].consuming.insert(q.to_string()) {
                    let bytes = encode(
                        1,
                        Method::BasicConsume(BasicConsume {
                            ticket: 0,
                            queue: ringmq_codec::ShortStr::new(q).unwrap(),
                            consumer_tag: ringmq_codec::ShortStr::new(q).unwrap(),
                            no_local: false,
                            no_ack: false,
                            exclusive: false,
                            no_wait: false,
                            arguments: Table::EMPTY,
                        }),
                    );
                    self.send(c, &bytes);
                }
            }
            50..=54 => {
                if self.clients[c].consuming.remove(q) {
                    let bytes = encode(
                        1,
                        Method::BasicCancel(BasicCancel {
                            consumer_tag: ringmq_codec::ShortStr::new(q).unwrap(),
                            no_wait: false,
                        }),
                    );
                    self.send(c, &bytes);
                }
            }
            55..=62 => {
                let bytes = encode(
                    1,
                    Method::BasicGet(BasicGet {
                        ticket: 0,
                        queue: ringmq_codec::ShortStr::new(q).unwrap(),
                        no_ack: false,
                    }),
                );
                self.send(c, &bytes);
            }
            63..=64 => {
                let bytes = encode(
                    1,
                    Method::BasicQos(BasicQos {
                        prefetch_size: 0,
                        prefetch_count: rng.random_range(0..5),
                        global: rng.random_bool(0.3),
                    }),
                );
                self.send(c, &bytes);
            }
            65..=96 => self.settle(c, rng),
            97 => {
                // Connection lost: unacked messages must come back.
                let id = self.clients[c].id;
                self.clients[c].open = false;
                self.clients[c].unacked.clear();
                self.broker.handle_disconnect(id);
                self.drain();
            }
            _ => {
                // Channel closed and reopened: same.
                let mut bytes = encode(
                    1,
                    Method::ChannelClose(ChannelClose {
                        reply_code: 200,
                        reply_text: short!(""),
                        class_id: 0,
                        method_id: 0,
                    }),
                );
                encode_method(
                    &mut bytes,
                    1,
                    &Method::ChannelOpen(ChannelOpen {
                        out_of_band: short!(""),
                    }),
                );
                self.clients[c].unacked.clear();
                self.clients[c].consuming.clear();
                self.send(c, &bytes);
            }
        }
        self.check_counts();
    }

    /// Ready + unacked in the broker equals published minus settled-for-good
    /// (without policies; with them, at most that, and within the limits).
    fn check_counts(&self) {
        self.check_limits();
        let vhost = &self.broker.vhosts["/"];
        let in_broker: u64 = vhost
            .queues
            .values()
            .map(|q| q.store.ready_count() + q.store.unacked_count())
            .sum();
        let settled = self.acked.values().filter(|&&n| n > 0).count() as u64;
        let expected = self.published.len() as u64 - settled;
        // Unsettled messages that cannot expire must all be there.
        let must_hold = self
            .published
            .iter()
            .filter(|m| !self.expirable.contains(m) && self.acked.get(m).copied().unwrap_or(0) == 0)
            .count() as u64;
        if self.policies || !self.expirable.is_empty() {
            assert!(
                self.policies || in_broker >= must_hold,
                "seed {}: {in_broker} messages held, {must_hold} cannot have expired ({} restarts)",
                self.seed,
                self.restarts
            );
            assert!(
                in_broker <= expected,
                "seed {}: more messages than published",
                self.seed
            );
        } else {
            assert_eq!(
                in_broker, expected,
                "seed {}: counts diverged ({} restarts)",
                self.seed, self.restarts
            );
        }
        let unacked_clients: usize = self.clients.iter().filter(|c| c.open).map(|c| c.unacked.len()).sum();
        let unacked_broker: u64 = vhost.queues.values().map(|q| q.store.unacked_count()).sum();
        assert_eq!(
            unacked_broker, unacked_clients as u64,
            "seed {}: unacked diverged",
            self.seed
        );
    }

    /// Drains every queue with a fresh client and checks each message was
    /// settled exactly once overall.
    fn finish(mut self) {
        for c in 0..self.clients.len() {
            if self.clients[c].open {
                let id = self.clients[c].id;
                self.clients[c].open = false;
                self.clients[c].unacked.clear();
                self.broker.handle_disconnect(id);
            }
        }
        self.drain();
        let c = self.connect();
        for q in QUEUES {
            loop {
                let before = self.clients[c].unacked.len();
                let bytes = encode(
                    1,
                    Method::BasicGet(BasicGet {
                        ticket: 0,
                        queue: ringmq_codec::ShortStr::new(q).unwrap(),
                        no_ack: false,
                    }),
                );
                self.send(c, &bytes);
                if self.clients[c].unacked.len() == before {
                    break;
                }
            }
        }
        let all: Vec<(u64, u64)> = self.clients[c].unacked.iter().map(|(t, m)| (*t, *m)).collect();
        for (t, m) in all {
            *self.acked.entry(m).or_default() += 1;
            let bytes = encode(
                1,
                Method::BasicAck(BasicAck {
                    delivery_tag: t,
                    multiple: false,
                }),
            );
            self.send(c, &bytes);
        }
        for m in &self.published {
            let n = self.acked.get(m).copied().unwrap_or(0);
            // With policies a message may have been dropped by a length limit, and
            // a TTL-0 message may have expired.
            let ok = if self.policies || self.expirable.contains(m) {
                n <= 1
            } else {
                n == 1
            };
            assert!(ok, "seed {}: message {m} settled {n} times", self.seed);
        }
        assert!(
            self.acked.keys().all(|m| self.published.contains(m)),
            "seed {}: unknown messages delivered",
            self.seed
        );
        if !self.policies {
            let kept = self.published.iter().filter(|m| !self.expirable.contains(m));
            assert!(
                kept.clone().all(|m| self.acked.contains_key(m)),
                "seed {}: messages lost",
                self.seed
            );
        }
    }
}

fn run_seed(seed: u64, steps: usize, policies: bool) {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut sim = Sim::new(seed);
    sim.policies = policies;
    sim.connect();
    for _ in 0..steps {
        sim.step(&mut rng);
    }
    sim.finish();
}

/// Runs `count` seeds from a random base, or the one in RINGMQ_SIM_SEED.
fn run_seeds(count: u64, policies: bool) {
    let fixed: Option<u64> = std::env::var("RINGMQ_SIM_SEED").ok().and_then(|s| s.parse().ok());
    let base = fixed.unwrap_or_else(rand::random);
    for i in 0..if fixed.is_some() { 1 } else { count } {
        let seed = base.wrapping_add(i);
        eprintln!("sim seed {seed} (policies: {policies})");
        run_seed(seed, 600, policies);
    }
}

#[test]
fn random_clients_lose_nothing() {
    run_seeds(20, false);
}

#[test]
fn random_policy_changes_keep_limits_and_settle_at_most_once() {
    run_seeds(10, true);
}
