//! The core's timers (head TTL, queue expiry, delayed exchanges, a failed
//! take tried again); the io
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
    /// A queue's next message could not be taken for a consumer (a read or its
    /// delivered mark failed: out of descriptors, EIO): delivery is tried again,
    /// since no other event may come to the queue ([`TAKE_RETRY_MS`]).
    TakeRetry,
}

/// How long after a failed take a queue's delivery is tried again. Whole
/// seconds on the clock, so every failure within one second arms the same
/// timer (the set holds it once), and a failing store is read once a second,
/// not once per publish.
pub const TAKE_RETRY_MS: u64 = 1_000;

/// The deadline of the retry for a take that failed at `now_ms`: the whole
/// second after the next one, so it is at least [`TAKE_RETRY_MS`] away.
pub(crate) fn take_retry_at(now_ms: u64) -> u64 {
    (now_ms / TAKE_RETRY_MS + 2) * TAKE_RETRY_MS
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Every failure within one second arms one retry, at least a retry
    /// interval later.
    #[test]
    fn a_take_retry_is_one_per_second_and_never_sooner_than_the_interval() {
        for now in [0, 1, 999, 1_000, 1_500, 123_456_789] {
            let at = take_retry_at(now);
            assert!(at >= now + TAKE_RETRY_MS, "{now} -> {at}");
            assert!(at < now + 2 * TAKE_RETRY_MS + 1, "{now} -> {at}");
            assert_eq!(at % TAKE_RETRY_MS, 0);
        }
        assert_eq!(take_retry_at(1_000), take_retry_at(1_999));
        let mut t = Timers::default();
        let v = VhostName::new("/").unwrap();
        for now in 5_000..5_900 {
            t.add(take_retry_at(now), now, &v, QueueId(1), TimerKind::TakeRetry);
        }
        assert_eq!(t.set.len(), 1, "failures in one second arm one retry");
    }
}
