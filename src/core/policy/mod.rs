//! Policies and operator policies as operators write them: validating a
//! definition into a [`Policy`] (`Policy::compile`: RabbitMQ's keys, bounds
//! and error texts), and, in [`apply`], the per-vhost policy files and the
//! operations that put, delete and list policies over a vhost and re-apply
//! them to the model's queues and exchanges; and the effective definition the
//! management API shows for a queue ([`effective_definition`]). The `Broker`
//! calls the API makes (which also start the timers and run the session's
//! pending deliveries) are `mgmt::policies`; nothing here names `Broker`
//! (`tests/walls.rs`).
//!
//! The policies themselves, which one applies to an object and how they and a
//! queue's arguments make its effective settings (`effective`) are the
//! model's (`model::policy`), which applies them when it creates an object; the
//! types an operator writes ([`PolicyDef`], [`ApplyTo`], [`PolicyKind`]) are
//! re-exported here.

pub mod apply;

use ringmq_codec::ShortString;
use serde_json::{Map as JsonMap, Value};

use crate::core::model::policy::QueuePolicy;
pub use crate::core::model::policy::{ApplyTo, Policy, PolicyDef, PolicyKind};
use crate::core::model::queue::args::{DeadLetterStrategy, Overflow, TTL_MS_MAX};

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

/// The type is the model's; making one from what an operator wrote is ours.
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
                        "stream-max-segment-size-bytes" => q.stream_segment_bytes = n,
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
                    q.max_age_ms = v.as_str().and_then(crate::core::model::queue::args::parse_max_age);
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
    use crate::core::model::policy::PolicySet;
    use crate::core::model::queue::args::QueueType;
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
}
