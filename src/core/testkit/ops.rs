//! What one step of the simulation does: the operations clients, the clock,
//! the group commit, policies and the power do, chosen by the seed.

use rand::Rng;
use ringmq_codec::*;

use super::client::{self, method, name};
use super::model::At;
use super::scenario::*;
use super::sim::Sim;

impl Sim {
    /// A new client: handshake, channels, every queue declared, confirm and tx
    /// modes by chance.
    pub(super) fn connect(&mut self) -> usize {
        let hb = if self.profile.timers && self.rng.random_bool(0.3) {
            HEARTBEAT_SECS
        } else {
            0
        };
        let channels: &[u16] = if self.profile.confirms_and_tx {
            &[MAIN, TX]
        } else {
            &[MAIN]
        };
        let id = self.h.connect(hb, channels);
        let now = self.h.now();
        self.clients.push(SimClient::new(id, hb, now));
        let c = self.clients.len() - 1;
        let mut bytes = Vec::new();
        for q in self.profile.queues() {
            bytes.extend(declare(q));
        }
        let confirm = self.profile.confirms_and_tx && self.rng.random_bool(0.6);
        if confirm {
            bytes.extend(method(MAIN, Method::ConfirmSelect(ConfirmSelect { no_wait: false })));
        }
        if self.profile.confirms_and_tx {
            bytes.extend(method(TX, Method::TxSelect(TxSelect)));
        }
        self.note(format!("client {c} connects (heartbeat {hb}, confirms {confirm})"));
        self.clients[c].confirm = confirm;
        self.send(c, &bytes);
        if self.profile.timers {
            self.qx_exists = true;
            (self.qx_used, self.qx_touched) = (now, now);
        }
        self.h.durability_point();
        c
    }

    pub(super) fn random_step(&mut self) {
        if self.profile.policies && self.rng.random_bool(0.05) {
            return self.change_policy();
        }
        let open: Vec<usize> = (0..self.clients.len())
            .filter(|&i| self.clients[i].open && !self.clients[i].silent)
            .collect();
        if open.is_empty() || self.rng.random_bool(0.02) {
            self.connect();
            return;
        }
        // Clients are synchronous, as AMQP clients are: one that sent a durable
        // declare or delete waits for its reply, which the broker holds until
        // the group commit that syncs the definitions log (and all output after
        // it). A waiting client sends nothing but heartbeats; the clock, the
        // group commit, restarts and the other clients go on.
        let (waiting, free): (Vec<usize>, Vec<usize>) = open.into_iter().partition(|&i| self.waits_for_reply(i));
        let Some(&c) = free.get(self.rng.random_range(0..free.len().max(1))) else {
            return self.while_all_wait(waiting[0]);
        };
        let queues = self.profile.queues();
        let q = queues[self.rng.random_range(0..queues.len())];
        let p = self.rng.random_range(0..1000);
        match p {
            0..=99 => {
                // Time passes (or not: 0 ms is the case that used to livelock).
                let ms = self.rng.random_range(0..=3);
                self.note(format!("{ms} ms pass, timers fire"));
                self.h.advance(ms);
                self.fire_timers();
            }
            100..=129 if q != EXPIRING && q != DELAYED_QUEUE => self.redeclare(c, q),
            130..=139 => self.restart(),
            140..=149 if self.profile.crashes => self.crash(),
            150..=239 if self.profile.sync => self.group_commit(),
            240..=259 if self.profile.timers => self.jump(),
            260..=264 if self.profile.timers && self.clients[c].heartbeat > 0 => {
                self.note(format!("client {c} goes silent"));
                self.clients[c].silent = true;
            }
            265..=329 if self.profile.confirms_and_tx => self.tx_step(c),
            _ => self.client_step(c, q),
        }
        self.track_expiring();
    }

    /// Whether client `c` waits for a reply the broker holds for a group commit.
    pub(super) fn waits_for_reply(&self, c: usize) -> bool {
        self.h.broker().sync.holds_output(self.clients[c].id)
    }

    /// Every client waits for a held reply: time passes or the group commit
    /// runs, as it would without any client.
    fn while_all_wait(&mut self, c: usize) {
        if !self.profile.sync {
            self.fail(format!("client {c} waits for a reply held without a group commit"));
        }
        match self.rng.random_range(0..10) {
            0..=5 => self.group_commit(),
            6..=7 if self.profile.timers => self.jump(),
            _ => {
                self.h.advance(1);
                self.fire_timers();
            }
        }
    }

