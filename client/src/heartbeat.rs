//! Heartbeats as a state machine without a clock of its own: the connection
//! tells it when bytes went out and came in (`handle_*`), and asks what to do
//! at `now` (`poll`) and when to ask next (`poll_timeout`).
//!
//! We send one when we have sent nothing for half the interval (any frame
//! counts), and call the peer dead after two intervals without a byte from it:
//! the AMQP 0-9-1 spec's "two missed heartbeats", RabbitMQ's rule too.

use std::time::{Duration, Instant};

/// What [`Heartbeat::poll`] says to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeartbeatAction {
    Idle,
    /// Send a heartbeat frame now.
    Send,
    /// Nothing came from the peer for two intervals: close the connection.
    PeerDead,
}

#[derive(Debug, Clone)]
pub struct Heartbeat {
    interval: Duration,
    interval_secs: u16,
    last_recv: Instant,
    last_sent: Instant,
}

impl Heartbeat {
    /// `interval_secs` is the negotiated value (not 0).
    pub fn new(interval_secs: u16, now: Instant) -> Heartbeat {
        assert!(interval_secs > 0, "heartbeats off is no Heartbeat");
        Heartbeat {
            interval: Duration::from_secs(interval_secs.into()),
            interval_secs,
            last_recv: now,
            last_sent: now,
        }
    }

    pub fn interval_secs(&self) -> u16 {
        self.interval_secs
    }

    pub fn handle_received(&mut self, now: Instant) {
        self.last_recv = now;
    }

    pub fn handle_sent(&mut self, now: Instant) {
        self.last_sent = now;
    }

    pub fn poll(&mut self, now: Instant) -> HeartbeatAction {
        if now >= self.last_recv + 2 * self.interval {
            return HeartbeatAction::PeerDead;
        }
        if now >= self.last_sent + self.interval / 2 {
            // Counted as sent when queued: the caller flushes right after.
            self.last_sent = now;
            return HeartbeatAction::Send;
        }
        HeartbeatAction::Idle
    }

    /// The next instant `poll` may have something to do.
    pub fn poll_timeout(&self) -> Instant {
        (self.last_sent + self.interval / 2).min(self.last_recv + 2 * self.interval)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sends_at_half_the_interval_and_declares_a_silent_peer_dead() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let mut hb = Heartbeat::new(10, t0);
        assert_eq!(hb.poll(t0 + s(4)), HeartbeatAction::Idle);
        assert_eq!(hb.poll_timeout(), t0 + s(5));
        assert_eq!(hb.poll(t0 + s(5)), HeartbeatAction::Send);
        assert_eq!(hb.poll(t0 + s(6)), HeartbeatAction::Idle, "sent at 5");
        // Our own traffic postpones the next heartbeat.
        hb.handle_sent(t0 + s(9));
        assert_eq!(hb.poll(t0 + s(12)), HeartbeatAction::Idle);
        assert_eq!(hb.poll(t0 + s(14)), HeartbeatAction::Send);
        // The peer's traffic keeps it alive; silence for 2 intervals kills it.
        hb.handle_received(t0 + s(15));
        assert_eq!(hb.poll(t0 + s(34)), HeartbeatAction::Send);
        assert_eq!(hb.poll(t0 + s(35)), HeartbeatAction::PeerDead);
        assert_eq!(hb.poll_timeout(), t0 + s(35));
    }
}
