//! Message counters and their rates, for the management API and `/metrics`.
//!
//! The hot path only increments plain `u64` fields of a [`MsgCounters`] that is
//! already in hand (the queue, exchange or channel the path touches anyway): no
//! allocation, no extra lookup. Rates are computed by [`Broker::handle_stats_tick`]
//! on a timer (RabbitMQ's `collect_statistics_interval`, 5 s), never per message.
//!
//! Vhost totals are RabbitMQ's aggregates of channel stats: each tick adds what
//! every live channel counted since the last tick, and a channel that goes away
//! hands over its unflushed rest ([`Broker::retire_channel_stats`]), so totals
//! stay exact. Objects that never counted anything keep no rate state (it is
//! boxed on first activity), so 100,000 unused queues cost 13 counters each.

use std::collections::VecDeque;

/// How often rates are recomputed (RabbitMQ's `collect_statistics_interval`).
pub const STATS_INTERVAL_MS: u64 = 5_000;
/// Samples of vhost totals kept for `*_details.samples` (10 minutes at 5 s,
/// RabbitMQ's basic retention).
pub const HISTORY_SAMPLES_MAX: usize = 120;

macro_rules! counters {
    ($($f:ident),* $(,)?) => {
        /// Message counters of one object; which fields apply depends on the kind
        /// (exchanges count `publish_in`/`publish_out`, queues `publish`, ...).
        #[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
        pub struct MsgCounters {
            $(pub $f: u64,)*
        }

        impl MsgCounters {
            /// All zero (what [`Default`] gives), usable in a `static`.
            pub const ZERO: MsgCounters = MsgCounters { $($f: 0,)* };

            /// The field names, in [`MsgCounters::values`] order.
            pub const NAMES: &'static [&'static str] = &[$(stringify!($f)),*];

            pub fn values(&self) -> [u64; MsgCounters::NAMES.len()] {
                [$(self.$f),*]
            }

            pub fn add(&mut self, o: &MsgCounters) {
                $(self.$f += o.$f;)*
            }

            /// `self - o`, field by field (never below zero).
            pub fn since(&self, o: &MsgCounters) -> MsgCounters {
                MsgCounters { $($f: self.$f.saturating_sub(o.$f),)* }
            }
        }
    };
}

counters!(
    publish,
    publish_in,
    publish_out,
    confirm,
    return_unroutable,
    drop_unroutable,
    deliver,
    deliver_no_ack,
    get,
    get_no_ack,
    get_empty,
    ack,
    redeliver,
);

/// Number of counter fields.
pub const COUNTERS: usize = MsgCounters::NAMES.len();

impl MsgCounters {
    /// RabbitMQ's derived `deliver_get`.
    pub fn deliver_get(&self) -> u64 {
        self.deliver + self.deliver_no_ack + self.get + self.get_no_ack
    }
}

/// Rates of an object that was active lately.
#[derive(Debug, Clone)]
pub struct RateState {
    /// The counters at the last tick.
    pub prev: MsgCounters,
    /// Per second, over the last interval.
    pub rate: [f64; COUNTERS],
}

/// Counters plus, for active objects, rates.
#[derive(Debug, Default, Clone)]
pub struct ObjStats {
    pub c: MsgCounters,
    pub rates: Option<Box<RateState>>,
}

impl ObjStats {
    /// Updates the rates from the counters; returns what was counted since the
    /// last tick.
    pub fn tick(&mut self, interval_ms: u64) -> MsgCounters {
        let prev = self.rates.as_ref().map_or_else(MsgCounters::default, |r| r.prev);
        let delta = self.c.since(&prev);
        if delta == MsgCounters::default() {
            // Idle: rates go to zero; the baseline stays for the next burst. An
            // object that never counted anything has no rate state at all.
            if let Some(r) = self.rates.as_mut() {
                r.rate = [0.0; COUNTERS];
            }
            return delta;
        }
        let secs = interval_ms.max(1) as f64 / 1000.0;
        let d = delta.values();
        let state = self.rates.get_or_insert_with(|| {
            Box::new(RateState {
                prev: MsgCounters::default(),
                rate: [0.0; COUNTERS],
            })
        });
        for (r, v) in state.rate.iter_mut().zip(d) {
            *r = v as f64 / secs;
        }
        state.prev = self.c;
        delta
    }

