//! What each operation does to the model, following RabbitMQ 3.10's classic
//! queues and ringmq's documented durability rules (README, Robustness):
//! - max-length counts ready messages; drop-head drops (and dead-letters) the
//!   oldest ready ones after a publish, a requeue or a lower policy limit;
//!   reject-publish refuses the publish (basic.nack) and keeps what is there;
//! - a requeued message goes back to its place and says redelivered;
//! - dead letters are routed after the input that made them, in order, with
//!   RabbitMQ's cycle rule; one to a missing exchange vanishes;
//! - done messages (ack, reject, purge, drop) are written within 100 ms, and
//!   at once by a group commit (a confirmed persistent publish stored in a
//!   durable queue) or before dead letters are stored: until then they are
//!   `maybe` and may come back after kill -9.

use super::state::*;

/// A delivery as the client should see it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delivered {
    pub tag: u64,
    pub body: String,
    pub redelivered: bool,
    /// x-death, as [`Msg::x_death`].
    pub deaths: Vec<String>,
}

/// How a delivery is settled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Settle {
    Ack,
    Requeue,
    Discard,
}

impl Model {
    pub fn new_msg(&mut self, persistent: bool, key: &str) -> Msg {
        let n = self.next_msg;
        self.next_msg += 1;
        Msg {
            body: format!("m{n}"),
            persistent,
            key: key.to_owned(),
            deaths: Vec::new(),
        }
    }

    /// Every done message is in its ack file now.
    pub fn flush(&mut self) {
        for q in self.queues.values_mut() {
            q.maybe.clear();
        }
    }

    /// Publishes `msg`; returns whether the confirm is an ack. Dead letters
    /// it causes are routed.
    pub fn publish(&mut self, exchange: &str, msg: Msg) -> bool {
        let targets = self.route(exchange, &msg.key);
        let mut ack = true;
        let mut synced = false;
        for q in &targets {
            if self.store(q, &msg) {
                synced |= msg.persistent && self.queues[q].durable;
            } else {
                ack = false;
            }
        }
        self.after_input();
        if synced {
            // The group commit that the confirm waited for wrote every
            // buffered ack first (`Broker::poll_sync`).
            self.flush();
        }
        ack
    }

