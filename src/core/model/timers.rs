//! The core's timers (head TTL, queue expiry, delayed exchanges) and the io
//! contract's `poll_timeout`/`handle_timeout`.

use ringmq_codec::ShortString;
use std::collections::{BTreeSet, VecDeque};
use std::sync::Arc;

use crate::core::broker::Broker;
use crate::core::model::ids::QueueId;

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum TimerKind {
    /// The head message of a queue expires.
    Head,
    /// The queue itself expires (x-expires).
    QueueExpires,
    /// Held messages of a delayed exchange are due.
    Delayed(ShortString),
}

/// Timers handled per turn (`handle_timeout` or `run_pending`); the rest wait,
/// due, for the next turn, so a burst of deadlines cannot stall the loop.
pub const TIMERS_PER_TURN_MAX: usize = 1_024;

/// A timer's target.
type TimerEntry = (Arc<str>, QueueId, TimerKind);

/// The core's timers. A deadline in the future waits in `set`, ordered; one at
/// or before `now` goes to `due`, which is work for the current or next turn and
/// never a deadline again: the io layer sleeps until [`Timers::first`], which is
/// therefore always after the `now` it last passed in (issue 15: a TTL-0 head
/// re-armed at `now` made `handle_timeout` pop it again forever).
#[derive(Debug, Default)]
pub(crate) struct Timers {
    set: BTreeSet<(u64, Arc<str>, QueueId, TimerKind)>,
    due: VecDeque<TimerEntry>,
}

impl Timers {
    /// Arms a timer for `at_ms`; one at or before `now_ms` is due at once (run in
    /// this or the next turn, never re-armed for the same `now`).
    pub fn add(&mut self, at_ms: u64, now_ms: u64, vhost: &Arc<str>, q: QueueId, kind: TimerKind) {
        if at_ms <= now_ms {
            self.due.push_back((vhost.clone(), q, kind));
        } else {
            self.set.insert((at_ms, vhost.clone(), q, kind));
        }
    }

    /// The earliest deadline still to come.
    pub fn first(&self) -> Option<u64> {
        self.set.first().map(|t| t.0)
    }

    /// Timers that are due and not yet handled.
    pub fn due_len(&self) -> usize {
        self.due.len()
    }

    /// Moves every timer whose deadline is at or before `now_ms` to the due list.
    fn take_due(&mut self, now_ms: u64) {
        while self.set.first().is_some_and(|t| t.0 <= now_ms) {
            let (_, v, q, k) = self.set.pop_first().expect("checked first");
            self.due.push_back((v, q, k));
        }
    }

    /// Up to [`TIMERS_PER_TURN_MAX`] due timers, oldest first; the ones handlers
    /// add back as due while these run wait for the next turn.
    fn pop_due_batch(&mut self) -> Vec<TimerEntry> {
        let n = self.due.len().min(TIMERS_PER_TURN_MAX);
        self.due.drain(..n).collect()
    }
}

impl Broker {
    /// When the next timer is due (ms since the epoch), for the io layer's sleep.
    /// After `handle_timeout(now)` this is always after `now`; timers that are
    /// due but not yet handled (the per-turn bound) are pending work instead
    /// ([`Broker::has_pending_work`]).
    pub fn poll_timeout(&self) -> Option<u64> {
        match (self.model.timers.first(), self.model.ack_flush.due_ms()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Fires the timers due at `now_ms` (at most [`TIMERS_PER_TURN_MAX`] of them;
    /// the rest are pending work for the next turns), then the work they made.
    /// Returns how many fired, for the io layer's stall report.
    pub fn handle_timeout(&mut self, now_ms: u64) -> usize {
        let now_ms = self.advance_clock(now_ms);
        self.flush_acks_if_due(now_ms);
        self.model.timers.take_due(now_ms);
        let fired = self.model.timers.due_len().min(TIMERS_PER_TURN_MAX);
        self.run_pending();
        debug_assert!(
            self.poll_timeout().is_none_or(|t| t > now_ms),
            "a timer was armed at or before now ({now_ms})"
        );
        fired
    }

    /// Runs one batch of due timers (part of every turn's pending work).
    pub(crate) fn fire_due_timers(&mut self) {
        if self.model.timers.due_len() == 0 {
            return;
        }
        for (vname, id, kind) in self.model.timers.pop_due_batch() {
            match kind {
                TimerKind::Head => self.expire_head(&vname, id),
                TimerKind::QueueExpires => self.check_queue_expiry(&vname, id),
                TimerKind::Delayed(x) => self.fire_delayed(&vname, &x),
            }
        }
    }
}
