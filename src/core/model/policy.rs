//! Policies as the model holds and applies them: a vhost's policies and
//! operator policies ([`PolicySet`]), which one applies to a queue or an
//! exchange, and how they combine with a queue's arguments into its effective
//! settings ([`effective`]), as the arguments alone do in `queue::args`.
//!
//! A policy is (name, pattern, apply-to, priority, definition). Of the policies
//! whose pattern matches an object's name and whose apply-to covers its kind, the
//! one with the highest priority applies (ties: the first name in byte order, so
//! the choice is deterministic). Operator policies are matched the same way and
//! cap numeric limits; for those keys the lower of argument, policy and operator
//! policy wins, as in RabbitMQ. For the other keys an explicit queue argument
//! wins over the policy.
//!
//! Policies are evaluated when an object is created (here) and when a policy
//! changes (`core::policy::apply`), never per message: the result is stored in
//! the queue's `settings`. Validating a definition into a [`Policy`]
//! (`Policy::compile`, RabbitMQ's keys and error texts), the policy files and
//! the operations that change them are the policy folder's (`core::policy`).

use std::sync::Arc;

use ringmq_codec::{FieldTable, ShortString};
use serde::{Deserialize, Serialize};
use serde_json::{Map as JsonMap, Value};

use crate::core::model::queue::args::{DeadLetterStrategy, Overflow, QueueSettings, QueueType};
use crate::core::model::queue::Queue;

/// What kind of objects a policy applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ApplyTo {
    #[default]
    All,
    Queues,
    Exchanges,
    ClassicQueues,
    QuorumQueues,
    Streams,
}

impl ApplyTo {
    pub fn parse(s: &str) -> Option<ApplyTo> {
        Some(match s {
            "all" => ApplyTo::All,
            "queues" => ApplyTo::Queues,
            "exchanges" => ApplyTo::Exchanges,
            "classic_queues" => ApplyTo::ClassicQueues,
            "quorum_queues" => ApplyTo::QuorumQueues,
            "streams" => ApplyTo::Streams,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ApplyTo::All => "all",
            ApplyTo::Queues => "queues",
            ApplyTo::Exchanges => "exchanges",
            ApplyTo::ClassicQueues => "classic_queues",
            ApplyTo::QuorumQueues => "quorum_queues",
            ApplyTo::Streams => "streams",
        }
    }

    /// Whether a policy with this apply-to covers queues of this type.
    fn covers_queues(self, kind: QueueType) -> bool {
        match self {
            ApplyTo::All | ApplyTo::Queues => true,
            ApplyTo::ClassicQueues => kind == QueueType::Classic,
            ApplyTo::QuorumQueues => kind == QueueType::Quorum,
            ApplyTo::Streams => kind == QueueType::Stream,
            ApplyTo::Exchanges => false,
        }
    }

    fn covers_exchanges(self) -> bool {
        matches!(self, ApplyTo::All | ApplyTo::Exchanges)
    }
}

/// A policy as the API and definitions files spell it (without the vhost, which
/// is where it is stored).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PolicyDef {
    pub name: String,
    pub pattern: String,
    #[serde(rename = "apply-to", default)]
    pub apply_to: ApplyTo,
    #[serde(default)]
    pub priority: i64,
    pub definition: JsonMap<String, Value>,
}

/// Which kind of policy is being validated: operator policies accept only the
/// numeric limits they can cap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolicyKind {
    User,
    Operator,
}

/// The effect of a policy on queues, parsed once.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct QueuePolicy {
    pub message_ttl_ms: Option<u64>,
    pub expires_ms: Option<u64>,
    pub max_length: Option<u64>,
    pub max_length_bytes: Option<u64>,
    pub delivery_limit: Option<u64>,
    pub consumer_timeout_ms: Option<u64>,
    pub overflow: Option<Overflow>,
    pub dead_letter_exchange: Option<ShortString>,
    pub dead_letter_routing_key: Option<ShortString>,
    pub dead_letter_strategy: Option<DeadLetterStrategy>,
    /// Streams: `max-age` and `stream-max-segment-size-bytes`.
    pub max_age_ms: Option<u64>,
    pub stream_segment_bytes: Option<u64>,
}

/// A validated policy with its compiled pattern (built by `Policy::compile`).
#[derive(Debug)]
pub struct Policy {
    pub def: PolicyDef,
    /// The compiled `def.pattern` (set by `Policy::compile`, in `core::policy`).
    pub(crate) regex: regex::Regex,
    pub queue: QueuePolicy,
    pub alternate_exchange: Option<String>,
}

impl Policy {
    pub fn name(&self) -> &str {
        &self.def.name
    }

    fn matches(&self, name: &str) -> bool {
        self.regex.is_match(name)
    }
}

/// The policies (or operator policies) of one vhost, highest priority first.
#[derive(Debug, Default)]
pub struct PolicySet {
    list: Vec<Arc<Policy>>,
}

impl PolicySet {
    pub fn iter(&self) -> impl Iterator<Item = &Arc<Policy>> {
        self.list.iter()
    }

