//! The model's state: what the broker should hold, by logical name (`q0`,
//! `x1`, `p0`; the client maps them to real names), and the read-only questions
//! asked of it (effective settings, routing). The changes are in `semantics.rs`.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

/// Queue names the operations pick from: few, so that declares, deletes and
/// re-declares of one name happen often.
pub const QUEUES: [&str; 5] = ["q0", "q1", "q2", "q3", "q4"];
/// Exchanges with their kind (fixed per name, so a re-declare is always equal).
pub const EXCHANGES: [(&str, XKind); 3] = [("x0", XKind::Direct), ("x1", XKind::Fanout), ("x2", XKind::Topic)];
/// Binding keys: direct keys and topic patterns. None is a queue name, so a
/// dead letter that keeps a queue name as its key matches only `#`.
pub const BINDING_KEYS: [&str; 6] = ["a", "b", "a.*", "#", "*.b", "a.#"];
/// Routing keys of publishes to the named exchanges.
pub const ROUTING_KEYS: [&str; 4] = ["a", "b", "a.b", "c"];
/// Policy names; a policy's priority is its index, so no two tie.
pub const POLICIES: [&str; 2] = ["p0", "p1"];
/// A dead-letter exchange that is never declared (dead letters to it vanish).
pub const MISSING_EXCHANGE: &str = "nx";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum XKind {
    Direct,
    Fanout,
    Topic,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Overflow {
    DropHead,
    RejectPublish,
}

impl Overflow {
    pub fn as_str(self) -> &'static str {
        match self {
            Overflow::DropHead => "drop-head",
            Overflow::RejectPublish => "reject-publish",
        }
    }
}

/// Why a message died (x-death `reason`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    Rejected,
    MaxLen,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Rejected => "rejected",
            Reason::MaxLen => "maxlen",
        }
    }
}

/// The length and dead-letter settings a queue's arguments or a policy give.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Limits {
    pub max_len: Option<u32>,
    pub overflow: Option<Overflow>,
    /// A logical exchange name, "" (the default exchange) or [`MISSING_EXCHANGE`].
    pub dlx: Option<String>,
    /// A logical queue name.
    pub dlrk: Option<String>,
}

impl Limits {
    pub fn is_empty(&self) -> bool {
        *self == Limits::default()
    }
}

/// A queue's effective settings (arguments and policy combined).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    pub max_len: Option<u32>,
    pub overflow: Overflow,
    pub dlx: Option<String>,
    pub dlrk: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Policy {
    /// The queues its pattern matches (the client builds the regular expression).
    pub queues: BTreeSet<String>,
    pub priority: i64,
    pub def: Limits,
}

/// A message as published or dead-lettered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Msg {
    pub body: String,
    pub persistent: bool,
    /// Its routing key: as published, or the dead-letter routing key it was
    /// last dead-lettered with (a dead letter without a dead-letter routing
    /// key is routed by it).
    pub key: String,
    /// x-death as (queue, reason, count), newest first, one entry per pair.
    pub deaths: Vec<(String, Reason, u32)>,
}

impl Msg {
    /// x-death as the client shows it: `q1:maxlen:2`, newest first.
    pub fn x_death(&self) -> Vec<String> {
        self.deaths
            .iter()
            .map(|(q, r, n)| format!("{q}:{}:{n}", r.as_str()))
            .collect()
    }
}

/// A message in a queue. `seq` is its position: queue order is `seq` order,
/// requeued messages included (they go back to where they were).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub seq: u64,
    pub msg: Msg,
    /// Delivered before: its next delivery says redelivered.
    pub redelivered: bool,
    pub unacked: bool,
}

#[derive(Clone, Debug)]
pub struct Queue {
    /// Tells incarnations of one name apart: a delivery of a deleted queue is
    /// settled as a no-op even after the name is declared again.
    pub inc: u64,
    pub durable: bool,
    pub args: Limits,
    pub entries: BTreeMap<u64, Entry>,
    /// Done (acked, rejected, purged, dropped) but maybe not yet in the ack
    /// file: after kill -9 each may come back. Emptied by a flush.
    pub maybe: BTreeMap<u64, Entry>,
}

impl Queue {
    pub fn ready(&self) -> usize {
        self.entries.values().filter(|e| !e.unacked).count()
    }

    pub fn head(&self) -> Option<u64> {
        self.entries.values().find(|e| !e.unacked).map(|e| e.seq)
    }
}

/// A delivery not yet settled, as a channel holds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unacked {
    pub queue: String,
    pub inc: u64,
    pub seq: u64,
}

#[derive(Clone, Debug, Default)]
pub struct Chan {
    pub next_tag: u64,
    pub unacked: BTreeMap<u64, Unacked>,
}

