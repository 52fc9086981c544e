//! Federation upstreams as operators write them: the values of the
//! `federation-upstream` and `federation-upstream-set` runtime parameters
//! (RabbitMQ's keys), checked on PUT and import with RabbitMQ's texts.
//!
//! RabbitMQ 3.10 takes some values its links cannot use (`max-hops` 0, a
//! negative `prefetch-count`, `expires` 0, an empty `uri` list); those are
//! refused here, in its "should be" wording. The links that use them are
//! `crate::federation`'s (issue 21).

use serde_json::{Map, Value};

use super::shovel::AckMode;
use super::terms::{boolean, erl, number, string, unknown_terms, uris, ValidationFailed};

/// RabbitMQ's defaults.
pub const MAX_HOPS_DEFAULT: u64 = 1;
pub const PREFETCH_COUNT_DEFAULT: u16 = 1000;
pub const RECONNECT_DELAY_SECS_DEFAULT: f64 = 5.0;
/// The longest reconnect delay taken, a day, and the most hops.
pub const RECONNECT_DELAY_SECS_MAX: f64 = 86_400.0;
pub const MAX_HOPS_MAX: u64 = 255;

/// The keys of an upstream (all but `uri` may also stand in a set's entry).
const KEYS: &[&str] = &[
    "uri",
    "exchange",
    "queue",
    "consumer-tag",
    "max-hops",
    "expires",
    "message-ttl",
    "prefetch-count",
    "reconnect-delay",
    "ack-mode",
    "trust-user-id",
    "ha-policy",
    "bind-nowait",
    "resource-cleanup-mode",
];

/// A federation upstream, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct Upstream {
    /// Tried in order until one connects.
    pub uris: Vec<String>,
    /// The upstream exchange or queue, when not named as the downstream one.
    pub exchange: Option<String>,
    pub queue: Option<String>,
    pub consumer_tag: Option<String>,
    pub max_hops: u64,
    /// `x-expires` and `x-message-ttl` of the queue made upstream, in ms.
    pub expires_ms: Option<u64>,
    pub message_ttl_ms: Option<u64>,
    pub prefetch_count: u16,
    pub reconnect_delay_secs: f64,
    pub ack_mode: AckMode,
    pub trust_user_id: bool,
    pub bind_nowait: bool,
    /// `never`: the upstream queue and exchange stay when the link goes.
    pub keep_resources: bool,
}

/// The keys of an upstream but `uri` that `obj` has, checked (defaults for
/// the others); problems go to `problems`.
fn settings(obj: &Map<String, Value>, problems: &mut Vec<String>) -> Upstream {
    let positive = |key: &str, problems: &mut Vec<String>| {
        let n = number(obj, key, u32::MAX as u64, problems)?;
        if n == 0 {
            problems.push(format!("{key} should be at least 1, actually was 0"));
        }
        Some(n)
    };
    let max_hops = positive("max-hops", problems);
    if max_hops.is_some_and(|n| n > MAX_HOPS_MAX) {
        problems.push(format!("max-hops should be at most {MAX_HOPS_MAX}"));
    }
    let expires_ms = positive("expires", problems);
    let message_ttl_ms = number(obj, "message-ttl", u32::MAX as u64, problems);
    let prefetch_count = number(obj, "prefetch-count", u16::MAX as u64, problems);
    let reconnect_delay_secs = match obj.get("reconnect-delay") {
        None => RECONNECT_DELAY_SECS_DEFAULT,
        Some(v) => match v.as_f64() {
            Some(s) if (0.0..=RECONNECT_DELAY_SECS_MAX).contains(&s) => s,
            _ => {
                problems.push(format!(
                    "reconnect-delay should be a number of seconds from 0 to {RECONNECT_DELAY_SECS_MAX}, actually was {}",
                    erl(v)
                ));
                RECONNECT_DELAY_SECS_DEFAULT
            }
        },
    };
    let ack_mode = match obj.get("ack-mode").map(|v| (v, v.as_str())) {
        None | Some((_, Some("on-confirm"))) => AckMode::OnConfirm,
        Some((_, Some("on-publish"))) => AckMode::OnPublish,
        Some((_, Some("no-ack"))) => AckMode::NoAck,
        Some((v, _)) => {
            problems.push(format!(
                "ack-mode should be one of [<<\"no-ack\">>,<<\"on-publish\">>,<<\"on-confirm\">>], actually was {}",
                erl(v)
            ));
            AckMode::OnConfirm
        }
    };
    let keep_resources = match obj.get("resource-cleanup-mode").map(|v| (v, v.as_str())) {
        None | Some((_, Some("default"))) => false,
        Some((_, Some("never"))) => true,
        Some((v, _)) => {
            problems.push(format!(
                "resource-cleanup-mode should be one of [<<\"default\">>,<<\"never\">>], actually was {}",
                erl(v)
            ));
            false
        }
    };
    let _ha_policy = string(obj, "ha-policy", problems); // RabbitMQ's mirroring: no effect here
    Upstream {
        uris: Vec::new(),
        exchange: string(obj, "exchange", problems),
        queue: string(obj, "queue", problems),
        consumer_tag: string(obj, "consumer-tag", problems),
        max_hops: max_hops.unwrap_or(MAX_HOPS_DEFAULT),
        expires_ms,
        message_ttl_ms,
        prefetch_count: prefetch_count.map_or(PREFETCH_COUNT_DEFAULT, |n| n as u16),
        reconnect_delay_secs,
        ack_mode,
        trust_user_id: boolean(obj, "trust-user-id", problems),
        bind_nowait: boolean(obj, "bind-nowait", problems),
        keep_resources,
    }
}

