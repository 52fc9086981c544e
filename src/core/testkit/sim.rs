//! The deterministic simulation: a seed drives clients through the io contract
//! ([`super::ops`] says what a step does), the model ([`super::model`]) follows
//! what they saw, and the invariants are checked after every step.
//!
//! Replaying: every failure names its seed and profile; `RINGMQ_SIM_SEED=<n>`
//! runs that one seed (in every profile), `RINGMQ_SIM_SEEDS=<count>` runs more
//! seeds per profile than the CI default, `RINGMQ_SIM_STEPS=<n>` makes runs
//! longer, `RINGMQ_SIM_TRAIL=<n>` shows more of the steps before a failure.
//! `tests/sim/run.sh` runs many seeds.
//!
//! Profiles (see `scenario`): `basic` and `policies` are the simulation of
//! issue 15 (no fsync, clean restarts, max-length policies); `full` adds the
//! group commit, power loss, confirms, transactions, TTL, queue expiry,
//! heartbeats and the consumer timeout; `timers` has delayed messages with
//! clean restarts, `crash-delayed` with power loss. Two tests replay seeds of
//! findings fixed since (a duplicate of a delayed message after a crash, the
//! redelivered flag lost by a power loss).

use rand::rngs::StdRng;
use rand::SeedableRng;

use crate::core::model::ids::ConnId;

use super::client::{self, Event};
use super::harness::Harness;
use super::model::{At, Model};
use super::scenario::*;

/// How many of the last steps a failure message shows (RINGMQ_SIM_TRAIL
/// changes it).
fn trail_len() -> usize {
    std::env::var("RINGMQ_SIM_TRAIL")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(40)
}

pub struct Sim {
    pub(super) seed: u64,
    pub(super) profile: Profile,
    pub(super) h: Harness,
    pub(super) model: Model,
    pub(super) clients: Vec<SimClient>,
    pub(super) rng: StdRng,
    step: usize,
    trail: Vec<String>,
    trail_max: usize,
    pub(super) restarts: u32,
    pub(super) crashes: u32,
    /// `qx` exists (as far as the model knows), when it was last used by a
    /// declare, get, consume or cancel (`used`), and when by anything that may
    /// count as use, consumers ending included (`touched`).
    pub(super) qx_exists: bool,
    pub(super) qx_used: u64,
    pub(super) qx_touched: u64,
}

impl Sim {
    pub fn new(seed: u64, profile: Profile) -> Sim {
        Sim::configured(seed, profile, |_| {})
    }

    /// A run with the broker's settings changed by `configure` after the
    /// profile's (tiny segments, for one).
    pub fn configured(
        seed: u64,
        profile: Profile,
        configure: impl FnOnce(&mut crate::core::config::CoreConfig),
    ) -> Sim {
        let h = Harness::new(seed, profile.crashes, |c| {
            c.sync = profile.sync;
            if profile.timers {
                c.consumer_timeout_ms = Some(CONSUMER_TIMEOUT_MS);
            }
            configure(c);
        });
        Sim {
            seed,
            profile,
            h,
            model: Model::default(),
            clients: Vec::new(),
            rng: StdRng::seed_from_u64(seed),
            step: 0,
            trail: Vec::new(),
            trail_max: trail_len(),
            restarts: 0,
            crashes: 0,
            qx_exists: false,
            qx_used: 0,
            qx_touched: 0,
        }
    }

    /// Fails the run with everything needed to replay it.
    #[track_caller]
    pub(super) fn fail(&self, what: impl std::fmt::Display) -> ! {
        panic!(
            "sim seed {} profile {} step {} now {} ({} restarts, {} crashes): {what}\n\
             last steps:\n  {}\nreplay: RINGMQ_SIM_SEED={} cargo test -p ringmq --lib core::testkit::sim",
            self.seed,
            self.profile.name,
            self.step,
            self.h.now(),
            self.restarts,
            self.crashes,
            self.trail.join("\n  "),
            self.seed
        )
    }

    /// Notes what a step does (shown on failure).
    pub(super) fn note(&mut self, what: String) {
        if self.trail.len() >= self.trail_max {
            self.trail.remove(0);
        }
        self.trail.push(format!("{}@{}: {what}", self.step, self.h.now()));
    }

    /// Index of the open client with connection `id`.
    fn client_of(&self, id: ConnId) -> Option<usize> {
        self.clients.iter().rposition(|c| c.open && c.id == id)
    }

