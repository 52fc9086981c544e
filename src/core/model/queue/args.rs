//! The one table that validates queue arguments and turns them into settings.
//!
//! Every `x-*` queue argument RabbitMQ and LavinMQ accept is listed once here,
//! with its type and range. Declaring a queue with a bad value is a 406
//! PRECONDITION_FAILED whose text follows RabbitMQ's
//! (`invalid arg 'x-message-ttl' for queue 'q' in vhost '/': {value_negative,-1}`).
//! Policies (a later issue) produce the same [`QueueSettings`], so the broker reads
//! effective settings from one place.

use ringmq_codec::ShortString;
use ringmq_codec::{FieldTable, FieldValue};

/// What to do when a length limit is reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Overflow {
    /// Drop (or dead-letter) from the head to make room (RabbitMQ's default).
    #[default]
    DropHead,
    /// Refuse the new message: basic.nack to confirming publishers.
    RejectPublish,
    /// Refuse and dead-letter the new message.
    RejectPublishDlx,
}

/// `x-queue-type`. A quorum queue on one node is a durable queue with what a
/// single node can honour of RabbitMQ's quorum semantics: every redelivery counted
/// (`x-delivery-count`, on disk), the delivery limit, and the dead-letter
/// strategy. Replication comes with clustering.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum QueueType {
    #[default]
    Classic,
    Quorum,
    /// An append-only log read from an offset per consumer (issue 20): acks
    /// do not remove, retention does (`x-max-length-bytes`, `x-max-age`).
    Stream,
}

impl QueueType {
    /// As the management API names it.
    pub fn name(self) -> &'static str {
        match self {
            QueueType::Classic => "classic",
            QueueType::Quorum => "quorum",
            QueueType::Stream => "stream",
        }
    }
}

/// `x-dead-letter-strategy` (quorum queues).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum DeadLetterStrategy {
    /// The dead letter is published and the original removed at once: a crash
    /// in between may lose it (RabbitMQ's default, and what classic queues do).
    #[default]
    AtMostOnce,
    /// The original is removed only once the dead letter is on disk in every
    /// queue it was routed to: a crash may duplicate it, never lose it. RabbitMQ
    /// honours it only with `x-overflow: reject-publish`, and so does ringmq.
    AtLeastOnce,
}

/// Arguments a quorum queue refuses (RabbitMQ 3.10's check_invalid_arguments).
const NOT_FOR_QUORUM: &[&str] = &[
    "x-max-priority",
    "x-queue-mode",
    "x-queue-master-locator",
    "x-queue-version",
];

/// Arguments a stream refuses (RabbitMQ 3.10's rabbit_stream_queue
/// capabilities, checked against 3.10.8).
const NOT_FOR_STREAM: &[&str] = &[
    "x-dead-letter-exchange",
    "x-dead-letter-routing-key",
    "x-dead-letter-strategy",
    "x-delivery-limit",
    "x-expires",
    "x-max-in-memory-bytes",
    "x-max-in-memory-length",
    "x-max-length",
    "x-max-priority",
    "x-message-ttl",
    "x-overflow",
    "x-queue-mode",
    "x-queue-version",
    "x-quorum-initial-group-size",
    "x-single-active-consumer",
];

/// Effective settings of a queue, from its arguments.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct QueueSettings {
    pub kind: QueueType,
    pub dead_letter_strategy: DeadLetterStrategy,
    pub message_ttl_ms: Option<u64>,
    pub expires_ms: Option<u64>,
    pub max_length: Option<u64>,
    pub max_length_bytes: Option<u64>,
    pub overflow: Overflow,
    pub dead_letter_exchange: Option<ShortString>,
    pub dead_letter_routing_key: Option<ShortString>,
    pub max_priority: Option<u8>,
    pub single_active_consumer: bool,
    pub delivery_limit: Option<u64>,
    pub consumer_timeout_ms: Option<u64>,
    /// Streams: drop whole segments whose newest message is older (`x-max-age`).
    pub max_age_ms: Option<u64>,
    /// Streams: the size of a segment (`x-stream-max-segment-size-bytes`).
    pub stream_segment_bytes: Option<u64>,
    /// Streams: drop whole old segments beyond this size (`x-max-length-bytes`
    /// of a stream, which is retention, not a classic queue's length limit).
    pub stream_max_bytes: Option<u64>,
}