    /// Appends `msg` to queue `name` unless reject-publish refuses it; then
    /// applies drop-head.
    fn store(&mut self, name: &str, msg: &Msg) -> bool {
        let s = self.settings(name);
        let q = self.queues.get_mut(name).expect("routed to an existing queue");
        if s.overflow == Overflow::RejectPublish && s.max_len.is_some_and(|m| q.ready() >= m as usize) {
            self.counts.refused_publish += 1;
            return false;
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        q.entries.insert(
            seq,
            Entry {
                seq,
                msg: msg.clone(),
                redelivered: false,
                unacked: false,
            },
        );
        self.enforce_length(name);
        true
    }

    pub fn enforce_length(&mut self, name: &str) {
        let s = self.settings(name);
        let (Overflow::DropHead, Some(max)) = (s.overflow, s.max_len) else {
            return;
        };
        while self.queues[name].ready() > max as usize {
            self.drop_head(name, &s);
        }
    }

    fn drop_head(&mut self, name: &str, s: &Settings) {
        let q = self.queues.get_mut(name).expect("queue exists");
        let seq = q.head().expect("over the limit, so not empty");
        let e = q.entries.remove(&seq).expect("head exists");
        let dl = dead_letter(name, s, &e.msg, Reason::MaxLen);
        q.maybe.insert(seq, e);
        self.dead.extend(dl);
        self.counts.dropped_head += 1;
    }

    /// What the broker does after each batch of input: route the dead letters.
    pub fn after_input(&mut self) {
        if self.dead.is_empty() {
            return;
        }
        // The sources' acks are written before the copies are stored; those
        // the copies cause here (drop-head in a dead-letter queue) are not.
        self.flush();
        while let Some(dl) = self.dead.pop_front() {
            if !dl.dlx.is_empty() && !self.exchanges.contains(&dl.dlx) {
                continue;
            }
            let reason = dl.msg.deaths.first().map(|d| d.1);
            for q in self.route(&dl.dlx, &dl.key) {
                if reason != Some(Reason::Rejected) && is_cycle(&q, &dl.msg.deaths) {
                    continue;
                }
                if self.store(&q, &dl.msg) {
                    self.counts.dead_lettered += 1;
                }
            }
        }
    }

    /// The next ready message of `queue` to channel `ch`; None when empty.
    pub fn get(&mut self, ch: usize, queue: &str, no_ack: bool) -> Option<(Delivered, usize)> {
        let d = self.deliver(ch, queue, no_ack)?;
        let left = self.queues[queue].ready();
        Some((d, left))
    }

    /// Deliveries to a consumer with `prefetch` (0: unlimited) until the queue
    /// has no ready message or the prefetch is used up.
    pub fn consume(&mut self, ch: usize, queue: &str, prefetch: u16, no_ack: bool) -> Vec<Delivered> {
        let mut out = Vec::new();
        while no_ack || prefetch == 0 || out.len() < prefetch as usize {
            match self.deliver(ch, queue, no_ack) {
                Some(d) => out.push(d),
                None => break,
            }
        }
        out
    }

    fn deliver(&mut self, ch: usize, queue: &str, no_ack: bool) -> Option<Delivered> {
        let q = self.queues.get_mut(queue)?;
        let seq = q.head()?;
        let inc = q.inc;
        let e = q.entries.get_mut(&seq).expect("head exists");
        let d = Delivered {
            tag: self.chans[ch].next_tag,
            body: e.msg.body.clone(),
            redelivered: e.redelivered,
            deaths: e.msg.x_death(),
        };
        e.redelivered = true;
        self.chans[ch].next_tag += 1;
        if no_ack {
            let e = q.entries.remove(&seq).expect("head exists");
            q.maybe.insert(seq, e);
        } else {
            e.unacked = true;
            let u = Unacked {
                queue: queue.to_owned(),
                inc,
                seq,
            };
            self.chans[ch].unacked.insert(d.tag, u);
        }
        Some(d)
    }

    /// basic.ack / basic.nack / basic.reject of `tag` (and all before it with
    /// `multiple`; tag 0 with `multiple` is every delivery of the channel).
    pub fn settle(&mut self, ch: usize, tag: u64, multiple: bool, how: Settle) {
        let tags: Vec<u64> = if multiple {
            let upto = if tag == 0 { u64::MAX } else { tag };
            self.chans[ch].unacked.range(..=upto).map(|(t, _)| *t).collect()
        } else {
            vec![tag]
        };
        for t in tags {
            let u = self.chans[ch].unacked.remove(&t).expect("settling a known tag");
            self.settle_one(&u, how);
        }
        self.after_input();
    }

    fn settle_one(&mut self, u: &Unacked, how: Settle) {
        let Some(q) = self.queues.get(&u.queue).filter(|q| q.inc == u.inc) else {
            // Its queue was deleted: nothing to settle.
            return;
        };
        let s = self.settings(&u.queue);
        let _ = q;
        let q = self.queues.get_mut(&u.queue).expect("checked above");
        match how {
            Settle::Ack => {
                let e = q.entries.remove(&u.seq).expect("unacked entry");
                q.maybe.insert(u.seq, e);
            }
            Settle::Discard => {
                let e = q.entries.remove(&u.seq).expect("unacked entry");
                let dl = dead_letter(&u.queue, &s, &e.msg, Reason::Rejected);
                q.maybe.insert(u.seq, e);
                self.dead.extend(dl);
            }
            Settle::Requeue => {
                q.entries.get_mut(&u.seq).expect("unacked entry").unacked = false;
                self.counts.requeued += 1;
                self.enforce_length(&u.queue);
            }
        }
    }

    /// The channel closes (or its connection goes): its deliveries are
    /// requeued in tag order; it opens again with fresh tags.
    pub fn release_channel(&mut self, ch: usize) {
        let unacked = std::mem::take(&mut self.chans[ch].unacked);
        for u in unacked.values() {
            self.settle_one(u, Settle::Requeue);
        }
        self.chans[ch] = Chan::fresh();
    }

    pub fn purge(&mut self, queue: &str) -> usize {
        let q = self.queues.get_mut(queue).expect("purging an existing queue");
        let ready: Vec<u64> = q.entries.values().filter(|e| !e.unacked).map(|e| e.seq).collect();
        for seq in &ready {
            let e = q.entries.remove(seq).expect("listed above");
            q.maybe.insert(*seq, e);
        }
        ready.len()
    }

    /// Deletes the queue; returns its ready count.
    pub fn delete_queue(&mut self, queue: &str) -> usize {
        let Some(q) = self.queues.remove(queue) else { return 0 };
        self.bindings.retain(|(_, qn, _)| qn != queue);
        q.ready()
    }

    /// Declares a queue that does not exist.
    pub fn declare_queue(&mut self, queue: &str, durable: bool, args: Limits) {
        assert!(!self.queues.contains_key(queue));
        let inc = self.next_inc;
        self.next_inc += 1;
        self.queues.insert(
            queue.to_owned(),
            Queue {
                inc,
                durable,
                args,
                entries: Default::default(),
                maybe: Default::default(),
            },
        );
    }

    pub fn delete_exchange(&mut self, x: &str) {
        self.exchanges.remove(x);
        self.bindings.retain(|(bx, _, _)| bx != x);
    }

    /// A policy was set or cleared: a lower limit trims now.
    pub fn policies_changed(&mut self) {
        let names: Vec<String> = self.queues.keys().cloned().collect();
        for n in names {
            self.enforce_length(&n);
        }
        self.after_input();
    }
}

/// The dead letter of `msg` dying in queue `name`, if the queue has a
/// dead-letter exchange: x-death gets (queue, reason) first, counted once.
fn dead_letter(name: &str, s: &Settings, msg: &Msg, reason: Reason) -> Option<DeadLetter> {
    let dlx = s.dlx.clone()?;
    let mut m = msg.clone();
    // The (queue, reason) entry counts up and moves to the front.
    let count = match m.deaths.iter().position(|d| d.0 == name && d.1 == reason) {
        Some(i) => m.deaths.remove(i).2 + 1,
        None => 1,
    };
    m.deaths.insert(0, (name.to_owned(), reason, count));
    // The copy carries the key it is routed with: a later death without a
    // dead-letter routing key routes by it, not by the first publish's key
    // (RabbitMQ's `make_msg` replaces the message's routing keys).
    let key = s.dlrk.clone().unwrap_or_else(|| msg.key.clone());
    m.key = key.clone();
    Some(DeadLetter { dlx, key, msg: m })
}

/// RabbitMQ's `rabbit_dead_letter:is_cycle`: the message died in `queue`
/// before and no death since (that one included) was a rejection.
fn is_cycle(queue: &str, deaths: &[(String, Reason, u32)]) -> bool {
    match deaths.iter().position(|d| d.0 == queue) {
        None => false,
        Some(i) => deaths[..=i].iter().all(|d| d.1 != Reason::Rejected),
    }
}