    /// Client `c` sends `bytes`; what comes back is absorbed.
    pub(super) fn send(&mut self, c: usize, bytes: &[u8]) {
        self.clients[c].last_sent = self.h.now();
        self.h.send(self.clients[c].id, bytes);
        self.note_held_output();
        self.absorb();
    }

    /// Moves what every open client received into the model, checking it.
    /// Notes which clients' output the broker now holds for a group commit.
    fn note_held_output(&mut self) {
        let now = self.h.core_now();
        let broker = self.h.broker();
        for cl in self.clients.iter_mut().filter(|c| c.open) {
            if broker.sync.holds_output(cl.id) {
                cl.held_since.get_or_insert(now);
            }
        }
    }

    pub(super) fn absorb(&mut self) {
        self.absorb_after(&[]);
    }

    /// As [`Self::absorb`], when the broker closed the connections `dropped`.
    /// Events are per client, but the broker released messages in an order:
    /// first those of dropped connections, then those of channels it closed,
    /// and only then delivered them to others; the model follows that order.
    fn absorb_after(&mut self, dropped: &[ConnId]) {
        self.note_held_output();
        self.released_while_held();
        let mut batches: Vec<(u8, usize, Vec<Event>)> = Vec::new();
        for c in 0..self.clients.len() {
            if self.clients[c].open {
                let events = self.h.events(self.clients[c].id);
                let rank = if dropped.contains(&self.clients[c].id) {
                    0
                } else if events.iter().any(|e| matches!(e, Event::ChannelClose { .. })) {
                    1
                } else {
                    2
                };
                batches.push((rank, c, events));
            }
        }
        batches.sort_by_key(|(rank, c, _)| (*rank, *c));
        let mut reopen = Vec::new();
        for (rank, c, events) in batches {
            // Output held for a group commit is history: deliveries on channel
            // 1 before a channel.close in it were released by that close (a
            // consumer timeout) and may have gone to other clients since, whose
            // events the model has seen already.
            let released = match self.clients[c].held_since {
                Some(_) => (events.iter()).rposition(|e| matches!(e, Event::ChannelClose { channel: MAIN, .. })),
                None => None,
            };
            for (i, e) in events.into_iter().enumerate() {
                if self.event(c, e, released.is_some_and(|r| i < r)) {
                    reopen.push(c);
                }
            }
            if !self.h.broker().sync.holds_output(self.clients[c].id) {
                self.clients[c].held_since = None;
            }
            if rank == 0 {
                self.connection_lost(c);
                self.h.forget(self.clients[c].id);
            }
        }
        for c in reopen {
            let mut bytes = client::method(MAIN, ringmq_codec::Method::ChannelCloseOk(ringmq_codec::ChannelCloseOk));
            bytes.extend(client::channel_open(MAIN));
            self.send(c, &bytes);
        }
    }

    /// A client whose output is held for a group commit may lose deliveries it
    /// holds without knowing yet: a consumer timeout closed its channel, in
    /// output still held, and the broker may give them to others at once. The
    /// model follows the broker: what the channel no longer holds is ready
    /// again, and the client's tags of it are orphans from now on.
    fn released_while_held(&mut self) {
        let b = self.h.broker();
        let mut released = Vec::new();
        for (c, cl) in self
            .clients
            .iter()
            .enumerate()
            .filter(|(_, c)| c.open && c.held_since.is_some())
        {
            let Some(conn) = b.conns.get(&cl.id) else { continue };
            let channel = conn.channel(MAIN);
            for (tag, h) in cl.unacked.iter().filter(|(_, h)| !h.orphan) {
                if !channel.is_some_and(|ch| ch.is_unacked(*tag)) {
                    released.push((c, *tag, h.msg));
                }
            }
        }
        for (c, tag, msg) in released {
            self.note(format!("client {c} lost message {msg} in held output"));
            self.model.set_at(msg, At::Ready);
            self.clients[c].unacked.get_mut(&tag).expect("listed above").orphan = true;
        }
    }