/// Rules a new declare must pass that a queue recovered from an older version's
/// log is not held to (it keeps its arguments, not defaults). RabbitMQ's
/// check_dlxrk_arg: a dead-letter routing key needs a dead-letter exchange in the
/// same arguments (a policy's does not count).
pub fn check_new_declare(args: &FieldTable, queue: &str, vhost: &str) -> Result<(), String> {
    if args.get("x-dead-letter-routing-key").is_some() && args.get("x-dead-letter-exchange").is_none() {
        return Err(format!(
            "invalid arg 'x-dead-letter-routing-key' for queue '{queue}' in vhost '{vhost}': routing_key_but_no_dlx_defined"
        ));
    }
    Ok(())
}

impl QueueSettings {
    /// The dead-letter strategy in force: as RabbitMQ, at-least-once only on a
    /// quorum queue that rejects publishes when full (a dropped head could not
    /// wait for its dead letter to be safe); at-most-once otherwise.
    pub fn dead_lettering(&self) -> DeadLetterStrategy {
        let honoured = self.kind == QueueType::Quorum && self.overflow == Overflow::RejectPublish;
        if honoured {
            self.dead_letter_strategy
        } else {
            DeadLetterStrategy::AtMostOnce
        }
    }

    /// The declare's properties that this queue type refuses, with RabbitMQ 3.10's
    /// text (rabbit_quorum_queue:declare and rabbit_stream_queue:declare check
    /// them in this order).
    pub fn check_properties(
        &self,
        durable: bool,
        exclusive: bool,
        auto_delete: bool,
        queue: &str,
        vhost: &str,
    ) -> Result<(), String> {
        if self.kind == QueueType::Classic {
            return Ok(());
        }
        let invalid = [
            ("auto-delete", auto_delete),
            ("exclusive-owner", exclusive),
            ("non-durable", !durable),
        ];
        match invalid.iter().find(|(_, bad)| *bad) {
            Some((property, _)) => Err(format!(
                "invalid property '{property}' for queue '{queue}' in vhost '{vhost}'"
            )),
            None => Ok(()),
        }
    }
}

/// The largest priority a queue may have, as RabbitMQ allows.
pub const MAX_PRIORITY_MAX: i64 = 255;
/// TTLs and expiry are u32 milliseconds in RabbitMQ (about 49 days).
pub const TTL_MS_MAX: i64 = u32::MAX as i64;

enum Kind {
    /// Non-negative integer up to the bound.
    UInt {
        max: i64,
        min: i64,
    },
    Str,
    Bool,
    OneOf(&'static [&'static str]),
}

/// (name, kind). Anything not listed is accepted and ignored, as RabbitMQ does
/// for unknown `x-` arguments (plugins may use them).
const TABLE: &[(&str, Kind)] = &[
    (
        "x-message-ttl",
        Kind::UInt {
            min: 0,
            max: TTL_MS_MAX,
        },
    ),
    (
        "x-expires",
        Kind::UInt {
            min: 1,
            max: TTL_MS_MAX,
        },
    ),
    ("x-max-length", Kind::UInt { min: 0, max: i64::MAX }),
    ("x-max-length-bytes", Kind::UInt { min: 0, max: i64::MAX }),
    ("x-stream-max-segment-size-bytes", Kind::UInt { min: 0, max: i64::MAX }),
    ("x-max-age", Kind::Str),
    (
        "x-overflow",
        Kind::OneOf(&["drop-head", "reject-publish", "reject-publish-dlx"]),
    ),
    ("x-dead-letter-exchange", Kind::Str),
    ("x-dead-letter-routing-key", Kind::Str),
    (
        "x-max-priority",
        Kind::UInt {
            min: 0,
            max: MAX_PRIORITY_MAX,
        },
    ),
    ("x-single-active-consumer", Kind::Bool),
    ("x-delivery-limit", Kind::UInt { min: 0, max: i64::MAX }),
    ("x-consumer-timeout", Kind::UInt { min: 1, max: i64::MAX }),
    ("x-queue-type", Kind::OneOf(&["classic", "quorum", "stream"])),
    ("x-queue-mode", Kind::OneOf(&["default", "lazy"])),
    // Quorum queues: accepted as RabbitMQ does; on one node there is no group to
    // size or place, and messages are on disk, never held in memory.
    ("x-quorum-initial-group-size", Kind::UInt { min: 1, max: i64::MAX }),
    ("x-max-in-memory-length", Kind::UInt { min: 0, max: i64::MAX }),
    ("x-max-in-memory-bytes", Kind::UInt { min: 0, max: i64::MAX }),
];