impl Chan {
    pub fn fresh() -> Chan {
        Chan {
            next_tag: 1,
            unacked: BTreeMap::new(),
        }
    }
}

/// A dead letter waiting to be routed (the broker routes them after each
/// batch of input, in order).
#[derive(Clone, Debug)]
pub struct DeadLetter {
    pub dlx: String,
    pub key: String,
    pub msg: Msg,
}

/// Channel 0 is the confirm channel every operation without a channel of its
/// own uses; 1.. are plain channels that hold deliveries.
pub const CHANNELS: usize = 3;

/// How often the interesting paths were taken (for the run's summary).
#[derive(Clone, Copy, Debug, Default)]
pub struct Counts {
    pub dead_lettered: usize,
    pub dropped_head: usize,
    pub refused_publish: usize,
    pub requeued: usize,
    /// Messages that may come back, summed over kill -9 restarts.
    pub maybe_at_kill: usize,
}

#[derive(Clone, Debug)]
pub struct Model {
    pub counts: Counts,
    pub queues: BTreeMap<String, Queue>,
    pub exchanges: BTreeSet<String>,
    /// (exchange, queue, key).
    pub bindings: BTreeSet<(String, String, String)>,
    pub policies: BTreeMap<String, Policy>,
    pub chans: Vec<Chan>,
    pub dead: VecDeque<DeadLetter>,
    pub next_seq: u64,
    pub next_inc: u64,
    pub next_msg: u64,
}

impl Default for Model {
    fn default() -> Self {
        Model {
            counts: Counts::default(),
            queues: BTreeMap::new(),
            exchanges: BTreeSet::new(),
            bindings: BTreeSet::new(),
            policies: BTreeMap::new(),
            chans: (0..CHANNELS).map(|_| Chan::fresh()).collect(),
            dead: VecDeque::new(),
            next_seq: 1,
            next_inc: 1,
            next_msg: 1,
        }
    }
}

pub fn xkind(name: &str) -> Option<XKind> {
    EXCHANGES.iter().find(|(n, _)| *n == name).map(|(_, k)| *k)
}

/// AMQP topic matching: `*` is one word, `#` zero or more.
pub fn topic_matches(pattern: &str, key: &str) -> bool {
    fn go(p: &[&str], k: &[&str]) -> bool {
        match p.split_first() {
            None => k.is_empty(),
            Some((&"#", rest)) => (0..=k.len()).any(|i| go(rest, &k[i..])),
            Some((w, rest)) => k
                .split_first()
                .is_some_and(|(kw, krest)| (*w == "*" || w == kw) && go(rest, krest)),
        }
    }
    let p: Vec<&str> = pattern.split('.').collect();
    let k: Vec<&str> = key.split('.').collect();
    go(&p, &k)
}

impl Model {
    /// The policy that applies to `queue`: the highest priority of those that match.
    pub fn policy_for(&self, queue: &str) -> Option<&Policy> {
        self.policies
            .values()
            .filter(|p| p.queues.contains(queue))
            .max_by_key(|p| p.priority)
    }

    /// Arguments and policy combined as RabbitMQ does: the lower length limit,
    /// otherwise the argument wins key by key.
    pub fn settings(&self, queue: &str) -> Settings {
        let q = &self.queues[queue];
        let empty = Limits::default();
        let p = self.policy_for(queue).map_or(&empty, |p| &p.def);
        let max_len = match (q.args.max_len, p.max_len) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        Settings {
            max_len,
            overflow: q.args.overflow.or(p.overflow).unwrap_or(Overflow::DropHead),
            dlx: q.args.dlx.clone().or_else(|| p.dlx.clone()),
            dlrk: q.args.dlrk.clone().or_else(|| p.dlrk.clone()),
        }
    }

    /// The queues a message published to `exchange` with `key` reaches.
    pub fn route(&self, exchange: &str, key: &str) -> BTreeSet<String> {
        if exchange.is_empty() {
            return self.queues.keys().filter(|q| *q == key).cloned().collect();
        }
        let Some(kind) = xkind(exchange).filter(|_| self.exchanges.contains(exchange)) else {
            return BTreeSet::new();
        };
        self.bindings
            .iter()
            .filter(|(x, _, bk)| {
                x == exchange
                    && match kind {
                        XKind::Direct => bk == key,
                        XKind::Fanout => true,
                        XKind::Topic => topic_matches(bk, key),
                    }
            })
            .map(|(_, q, _)| q.clone())
            .collect()
    }

    /// Messages the next kill -9 may bring back (done, maybe not on disk).
    pub fn maybe_count(&self) -> usize {
        self.queues.values().map(|q| q.maybe.len()).sum()
    }
}