    /// Applies one event; true when channel 1 must be reopened. `released`:
    /// a delivery the broker has taken back already (see `absorb_after`).
    fn event(&mut self, c: usize, e: Event, released: bool) -> bool {
        // What the broker did, it did at the last `now` it was given.
        let now = self.h.core_now();
        match e {
            Event::Delivery(d) => {
                let Ok(body) = <[u8; 8]>::try_from(d.body.as_slice()) else {
                    self.fail(format!("a body of {} bytes", d.body.len()))
                };
                let msg = u64::from_be_bytes(body);
                let earliest = self.clients[c].held_since.unwrap_or(now);
                if released && d.channel == MAIN {
                    if let Err(v) = self.model.delivered_and_released(msg, now) {
                        self.fail(v);
                    }
                    let held = Held {
                        msg,
                        at: now,
                        since: earliest,
                        orphan: true,
                    };
                    self.clients[c].unacked.insert(d.tag, held);
                    return false;
                }
                let orphan = match self.model.deliver(msg, d.redelivered, earliest, now) {
                    Ok(orphan) => orphan,
                    Err(v) => self.fail(v),
                };
                let prev = self.clients[c].unacked.insert(
                    d.tag,
                    Held {
                        msg,
                        at: now,
                        since: earliest,
                        orphan,
                    },
                );
                if prev.is_some() {
                    self.fail(format!("delivery tag {} reused", d.tag));
                }
            }
            Event::Confirm {
                channel,
                tag,
                multiple,
                ack,
            } => {
                let cl = &mut self.clients[c];
                let seqs: Vec<u64> = if multiple {
                    cl.unconfirmed.range(..=tag).map(|(s, _)| *s).collect()
                } else {
                    vec![tag]
                };
                for s in seqs {
                    let Some(msg) = self.clients[c].unconfirmed.remove(&s) else {
                        self.fail(format!("confirm of unknown or settled seq {s} on channel {channel}"))
                    };
                    if !ack {
                        self.model.nacked(msg);
                    } else if self.profile.sync {
                        self.model.made_durable(msg);
                    }
                }
            }
            Event::TxCommitOk { .. } => {
                let Some(msgs) = self.clients[c].committing.pop_front() else {
                    self.fail("tx.commit-ok without a commit")
                };
                if self.profile.sync {
                    msgs.into_iter().for_each(|m| self.model.made_durable(m));
                }
            }
            Event::ChannelClose { channel, code, text } => {
                let oldest = self.clients[c].unacked.values().map(|h| h.since).min();
                let timed_out = oldest.is_some_and(|at| at + CONSUMER_TIMEOUT_MS <= now);
                if !(self.profile.timers && channel == MAIN && code == 406 && timed_out) {
                    self.fail(format!("unexpected channel.close {code} on {channel}: {text}"));
                }
                self.note(format!("consumer timeout closed the channel of client {c}"));
                self.channel_lost(c);
                return true;
            }
            Event::ConnectionClose { code, text } => self.fail(format!("unexpected connection.close {code}: {text}")),
            Event::GetEmpty { .. }
            | Event::TxRollbackOk { .. }
            | Event::Heartbeat
            | Event::Other { .. }
            | Event::QueueOk { .. } => {}
        }
        false
    }

    /// Channel 1 of client `c` is gone: its deliveries go back, its consumers
    /// and confirms with it.
    pub(super) fn channel_lost(&mut self, c: usize) {
        let now = self.h.now();
        let cl = &mut self.clients[c];
        for (_, held) in std::mem::take(&mut cl.unacked) {
            if !held.orphan {
                self.model.set_at(held.msg, At::Ready);
            }
        }
        if std::mem::take(&mut cl.consuming).contains(EXPIRING) {
            self.qx_touched = now;
        }
        cl.unconfirmed.clear();
        cl.confirm = false;
    }

    /// Client `c`'s connection is gone: channel 1 as above, and its open
    /// transaction with it.
    pub(super) fn connection_lost(&mut self, c: usize) {
        self.channel_lost(c);
        let cl = &mut self.clients[c];
        cl.open = false;
        for m in std::mem::take(&mut cl.tx) {
            self.model.set_at(m, At::Deleted);
        }
    }

