//! A dynamic shovel as operators write it: the value of a `shovel` runtime
//! parameter (RabbitMQ's keys), checked on PUT and import with RabbitMQ's
//! texts, and parsed into [`ShovelDef`], what the broker's shovel tasks run.
//!
//! RabbitMQ 3.10 (the peer) takes some values it cannot use (a string for
//! `dest-add-forward-headers`, a number for `dest-publish-properties`); those
//! are refused here with its "should be" wording. Its reasons are HTML-escaped
//! by its management plugin (`&lt;&lt;"bad"&gt;&gt;`): ours say the same
//! thing unescaped (`<<"bad">>`). `dest-uri` may also be one `http://` URI
//! (LavinMQ's HTTP shovel); `https://` is refused until there is a CA setting.
//! AMQP URIs are read whole by the links' client (`ringmq_client::Uri`, with
//! RabbitMQ's query parameters, `cacertfile` and the rest for `amqps://`).

use serde_json::{Map, Value};

use super::terms::{boolean, erl, number, string, table, unknown_terms, uris, ValidationFailed};

/// What `src-prefetch-count` is when not given (RabbitMQ's default).
pub const SRC_PREFETCH_COUNT_DEFAULT: u16 = 1000;
/// What `reconnect-delay` is when not given, in seconds (RabbitMQ's default).
pub const RECONNECT_DELAY_SECS_DEFAULT: u64 = 5;
/// The longest reconnect delay taken: a day (a longer one is an operator's typo).
pub const RECONNECT_DELAY_SECS_MAX: u64 = 86_400;
/// The most URIs in `src-uri` or `dest-uri`.
pub const URIS_MAX: usize = 16;

/// Where a shovel takes messages from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ShovelSource {
    /// `src-queue`: consumed (declared durable first if it does not exist).
    Queue(String),
    /// `src-exchange` + `src-exchange-key` (default `#`): a server-named queue
    /// of the shovel's own, bound to it.
    Exchange { exchange: String, key: String },
}

/// Where a shovel publishes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ShovelDest {
    /// `dest-queue`: the default exchange, the queue's name as routing key
    /// (the queue declared durable first if it does not exist).
    Queue(String),
    /// `dest-exchange`, with `dest-exchange-key` or else the message's own key.
    Exchange { exchange: String, key: Option<String> },
    /// Neither: the exchange and key each message was published with.
    AsPublished,
    /// `dest-uri` `http://...`: each message POSTed there (LavinMQ's HTTP
    /// shovel); a 2xx acknowledges it at the source, anything else is retried.
    Http,
}

/// When a shovel deletes itself (its parameter).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeleteAfter {
    Never,
    /// After as many messages as the source queue had when the shovel started.
    QueueLength,
    /// After this many messages.
    Count(u64),
}

/// When the source's message is acknowledged (`ack-mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AckMode {
    /// After the destination confirmed it (the default: nothing is lost).
    OnConfirm,
    /// After it was written to the destination's socket.
    OnPublish,
    /// The source delivers without acknowledgements (fastest; a crash loses
    /// what was in flight).
    NoAck,
}

impl AckMode {
    pub fn as_str(self) -> &'static str {
        match self {
            AckMode::OnConfirm => "on-confirm",
            AckMode::OnPublish => "on-publish",
            AckMode::NoAck => "no-ack",
        }
    }
}

/// A shovel parameter's value, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct ShovelDef {
    /// Tried in order until one connects.
    pub src_uris: Vec<String>,
    pub src: ShovelSource,
    pub src_prefetch_count: u16,
    pub src_delete_after: DeleteAfter,
    pub dest_uris: Vec<String>,
    pub dest: ShovelDest,
    pub ack_mode: AckMode,
    pub add_forward_headers: bool,
    pub add_timestamp_header: bool,
    pub reconnect_delay_secs: u64,
    /// `src-consumer-args`: basic.consume's arguments, as JSON.
    pub src_consumer_args: Map<String, Value>,
    /// `dest-publish-properties`: properties set on every message published.
    pub dest_publish_properties: Map<String, Value>,
}

