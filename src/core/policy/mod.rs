//! Policies and operator policies: validation, matching, and the one place that
//! turns queue arguments plus policies into effective queue settings.
//!
//! A policy is (name, pattern, apply-to, priority, definition). Of the policies
//! whose pattern matches an object's name and whose apply-to covers its kind, the
//! one with the highest priority applies (ties: the first name in byte order, so
//! the choice is deterministic). Operator policies are matched the same way and
//! cap numeric limits; for those keys the lower of argument, policy and operator
//! policy wins, as in RabbitMQ. For the other keys an explicit queue argument
//! wins over the policy.
//!
//! Policies are evaluated when an object is created and when a policy changes,
//! never per message: the result is stored in the queue's `settings`.

pub mod apply;

use ringmq_codec::ShortString;
use std::sync::Arc;

use ringmq_codec::FieldTable;
use serde::{Deserialize, Serialize};
use serde_json::{Map as JsonMap, Value};

use crate::core::model::queue::args::{DeadLetterStrategy, Overflow, QueueSettings, QueueType, TTL_MS_MAX};

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
            ApplyTo::Exchanges | ApplyTo::Streams => false,
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

enum KeyKind {
    /// Integer >= min; the text names it in errors ("-1 is not a valid maximum length").
    Int {
        min: i64,
        max: i64,
        what: &'static str,
    },
    Str {
        what: &'static str,
    },
    OneOf(&'static [&'static str]),
    /// Stream retention, e.g. "7D", "12h" (RabbitMQ's units Y M D h m s).
    MaxAge,
    /// Accepted for compatibility with RabbitMQ definitions, no effect here.
    AnyValue,
}

struct Key {
    name: &'static str,
    kind: KeyKind,
    /// Allowed in operator policies.
    operator: bool,
}

const fn int(name: &'static str, min: i64, what: &'static str, operator: bool) -> Key {
    Key {
        name,
        kind: KeyKind::Int {
            min,
            max: i64::MAX,
            what,
        },
        operator,
    }
}

const fn ttl(name: &'static str, min: i64, what: &'static str) -> Key {
    Key {
        name,
        kind: KeyKind::Int {
            min,
            max: TTL_MS_MAX,
            what,
        },
        operator: true,
    }
}

const fn string(name: &'static str, what: &'static str) -> Key {
    Key {
        name,
        kind: KeyKind::Str { what },
        operator: false,
    }
}

/// Every policy key we accept. Keys for features we do not have (classic queue
/// mirroring, in-memory limits of quorum queues) are accepted so RabbitMQ
/// definitions import, and have no effect; the README says which.
const KEYS: &[Key] = &[
    ttl("message-ttl", 0, "message TTL"),
    ttl("expires", 1, "queue TTL"),
    int("max-length", 0, "maximum length", true),
    int("max-length-bytes", 0, "maximum length in bytes", true),
    int("delivery-limit", 0, "delivery limit", true),
    int("consumer-timeout", 1, "consumer timeout", false),
    Key {
        name: "overflow",
        kind: KeyKind::OneOf(&["drop-head", "reject-publish", "reject-publish-dlx"]),
        operator: false,
    },
    string("dead-letter-exchange", "dead letter exchange"),
    string("dead-letter-routing-key", "dead letter routing key"),
    string("alternate-exchange", "alternate exchange"),
    string("federation-upstream", "federation upstream"),
    string("federation-upstream-set", "federation upstream set"),
    Key {
        name: "dead-letter-strategy",
        kind: KeyKind::OneOf(&["at-most-once", "at-least-once"]),
        operator: false,
    },
    Key {
        name: "queue-mode",
        kind: KeyKind::OneOf(&["default", "lazy"]),
        operator: false,
    },
    Key {
        name: "max-age",
        kind: KeyKind::MaxAge,
        operator: false,
    },
    int("stream-max-segment-size-bytes", 1, "segment size", false),
    int("max-in-memory-length", 0, "in-memory length", true),
    int("max-in-memory-bytes", 0, "in-memory bytes", true),
    Key {
        name: "ha-mode",
        kind: KeyKind::OneOf(&["all", "exactly", "nodes"]),
        operator: false,
    },
    Key {
        name: "ha-params",
        kind: KeyKind::AnyValue,
        operator: false,
    },
    Key {
        name: "ha-sync-mode",
        kind: KeyKind::OneOf(&["manual", "automatic"]),
        operator: false,
    },
    Key {
        name: "ha-promote-on-shutdown",
        kind: KeyKind::OneOf(&["always", "when-synced"]),
        operator: false,
    },
    Key {
        name: "ha-promote-on-failure",
        kind: KeyKind::OneOf(&["always", "when-synced"]),
        operator: false,
    },
    string("queue-master-locator", "queue master locator"),
    string("queue-leader-locator", "queue leader locator"),
];

