//! Values from fuzz bytes. Names mostly come from a small pool, so that steps
//! meet (a queue declared, then bound, published to, deleted), and sometimes
//! are any string, or a long one with a multi-byte character across byte 255.
//! Argument tables use the keys the broker reads, with values of any type.

use arbitrary::{Arbitrary, Result, Unstructured};
use ringmq_codec::{FieldTable, FieldValue, ShortStr, ShortString};
use serde_json::Value;

/// Names and the keyword values the broker parses (queue types, overflow
/// modes, exchange kinds, x-match), in one pool: any of them may land anywhere.
pub const POOL: &[&str] = &[
    "",
    "q0",
    "q1",
    "q2",
    "x0",
    "x1",
    "dlx",
    "amq.direct",
    "amq.fanout",
    "amq.topic",
    "amq.headers",
    "amq.match",
    "amq.rabbitmq.reply-to",
    "amq.gen-x",
    "guest",
    "/",
    "#",
    "*.a",
    "a.b",
    "a",
    "0",
    "1",
    "-1",
    "1000",
    "99999999999999999999",
    "direct",
    "fanout",
    "topic",
    "headers",
    "x-delayed-message",
    "x-consistent-hash",
    "x-modulus-hash",
    "classic",
    "quorum",
    "stream",
    "lazy",
    "reject-publish",
    "reject-publish-dlx",
    "drop-head",
    "all",
    "any",
    "all-with-x",
    "any-with-x",
    "queues",
    "exchanges",
    ".*",
    "^q",
    "%2F",
    "a/b",
    "a%b",
    "a\0b",
    "é",
];

/// Argument and header keys the broker reads.
pub const ARG_KEYS: &[&str] = &[
    "x-message-ttl",
    "x-expires",
    "x-max-length",
    "x-max-length-bytes",
    "x-overflow",
    "x-dead-letter-exchange",
    "x-dead-letter-routing-key",
    "x-max-priority",
    "x-queue-type",
    "x-queue-mode",
    "x-single-active-consumer",
    "x-delivery-limit",
    "x-consumer-timeout",
    "x-message-deduplication",
    "x-deduplication-header",
    "x-cache-size",
    "x-cache-ttl",
    "alternate-exchange",
    "x-delayed-type",
    "x-match",
    "x-delay",
    "x-priority",
    "x-hash-on",
    "x-tenant",
    "x-death",
    "x-stream-offset",
    "capabilities",
];

/// Policy definition keys (the management API's and operator policies').
pub const POLICY_KEYS: &[&str] = &[
    "max-length",
    "max-length-bytes",
    "message-ttl",
    "expires",
    "overflow",
    "dead-letter-exchange",
    "dead-letter-routing-key",
    "delivery-limit",
    "max-priority",
    "queue-mode",
    "alternate-exchange",
    "consumer-timeout",
    "federation-upstream",
    "ha-mode",
];

/// The queue names and routing keys most steps use, so that they meet often.
pub const CORE: &[&str] = &["q0", "q1", "q2", "", "a.b", "#"];

/// A name: resolved against the names the broker generated so far.
#[derive(Debug, Clone)]
pub enum Name {
    Core(u8),
    Pool(u8),
    /// A queue name or consumer tag the broker generated.
    Seen(u8),
    Any(String),
    /// `len` bytes of `a` with a two-byte `é` at `split` (so some cross 255).
    Long {
        len: u16,
        split: u16,
    },
}

impl<'a> Arbitrary<'a> for Name {
    fn arbitrary(u: &mut Unstructured<'a>) -> Result<Self> {
        Ok(match u.int_in_range(0u8..=15)? {
            0..=7 => Name::Core(u.arbitrary()?),
            8..=10 => Name::Pool(u.arbitrary()?),
            11 | 12 => Name::Seen(u.arbitrary()?),
            13 | 14 => Name::Any(u.arbitrary()?),
            _ => Name::Long {
                len: u.int_in_range(240..=300)?,
                split: u.int_in_range(240..=300)?,
            },
        })
    }
}