/// Validates the arguments and returns the settings; `Err` is the detail part of
/// RabbitMQ's message, e.g. `invalid arg 'x-max-priority' ...: {value_too_large,256,255}`.
pub fn parse(args: &FieldTable, queue: &str, vhost: &str) -> Result<QueueSettings, String> {
    for (name, kind) in TABLE {
        let Some(v) = args.get(name) else { continue };
        let bad = |detail: String| {
            Err(format!(
                "invalid arg '{name}' for queue '{queue}' in vhost '{vhost}': {detail}"
            ))
        };
        match kind {
            Kind::UInt { min, max } => match v.as_i64() {
                None => return bad(format!("\"expected integer, got {}\"", v.type_name())),
                Some(n) if n < 0 => return bad(format!("{{value_negative,{n}}}")),
                Some(n) if n < *min => return bad(format!("{{value_zero,{n}}}")),
                // RabbitMQ's own wording differs by argument (checked against 3.10).
                Some(n) if n > *max && *name == "x-max-priority" => return bad(format!("{{max_value_exceeded,{n}}}")),
                Some(n) if n > *max => return bad(format!("{{value_too_large,{n},{max}}}")),
                Some(_) => {}
            },
            Kind::Str => {
                if v.as_str().is_none() {
                    return bad(format!("{{unacceptable_type,{}}}", v.type_name()));
                }
            }
            Kind::Bool => {
                if !matches!(v, FieldValue::Bool(_)) {
                    return bad(format!("{{unacceptable_type,{}}}", v.type_name()));
                }
            }
            Kind::OneOf(allowed) => match v.as_str() {
                None => return bad(format!("{{unacceptable_type,{}}}", v.type_name())),
                Some(s) if !allowed.contains(&s) => return bad(format!("{{invalid_value,<<\"{s}\">>}}")),
                Some(_) => {}
            },
        }
    }
    let kind = match args.get("x-queue-type").and_then(|v| v.as_str()) {
        None | Some("classic") => QueueType::Classic,
        Some("quorum") => QueueType::Quorum,
        Some("stream") => QueueType::Stream,
        Some(t) => {
            return Err(format!(
            "invalid arg 'x-queue-type' for queue '{queue}' in vhost '{vhost}': queue type '{t}' is not supported yet"
        ))
        }
    };
    if kind == QueueType::Quorum {
        if let Some(k) = NOT_FOR_QUORUM.iter().find(|k| args.get(k).is_some()) {
            return Err(format!(
                "invalid arg '{k}' for queue '{queue}' in vhost '{vhost}' of queue type rabbit_quorum_queue"
            ));
        }
    }
    if kind == QueueType::Stream {
        if let Some(k) = NOT_FOR_STREAM.iter().find(|k| args.get(k).is_some()) {
            return Err(format!(
                "invalid arg '{k}' for queue '{queue}' in vhost '{vhost}' of queue type rabbit_stream_queue"
            ));
        }
    }
    let max_age_ms = match args.get("x-max-age").and_then(|v| v.as_str()) {
        None => None,
        Some(age) => Some(parse_max_age(age).ok_or_else(|| {
            format!("invalid arg 'x-max-age' for queue '{queue}' in vhost '{vhost}': invalid_max_age")
        })?),
    };
    let at_least_once = match args.get("x-dead-letter-strategy") {
        None => false,
        Some(v) => match v.as_str() {
            Some("at-most-once") => false,
            Some("at-least-once") => true,
            _ => {
                return Err(format!(
                    "invalid arg 'x-dead-letter-strategy' for queue '{queue}' in vhost '{vhost}': invalid_dlx_strategy"
                ))
            }
        },
    };
    let u = |k: &str| args.get(k).and_then(|v| v.as_i64()).map(|n| n as u64);
    // A dead letter is stored and delivered with these as its exchange and
    // routing key: short strings on the wire, so longer ones are refused here.
    let s = |k: &str| -> Result<Option<ShortString>, String> {
        args.get(k)
            .and_then(|v| v.as_str())
            .map(ShortString::new)
            .transpose()
            .map_err(|e| {
                format!(
                    "invalid arg '{k}' for queue '{queue}' in vhost '{vhost}': {}",
                    e.text("value")
                )
            })
    };
    let overflow = match args.get("x-overflow").and_then(|v| v.as_str()) {
        Some("reject-publish") => Overflow::RejectPublish,
        Some("reject-publish-dlx") => Overflow::RejectPublishDlx,
        _ => Overflow::DropHead,
    };
    let dead_letter_strategy = if at_least_once {
        DeadLetterStrategy::AtLeastOnce
    } else {
        DeadLetterStrategy::AtMostOnce
    };
    Ok(QueueSettings {
        kind,
        dead_letter_strategy,
        message_ttl_ms: u("x-message-ttl"),
        expires_ms: u("x-expires"),
        max_length: u("x-max-length"),
        max_length_bytes: u("x-max-length-bytes").filter(|_| kind != QueueType::Stream),
        overflow,
        dead_letter_exchange: s("x-dead-letter-exchange")?,
        dead_letter_routing_key: s("x-dead-letter-routing-key")?,
        max_priority: u("x-max-priority").map(|p| p as u8),
        single_active_consumer: matches!(args.get("x-single-active-consumer"), Some(FieldValue::Bool(true))),
        delivery_limit: u("x-delivery-limit"),
        consumer_timeout_ms: u("x-consumer-timeout"),
        max_age_ms,
        stream_segment_bytes: u("x-stream-max-segment-size-bytes"),
        stream_max_bytes: u("x-max-length-bytes").filter(|_| kind == QueueType::Stream),
    })
}