    /// The rate of counter `i` (index into [`MsgCounters::NAMES`]).
    pub fn rate(&self, i: usize) -> f64 {
        self.rates.as_ref().map_or(0.0, |r| r.rate[i])
    }

    /// What was counted since the last tick (handed to the vhost when a channel goes).
    pub fn unflushed(&self) -> MsgCounters {
        let prev = self.rates.as_ref().map_or_else(MsgCounters::default, |r| r.prev);
        self.c.since(&prev)
    }
}

/// Byte counters of a connection (RabbitMQ's `recv_oct`/`send_oct`).
#[derive(Debug, Default, Clone, Copy)]
pub struct ConnStats {
    pub recv_oct: u64,
    pub send_oct: u64,
    /// Reads and writes of the socket (RabbitMQ's `recv_cnt`/`send_cnt`).
    pub recv_cnt: u64,
    pub send_cnt: u64,
    /// Previous values and rates, from the last tick.
    pub prev_recv_oct: u64,
    pub prev_send_oct: u64,
    pub recv_oct_rate: f64,
    pub send_oct_rate: f64,
}

/// One sample of a vhost's (or the node's) totals, for history.
#[derive(Debug, Clone, Copy, Default)]
pub struct Sample {
    pub at_ms: u64,
    pub counters: MsgCounters,
    pub messages_ready: u64,
    pub messages_unacknowledged: u64,
}

/// A vhost's aggregated message stats with a short history.
#[derive(Debug, Default)]
pub struct VhostStats {
    /// Totals of everything this vhost's channels counted.
    pub totals: MsgCounters,
    /// Rates over the last interval.
    pub rate: [f64; COUNTERS],
    pub messages_ready: u64,
    pub messages_unacknowledged: u64,
    pub messages_ready_rate: f64,
    pub messages_unacknowledged_rate: f64,
    /// Oldest first, at most [`HISTORY_SAMPLES_MAX`].
    pub history: VecDeque<Sample>,
}

/// Node-wide totals (the sum of all vhosts), kept by the broker.
#[derive(Debug, Default)]
pub struct NodeStats {
    pub vhosts: VhostStats,
    pub last_tick_ms: u64,
    /// Connections, channels and queues created and closed, for RabbitMQ's
    /// `churn_rates`.
    pub churn: Churn,
    /// AMQP logins that succeeded and failed (RabbitMQ's `auth_attempts`).
    pub logins_ok: u64,
    pub logins_failed: u64,
}

/// How fast a queue's depth changes (`messages_ready_details` and friends),
/// from its counts at the last two stats ticks.
#[derive(Debug, Default, Clone, Copy)]
pub struct DepthRates {
    prev_ready: u64,
    prev_unacked: u64,
    pub ready_rate: f32,
    pub unacked_rate: f32,
}

impl DepthRates {
    /// All zero (what [`Default`] gives), usable in a `static`.
    pub const ZERO: DepthRates = DepthRates {
        prev_ready: 0,
        prev_unacked: 0,
        ready_rate: 0.0,
        unacked_rate: 0.0,
    };

    pub(in crate::core) fn tick(&mut self, ready: u64, unacked: u64, interval_ms: u64) {
        let secs = interval_ms.max(1) as f64 / 1000.0;
        self.ready_rate = ((ready as f64 - self.prev_ready as f64) / secs) as f32;
        self.unacked_rate = ((unacked as f64 - self.prev_unacked as f64) / secs) as f32;
        self.prev_ready = ready;
        self.prev_unacked = unacked;
    }
}

/// RabbitMQ's `churn_rates`: counts since start and their rates per second,
/// updated on the stats tick.
#[derive(Debug, Default)]
pub struct Churn {
    pub counts: [u64; Churn::NAMES.len()],
    prev: [u64; Churn::NAMES.len()],
    pub rates: [f64; Churn::NAMES.len()],
}

