//! The fake clock: a monotonic `now` in ms that only the test advances.
//!
//! The core never reads a clock; every input carries `now`. Tests hold one
//! [`FakeClock`] and pass [`FakeClock::now`] to each call, so a run is the same
//! at every replay and time-dependent behaviour (TTL, expiry, heartbeats,
//! delayed messages, consumer timeouts) happens exactly when the test says.

/// A monotonic millisecond clock advanced by hand.
#[derive(Debug, Clone, Copy)]
pub struct FakeClock {
    now: u64,
}

impl FakeClock {
    /// Starts at `start` ms (not 0: the core treats some 0s as "never").
    pub fn starting_at(start: u64) -> FakeClock {
        FakeClock { now: start }
    }

    /// The current time in ms.
    pub fn now(&self) -> u64 {
        self.now
    }

    /// Moves time forward by `ms` (0 is allowed: several inputs at one `now`).
    pub fn advance(&mut self, ms: u64) -> u64 {
        self.now += ms;
        self.now
    }
}

#[cfg(test)]
mod tests {
    use super::FakeClock;

    #[test]
    fn advances_only_when_told() {
        let mut c = FakeClock::starting_at(1_000);
        assert_eq!(c.now(), 1_000);
        assert_eq!(c.advance(0), 1_000);
        assert_eq!(c.advance(25), 1_025);
        assert_eq!(c.now(), 1_025);
    }
}