/// Milliseconds per unit of RabbitMQ's `max-age` (`Y M D h m s`; a month is 30
/// days and a year 365, as rabbit_amqqueue:check_max_age does).
fn age_unit_ms(unit: u8) -> Option<u64> {
    const S: u64 = 1000;
    Some(match unit {
        b'Y' => 365 * 24 * 3600 * S,
        b'M' => 30 * 24 * 3600 * S,
        b'D' => 24 * 3600 * S,
        b'h' => 3600 * S,
        b'm' => 60 * S,
        b's' => S,
        _ => return None,
    })
}

/// A stream's `x-max-age` (`7D`, `1h`, `30m`...): a positive number and one
/// unit; None when it is not (RabbitMQ's `invalid_max_age`). Also the
/// interval form of `x-stream-offset`.
pub fn parse_max_age(s: &str) -> Option<u64> {
    let (&unit, digits) = s.as_bytes().split_last()?;
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let n: u64 = std::str::from_utf8(digits).ok()?.parse().ok()?;
    let ms = n.checked_mul(age_unit_ms(unit)?)?;
    (ms > 0).then_some(ms)
}

/// Parses a per-message `expiration` property: a non-negative integer of
/// milliseconds, as text. RabbitMQ rejects anything else with 406.
pub fn parse_expiration(s: &str) -> Result<u64, String> {
    s.parse::<u64>()
        .ok()
        .filter(|_| !s.starts_with('+'))
        .ok_or_else(|| format!("invalid expiration '{s}': {{value_negative_or_not_an_integer}}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(k: &str, v: FieldValue) -> FieldTable {
        [(ringmq_codec::ShortString::new(k).unwrap(), v)].into_iter().collect()
    }

    #[test]
    fn good_arguments_become_settings() {
        let mut a = FieldTable::new();
        a.insert(ringmq_codec::short!("x-message-ttl"), FieldValue::I32(1000));
        a.insert(ringmq_codec::short!("x-max-length"), FieldValue::I64(10));
        a.insert(ringmq_codec::short!("x-overflow"), "reject-publish");
        a.insert(ringmq_codec::short!("x-dead-letter-exchange"), "dlx");
        a.insert(ringmq_codec::short!("x-max-priority"), FieldValue::U8(10));
        a.insert(ringmq_codec::short!("x-single-active-consumer"), true);
        let s = parse(&a, "q", "/").unwrap();
        assert_eq!(s.message_ttl_ms, Some(1000));
        assert_eq!(s.max_length, Some(10));
        assert_eq!(s.overflow, Overflow::RejectPublish);
        assert_eq!(s.dead_letter_exchange.as_deref(), Some("dlx"));
        assert_eq!(s.max_priority, Some(10));
        assert!(s.single_active_consumer);
    }

    #[test]
    fn bad_arguments_say_why() {
        let e = parse(&t("x-message-ttl", FieldValue::I32(-1)), "q", "/").unwrap_err();
        assert_eq!(
            e,
            "invalid arg 'x-message-ttl' for queue 'q' in vhost '/': {value_negative,-1}"
        );
        let e = parse(&t("x-max-priority", FieldValue::I32(256)), "q", "/").unwrap_err();
        assert!(e.ends_with("{max_value_exceeded,256}"), "{e}");
        let e = parse(&t("x-expires", FieldValue::I32(0)), "q", "/").unwrap_err();
        assert!(e.ends_with("{value_zero,0}"), "{e}");
        let e = parse(&t("x-message-ttl", FieldValue::from("10")), "q", "/").unwrap_err();
        assert!(e.ends_with("\"expected integer, got longstr\""), "{e}");
        let e = parse(&t("x-overflow", FieldValue::from("nope")), "q", "/").unwrap_err();
        assert!(e.contains("invalid_value"), "{e}");
    }

    /// RabbitMQ 3.10.8's answers (tests/streams.rs checks them on the wire).
    #[test]
    fn streams_refuse_what_they_cannot_honour() {
        let mut a = t("x-queue-type", FieldValue::from("stream"));
        let s = parse(&a, "s", "/").unwrap();
        assert_eq!(s.kind, QueueType::Stream);
        assert_eq!(
            s.check_properties(false, false, false, "s", "/").unwrap_err(),
            "invalid property 'non-durable' for queue 's' in vhost '/'"
        );
        assert!(s.check_properties(true, false, false, "s", "/").is_ok());
        a.insert(ringmq_codec::short!("x-max-priority"), FieldValue::U8(5));
        assert_eq!(
            parse(&a, "s", "/").unwrap_err(),
            "invalid arg 'x-max-priority' for queue 's' in vhost '/' of queue type rabbit_stream_queue"
        );
        let mut a = t("x-queue-type", FieldValue::from("stream"));
        a.insert(ringmq_codec::short!("x-max-age"), "7D");
        a.insert(ringmq_codec::short!("x-max-length-bytes"), FieldValue::I64(1000));
        a.insert(
            ringmq_codec::short!("x-stream-max-segment-size-bytes"),
            FieldValue::I32(500),
        );
        let s = parse(&a, "s", "/").unwrap();
        assert_eq!(s.max_age_ms, Some(7 * 24 * 3600 * 1000));
        assert_eq!((s.max_length_bytes, s.stream_max_bytes), (None, Some(1000)));
        assert_eq!(s.stream_segment_bytes, Some(500));
        a.insert(ringmq_codec::short!("x-max-age"), FieldValue::I32(5));
        assert!(parse(&a, "s", "/")
            .unwrap_err()
            .ends_with("{unacceptable_type,signedint}"));
        for bad in ["0s", "1X", "h", "", "-1h", "1.5h"] {
            a.insert(ringmq_codec::short!("x-max-age"), bad);
            assert!(parse(&a, "s", "/").unwrap_err().ends_with(": invalid_max_age"), "{bad}");
        }
        assert_eq!(parse_max_age("30m"), Some(30 * 60 * 1000));
        assert_eq!(parse_max_age("1Y"), Some(365 * 24 * 3600 * 1000));
    }

    #[test]
    fn expiration_property() {
        assert_eq!(parse_expiration("0"), Ok(0));
        assert_eq!(parse_expiration("60000"), Ok(60000));
        assert!(parse_expiration("-1").is_err());
        assert!(parse_expiration("abc").is_err());
        assert!(parse_expiration("+5").is_err());
    }
}