    pub fn len(&self) -> usize {
        self.list.len()
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    pub fn get(&self, name: &str) -> Option<&Arc<Policy>> {
        self.list.iter().find(|p| p.def.name == name)
    }

    /// Adds or replaces by name; returns the policy it replaced.
    pub fn put(&mut self, p: Policy) -> Option<Arc<Policy>> {
        let old = self.remove(&p.def.name);
        self.list.push(Arc::new(p));
        self.list.sort_by(|a, b| {
            b.def
                .priority
                .cmp(&a.def.priority)
                .then_with(|| a.def.name.cmp(&b.def.name))
        });
        old
    }

    pub fn remove(&mut self, name: &str) -> Option<Arc<Policy>> {
        let i = self.list.iter().position(|p| p.def.name == name)?;
        Some(self.list.remove(i))
    }

    /// The policy that applies to the queue `name` of type `kind`.
    pub fn for_queue(&self, name: &str, kind: QueueType) -> Option<&Arc<Policy>> {
        self.list
            .iter()
            .find(|p| p.def.apply_to.covers_queues(kind) && p.matches(name))
    }

    /// The policy that applies to the exchange `name`.
    pub fn for_exchange(&self, name: &str) -> Option<&Arc<Policy>> {
        self.list
            .iter()
            .find(|p| p.def.apply_to.covers_exchanges() && p.matches(name))
    }

    pub fn defs(&self) -> Vec<PolicyDef> {
        let mut v: Vec<PolicyDef> = self.list.iter().map(|p| p.def.clone()).collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v
    }
}

fn min_opt(a: Option<u64>, b: Option<u64>) -> Option<u64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Effective queue settings: arguments, then the policy, then the operator
/// policy. Numeric limits: the lowest wins. Other keys: an explicit argument
/// wins over the policy. `from_args` are the settings parsed from `args`.
pub fn effective(
    args: &FieldTable,
    from_args: &QueueSettings,
    policy: Option<&QueuePolicy>,
    operator: Option<&QueuePolicy>,
) -> QueueSettings {
    let mut s = from_args.clone();
    if s.kind == QueueType::Stream {
        // A stream takes its retention from policies, nothing else: RabbitMQ
        // ignores the rest (TTLs, lengths, dead-lettering) for streams.
        for p in [policy, operator].into_iter().flatten() {
            s.stream_max_bytes = min_opt(s.stream_max_bytes, p.max_length_bytes);
        }
        if let Some(p) = policy {
            s.max_age_ms = s.max_age_ms.or(p.max_age_ms);
            s.stream_segment_bytes = s.stream_segment_bytes.or(p.stream_segment_bytes);
        }
        return s;
    }
    for p in [policy, operator].into_iter().flatten() {
        s.message_ttl_ms = min_opt(s.message_ttl_ms, p.message_ttl_ms);
        s.expires_ms = min_opt(s.expires_ms, p.expires_ms);
        s.max_length = min_opt(s.max_length, p.max_length);
        s.max_length_bytes = min_opt(s.max_length_bytes, p.max_length_bytes);
        s.delivery_limit = min_opt(s.delivery_limit, p.delivery_limit);
        s.consumer_timeout_ms = min_opt(s.consumer_timeout_ms, p.consumer_timeout_ms);
    }
    if let Some(p) = policy {
        if args.get("x-overflow").is_none() {
            if let Some(o) = p.overflow {
                s.overflow = o;
            }
        }
        if s.dead_letter_exchange.is_none() {
            s.dead_letter_exchange = p.dead_letter_exchange.clone();
        }
        if s.dead_letter_routing_key.is_none() {
            s.dead_letter_routing_key = p.dead_letter_routing_key.clone();
        }
        if args.get("x-dead-letter-strategy").is_none() {
            if let Some(d) = p.dead_letter_strategy {
                s.dead_letter_strategy = d;
            }
        }
    }
    s
}

/// Sets the policies and effective settings of one queue; returns the settings
/// it had before.
pub(crate) fn apply_queue_policy(policies: &PolicySet, operators: &PolicySet, q: &mut Queue) -> QueueSettings {
    q.apply_policies(policies, operators)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numeric_limits_lowest_wins_arguments_win_otherwise() {
        let mut args = FieldTable::new();
        args.insert(ringmq_codec::short!("x-max-length"), ringmq_codec::FieldValue::I64(100));
        args.insert(ringmq_codec::short!("x-dead-letter-exchange"), "from-arg");
        let from_args = crate::core::model::queue::args::parse(&args, "q", "/").unwrap();
        let pol = QueuePolicy {
            max_length: Some(10),
            message_ttl_ms: Some(5_000),
            dead_letter_exchange: Some(ringmq_codec::short!("from-policy").into()),
            dead_letter_routing_key: Some(ringmq_codec::short!("rk").into()),
            overflow: Some(Overflow::RejectPublish),
            ..Default::default()
        };
        let op = QueuePolicy {
            message_ttl_ms: Some(1_000),
            max_length: Some(50),
            ..Default::default()
        };
        let s = effective(&args, &from_args, Some(&pol), Some(&op));
        assert_eq!(s.max_length, Some(10));
        assert_eq!(s.message_ttl_ms, Some(1_000));
        assert_eq!(s.dead_letter_exchange.as_deref(), Some("from-arg"));
        assert_eq!(s.dead_letter_routing_key.as_deref(), Some("rk"));
        assert_eq!(s.overflow, Overflow::RejectPublish);
        // Without policies the arguments stand alone.
        assert_eq!(effective(&args, &from_args, None, None), from_args);
    }
}