impl Name {
    pub fn resolve(&self, seen: &[String]) -> String {
        match self {
            Name::Core(i) => CORE[*i as usize % CORE.len()].to_string(),
            Name::Pool(i) => POOL[*i as usize % POOL.len()].to_string(),
            Name::Seen(i) if !seen.is_empty() => seen[*i as usize % seen.len()].clone(),
            Name::Seen(_) => "q0".into(),
            Name::Any(s) => s.clone(),
            Name::Long { len, split } => {
                let mut s = "a".repeat((*split).min(*len) as usize);
                s.push('é');
                while s.len() < *len as usize {
                    s.push('a');
                }
                s
            }
        }
    }
}

/// An exchange name: mostly the default exchange, a built-in one or one of
/// two a script declares.
#[derive(Debug, Clone)]
pub enum ExchangeName {
    Known(u8),
    Any(Name),
}

/// The exchanges most steps name.
const EXCHANGES: &[&str] = &[
    "",
    "",
    "",
    "amq.direct",
    "amq.direct",
    "x0",
    "x0",
    "x1",
    "amq.fanout",
    "amq.topic",
    "amq.headers",
];

impl<'a> Arbitrary<'a> for ExchangeName {
    fn arbitrary(u: &mut Unstructured<'a>) -> Result<Self> {
        Ok(if u.ratio(7u8, 8u8)? {
            ExchangeName::Known(u.arbitrary()?)
        } else {
            ExchangeName::Any(u.arbitrary()?)
        })
    }
}

impl ExchangeName {
    pub fn resolve(&self, seen: &[String]) -> String {
        match self {
            ExchangeName::Known(i) => EXCHANGES[*i as usize % EXCHANGES.len()].to_string(),
            ExchangeName::Any(n) => n.resolve(seen),
        }
    }
}

/// An exchange type: the broker's, or any name.
#[derive(Debug, Clone)]
pub struct ExchangeKind(pub String);

const KINDS: &[&str] = &[
    "direct",
    "fanout",
    "topic",
    "headers",
    "x-delayed-message",
    "x-consistent-hash",
    "x-modulus-hash",
];

impl<'a> Arbitrary<'a> for ExchangeKind {
    fn arbitrary(u: &mut Unstructured<'a>) -> Result<Self> {
        Ok(ExchangeKind(if u.ratio(7u8, 8u8)? {
            KINDS[u.choose_index(KINDS.len())?].to_string()
        } else {
            Name::arbitrary(u)?.resolve(&[])
        }))
    }
}

/// What AMQP can carry of a name: its first 255 bytes, cut on a character.
pub fn short(s: &str) -> ShortStr<'_> {
    ShortStr::truncate(s)
}

/// A key of an argument table or header table.
#[derive(Debug, Clone)]
pub enum Key {
    Known(u8),
    Any(Name),
}

impl<'a> Arbitrary<'a> for Key {
    fn arbitrary(u: &mut Unstructured<'a>) -> Result<Self> {
        Ok(if u.ratio(3u8, 4u8)? {
            Key::Known(u.arbitrary()?)
        } else {
            Key::Any(u.arbitrary()?)
        })
    }
}

impl Key {
    pub fn resolve(&self, seen: &[String]) -> String {
        match self {
            Key::Known(i) => ARG_KEYS[*i as usize % ARG_KEYS.len()].to_string(),
            Key::Any(n) => n.resolve(seen),
        }
    }
}

/// A field value; tables and arrays nest one level (`Leaf` inside).
#[derive(Debug, Clone, Arbitrary)]
pub enum Val {
    Int(i64),
    Small(i8),
    Wide(u32),
    Str(Name),
    Bytes(Vec<u8>),
    Bool(bool),
    Float(f64),
    Void,
    Timestamp(u64),
    Decimal(u8, u32),
    Table(Vec<(Key, Leaf)>),
    Array(Vec<Leaf>),
}

