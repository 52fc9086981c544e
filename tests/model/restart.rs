//! What a restart leaves, as the set of states the broker may honestly be in,
//! and which of them a full look at the queues matches.
//!
//! - Clean stop: the connection's channels are released (unacked requeued,
//!   drop-head applied, dead letters routed) in an order the broker picks
//!   (its channel map is unordered), so every order is a candidate; then
//!   everything is written.
//! - kill -9: nothing is released; a done message that was `maybe` (see
//!   `semantics.rs`) is back or not, independently: every subset is a
//!   candidate. After "settle" (one round trip, then longer than the 100 ms
//!   ack timer) none is.
//! - Either way: transient queues are gone with their bindings, durable queues
//!   keep only persistent messages, all in queue order and ready; then a queue
//!   over its drop-head limit is trimmed as RabbitMQ does when a queue starts
//!   (`init_max_length`), queues in name order.
//! - Redelivered: exact after a clean stop (the `delivered` mark); after kill
//!   -9 every message of a queue that delivered since its last clean close is
//!   flagged (README, Robustness: "Acks after a crash").

use std::collections::BTreeMap;

use super::state::*;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Restart {
    Clean,
    /// kill -9 right after a round trip.
    Kill9,
    /// kill -9 after a round trip and a wait past the ack timer.
    Kill9Settled,
}

/// Most `maybe` messages a kill -9 may leave open: the candidates are every
/// subset, so the operations settle first when there are more.
pub const MAYBE_MAX: usize = 10;

/// One message as a look sees it: body, redelivered, x-death.
pub type Looked = (String, bool, Vec<String>);

/// What a full look at the queues sees: per queue, its messages in order.
pub type Seen = BTreeMap<String, Vec<Looked>>;

impl Model {
    /// Every state the broker may be in after `how`, without duplicates.
    pub fn after_restart(&self, how: Restart) -> Vec<Model> {
        let mut out: Vec<Model> = Vec::new();
        for mut m in self.before_restart(how) {
            m.recover(how);
            if !out.iter().any(|o| o.seen() == m.seen() && o.queues_equal(&m)) {
                out.push(m);
            }
        }
        out
    }

    fn before_restart(&self, how: Restart) -> Vec<Model> {
        match how {
            Restart::Clean => {
                let held: Vec<usize> = (0..CHANNELS).filter(|&c| !self.chans[c].unacked.is_empty()).collect();
                permutations(&held)
                    .into_iter()
                    .map(|order| {
                        let mut m = self.clone();
                        for c in order {
                            m.release_channel(c);
                        }
                        m.after_input();
                        m.flush();
                        m
                    })
                    .collect()
            }
            Restart::Kill9Settled => {
                let mut m = self.clone();
                m.flush();
                vec![m]
            }
            Restart::Kill9 => {
                let maybe: Vec<(String, u64)> = self
                    .queues
                    .iter()
                    .flat_map(|(n, q)| q.maybe.keys().map(move |s| (n.clone(), *s)))
                    .collect();
                assert!(maybe.len() <= MAYBE_MAX, "too many maybe messages for kill -9");
                (0u32..1 << maybe.len())
                    .map(|bits| {
                        let mut m = self.clone();
                        for (i, (n, seq)) in maybe.iter().enumerate() {
                            let q = m.queues.get_mut(n).expect("listed above");
                            let e = q.maybe.remove(seq).expect("listed above");
                            if bits & (1 << i) != 0 {
                                q.entries.insert(*seq, e);
                            }
                        }
                        m
                    })
                    .collect()
            }
        }
    }

    /// The broker starts again on what was written.
    fn recover(&mut self, how: Restart) {
        let transient: Vec<String> = self
            .queues
            .iter()
            .filter(|(_, q)| !q.durable)
            .map(|(n, _)| n.clone())
            .collect();
        for n in transient {
            self.delete_queue(&n);
        }
        for q in self.queues.values_mut() {
            q.maybe.clear();
            q.entries.retain(|_, e| e.msg.persistent);
            // After kill -9 the vhost's `running` marker is there: every
            // recovered message may have been delivered, in every queue.
            let flag_all = how != Restart::Clean;
            for e in q.entries.values_mut() {
                e.unacked = false;
                e.redelivered |= flag_all;
            }
        }
        self.chans = (0..CHANNELS).map(|_| Chan::fresh()).collect();
        self.dead.clear();
        let names: Vec<String> = self.queues.keys().cloned().collect();
        for n in names {
            self.enforce_length(&n);
        }
        self.after_input();
    }

    /// What a full look at every queue sees: its ready messages.
    pub fn seen(&self) -> Seen {
        self.queues
            .iter()
            .map(|(n, q)| {
                let v = q
                    .entries
                    .values()
                    .filter(|e| !e.unacked)
                    .map(|e| (e.msg.body.clone(), e.redelivered, e.msg.x_death()))
                    .collect();
                (n.clone(), v)
            })
            .collect()
    }

    /// Same queues with the same entries (x-death included), not only the same view.
    fn queues_equal(&self, other: &Model) -> bool {
        self.queues.len() == other.queues.len()
            && self
                .queues
                .iter()
                .zip(&other.queues)
                .all(|((a, qa), (b, qb))| a == b && qa.entries == qb.entries)
    }
}

fn permutations(items: &[usize]) -> Vec<Vec<usize>> {
    if items.len() <= 1 {
        return vec![items.to_vec()];
    }
    let mut out = Vec::new();
    for i in 0..items.len() {
        let mut rest = items.to_vec();
        let first = rest.remove(i);
        for mut p in permutations(&rest) {
            p.insert(0, first);
            out.push(p);
        }
    }
    out
}
