//! Who leads, as a state machine: the caller does what [`Election::poll`]
//! asks against etcd and reports each result with `handle_*`; time is passed
//! in, so tests drive it without etcd or clocks.
//!
//! A node holds a lease of [`ElectionConfig::ttl_ms`] and renews it every
//! third of that. It campaigns by creating the leader key with its lease
//! attached (create-if-absent: only one node can), while it is eligible (in
//! the in-sync replica set, or the set is empty: a cluster's first start).
//! Whoever holds the key leads until its lease ends, by its death, its
//! revoke, or etcd not hearing from it for the TTL; then etcd deletes the
//! key and the others campaign again.
//!
//! Fencing: etcd counts a lease's TTL from when it received the last
//! renewal, which is after this node sent it. So a leader counts from the
//! *send* time of its last acknowledged renewal, and stops leading
//! [`FENCE_MARGIN_MS`] plus a tenth of the TTL before the lease could
//! expire ([`Election::leads`]): cut off from etcd, it stops confirming before
//! another node can win, and two nodes never both lead at one moment.

/// Held back from the end of a lease before a leader stops leading (beside a
/// tenth of the TTL, for the two clocks' rates).
pub const FENCE_MARGIN_MS: u64 = 250;

/// What a node brings to the election.
#[derive(Debug, Clone)]
pub struct ElectionConfig {
    /// Its advertised URI: the leader key's value while it leads.
    pub me: String,
    pub ttl_ms: u64,
}

/// What the caller is asked to do next (one at a time: each is answered by a
/// `handle_*` before the next is asked).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Grant a lease of this many seconds ([`Election::handle_granted`]).
    Grant { ttl_secs: i64 },
    /// Renew the lease ([`Election::handle_kept`]).
    KeepAlive { lease: i64 },
    /// Create the leader key with our URI, attached to the lease, if it has
    /// no value ([`Election::handle_campaign`]).
    Campaign { lease: i64 },
}

/// What the node knows of the leader.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Leader {
    Unknown,
    /// This node, in the term of its key's creation revision.
    Me {
        term: i64,
    },
    Other {
        uri: String,
        term: i64,
    },
}

#[derive(Debug, Clone, Copy)]
struct Lease {
    id: i64,
    /// When the renewal etcd last acknowledged was sent.
    renewed_at_ms: u64,
}

/// One node's view of the election.
#[derive(Debug)]
pub struct Election {
    cfg: ElectionConfig,
    lease: Option<Lease>,
    leader: Leader,
    eligible: bool,
    /// An action was asked for and not answered yet; when.
    asked: Option<(Action, u64)>,
    next_renewal_ms: u64,
}

impl Election {
    pub fn new(cfg: ElectionConfig) -> Election {
        Election {
            cfg,
            lease: None,
            leader: Leader::Unknown,
            eligible: true,
            asked: None,
            next_renewal_ms: 0,
        }
    }

    /// Whether this node leads at `now_ms`: it created the leader key, and
    /// its lease cannot have expired yet (the fencing rule above).
    pub fn leads(&self, now_ms: u64) -> bool {
        matches!(self.leader, Leader::Me { .. }) && self.lease.is_some_and(|l| now_ms < self.fence_at(l))
    }

    /// While it leads at `now_ms`: until when (the fence).
    pub fn leads_until(&self, now_ms: u64) -> Option<u64> {
        match self.lease {
            Some(l) if self.leads(now_ms) => Some(self.fence_at(l)),
            _ => None,
        }
    }

    /// The leader as this node knows it.
    pub fn leader(&self) -> &Leader {
        &self.leader
    }

    fn fence_at(&self, l: Lease) -> u64 {
        let ttl = self.cfg.ttl_ms;
        (l.renewed_at_ms + ttl).saturating_sub(FENCE_MARGIN_MS + ttl / 10)
    }