#[derive(Debug, Clone, Arbitrary)]
pub enum Leaf {
    Int(i64),
    Str(Name),
    Bool(bool),
    Float(f32),
    Void,
}

/// An argument or header table: empty half the time (most declares have
/// none), else a few entries, mostly known keys with a value of their kind.
#[derive(Debug, Clone, Default)]
pub struct Args(pub Vec<(Key, Val)>);

impl<'a> Arbitrary<'a> for Args {
    fn arbitrary(u: &mut Unstructured<'a>) -> Result<Self> {
        let mut kv = Vec::new();
        if u.ratio(1u8, 2u8)? {
            return Ok(Args(kv));
        }
        for _ in 0..u.int_in_range(1..=3)? {
            let key = Key::arbitrary(u)?;
            let val = match &key {
                Key::Known(i) if u.ratio(3u8, 4u8)? => plausible(ARG_KEYS[*i as usize % ARG_KEYS.len()], u)?,
                _ => Val::arbitrary(u)?,
            };
            kv.push((key, val));
        }
        Ok(Args(kv))
    }
}

/// A value of the kind the broker reads for `key`.
fn plausible(key: &str, u: &mut Unstructured<'_>) -> Result<Val> {
    let word = |u: &mut Unstructured<'_>, words: &[&str]| -> Result<Val> {
        let w = words[u.choose_index(words.len())?];
        Ok(Val::Str(Name::Any(w.to_string())))
    };
    Ok(match key {
        "x-overflow" => word(u, &["drop-head", "reject-publish", "reject-publish-dlx"])?,
        "x-queue-type" => word(u, &["classic", "quorum", "stream"])?,
        "x-queue-mode" => word(u, &["default", "lazy"])?,
        "x-match" => word(u, &["all", "any", "all-with-x", "any-with-x"])?,
        "x-delayed-type" => word(u, &["direct", "fanout", "topic", "headers"])?,
        "x-single-active-consumer" | "x-message-deduplication" => Val::Bool(u.arbitrary()?),
        "x-dead-letter-exchange" | "alternate-exchange" => {
            Val::Str(Name::Any(ExchangeName::arbitrary(u)?.resolve(&[])))
        }
        "x-dead-letter-routing-key" | "x-deduplication-header" | "x-hash-on" => Val::Str(Name::arbitrary(u)?),
        // Times, lengths, counts: small, so that they bite within a script.
        _ => Val::Int(u.int_in_range(0..=2_000)?),
    })
}

fn key_of(k: &Key, seen: &[String]) -> ShortString {
    let k = k.resolve(seen);
    ShortString::from(short(&k))
}

impl Leaf {
    fn field(&self, seen: &[String]) -> FieldValue {
        match self {
            Leaf::Int(v) => FieldValue::I64(*v),
            Leaf::Str(n) => FieldValue::LongString(n.resolve(seen).into_bytes()),
            Leaf::Bool(b) => FieldValue::Bool(*b),
            Leaf::Float(f) => FieldValue::F32(*f),
            Leaf::Void => FieldValue::Void,
        }
    }

    fn json(&self, seen: &[String]) -> Value {
        match self {
            Leaf::Int(v) => Value::from(*v),
            Leaf::Str(n) => Value::from(n.resolve(seen)),
            Leaf::Bool(b) => Value::from(*b),
            Leaf::Float(f) => Value::from(*f as f64),
            Leaf::Void => Value::Null,
        }
    }
}