impl Upstream {
    /// Checks the value of the `federation-upstream` parameter `name`.
    pub fn parse(name: &str, value: &Value) -> Result<Upstream, ValidationFailed> {
        let Value::Object(obj) = value else {
            return Err(ValidationFailed(vec![format!(
                "the value of federation upstream {name} should be a JSON object, actually was {}",
                erl(value)
            )]));
        };
        let mut problems = Vec::new();
        if !obj.contains_key("uri") {
            problems.push(format!("Key \"uri\" not found in {name}"));
        }
        let found = obj.get("uri").map(|v| uris("uri", v, &mut problems));
        let mut up = settings(obj, &mut problems);
        unknown_terms(obj, KEYS, name, &mut problems);
        if !problems.is_empty() {
            return Err(ValidationFailed(problems));
        }
        up.uris = found.expect("checked above");
        Ok(up)
    }
}

/// One entry of an upstream set: the upstream it names, and the keys it
/// sets over that upstream's.
#[derive(Debug, Clone, PartialEq)]
pub struct SetEntry {
    pub upstream: String,
    pub overrides: Map<String, Value>,
}

/// Checks the value of the `federation-upstream-set` parameter `name`: a list
/// of entries, each naming an upstream.
pub fn parse_set(name: &str, value: &Value) -> Result<Vec<SetEntry>, ValidationFailed> {
    let Value::Array(entries) = value else {
        return Err(ValidationFailed(vec![format!(
            "the value of federation upstream set {name} should be a list, actually was {}",
            erl(value)
        )]));
    };
    let mut problems = Vec::new();
    let mut out = Vec::new();
    for e in entries {
        let Value::Object(obj) = e else {
            problems.push(format!(
                "an entry of {name} should be a JSON object, actually was {}",
                erl(e)
            ));
            continue;
        };
        let upstream = match obj.get("upstream") {
            None => {
                problems.push(format!("Key \"upstream\" not found in {name}"));
                None
            }
            Some(_) => string(obj, "upstream", &mut problems),
        };
        let mut overrides = obj.clone();
        overrides.remove("upstream");
        if overrides.contains_key("uri") {
            problems.push(format!("uri is an upstream's own: an entry of {name} cannot set it"));
            overrides.remove("uri");
        }
        settings(&overrides, &mut problems);
        let keys: Vec<&str> = KEYS.iter().copied().filter(|k| *k != "uri").collect();
        unknown_terms(&overrides, &keys, name, &mut problems);
        if let Some(upstream) = upstream {
            out.push(SetEntry { upstream, overrides });
        }
    }
    match problems.is_empty() {
        true => Ok(out),
        false => Err(ValidationFailed(problems)),
    }
}

#[cfg(test)]
#[path = "federation_tests.rs"]
mod tests;