/// Bounds: a policy name and pattern are short strings in every real setup.
pub const POLICY_NAME_MAX: usize = 255;
pub const POLICY_PATTERN_MAX: usize = 4096;
/// Policies per vhost (each queue declare scans them once).
pub const POLICIES_PER_VHOST_MAX: usize = 1024;

/// RabbitMQ's rendering of an Erlang term for error texts: `<<"x">>` for strings.
fn erl(v: &Value) -> String {
    match v {
        Value::String(s) => format!("<<\"{s}\">>"),
        other => other.to_string(),
    }
}

fn failed(detail: String) -> String {
    format!("Validation failed\n\n{detail}\n")
}

fn valid_max_age(s: &str) -> bool {
    let Some(unit) = s.chars().last() else { return false };
    let digits = &s[..s.len() - unit.len_utf8()];
    matches!(unit, 'Y' | 'M' | 'D' | 'h' | 'm' | 's')
        && !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
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
}

/// A validated policy with its compiled pattern.
#[derive(Debug)]
pub struct Policy {
    pub def: PolicyDef,
    regex: regex::Regex,
    pub queue: QueuePolicy,
    pub alternate_exchange: Option<String>,
}

impl Policy {
    /// Validates a definition; the error text follows RabbitMQ's
    /// ("Validation failed\n\n... are not recognised policy settings\n").
    pub fn compile(def: PolicyDef, kind: PolicyKind) -> Result<Policy, String> {
        if def.name.is_empty() || def.name.len() > POLICY_NAME_MAX {
            return Err(failed(format!("policy name must be 1 to {POLICY_NAME_MAX} bytes")));
        }
        if def.pattern.len() > POLICY_PATTERN_MAX {
            return Err(failed(format!("pattern longer than {POLICY_PATTERN_MAX} bytes")));
        }
        let regex = regex::Regex::new(&def.pattern).map_err(|e| {
            failed(format!(
                "<<\"{}\">> is not a valid regular expression: {e}",
                def.pattern
            ))
        })?;
        if def.definition.is_empty() {
            return Err(failed("no policy keys given (definition is empty)".into()));
        }
        let unknown: Vec<String> = def
            .definition
            .iter()
            .filter(|(k, _)| {
                KEYS.iter()
                    .find(|key| key.name == k.as_str())
                    .is_none_or(|key| kind == PolicyKind::Operator && !key.operator)
            })
            .map(|(k, v)| format!("{{<<\"{k}\">>,{}}}", erl(v)))
            .collect();
        if !unknown.is_empty() {
            return Err(failed(format!(
                "[{}] are not recognised policy settings",
                unknown.join(",")
            )));
        }
        let mut q = QueuePolicy::default();
        let mut alternate_exchange = None;
        for (k, v) in &def.definition {
            let key = KEYS.iter().find(|key| key.name == k.as_str()).expect("checked above");
            match key.kind {
                KeyKind::Int { min, max, what } => {
                    let n = v.as_i64().filter(|n| (min..=max).contains(n));
                    let Some(n) = n else {
                        return Err(failed(format!("{} is not a valid {what}", erl(v))));
                    };
                    let n = Some(n as u64);
                    match key.name {
                        "message-ttl" => q.message_ttl_ms = n,
                        "expires" => q.expires_ms = n,
                        "max-length" => q.max_length = n,
                        "max-length-bytes" => q.max_length_bytes = n,
                        "delivery-limit" => q.delivery_limit = n,
                        "consumer-timeout" => q.consumer_timeout_ms = n,
                        _ => {}
                    }
                }
                KeyKind::Str { what } => {
                    let Some(s) = v.as_str() else {
                        return Err(failed(format!("{} is not a valid {what}", erl(v))));
                    };
                    match key.name {
                        "dead-letter-exchange" | "dead-letter-routing-key" => {
                            // Stored and delivered as a dead letter's exchange or
                            // routing key: a short string on the wire.
                            let s = ShortString::new(s).map_err(|e| failed(e.text(key.name)))?;
                            if key.name == "dead-letter-exchange" {
                                q.dead_letter_exchange = Some(s);
                            } else {
                                q.dead_letter_routing_key = Some(s);
                            }
                        }
                        "alternate-exchange" => alternate_exchange = Some(s.to_owned()),
                        _ => {}
                    }
                }
                KeyKind::OneOf(allowed) => {
                    let Some(s) = v.as_str().filter(|s| allowed.contains(s)) else {
                        return Err(failed(format!(
                            "{} is not a valid {} value (one of {})",
                            erl(v),
                            key.name,
                            allowed.join(", ")
                        )));
                    };
                    if key.name == "overflow" {
                        q.overflow = Some(match s {
                            "reject-publish" => Overflow::RejectPublish,
                            "reject-publish-dlx" => Overflow::RejectPublishDlx,
                            _ => Overflow::DropHead,
                        });
                    }
                    if key.name == "dead-letter-strategy" {
                        q.dead_letter_strategy = Some(match s {
                            "at-least-once" => DeadLetterStrategy::AtLeastOnce,
                            _ => DeadLetterStrategy::AtMostOnce,
                        });
                    }
                }
                KeyKind::MaxAge => {
                    if !v.as_str().is_some_and(valid_max_age) {
                        return Err(failed(format!("{} is not a valid max age", erl(v))));
                    }
                }
                KeyKind::AnyValue => {}
            }
        }
        Ok(Policy {
            def,
            regex,
            queue: q,
            alternate_exchange,
        })
    }

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

/// The effective definition of a queue as the management API shows it
/// (`effective_policy_definition`): the policy's keys with the operator
/// policy's caps applied.
pub fn effective_definition(policy: Option<&Policy>, operator: Option<&Policy>) -> JsonMap<String, Value> {
    let mut out = policy.map(|p| p.def.definition.clone()).unwrap_or_default();
    if let Some(op) = operator {
        for (k, v) in &op.def.definition {
            let lower = match (out.get(k).and_then(Value::as_i64), v.as_i64()) {
                (Some(cur), Some(new)) => new < cur,
                _ => true,
            };
            if lower {
                out.insert(k.clone(), v.clone());
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn def(name: &str, pattern: &str, priority: i64, d: Value) -> PolicyDef {
        PolicyDef {
            name: name.into(),
            pattern: pattern.into(),
            apply_to: ApplyTo::All,
            priority,
            definition: d.as_object().unwrap().clone(),
        }
    }

    #[test]
    fn unknown_and_bad_keys_are_refused_as_rabbitmq_words_it() {
        let e = Policy::compile(def("p", ".*", 0, json!({"foo": 1})), PolicyKind::User).unwrap_err();
        assert_eq!(
            e,
            "Validation failed\n\n[{<<\"foo\">>,1}] are not recognised policy settings\n"
        );
        let e = Policy::compile(def("p", ".*", 0, json!({"max-length": -1})), PolicyKind::User).unwrap_err();
        assert_eq!(e, "Validation failed\n\n-1 is not a valid maximum length\n");
        let e = Policy::compile(def("p", ".*", 0, json!({"message-ttl": "x"})), PolicyKind::User).unwrap_err();
        assert_eq!(e, "Validation failed\n\n<<\"x\">> is not a valid message TTL\n");
        let e = Policy::compile(def("p", "(", 0, json!({"max-length": 1})), PolicyKind::User).unwrap_err();
        assert!(e.contains("not a valid regular expression"), "{e}");
        // Operator policies take only the numeric caps.
        let e = Policy::compile(
            def("p", ".*", 0, json!({"dead-letter-exchange": "x"})),
            PolicyKind::Operator,
        )
        .unwrap_err();
        assert!(e.contains("are not recognised policy settings"), "{e}");
        assert!(Policy::compile(def("p", ".*", 0, json!({"max-length": 5})), PolicyKind::Operator).is_ok());
        assert!(Policy::compile(def("p", ".*", 0, json!({"max-age": "7D"})), PolicyKind::User).is_ok());
        assert!(Policy::compile(def("p", ".*", 0, json!({"max-age": "7x"})), PolicyKind::User).is_err());
    }

    #[test]
    fn highest_priority_matching_policy_applies() {
        let mut set = PolicySet::default();
        set.put(Policy::compile(def("low", ".*", 0, json!({"max-length": 1})), PolicyKind::User).unwrap());
        set.put(Policy::compile(def("high", "^orders", 5, json!({"max-length": 2})), PolicyKind::User).unwrap());
        let mut ex = def("ex", ".*", 9, json!({"alternate-exchange": "ae"}));
        ex.apply_to = ApplyTo::Exchanges;
        set.put(Policy::compile(ex, PolicyKind::User).unwrap());
        assert_eq!(set.for_queue("orders.eu", QueueType::Classic).unwrap().name(), "high");
        assert_eq!(set.for_queue("other", QueueType::Classic).unwrap().name(), "low");
        assert_eq!(set.for_exchange("x").unwrap().name(), "ex");
        set.remove("high");
        assert_eq!(set.for_queue("orders.eu", QueueType::Classic).unwrap().name(), "low");
    }

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