impl Val {
    fn field(&self, seen: &[String]) -> FieldValue {
        match self {
            Val::Int(v) => FieldValue::I64(*v),
            Val::Small(v) => FieldValue::I8(*v),
            Val::Wide(v) => FieldValue::U32(*v),
            Val::Str(n) => FieldValue::LongString(n.resolve(seen).into_bytes()),
            Val::Bytes(b) => FieldValue::LongString(b.clone()),
            Val::Bool(b) => FieldValue::Bool(*b),
            Val::Float(f) => FieldValue::F64(*f),
            Val::Void => FieldValue::Void,
            Val::Timestamp(t) => FieldValue::Timestamp(*t),
            Val::Decimal(scale, value) => FieldValue::Decimal {
                scale: *scale,
                value: *value,
            },
            Val::Table(kv) => {
                let mut t = FieldTable::new();
                for (k, v) in kv {
                    t.insert(key_of(k, seen), v.field(seen));
                }
                FieldValue::Table(t)
            }
            Val::Array(vs) => FieldValue::Array(vs.iter().map(|v| v.field(seen)).collect()),
        }
    }

    fn json(&self, seen: &[String]) -> Value {
        match self {
            Val::Int(v) => Value::from(*v),
            Val::Small(v) => Value::from(*v),
            Val::Wide(v) => Value::from(*v),
            Val::Str(n) => Value::from(n.resolve(seen)),
            Val::Bytes(b) => Value::from(String::from_utf8_lossy(b).into_owned()),
            Val::Bool(b) => Value::from(*b),
            Val::Float(f) => Value::from(*f),
            Val::Void => Value::Null,
            Val::Timestamp(t) => Value::from(*t),
            Val::Decimal(_, v) => Value::from(*v),
            Val::Table(kv) => Value::Object(kv.iter().map(|(k, v)| (k.resolve(seen), v.json(seen))).collect()),
            Val::Array(vs) => Value::Array(vs.iter().map(|v| v.json(seen)).collect()),
        }
    }
}

impl Args {
    /// The table as AMQP encodes it (keys cut to 255 bytes).
    pub fn to_bytes(&self, seen: &[String]) -> Vec<u8> {
        let mut t = FieldTable::new();
        for (k, v) in &self.0 {
            t.insert(key_of(k, seen), v.field(seen));
        }
        t.to_bytes()
    }

    /// The table as the management API takes it (keys as they are).
    pub fn to_json(&self, seen: &[String]) -> Value {
        Value::Object(self.0.iter().map(|(k, v)| (k.resolve(seen), v.json(seen))).collect())
    }
}

/// Any JSON value, nested at most [`JSON_DEPTH_MAX`] deep.
#[derive(Debug, Clone)]
pub struct Json(pub Value);

const JSON_DEPTH_MAX: u32 = 4;

impl<'a> Arbitrary<'a> for Json {
    fn arbitrary(u: &mut Unstructured<'a>) -> Result<Self> {
        json_value(u, 0).map(Json)
    }
}

fn json_value(u: &mut Unstructured<'_>, depth: u32) -> Result<Value> {
    let nest = depth < JSON_DEPTH_MAX;
    Ok(match u.int_in_range(0u8..=8)? {
        0 => Value::Null,
        1 => Value::from(bool::arbitrary(u)?),
        2 => Value::from(i64::arbitrary(u)?),
        3 => Value::from(u64::arbitrary(u)?),
        4 => Value::from(f64::arbitrary(u)?), // NaN and infinities become null
        5 => Value::from(Name::arbitrary(u)?.resolve(&[])),
        6 if nest => {
            let n = u.int_in_range(0..=4)?;
            Value::Array((0..n).map(|_| json_value(u, depth + 1)).collect::<Result<_>>()?)
        }
        7 if nest => {
            let n = u.int_in_range(0..=4)?;
            let mut m = serde_json::Map::new();
            for _ in 0..n {
                let k = if u.ratio(1u8, 2u8)? {
                    Key::arbitrary(u)?.resolve(&[])
                } else {
                    POLICY_KEYS[u.choose_index(POLICY_KEYS.len())?].to_string()
                };
                m.insert(k, json_value(u, depth + 1)?);
            }
            Value::Object(m)
        }
        _ => Value::from(String::arbitrary(u)?),
    })
}
