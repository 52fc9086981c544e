//! The simulated world: its queues and exchange, the profiles a run uses, and
//! the simulation's clients as the model sees them.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use ringmq_codec::{short, FieldTable, Method};

use crate::core::model::ids::ConnId;

use super::client;

/// Queues: `q0`-`q2` plain, `q3` with `x-message-ttl: 0` (issue 15's livelock),
/// and with timers `qt` (TTL 40 ms), `qx` (expires after 300 ms unused) and
/// `qd` (bound to the delayed exchange `dx`).
pub const PLAIN: [&str; 3] = ["q0", "q1", "q2"];
pub const TTL_ZERO: &str = "q3";
pub const TTL: &str = "qt";
pub const TTL_MS: u64 = 40;
pub const EXPIRING: &str = "qx";
pub const EXPIRES_MS: u64 = 300;
pub const DELAYED_QUEUE: &str = "qd";
pub const DELAYED_EXCHANGE: &str = "dx";
/// Negotiated by clients that use heartbeats (seconds).
pub const HEARTBEAT_SECS: u16 = 1;
/// The broker-wide consumer timeout with timers.
pub const CONSUMER_TIMEOUT_MS: u64 = 700;

/// Channel 1 consumes, gets, acks and publishes (in confirm mode with confirms);
/// channel 2 publishes in a transaction.
pub const MAIN: u16 = 1;
pub const TX: u16 = 2;

/// What a run exercises.
#[derive(Debug, Clone, Copy)]
pub struct Profile {
    pub name: &'static str,
    /// fsync before confirms (group commit run by the simulation).
    pub sync: bool,
    /// Power loss at any step (needs `sync`).
    pub crashes: bool,
    /// Max-length policies change between steps: any message may be dropped.
    pub policies: bool,
    /// Publisher confirms on channel 1 and transactions on channel 2.
    pub confirms_and_tx: bool,
    /// TTL and expiring queues, heartbeats, consumer timeout, and time jumps of
    /// up to seconds.
    pub timers: bool,
    /// Delayed messages (`qd` through `dx`; needs `timers`).
    pub delayed: bool,
    pub steps: usize,
}

/// The seeded simulation as it was (issue 15): no fsync, clean restarts.
pub const BASIC: Profile = Profile {
    name: "basic",
    sync: false,
    crashes: false,
    policies: false,
    confirms_and_tx: false,
    timers: false,
    delayed: false,
    steps: 600,
};

pub const POLICIES: Profile = Profile {
    name: "policies",
    policies: true,
    ..BASIC
};

/// Group commit, power loss, confirms, transactions, timers (no delayed
/// messages: see [`CRASH_DELAYED`]).
pub const FULL: Profile = Profile {
    name: "full",
    sync: true,
    crashes: true,
    policies: false,
    confirms_and_tx: true,
    timers: true,
    delayed: false,
    steps: 600,
};

/// Timers with delayed messages, group commit, confirms, transactions and
/// clean restarts.
pub const TIMERS: Profile = Profile {
    name: "timers",
    crashes: false,
    delayed: true,
    ..FULL
};

/// Everything, delayed messages with power loss (a message routed by the
/// delayed exchange before a crash was routed again after it, a second copy
/// delivered unflagged: `sim::delayed_messages_and_power_loss`).
pub const CRASH_DELAYED: Profile = Profile {
    name: "crash-delayed",
    delayed: true,
    ..FULL
};

impl Profile {
    /// Every queue a client declares at connect.
    pub fn queues(&self) -> Vec<&'static str> {
        let mut q = PLAIN.to_vec();
        q.push(TTL_ZERO);
        if self.timers {
            q.extend([TTL, EXPIRING]);
        }
        if self.delayed {
            q.push(DELAYED_QUEUE);
        }
        q
    }
}

/// The frames that declare `queue` on channel 1 (with its arguments).
pub fn declare(queue: &str) -> Vec<u8> {
    let mut args = FieldTable::new();
    match queue {
        TTL_ZERO => args.insert(short!("x-message-ttl"), 0i64),
        TTL => args.insert(short!("x-message-ttl"), TTL_MS as i64),
        EXPIRING => args.insert(short!("x-expires"), EXPIRES_MS as i64),
        _ => {}
    }
    let args = if args.0.is_empty() { Vec::new() } else { args.to_bytes() };
    let mut out = client::queue_declare(MAIN, queue, &args);
    if queue == DELAYED_QUEUE {
        let mut x = FieldTable::new();
        x.insert(short!("x-delayed-type"), "direct");
        let x = x.to_bytes();
        out.extend(client::method(
            MAIN,
            Method::ExchangeDeclare(ringmq_codec::ExchangeDeclare {
                ticket: 0,
                exchange: client::name(DELAYED_EXCHANGE),
                kind: short!("x-delayed-message"),
                passive: false,
                durable: true,
                auto_delete: false,
                internal: false,
                no_wait: false,
                arguments: ringmq_codec::Table::parse(&x).expect("own table"),
            }),
        ));
        out.extend(client::method(
            MAIN,
            Method::QueueBind(ringmq_codec::QueueBind {
                ticket: 0,
                queue: client::name(DELAYED_QUEUE),
                exchange: client::name(DELAYED_EXCHANGE),
                routing_key: client::name(DELAYED_QUEUE),
                no_wait: false,
                arguments: ringmq_codec::Table::EMPTY,
            }),
        ));
    }
    out
}

/// A delivery the client holds.
#[derive(Debug, Clone, Copy)]
pub struct Held {
    pub msg: u64,
    /// When the client got it.
    pub at: u64,
    /// When the broker may have delivered it at the earliest: before `at` when
    /// the client's output was held for a group commit.
    pub since: u64,
    /// Its queue was deleted: the broker forgets the message but the channel
    /// keeps the tag (an ack of it is harmless; the consumer timeout counts it).
    pub orphan: bool,
}

/// One simulated client, as the simulation tracks it.
pub struct SimClient {
    pub id: ConnId,
    /// Since when the broker holds this client's output for a group commit
    /// (behind a durable declare's reply): what it receives now may have been
    /// sent (delivered, closed) since then.
    pub held_since: Option<u64>,
    pub open: bool,
    /// Heartbeats negotiated (seconds; 0 = off).
    pub heartbeat: u16,
    /// Stopped sending anything (the broker must close it by heartbeat).
    pub silent: bool,
    /// When it last sent a frame.
    pub last_sent: u64,
    /// Channel 1 deliveries not yet settled: tag -> message.
    pub unacked: BTreeMap<u64, Held>,
    pub consuming: BTreeSet<&'static str>,
    /// Channel 1 is in confirm mode: publish seq -> message, unconfirmed.
    pub confirm: bool,
    pub next_seq: u64,
    pub unconfirmed: BTreeMap<u64, u64>,
    /// Channel 2's open transaction, and commits sent awaiting commit-ok.
    pub tx: Vec<u64>,
    pub committing: VecDeque<Vec<u64>>,
}

impl SimClient {
    pub fn new(id: ConnId, heartbeat: u16, now: u64) -> SimClient {
        SimClient {
            id,
            held_since: None,
            open: true,
            heartbeat,
            silent: false,
            last_sent: now,
            unacked: BTreeMap::new(),
            consuming: BTreeSet::new(),
            confirm: false,
            next_seq: 1,
            unconfirmed: BTreeMap::new(),
            tx: Vec::new(),
            committing: VecDeque::new(),
        }
    }
}
