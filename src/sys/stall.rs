//! Loop-turn timing, so an operator sees a stall (issue 15: a livelocked timer
//! loop served nothing and said nothing). Every call into the core that the loop
//! makes (an io_uring driver turn, input from a connection, the timers, deferred
//! work, a group commit's completion, the stats tick) is one turn: a turn longer
//! than [`LOOP_TURN_WARN`] is logged at WARN with what it was doing and how many
//! items it handled, and the longest turn since start is a metric
//! (`ringmq_loop_turn_longest_seconds`). The clock is read here, in the io
//! layer; the core never reads it.

use std::cell::Cell;
use std::time::{Duration, Instant};

/// A loop turn longer than this is logged at WARN: heartbeats are sent from the
/// same loop, and a turn this long already shows as latency to every client.
pub(crate) const LOOP_TURN_WARN: Duration = Duration::from_millis(100);

/// What one shard thread knows about its turns.
#[derive(Debug, Default)]
pub(crate) struct TurnWatch {
    longest_us: Cell<u64>,
    slow: Cell<u64>,
}

impl TurnWatch {
    /// Starts timing a turn.
    pub fn start(&self) -> Instant {
        Instant::now()
    }

    /// Ends the turn begun at `started`: `what` names the handler and `items`
    /// counts what it handled (bytes, completions, timers), for the log line.
    pub fn end(&self, started: Instant, what: &'static str, items: usize) {
        let took = started.elapsed();
        let us = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        if us > self.longest_us.get() {
            self.longest_us.set(us);
        }
        if took > LOOP_TURN_WARN {
            self.slow.set(self.slow.get() + 1);
            tracing::warn!(
                handler = what,
                items,
                took_ms = u64::try_from(took.as_millis()).unwrap_or(u64::MAX),
                "slow loop turn: nothing else on this shard ran meanwhile"
            );
        }
    }

    /// The longest turn since start.
    pub fn longest(&self) -> Duration {
        Duration::from_micros(self.longest_us.get())
    }

    /// Turns longer than [`LOOP_TURN_WARN`] since start.
    pub fn slow_count(&self) -> u64 {
        self.slow.get()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_longest_turn_and_counts_slow_ones() {
        let w = TurnWatch::default();
        assert_eq!(w.longest(), Duration::ZERO);
        w.end(w.start(), "quick", 3);
        assert_eq!(w.slow_count(), 0);
        let started = Instant::now() - (LOOP_TURN_WARN + Duration::from_millis(5));
        w.end(started, "slow", 7);
        assert_eq!(w.slow_count(), 1);
        assert!(w.longest() > LOOP_TURN_WARN);
        let before = w.longest();
        w.end(w.start(), "quick", 0);
        assert_eq!(w.longest(), before, "a shorter turn does not lower the maximum");
    }
}