    fn client_step(&mut self, c: usize, q: &'static str) {
        if q == EXPIRING && !self.qx_exists {
            return;
        }
        match self.rng.random_range(0..100) {
            0..=39 => self.publish(c, q),
            40..=49 => {
                if self.clients[c].consuming.insert(q) {
                    self.note(format!("client {c} consumes {q}"));
                    self.used(q);
                    let bytes = method(
                        MAIN,
                        Method::BasicConsume(BasicConsume {
                            ticket: 0,
                            queue: name(q),
                            consumer_tag: name(q),
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
                    self.note(format!("client {c} cancels {q}"));
                    self.used(q);
                    let bytes = method(
                        MAIN,
                        Method::BasicCancel(BasicCancel {
                            consumer_tag: name(q),
                            no_wait: false,
                        }),
                    );
                    self.send(c, &bytes);
                }
            }
            55..=62 => {
                self.note(format!("client {c} gets from {q}"));
                self.used(q);
                let bytes = method(
                    MAIN,
                    Method::BasicGet(BasicGet {
                        ticket: 0,
                        queue: name(q),
                        no_ack: false,
                    }),
                );
                self.send(c, &bytes);
            }
            63..=64 => {
                let prefetch_count = self.rng.random_range(0..5);
                let global = self.rng.random_bool(0.3);
                self.note(format!("client {c} sets prefetch {prefetch_count} (global {global})"));
                let bytes = method(
                    MAIN,
                    Method::BasicQos(BasicQos {
                        prefetch_size: 0,
                        prefetch_count,
                        global,
                    }),
                );
                self.send(c, &bytes);
            }
            65..=96 => self.settle(c),
            97 => {
                self.note(format!("client {c} loses its connection"));
                let id = self.clients[c].id;
                self.connection_lost(c);
                self.h.disconnect(id);
                self.h.forget(id);
                self.absorb();
            }
            _ => {
                self.note(format!("client {c} closes and reopens channel 1"));
                let mut bytes = method(
                    MAIN,
                    Method::ChannelClose(ChannelClose {
                        reply_code: 200,
                        reply_text: short!(""),
                        class_id: 0,
                        method_id: 0,
                    }),
                );
                bytes.extend(client::channel_open(MAIN));
                self.channel_lost(c);
                self.send(c, &bytes);
            }
        }
    }

    /// A declare, get, consume or cancel of `q`: `qx` counts it as use.
    fn used(&mut self, q: &str) {
        if q == EXPIRING {
            let now = self.h.now();
            (self.qx_used, self.qx_touched) = (now, now);
        }
    }

    /// Publishes the next message to `q` on channel 1 (through the delayed
    /// exchange for `qd`, with `expiration: "0"` sometimes without timers).
    fn publish(&mut self, c: usize, q: &'static str) {
        let now = self.h.now();
        let expire_now = !self.profile.timers && self.rng.random_bool(0.1);
        let delay = (q == DELAYED_QUEUE).then(|| self.rng.random_range(1..=300u64));
        let ttl = match q {
            TTL_ZERO => Some(0),
            TTL => Some(TTL_MS),
            _ => expire_now.then_some(0),
        };
        let volatile = ttl.is_some() || q == EXPIRING || self.profile.policies;
        let at = delay.map_or(At::Ready, |d| At::Delayed(now + d));
        let msg = self.model.publish(q, at, volatile, now, ttl);
        self.note(format!(
            "client {c} publishes {msg} to {q} (delay {delay:?}, ttl {ttl:?})"
        ));
        let mut headers = FieldTable::new();
        if let Some(d) = delay {
            headers.insert(short!("x-delay"), d as i64);
        }
        let headers = headers.to_bytes();
        let props = BasicProperties {
            delivery_mode: Some(2),
            expiration: expire_now.then_some(short!("0")),
            headers: delay.map(|_| Table::parse(&headers).expect("own table")),
            ..Default::default()
        };
        let (exchange, key) = if delay.is_some() {
            (DELAYED_EXCHANGE, q)
        } else {
            ("", q)
        };
        let cl = &mut self.clients[c];
        if cl.confirm {
            cl.unconfirmed.insert(cl.next_seq, msg);
            cl.next_seq += 1;
        }
        let bytes = client::publish(MAIN, exchange, key, &props, &msg.to_be_bytes());
        // A delayed publish is durable at the next group commit, as any other
        // (its store was synced inline once: no durability point here now).
        self.send(c, &bytes);
    }

    fn settle(&mut self, c: usize) {
        let n = self.clients[c].unacked.len();
        if n == 0 {
            return;
        }
        let i = self.rng.random_range(0..n);
        let tag = *self.clients[c].unacked.keys().nth(i).expect("in range");
        let multiple = self.rng.random_bool(0.2);
        let requeue = self.rng.random_bool(0.3);
        let m = match self.rng.random_range(0..3) {
            0 => Method::BasicAck(BasicAck {
                delivery_tag: tag,
                multiple,
            }),
            1 => Method::BasicNack(BasicNack {
                delivery_tag: tag,
                multiple,
                requeue,
            }),
            _ if multiple => return,
            _ => Method::BasicReject(BasicReject {
                delivery_tag: tag,
                requeue,
            }),
        };
        let back = !matches!(m, Method::BasicAck(_)) && requeue;
        let tags: Vec<u64> = if multiple {
            self.clients[c].unacked.range(..=tag).map(|(t, _)| *t).collect()
        } else {
            vec![tag]
        };
        self.note(format!("client {c} settles {tags:?} ({})", m.name()));
        for t in tags {
            let held = self.clients[c].unacked.remove(&t).expect("tracked tag");
            if !held.orphan {
                self.model.set_at(held.msg, if back { At::Ready } else { At::Gone });
            }
        }
        self.send(c, &method(MAIN, m));
    }

    /// Channel 2: publish in the transaction, commit or roll back.
    fn tx_step(&mut self, c: usize) {
        // tx.commit and tx.rollback are synchronous: a client waits for the
        // commit-ok before the next (the broker answers a pipelined empty
        // commit at once, before an earlier commit that waits for its fsync).
        let waiting = !self.clients[c].committing.is_empty();
        match self.rng.random_range(0..10) {
            n if n <= 5 || waiting => {
                let q = PLAIN[self.rng.random_range(0..PLAIN.len())];
                let msg = self.model.publish(q, At::InTx, false, self.h.now(), None);
                self.note(format!("client {c} publishes {msg} to {q} in its transaction"));
                self.clients[c].tx.push(msg);
                let props = BasicProperties {
                    delivery_mode: Some(2),
                    ..Default::default()
                };
                self.send(c, &client::publish(TX, "", q, &props, &msg.to_be_bytes()));
            }
            6..=8 => {
                let msgs = std::mem::take(&mut self.clients[c].tx);
                self.note(format!("client {c} commits {msgs:?}"));
                msgs.iter().for_each(|&m| self.model.set_at(m, At::Ready));
                self.clients[c].committing.push_back(msgs);
                self.send(c, &method(TX, Method::TxCommit(TxCommit)));
            }
            _ => {
                let msgs = std::mem::take(&mut self.clients[c].tx);
                self.note(format!("client {c} rolls back {msgs:?}"));
                msgs.iter().for_each(|&m| self.model.set_at(m, At::Deleted));
                self.send(c, &method(TX, Method::TxRollback(TxRollback)));
            }
        }
    }

    /// The group commit: take one from the broker, or finish the one in flight.
    fn group_commit(&mut self) {
        if self.h.start_sync() && self.rng.random_bool(0.7) {
            self.note("group commit done".into());
            self.h.finish_sync();
            self.absorb();
        } else {
            self.note("group commit in flight".into());
        }
    }

    /// Time jumps by up to 1.5 s in steps of at most 400 ms; clients that are
    /// not silent send heartbeats in each, timers fire after each.
    ///
    /// A group commit takes far less than such a jump (milliseconds against the
    /// consumer timeout's 700 ms here, 30 min by default): replies held for one
    /// are released first. Otherwise a client waiting for its declare-ok would
    /// hold deliveries past the consumer timeout, and the broker would give them
    /// to others while the channel.close that released them is still held.
    fn jump(&mut self) {
        let mut left = self.rng.random_range(100..=1500u64);
        if (0..self.clients.len()).any(|c| self.clients[c].open && self.waits_for_reply(c)) {
            self.note("group commits release held replies".into());
            self.h.sync_all();
            self.absorb();
        }
        self.note(format!("{left} ms pass"));
        while left > 0 {
            let ms = left.min(400);
            left -= ms;
            self.h.advance(ms);
            for c in 0..self.clients.len() {
                let cl = &self.clients[c];
                if cl.open && !cl.silent && cl.heartbeat > 0 {
                    let mut hb = Vec::new();
                    encode_heartbeat(&mut hb);
                    self.send(c, &hb);
                }
            }
            self.fire_timers();
        }
    }

    /// Client `c` deletes `q` and declares it again: its messages go with it.
    fn redeclare(&mut self, c: usize, q: &'static str) {
        self.note(format!("client {c} deletes and declares {q}"));
        self.queue_gone(q);
        let mut bytes = method(
            MAIN,
            Method::QueueDelete(QueueDelete {
                ticket: 0,
                queue: name(q),
                if_unused: false,
                if_empty: false,
                no_wait: false,
            }),
        );
        bytes.extend(declare(q));
        self.send(c, &bytes);
        self.h.durability_point();
    }

    /// Clean restart: every client goes, the broker closes and opens again.
    pub(super) fn restart(&mut self) {
        self.note("clean restart".into());
        for c in 0..self.clients.len() {
            if self.clients[c].open {
                self.connection_lost(c);
            }
        }
        self.h.restart();
        self.restarts += 1;
        self.model.restarted();
        self.after_open();
        self.connect();
        self.check();
    }

    /// Power loss at this step (see `disk`).
    fn crash(&mut self) {
        self.note("power loss".into());
        for c in 0..self.clients.len() {
            if self.clients[c].open {
                self.connection_lost(c);
            }
        }
        self.h.crash();
        self.crashes += 1;
        self.model.crashed();
        self.after_open();
        self.connect();
        self.check();
    }

    /// After an open: `qx` exists again if it was on disk.
    fn after_open(&mut self) {
        if self.profile.timers {
            let there = self.h.broker().model.vhosts["/"].queue_id(EXPIRING).is_some();
            if self.qx_exists && !there {
                self.fail("qx gone after a restart");
            }
            self.qx_exists = there;
        }
    }

    /// Puts or deletes a max-length policy or operator policy on some queues.
    fn change_policy(&mut self) {
        use crate::core::policy::{ApplyTo, PolicyDef, PolicyKind};
        let kind = if self.rng.random_bool(0.5) {
            PolicyKind::User
        } else {
            PolicyKind::Operator
        };
        let pname = ["a", "b"][self.rng.random_range(0..2)];
        self.h.advance(1);
        let now = self.h.now();
        if self.rng.random_bool(0.3) {
            self.note(format!("policy {pname} deleted"));
            let _ = self.h.broker_mut().delete_policy("/", pname, kind, now);
        } else {
            let pattern = ["^q0$", "^q[01]$", ".*"][self.rng.random_range(0..3)];
            let max = self.rng.random_range(0..6u64);
            self.note(format!("policy {pname}: max-length {max} on {pattern}"));
            let mut definition = serde_json::Map::new();
            definition.insert("max-length".into(), max.into());
            let def = PolicyDef {
                name: pname.into(),
                pattern: pattern.into(),
                apply_to: ApplyTo::Queues,
                priority: self.rng.random_range(0..3),
                definition,
            };
            self.h
                .broker_mut()
                .put_policy("/", def, kind, now)
                .expect("valid policy");
        }
        self.h.pump();
        self.absorb();
        self.h.durability_point();
    }

    /// Every client goes; delayed messages come due; a fresh client drains
    /// every queue and acks it all: nothing that must be there may be missing.
    pub(super) fn finish(mut self) {
        for c in 0..self.clients.len() {
            if self.clients[c].open {
                let id = self.clients[c].id;
                self.connection_lost(c);
                self.h.disconnect(id);
                self.h.forget(id);
            }
        }
        if self.profile.sync {
            self.h.sync_all();
        }
        self.h.advance(400);
        self.fire_timers();
        let c = self.connect();
        if self.waits_for_reply(c) {
            self.h.sync_all();
            self.absorb();
        }
        for q in self.profile.queues() {
            loop {
                let before = self.clients[c].unacked.len();
                let get = method(
                    MAIN,
                    Method::BasicGet(BasicGet {
                        ticket: 0,
                        queue: name(q),
                        no_ack: false,
                    }),
                );
                self.send(c, &get);
                if self.clients[c].unacked.len() == before {
                    break;
                }
            }
        }
        let held: Vec<(u64, u64)> = self.clients[c].unacked.iter().map(|(t, h)| (*t, h.msg)).collect();
        for (tag, msg) in held {
            self.model.set_at(msg, At::Gone);
            self.clients[c].unacked.remove(&tag);
            let ack = method(
                MAIN,
                Method::BasicAck(BasicAck {
                    delivery_tag: tag,
                    multiple: false,
                }),
            );
            self.send(c, &ack);
        }
        let lost = self.model.lost();
        if !lost.is_empty() {
            self.fail(format!(
                "{} messages lost, e.g. {:?}",
                lost.len(),
                &lost[..lost.len().min(3)]
            ));
        }
        eprintln!(
            "sim seed {} profile {}: {} messages, {} restarts, {} crashes, {} snapshots",
            self.seed,
            self.profile.name,
            self.model.published(),
            self.restarts,
            self.crashes,
            self.h.snapshots_taken()
        );
    }
}
