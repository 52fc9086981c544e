//! What the simulation expects the broker to hold: one record per published
//! message, moved by what the clients saw, and the invariants checked against
//! the broker after every step.
//!
//! A message is somewhere: pending (in an open transaction, or held by the
//! delayed exchange until due), ready in its queue, unacked by a client, gone
//! (acked or discarded by a client) or deleted (with its queue, by rollback).
//! `maybe` marks what the model cannot know: a ready message that may have
//! vanished (it was not yet durable at a crash, or a confirm said nack), a gone
//! one that may have come back (its ack was not durable at a crash). `volatile`
//! marks messages the broker may drop at any time (TTL, an expiring queue, a
//! length limit). The invariants:
//! - nothing is invented: every delivery is of a published, committed message;
//! - no duplicate: a message is never delivered while unacked elsewhere, never
//!   after it was settled unless a crash may have lost the settle, and every
//!   delivery of a message delivered before carries the redelivered flag;
//! - nothing durable is lost: a confirmed (or committed) message is there after
//!   a crash, and every message is there after a clean restart;
//! - timers: no message delivered after its TTL, none before its `x-delay`;
//! - counts: ready + unacked in the broker lies between what must be there and
//!   what may be there (equal when nothing is uncertain), and the broker's
//!   unacked count equals the clients'.

use std::collections::BTreeMap;

/// Where a message is, as far as the model knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum At {
    /// Published in a transaction not yet committed: not in any queue.
    InTx,
    /// Held by the delayed exchange until the time given.
    Delayed(u64),
    Ready,
    Unacked,
    /// Acked, or nacked/rejected without requeue.
    Gone,
    /// With its queue, by a rollback, or a transaction lost with its channel.
    Deleted,
}

#[derive(Debug, Clone)]
pub struct Msg {
    pub queue: &'static str,
    pub at: At,
    /// See the module doc.
    pub maybe: bool,
    pub volatile: bool,
    /// On disk for sure: confirmed, committed, or recovered.
    pub durable: bool,
    pub delivered: bool,
    pub published_at: u64,
    pub ttl: Option<u64>,
    /// Ready when its queue was deleted, at this time: a delivery held in a
    /// client's output since before then is no error (see [`Model::deliver`]).
    pub deleted_ready_at: Option<u64>,
}

/// A failed invariant, with what the model expected.
pub type Violation = String;

#[derive(Default)]
pub struct Model {
    msgs: BTreeMap<u64, Msg>,
    next: u64,
}

impl Model {
    /// A new message id (the body of the message).
    pub fn publish(&mut self, queue: &'static str, at: At, volatile: bool, now: u64, ttl: Option<u64>) -> u64 {
        self.next += 1;
        self.msgs.insert(
            self.next,
            Msg {
                queue,
                at,
                maybe: false,
                volatile,
                durable: false,
                delivered: false,
                published_at: now,
                ttl,
                deleted_ready_at: None,
            },
        );
        self.next
    }

    pub fn get(&self, id: u64) -> &Msg {
        &self.msgs[&id]
    }

    pub fn set_at(&mut self, id: u64, at: At) {
        let m = self.msgs.get_mut(&id).expect("known message");
        m.at = at;
        m.maybe = false;
    }

    /// The broker said the message is on disk (confirm, commit-ok).
    pub fn made_durable(&mut self, id: u64) {
        self.msgs.get_mut(&id).expect("known message").durable = true;
    }

    /// A nack confirm: the broker does not promise the message.
    pub fn nacked(&mut self, id: u64) {
        let m = self.msgs.get_mut(&id).expect("known message");
        if m.at == At::Ready {
            m.maybe = true;
        }
    }

    /// A delivery of message `id` at `now`; the checks of the module doc.
    /// `earliest..=now`: when the broker may have delivered it. Its client got it
    /// at `now`; output held for a group commit (behind a durable declare's reply)
    /// may have held it since `earliest`.
    ///
    /// `Ok(true)`: the delivery is an orphan, of a message whose queue was
    /// deleted after the broker delivered it into output held for a group commit.
    pub fn deliver(&mut self, id: u64, redelivered: bool, earliest: u64, now: u64) -> Result<bool, Violation> {
        let Some(m) = self.msgs.get_mut(&id) else {
            return Err(format!("message {id} delivered but never published"));
        };
        let orphan = m.at == At::Deleted && m.deleted_ready_at.is_some_and(|t| earliest <= t);
        match m.at {
            At::Deleted if orphan => {}
            At::Unacked => return Err(format!("message {id} delivered while unacked: {m:?}")),
            At::Gone if !m.maybe => return Err(format!("message {id} delivered after it was settled: {m:?}")),
            At::Deleted => return Err(format!("message {id} delivered after it was deleted: {m:?}")),
            At::InTx => return Err(format!("message {id} delivered before its commit: {m:?}")),
            At::Delayed(due) if now < due => {
                return Err(format!("message {id} delivered before its delay ({due}), at {now}"))
            }
            _ => {}
        }
        // Also after a power loss: the broker's `running` marker tells it the
        // stop was unclean, and it then flags every recovered message (the
        // store's `delivered` file alone could forget a delivery, see
        // `ringmq_store::running`).
        if m.delivered && !redelivered {
            return Err(format!(
                "message {id} delivered again without the redelivered flag: {m:?}"
            ));
        }
        if let Some(ttl) = m.ttl {
            if earliest > m.published_at + ttl {
                return Err(format!("message {id} delivered at {earliest}, after its TTL: {m:?}"));
            }
        }
        if orphan {
            m.delivered = true;
            return Ok(true);
        }
        // Uncertain before (a crash): it was recovered, so it is on disk.
        m.durable |= m.maybe;
        m.at = At::Unacked;
        m.maybe = false;
        m.delivered = true;
        Ok(false)
    }