    /// Fires the timers at the current `now` and checks what they did.
    pub(super) fn fire_timers(&mut self) {
        let now = self.h.now();
        let closed = self.h.fire_timers();
        for &id in &closed {
            let Some(c) = self.client_of(id) else { continue };
            let cl = &self.clients[c];
            let limit = 2 * u64::from(cl.heartbeat) * 1000;
            if !(cl.silent && cl.heartbeat > 0 && now - cl.last_sent > limit) {
                self.fail(format!("client {c} closed by a tick (heartbeat {}s)", cl.heartbeat));
            }
            self.note(format!("client {c} closed for missed heartbeats"));
        }
        self.absorb_after(&closed);
        for (c, cl) in self.clients.iter().enumerate().filter(|(_, c)| c.open) {
            if cl.silent && now - cl.last_sent > 2 * u64::from(cl.heartbeat) * 1000 {
                self.fail(format!("silent client {c} not closed ({}s heartbeat)", cl.heartbeat));
            }
            // Output held for a group commit (behind a durable declare's reply)
            // includes the channel.close of a consumer timeout: the client sees
            // it when the commit is done.
            let held_output = self.h.broker().sync.holds_output(cl.id);
            if let Some(h) = cl.unacked.values().find(|h| h.at + CONSUMER_TIMEOUT_MS <= now) {
                if self.profile.timers && !held_output {
                    self.fail(format!("client {c} holds message {} past the consumer timeout", h.msg));
                }
            }
        }
        self.model.route_due(now);
        self.track_expiring();
        let consumed = self.clients.iter().any(|c| c.open && c.consuming.contains(EXPIRING));
        if self.qx_exists && !consumed && now >= self.qx_touched + EXPIRES_MS {
            self.fail("qx unused for its x-expires and still there after the timers");
        }
    }

    /// Notices `qx` expiring (timers fire after every input too) and checks it
    /// was due.
    pub(super) fn track_expiring(&mut self) {
        if !self.profile.timers || !self.qx_exists {
            return;
        }
        let v = &self.h.broker().model.vhosts["/"];
        if v.queue_id(EXPIRING).is_some() {
            return;
        }
        let now = self.h.now();
        // A consumer whose channel the broker closed (consumer timeout) in output
        // held for a group commit does not know it yet.
        if (self.clients.iter()).any(|c| c.open && c.consuming.contains(EXPIRING) && c.held_since.is_none()) {
            self.fail("qx expired with a consumer");
        }
        if now < self.qx_used + EXPIRES_MS {
            self.fail(format!("qx expired early: last used at {}", self.qx_used));
        }
        self.qx_exists = false;
        self.queue_gone(EXPIRING);
        self.h.durability_point();
    }

    /// `queue` and its messages are gone: clients' tags of them are orphans.
    pub(super) fn queue_gone(&mut self, queue: &'static str) {
        self.model.queue_deleted(queue, self.h.now());
        for cl in &mut self.clients {
            for h in cl.unacked.values_mut() {
                h.orphan |= self.model.get(h.msg).queue == queue;
            }
            cl.consuming.remove(queue);
        }
    }

    /// The counts of the module doc of `model`, and the length limits.
    pub(super) fn check(&self) {
        let v = &self.h.broker().model.vhosts["/"];
        let mut held = 0;
        let mut unacked = 0;
        for q in v.queues.values() {
            let ready = q.ready_count();
            if let Some(max) = q.settings().max_length {
                if ready > max {
                    self.fail(format!("queue {} has {ready} ready, limit {max}", q.name()));
                }
            }
            held += ready + q.unacked_count();
            unacked += q.unacked_count();
        }
        let (lo, hi) = self.model.bounds(self.h.now());
        if held < lo || held > hi {
            let per_queue: Vec<String> = v
                .queues
                .values()
                .map(|q| {
                    let must: Vec<u64> = self.model.must_hold(q.name()).iter().map(|(i, _)| *i).collect();
                    let n = q.ready_count() + q.unacked_count();
                    format!("{}: {n} held, must hold {must:?}", q.name())
                })
                .collect();
            self.fail(format!(
                "{held} messages held; the model says between {lo} and {hi}\n  {}",
                per_queue.join("\n  ")
            ));
        }
        // The broker's unacked messages are those its channels hold (of queues
        // still there: a deleted queue's deliveries stay in their channels, so
        // that their acks are no error, as in RabbitMQ).
        let b = self.h.broker();
        let held_by = |c: &crate::core::amqp::connection::Connection| -> usize {
            (c.channels())
                .flat_map(|ch| ch.unacked_queues())
                .filter(|q| v.queues.contains_key(q))
                .count()
        };
        let in_channels: usize = b.conns.values().map(|c| held_by(c)).sum();
        if unacked != in_channels as u64 {
            self.fail(format!(
                "{unacked} unacked in the queues, {in_channels} in the channels"
            ));
        }
        // Each client holds what its connection's channels hold, unless output
        // is held for a group commit (behind a durable declare's reply): then
        // deliveries, or the channel.close of a consumer timeout that released
        // them, have not reached the client yet.
        for (i, cl) in self.clients.iter().enumerate().filter(|(_, c)| c.open) {
            if b.sync.holds_output(cl.id) {
                continue;
            }
            let theirs = cl.unacked.values().filter(|h| !h.orphan).count();
            let ours = b.conns.get(&cl.id).map_or(0, |c| held_by(c));
            if theirs != ours {
                self.fail(format!("client {i} holds {theirs} unacked, its connection {ours}"));
            }
        }
    }