/// Why a value is not a shovel: every problem found, in RabbitMQ's order and
/// words, one a line.
pub type ShovelDefError = ValidationFailed;

const KEYS: &[&str] = &[
    "src-uri",
    "src-queue",
    "src-exchange",
    "src-exchange-key",
    "src-prefetch-count",
    "src-delete-after",
    "src-consumer-args",
    "src-protocol",
    "dest-uri",
    "dest-queue",
    "dest-exchange",
    "dest-exchange-key",
    "dest-add-forward-headers",
    "dest-add-timestamp-header",
    "dest-publish-properties",
    "dest-protocol",
    "ack-mode",
    "reconnect-delay",
];

/// Properties `dest-publish-properties` may set, with the JSON type each takes.
pub const PUBLISH_PROPERTIES: &[(&str, PropKind)] = &[
    ("content_type", PropKind::Str),
    ("content_encoding", PropKind::Str),
    ("delivery_mode", PropKind::Int),
    ("priority", PropKind::Int),
    ("correlation_id", PropKind::Str),
    ("reply_to", PropKind::Str),
    ("expiration", PropKind::Str),
    ("message_id", PropKind::Str),
    ("timestamp", PropKind::Int),
    ("type", PropKind::Str),
    ("user_id", PropKind::Str),
    ("app_id", PropKind::Str),
    ("cluster_id", PropKind::Str),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PropKind {
    Str,
    Int,
}

fn publish_properties(m: &Map<String, Value>, problems: &mut Vec<String>) {
    for (k, v) in m {
        let ok = match PUBLISH_PROPERTIES.iter().find(|(name, _)| name == k) {
            Some((_, PropKind::Str)) => v.is_string(),
            Some((_, PropKind::Int)) => v.as_u64().is_some_and(|n| n <= u8::MAX as u64 || k == "timestamp"),
            None => {
                problems.push(format!(
                    "dest-publish-properties: {k} is not a message property ({})",
                    PUBLISH_PROPERTIES
                        .iter()
                        .map(|(n, _)| *n)
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
                continue;
            }
        };
        if !ok {
            problems.push(format!("dest-publish-properties: {k} has a bad value {}", erl(v)));
        }
    }
}

impl ShovelDef {
    /// Checks the value of the shovel parameter `name`.
    pub fn parse(name: &str, value: &Value) -> Result<ShovelDef, ShovelDefError> {
        let Value::Object(obj) = value else {
            return Err(ValidationFailed(vec![format!(
                "the value of shovel {name} should be a JSON object, actually was {}",
                erl(value)
            )]));
        };
        let mut problems = Vec::new();
        let (src_q, src_x) = (obj.get("src-queue"), obj.get("src-exchange"));
        match (src_q, src_x) {
            (None, None) => problems.push("Must specify 'src-exchange' or 'src-queue'".to_owned()),
            (Some(_), Some(_)) => problems.push("Cannot specify 'src-exchange' and 'src-queue'".to_owned()),
            _ => {}
        }
        if obj.contains_key("dest-queue") && obj.contains_key("dest-exchange") {
            problems.push("Cannot specify 'dest-exchange' and 'dest-queue'".to_owned());
        }
        for key in ["dest-uri", "src-uri"] {
            if !obj.contains_key(key) {
                problems.push(format!("Key \"{key}\" not found in {name}"));
            }
        }
        for key in ["src-protocol", "dest-protocol"] {
            if let Some(v) = obj.get(key).filter(|v| v.as_str() != Some("amqp091")) {
                problems.push(format!(
                    "{key} should be <<\"amqp091\">> (AMQP 1.0 shovels are not supported), actually was {}",
                    erl(v)
                ));
            }
        }
        let src_uris = obj.get("src-uri").map(|v| uris("src-uri", v, &mut problems));
        let dest_uris = obj.get("dest-uri").map(|v| uris("dest-uri", v, &mut problems));
        let src_queue = string(obj, "src-queue", &mut problems);
        let src_exchange = string(obj, "src-exchange", &mut problems);
        let src_key = string(obj, "src-exchange-key", &mut problems);
        let dest_queue = string(obj, "dest-queue", &mut problems);
        let dest_exchange = string(obj, "dest-exchange", &mut problems);
        let dest_key = string(obj, "dest-exchange-key", &mut problems);
        let prefetch = number(obj, "src-prefetch-count", u16::MAX as u64, &mut problems);
        let reconnect = number(obj, "reconnect-delay", RECONNECT_DELAY_SECS_MAX, &mut problems);
        let ack_mode = match obj.get("ack-mode") {
            None => AckMode::OnConfirm,
            Some(v) => match v.as_str() {
                Some("on-confirm") => AckMode::OnConfirm,
                Some("on-publish") => AckMode::OnPublish,
                Some("no-ack") => AckMode::NoAck,
                _ => {
                    problems.push(format!(
                        "ack-mode should be one of [<<\"no-ack\">>,<<\"on-publish\">>,<<\"on-confirm\">>], actually was {}",
                        erl(v)
                    ));
                    AckMode::OnConfirm
                }
            },
        };
        let delete_after = match obj.get("src-delete-after") {
            None => DeleteAfter::Never,
            Some(v) => match (v.as_str(), v.as_u64()) {
                (Some("never"), _) => DeleteAfter::Never,
                (Some("queue-length"), _) => DeleteAfter::QueueLength,
                (None, Some(n)) => DeleteAfter::Count(n),
                _ => {
                    problems.push(format!(
                        "src-delete-after should be a number greater than or equal to 0, \"never\" or \"queue-length\", actually was {}",
                        erl(v)
                    ));
                    DeleteAfter::Never
                }
            },
        };
        if delete_after == DeleteAfter::QueueLength && src_x.is_some() {
            problems.push("src-delete-after \"queue-length\" needs 'src-queue'".to_owned());
        }
        let add_forward_headers = boolean(obj, "dest-add-forward-headers", &mut problems);
        let add_timestamp_header = boolean(obj, "dest-add-timestamp-header", &mut problems);
        let src_consumer_args = table(obj, "src-consumer-args", &mut problems);
        let dest_publish_properties = table(obj, "dest-publish-properties", &mut problems);
        publish_properties(&dest_publish_properties, &mut problems);
        unknown_terms(obj, KEYS, name, &mut problems);
        if !problems.is_empty() {
            return Err(ValidationFailed(problems));
        }
        let dest_http = dest_uris
            .as_ref()
            .is_some_and(|u| u.iter().any(|u| u.starts_with("http://")));
        if dest_http {
            if dest_uris.as_ref().is_some_and(|u| u.len() > 1) {
                problems.push("an http:// dest-uri must be the only one".to_owned());
            }
            for key in ["dest-queue", "dest-exchange", "dest-exchange-key"] {
                if obj.contains_key(key) {
                    problems.push(format!("{key} has no meaning with an http:// dest-uri"));
                }
            }
        }
        if !problems.is_empty() {
            return Err(ValidationFailed(problems));
        }
        let src = match (src_queue, src_exchange) {
            (Some(q), None) => ShovelSource::Queue(q),
            (None, Some(exchange)) => ShovelSource::Exchange {
                exchange,
                key: src_key.unwrap_or_else(|| "#".to_owned()),
            },
            _ => unreachable!("one of them, checked above"),
        };
        let dest = match (dest_queue, dest_exchange) {
            _ if dest_http => ShovelDest::Http,
            (Some(q), None) => ShovelDest::Queue(q),
            (None, Some(exchange)) => ShovelDest::Exchange {
                exchange,
                key: dest_key,
            },
            _ => ShovelDest::AsPublished,
        };
        Ok(ShovelDef {
            src_uris: src_uris.expect("checked above"),
            src,
            src_prefetch_count: prefetch.map_or(SRC_PREFETCH_COUNT_DEFAULT, |n| n as u16),
            src_delete_after: delete_after,
            dest_uris: dest_uris.expect("checked above"),
            dest,
            ack_mode,
            add_forward_headers,
            add_timestamp_header,
            reconnect_delay_secs: reconnect.unwrap_or(RECONNECT_DELAY_SECS_DEFAULT),
            src_consumer_args,
            dest_publish_properties,
        })
    }
}

#[cfg(test)]
#[path = "shovel_tests.rs"]
mod tests;