    /// A delivery the broker made into output held for a group commit and
    /// took back before the client saw it (a consumer timeout closed the
    /// channel): the message may have been delivered, settled or requeued by
    /// others since, so only what holds at any time is checked.
    pub fn delivered_and_released(&mut self, id: u64, now: u64) -> Result<(), Violation> {
        let Some(m) = self.msgs.get_mut(&id) else {
            return Err(format!("message {id} delivered but never published"));
        };
        match m.at {
            At::InTx => Err(format!("message {id} delivered before its commit: {m:?}")),
            At::Delayed(due) if now < due => Err(format!("message {id} delivered before its delay ({due}), at {now}")),
            _ => {
                m.delivered = true;
                Ok(())
            }
        }
    }

    /// The queue and its messages are gone (deleted, or expired).
    pub fn queue_deleted(&mut self, queue: &str, now: u64) {
        for m in self.msgs.values_mut().filter(|m| m.queue == queue) {
            if m.at == At::Ready {
                m.deleted_ready_at = Some(now);
            }
            if matches!(m.at, At::Ready | At::Unacked | At::Gone) {
                m.at = At::Deleted;
                m.maybe = false;
            }
        }
    }

    /// A clean restart: clean close syncs everything; transactions are lost.
    pub fn restarted(&mut self) {
        for m in self.msgs.values_mut() {
            match m.at {
                At::InTx => m.at = At::Deleted,
                At::Unacked => m.at = At::Ready,
                _ => {}
            }
            if matches!(m.at, At::Ready | At::Delayed(_)) && !m.maybe {
                m.durable = true;
            }
        }
    }

    /// Power loss (see `disk`): what was not durable may be gone, what was
    /// settled may be back.
    pub fn crashed(&mut self) {
        for m in self.msgs.values_mut() {
            match m.at {
                At::InTx => m.at = At::Deleted,
                At::Unacked => m.at = At::Ready,
                _ => {}
            }
            match m.at {
                At::Ready | At::Delayed(_) if !m.durable => m.maybe = true,
                At::Gone => m.maybe = true,
                _ => {}
            }
        }
    }

    /// Delayed messages due at `now` were routed by the timers that just fired.
    pub fn route_due(&mut self, now: u64) {
        for m in self.msgs.values_mut() {
            if let At::Delayed(due) = m.at {
                if due <= now {
                    m.at = At::Ready;
                }
            }
        }
    }

    /// (must be there, may be there): ready + unacked bounds for the broker.
    pub fn bounds(&self, now: u64) -> (u64, u64) {
        self.bounds_where(now, |_| true)
    }

    /// The messages of `queue` that must be there (for failure messages).
    pub fn must_hold(&self, queue: &str) -> Vec<(u64, &Msg)> {
        let must = |m: &Msg| m.at == At::Unacked || (m.at == At::Ready && !m.maybe && !m.volatile);
        self.msgs
            .iter()
            .filter(|(_, m)| m.queue == queue && must(m))
            .map(|(i, m)| (*i, m))
            .collect()
    }

    fn bounds_where(&self, now: u64, pick: impl Fn(&Msg) -> bool) -> (u64, u64) {
        let (mut lo, mut hi) = (0, 0);
        for m in self.msgs.values().filter(|m| pick(m)) {
            let (l, h) = match m.at {
                At::Unacked => (1, 1),
                At::Ready => (u64::from(!m.maybe && !m.volatile), 1),
                At::Gone => (0, u64::from(m.maybe)),
                At::Delayed(due) => (0, u64::from(due <= now)),
                At::InTx | At::Deleted => (0, 0),
            };
            lo += l;
            hi += h;
        }
        (lo, hi)
    }

    /// After a final drain (every queue emptied and acked): anything that must
    /// still be ready was lost.
    pub fn lost(&self) -> Vec<(u64, &Msg)> {
        self.msgs
            .iter()
            .filter(|(_, m)| m.at == At::Ready && !m.maybe && !m.volatile)
            .map(|(id, m)| (*id, m))
            .collect()
    }

    pub fn published(&self) -> usize {
        self.msgs.len()
    }
}