    /// The next thing to do at `now_ms`, if any (None also while one is
    /// under way).
    pub fn poll(&mut self, now_ms: u64) -> Option<Action> {
        self.expire(now_ms);
        if self.asked.is_some() {
            return None;
        }
        let action = match self.lease {
            None => Action::Grant {
                ttl_secs: self.cfg.ttl_ms.div_ceil(1000) as i64,
            },
            Some(l) if now_ms >= self.next_renewal_ms => Action::KeepAlive { lease: l.id },
            Some(l) if self.leader == Leader::Unknown && self.eligible => Action::Campaign { lease: l.id },
            Some(_) => return None,
        };
        self.asked = Some((action.clone(), now_ms));
        Some(action)
    }

    /// When [`Election::poll`] may have something to do, or the fence falls.
    pub fn poll_timeout(&self) -> u64 {
        let renewal = self.next_renewal_ms;
        match self.lease {
            Some(l) if matches!(self.leader, Leader::Me { .. }) => renewal.min(self.fence_at(l)),
            _ => renewal,
        }
    }

    /// A lease past its fence is no longer ours to lead with.
    fn expire(&mut self, now_ms: u64) {
        if let Some(l) = self.lease {
            if now_ms >= l.renewed_at_ms + self.cfg.ttl_ms {
                // Gone in etcd by now, with the key attached to it.
                self.lease = None;
                if matches!(self.leader, Leader::Me { .. }) {
                    self.leader = Leader::Unknown;
                }
            }
        }
    }

    fn answered(&mut self) -> Option<(Action, u64)> {
        self.asked.take()
    }

    /// The lease asked for at the time of the ask.
    pub fn handle_granted(&mut self, lease: i64) {
        let Some((Action::Grant { .. }, sent_ms)) = self.answered() else {
            return;
        };
        self.lease = Some(Lease {
            id: lease,
            renewed_at_ms: sent_ms,
        });
        self.next_renewal_ms = sent_ms + self.cfg.ttl_ms / 3;
    }

    /// The renewal asked for was acknowledged (`alive`) or the lease is
    /// gone (then the leader key attached to it is too).
    pub fn handle_kept(&mut self, alive: bool) {
        let Some((Action::KeepAlive { lease }, sent_ms)) = self.answered() else {
            return;
        };
        match self.lease {
            Some(ref mut l) if l.id == lease && alive => {
                l.renewed_at_ms = l.renewed_at_ms.max(sent_ms);
                self.next_renewal_ms = sent_ms + self.cfg.ttl_ms / 3;
            }
            _ => {
                self.lease = None;
                if matches!(self.leader, Leader::Me { .. }) {
                    self.leader = Leader::Unknown;
                }
            }
        }
    }

    /// The campaign's result: this node created the key in revision `Ok`,
    /// or `Err` names the leader and the revision that made it one.
    pub fn handle_campaign(&mut self, result: Result<i64, (String, i64)>) {
        let Some((Action::Campaign { .. }, _)) = self.answered() else {
            return;
        };
        self.leader = match result {
            Ok(term) => Leader::Me { term },
            // Our own key, from before a restart of the loop: still ours.
            Err((uri, term)) if uri == self.cfg.me => Leader::Me { term },
            Err((uri, term)) => Leader::Other { uri, term },
        };
    }

    /// The call asked for failed (etcd unreachable, a timeout): it is asked
    /// again at the next poll; the lease, if any, keeps counting down.
    pub fn handle_failed(&mut self, now_ms: u64) {
        if let Some((Action::KeepAlive { .. }, _)) = self.answered() {
            // Try again soon, not a third of the TTL later.
            self.next_renewal_ms = now_ms + (self.cfg.ttl_ms / 10).max(50);
        }
    }

    /// The leader key was deleted (its lease ended): campaign again.
    pub fn handle_leader_gone(&mut self) {
        self.leader = Leader::Unknown;
    }

    /// The leader key was set by another node (seen by a watch).
    pub fn handle_leader(&mut self, uri: String, term: i64) {
        if uri != self.cfg.me {
            self.leader = Leader::Other { uri, term };
        }
    }

    /// Whether this node may campaign: it is in the in-sync replica set (or
    /// the set is empty, a cluster's first start). A stale follower never
    /// leads.
    pub fn set_eligible(&mut self, eligible: bool) {
        self.eligible = eligible;
    }
}

#[cfg(test)]
mod tests;
