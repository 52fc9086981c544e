//! The core's timers (head TTL, queue expiry, delayed exchanges); the io
//! contract's `poll_timeout`/`handle_timeout` (`crate::core::contract`) run them.

use crate::core::model::ids::VhostName;
use ringmq_codec::ShortString;
use std::collections::{BTreeSet, VecDeque};

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
type TimerEntry = (VhostName, QueueId, TimerKind);

/// The core's timers. A deadline in the future waits in `set`, ordered; one at
/// or before `now` goes to `due`, which is work for the current or next turn and
/// never a deadline again: the io layer sleeps until [`Timers::first`], which is
/// therefore always after the `now` it last passed in (issue 15: a TTL-0 head
/// re-armed at `now` made `handle_timeout` pop it again forever).
#[derive(Debug, Default)]
pub(crate) struct Timers {
    set: BTreeSet<(u64, VhostName, QueueId, TimerKind)>,
    due: VecDeque<TimerEntry>,
}

impl Timers {
    /// Arms a timer for `at_ms`; one at or before `now_ms` is due at once (run in
    /// this or the next turn, never re-armed for the same `now`).
    pub fn add(&mut self, at_ms: u64, now_ms: u64, vhost: &VhostName, q: QueueId, kind: TimerKind) {
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
    pub(in crate::core) fn take_due(&mut self, now_ms: u64) {
        while self.set.first().is_some_and(|t| t.0 <= now_ms) {
            let (_, v, q, k) = self.set.pop_first().expect("checked first");
            self.due.push_back((v, q, k));
        }
    }

    /// Up to [`TIMERS_PER_TURN_MAX`] due timers, oldest first; the ones handlers
    /// add back as due while these run wait for the next turn.
    pub(in crate::core) fn pop_due_batch(&mut self) -> Vec<TimerEntry> {
        let n = self.due.len().min(TIMERS_PER_TURN_MAX);
        self.due.drain(..n).collect()
    }
}