impl Churn {
    pub const NAMES: [&'static str; 7] = [
        "connection_created",
        "connection_closed",
        "channel_created",
        "channel_closed",
        "queue_declared",
        "queue_created",
        "queue_deleted",
    ];
    pub const CONNECTION_CREATED: usize = 0;
    pub const CONNECTION_CLOSED: usize = 1;
    pub const CHANNEL_CREATED: usize = 2;
    pub const CHANNEL_CLOSED: usize = 3;
    pub const QUEUE_DECLARED: usize = 4;
    pub const QUEUE_CREATED: usize = 5;
    pub const QUEUE_DELETED: usize = 6;

    pub fn bump(&mut self, i: usize) {
        self.counts[i] += 1;
    }

    pub(in crate::core) fn tick(&mut self, interval_ms: u64) {
        let secs = interval_ms.max(1) as f64 / 1000.0;
        for i in 0..Self::NAMES.len() {
            self.rates[i] = (self.counts[i] - self.prev[i]) as f64 / secs;
            self.prev[i] = self.counts[i];
        }
    }
}

impl VhostStats {
    pub(in crate::core) fn push_sample(
        &mut self,
        at_ms: u64,
        delta: &MsgCounters,
        interval_ms: u64,
        ready: u64,
        unacked: u64,
    ) {
        self.totals.add(delta);
        let secs = interval_ms.max(1) as f64 / 1000.0;
        for (r, v) in self.rate.iter_mut().zip(delta.values()) {
            *r = v as f64 / secs;
        }
        self.messages_ready_rate = (ready as f64 - self.messages_ready as f64) / secs;
        self.messages_unacknowledged_rate = (unacked as f64 - self.messages_unacknowledged as f64) / secs;
        self.messages_ready = ready;
        self.messages_unacknowledged = unacked;
        if self.history.len() == HISTORY_SAMPLES_MAX {
            self.history.pop_front();
        }
        self.history.push_back(Sample {
            at_ms,
            counters: self.totals,
            messages_ready: ready,
            messages_unacknowledged: unacked,
        });
    }

    /// Counter `i`'s rate.
    pub fn rate_of(&self, i: usize) -> f64 {
        self.rate[i]
    }
}

/// Counts one delivery to a consumer (on its queue's or its channel's counters).
#[inline]
pub(crate) fn count_delivery(c: &mut MsgCounters, no_ack: bool, redelivered: bool) {
    if no_ack {
        c.deliver_no_ack += 1;
    } else {
        c.deliver += 1;
    }
    c.redeliver += u64::from(redelivered);
}

/// Counts one message taken by a get (on its queue's or its channel's counters).
pub(crate) fn count_get(c: &mut MsgCounters, no_ack: bool, redelivered: bool) {
    if no_ack {
        c.get_no_ack += 1;
    } else {
        c.get += 1;
    }
    c.redeliver += u64::from(redelivered);
}

/// Index of a counter by name.
pub fn counter_index(name: &str) -> Option<usize> {
    MsgCounters::NAMES.iter().position(|n| *n == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_over_an_interval_and_idle_objects_drop_state() {
        let mut s = ObjStats::default();
        s.c.publish = 50;
        let d = s.tick(5_000);
        assert_eq!(d.publish, 50);
        assert_eq!(s.rate(counter_index("publish").unwrap()), 10.0);
        // Nothing new: rate goes to zero, state kept as the baseline.
        assert_eq!(s.tick(5_000), MsgCounters::default());
        assert_eq!(s.rate(0), 0.0);
        s.c.publish += 5;
        assert_eq!(s.unflushed().publish, 5);
        assert_eq!(s.tick(5_000).publish, 5);
        assert_eq!(s.rate(0), 1.0);
        let fresh = ObjStats::default();
        assert!(fresh.rates.is_none(), "an idle object holds no rate state");
    }

    #[test]
    fn vhost_history_is_bounded() {
        let mut v = VhostStats::default();
        let d = MsgCounters {
            deliver: 5,
            ..Default::default()
        };
        for i in 0..(HISTORY_SAMPLES_MAX as u64 + 10) {
            v.push_sample(i * 5000, &d, 5000, i, 0);
        }
        assert_eq!(v.history.len(), HISTORY_SAMPLES_MAX);
        assert_eq!(v.totals.deliver, 5 * (HISTORY_SAMPLES_MAX as u64 + 10));
        assert_eq!(v.rate_of(counter_index("deliver").unwrap()), 1.0);
        assert_eq!(v.messages_ready_rate, 0.2);
    }
}