    /// Runs the profile's steps, then drains everything and checks nothing
    /// durable was lost.
    pub fn run(mut self, steps: usize) {
        self.connect();
        for i in 0..steps {
            self.step = i;
            // Time moves with the traffic, 1 ms a step (as in the simulation of
            // issue 15), besides what the clock steps add.
            self.h.advance(1);
            self.random_step();
            self.check();
        }
        self.finish();
    }
}

/// The seed in RINGMQ_SIM_SEED, if any.
fn env_seed() -> Option<u64> {
    std::env::var("RINGMQ_SIM_SEED").ok().and_then(|s| s.parse().ok())
}

/// Seeds to run: the one in RINGMQ_SIM_SEED, or `count` (RINGMQ_SIM_SEEDS
/// overrides it) from a random base.
pub fn seeds(count: u64) -> Vec<u64> {
    if let Some(seed) = env_seed() {
        return vec![seed];
    }
    let count = std::env::var("RINGMQ_SIM_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(count);
    let base: u64 = rand::random();
    (0..count).map(|i| base.wrapping_add(i)).collect()
}

fn steps(profile: Profile) -> usize {
    std::env::var("RINGMQ_SIM_STEPS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(profile.steps)
}

fn run_profile(profile: Profile, count: u64) {
    for seed in seeds(count) {
        eprintln!("sim seed {seed} profile {}", profile.name);
        Sim::new(seed, profile).run(steps(profile));
    }
}

#[test]
fn random_clients_lose_nothing() {
    run_profile(BASIC, 20);
}

#[test]
fn random_policy_changes_keep_limits_and_settle_at_most_once() {
    run_profile(POLICIES, 10);
}

#[test]
fn confirms_transactions_timers_and_power_loss() {
    run_profile(FULL, 16);
}

#[test]
fn delayed_messages_heartbeats_and_consumer_timeouts() {
    run_profile(TIMERS, 12);
}

#[test]
fn delayed_messages_with_power_loss() {
    run_profile(CRASH_DELAYED, 12);
}

/// Regression (was a finding): a message the delayed exchange routed shortly
/// before a crash was routed again after it. The routed copy was in the target
/// queue's files but the delayed store's ack only in its in-memory ack buffer,
/// so the reopened delayed store routed the message once more: two copies, the
/// second delivered without the redelivered flag (message 84 of this seed:
/// routed during a 1354 ms jump, power loss 3 ms later). Firing now syncs the
/// copies, then the acks (`model::exchange::delayed`). RINGMQ_SIM_SEED
/// overrides the seed; `delayed_messages_with_power_loss` runs random seeds.
#[test]
fn delayed_messages_and_power_loss() {
    let seed = env_seed().unwrap_or(330341354292460959);
    Sim::new(seed, CRASH_DELAYED).run(steps(CRASH_DELAYED));
}

/// Regression (was a finding): a message delivered after a clean restart came
/// back unflagged after a power loss before its queue's next group commit
/// (message 102 of this seed: delivered after a clean restart, power loss
/// before the next group commit of its queue, delivered again after two more
/// restarts without the flag). The store's `delivered` file said "clean" then;
/// the vhost's `running` marker (`ringmq_store::running`) now says the stop
/// was unclean, and every recovered message is flagged. RINGMQ_SIM_SEED
/// overrides the seed.
#[test]
fn redelivered_flag_after_power_loss() {
    let seed = env_seed().unwrap_or(4916242126827608467);
    Sim::new(seed, FULL).run(steps(FULL));
}
