//! The content header and the 14 basic properties.
//!
//! Wire layout of a content header payload:
//! `class_id u16, weight u16 (0), body_size u64, flags u16…, property values`.
//! Flag bit 15 of the first flag word is the first property (`content-type`), down
//! to bit 2 for the 14th (`cluster-id`); bit 0 set means another flag word follows
//! (never needed for basic, but legal, so it is accepted and must be zero).
//!
//! The broker stores the flags and values verbatim (the "raw properties") and sends
//! them back unchanged on delivery, so decoding them into [`BasicProperties`] is
//! needed only when a value matters (headers exchange, TTL, priority, CC/BCC).

use crate::error::ProtocolError;
use crate::short::ShortStr;
use crate::table::Table;
use crate::wire::*;

/// Content header: which class the content belongs to, its body size, and the
/// raw (validated) property flags and values.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ContentHeader<'a> {
    pub class_id: u16,
    pub body_size: u64,
    /// Flags and property values exactly as they were on the wire.
    pub properties_raw: &'a [u8],
}

impl<'a> ContentHeader<'a> {
    /// Decodes and validates a header frame payload.
    pub fn decode(payload: &'a [u8]) -> Result<ContentHeader<'a>, ProtocolError> {
        let mut r = Reader::new(payload);
        let class_id = r.u16()?;
        let _weight = r.u16()?;
        let body_size = r.u64()?;
        let properties_raw = r.rest();
        BasicProperties::validate(properties_raw)?;
        Ok(ContentHeader {
            class_id,
            body_size,
            properties_raw,
        })
    }

    /// The decoded properties. Infallible: validated by `decode`.
    pub fn properties(&self) -> BasicProperties<'a> {
        BasicProperties::decode(self.properties_raw).expect("validated properties")
    }
}

/// The basic class properties, each present or not.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct BasicProperties<'a> {
    pub content_type: Option<ShortStr<'a>>,
    pub content_encoding: Option<ShortStr<'a>>,
    pub headers: Option<Table<'a>>,
    pub delivery_mode: Option<u8>,
    pub priority: Option<u8>,
    pub correlation_id: Option<ShortStr<'a>>,
    pub reply_to: Option<ShortStr<'a>>,
    pub expiration: Option<ShortStr<'a>>,
    pub message_id: Option<ShortStr<'a>>,
    pub timestamp: Option<u64>,
    pub kind: Option<ShortStr<'a>>,
    pub user_id: Option<ShortStr<'a>>,
    pub app_id: Option<ShortStr<'a>>,
    pub cluster_id: Option<ShortStr<'a>>,
}

const FLAG_CONTENT_TYPE: u16 = 1 << 15;
const FLAG_CONTENT_ENCODING: u16 = 1 << 14;
const FLAG_HEADERS: u16 = 1 << 13;
const FLAG_DELIVERY_MODE: u16 = 1 << 12;
const FLAG_PRIORITY: u16 = 1 << 11;
const FLAG_CORRELATION_ID: u16 = 1 << 10;
const FLAG_REPLY_TO: u16 = 1 << 9;
const FLAG_EXPIRATION: u16 = 1 << 8;
const FLAG_MESSAGE_ID: u16 = 1 << 7;
const FLAG_TIMESTAMP: u16 = 1 << 6;
const FLAG_TYPE: u16 = 1 << 5;
const FLAG_USER_ID: u16 = 1 << 4;
const FLAG_APP_ID: u16 = 1 << 3;
const FLAG_CLUSTER_ID: u16 = 1 << 2;
const FLAG_CONTINUATION: u16 = 1;
/// Bit 1 belongs to no basic property; a client that sets it is confused.
const FLAG_UNUSED: u16 = 1 << 1;

/// Upper bound on flag words, so a run of continuation bits cannot spin.
const FLAG_WORDS_MAX: usize = 4;

impl<'a> BasicProperties<'a> {
    /// `delivery_mode` 2 means persistent.
    pub fn is_persistent(&self) -> bool {
        self.delivery_mode == Some(2)
    }

    /// Decodes flags + values (the raw properties, without class/weight/size).
    pub fn decode(raw: &'a [u8]) -> Result<BasicProperties<'a>, ProtocolError> {
        let mut p = BasicProperties::default();
        walk(raw, |field| match field {
            Field::ContentType(v) => p.content_type = Some(v),
            Field::ContentEncoding(v) => p.content_encoding = Some(v),
            Field::Headers(v) => p.headers = Some(v),
            Field::DeliveryMode(v) => p.delivery_mode = Some(v),
            Field::Priority(v) => p.priority = Some(v),
            Field::CorrelationId(v) => p.correlation_id = Some(v),
            Field::ReplyTo(v) => p.reply_to = Some(v),
            Field::Expiration(v) => p.expiration = Some(v),
            Field::MessageId(v) => p.message_id = Some(v),
            Field::Timestamp(v) => p.timestamp = Some(v),
            Field::Kind(v) => p.kind = Some(v),
            Field::UserId(v) => p.user_id = Some(v),
            Field::AppId(v) => p.app_id = Some(v),
            Field::ClusterId(v) => p.cluster_id = Some(v),
        })?;
        Ok(p)
    }

    /// Every check of [`decode`](Self::decode) without building the struct: a
    /// content header is validated when it arrives and decoded once, by the
    /// publish that needs its values (the struct is ~250 bytes to fill and copy,
    /// most of a decode's cost when few properties are set).
    pub fn validate(raw: &[u8]) -> Result<(), ProtocolError> {
        walk(raw, |_| {})
    }

    /// Appends flags + values: the raw properties form.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let mut flags = 0u16;
        let mut set = |present: bool, f: u16| {
            if present {
                flags |= f
            }
        };
        set(self.content_type.is_some(), FLAG_CONTENT_TYPE);
        set(self.content_encoding.is_some(), FLAG_CONTENT_ENCODING);
        set(self.headers.is_some(), FLAG_HEADERS);
        set(self.delivery_mode.is_some(), FLAG_DELIVERY_MODE);
        set(self.priority.is_some(), FLAG_PRIORITY);
        set(self.correlation_id.is_some(), FLAG_CORRELATION_ID);
        set(self.reply_to.is_some(), FLAG_REPLY_TO);
        set(self.expiration.is_some(), FLAG_EXPIRATION);
        set(self.message_id.is_some(), FLAG_MESSAGE_ID);
        set(self.timestamp.is_some(), FLAG_TIMESTAMP);
        set(self.kind.is_some(), FLAG_TYPE);
        set(self.user_id.is_some(), FLAG_USER_ID);
        set(self.app_id.is_some(), FLAG_APP_ID);
        set(self.cluster_id.is_some(), FLAG_CLUSTER_ID);
        put_u16(out, flags);
        let s = |out: &mut Vec<u8>, v: Option<ShortStr<'_>>| {
            if let Some(v) = v {
                put_shortstr(out, v)
            }
        };
        s(out, self.content_type);
        s(out, self.content_encoding);
        if let Some(h) = &self.headers {
            put_table(out, h);
        }
        if let Some(v) = self.delivery_mode {
            put_u8(out, v);
        }
        if let Some(v) = self.priority {
            put_u8(out, v);
        }
        s(out, self.correlation_id);
        s(out, self.reply_to);
        s(out, self.expiration);
        s(out, self.message_id);
        if let Some(v) = self.timestamp {
            put_u64(out, v);
        }
        s(out, self.kind);
        s(out, self.user_id);
        s(out, self.app_id);
        s(out, self.cluster_id);
    }
}

/// One property value as read from the wire, named by its property.
enum Field<'a> {
    ContentType(ShortStr<'a>),
    ContentEncoding(ShortStr<'a>),
    Headers(Table<'a>),
    DeliveryMode(u8),
    Priority(u8),
    CorrelationId(ShortStr<'a>),
    ReplyTo(ShortStr<'a>),
    Expiration(ShortStr<'a>),
    MessageId(ShortStr<'a>),
    Timestamp(u64),
    Kind(ShortStr<'a>),
    UserId(ShortStr<'a>),
    AppId(ShortStr<'a>),
    ClusterId(ShortStr<'a>),
}

/// Reads the flag words and each present value in wire order, handing each to
/// `each`: the one parser behind [`BasicProperties::decode`] and
/// [`BasicProperties::validate`].
#[inline(always)]
fn walk<'a>(raw: &'a [u8], mut each: impl FnMut(Field<'a>)) -> Result<(), ProtocolError> {
    let mut r = Reader::new(raw);
    let flags = r.u16()?;
    let mut more = flags & FLAG_CONTINUATION != 0;
    let mut words = 1;
    while more {
        words += 1;
        if words > FLAG_WORDS_MAX {
            return Err(ProtocolError::syntax("too many property flag words"));
        }
        let extra = r.u16()?;
        if extra & !FLAG_CONTINUATION != 0 {
            return Err(ProtocolError::syntax("unknown basic property flag"));
        }
        more = extra & FLAG_CONTINUATION != 0;
    }
    if flags & FLAG_UNUSED != 0 {
        return Err(ProtocolError::syntax("unknown basic property flag"));
    }
    let has = |f: u16| flags & f != 0;
    if has(FLAG_CONTENT_TYPE) {
        each(Field::ContentType(r.shortstr()?));
    }
    if has(FLAG_CONTENT_ENCODING) {
        each(Field::ContentEncoding(r.shortstr()?));
    }
    if has(FLAG_HEADERS) {
        each(Field::Headers(r.table()?));
    }
    if has(FLAG_DELIVERY_MODE) {
        each(Field::DeliveryMode(r.u8()?));
    }
    if has(FLAG_PRIORITY) {
        each(Field::Priority(r.u8()?));
    }
    if has(FLAG_CORRELATION_ID) {
        each(Field::CorrelationId(r.shortstr()?));
    }
    if has(FLAG_REPLY_TO) {
        each(Field::ReplyTo(r.shortstr()?));
    }
    if has(FLAG_EXPIRATION) {
        each(Field::Expiration(r.shortstr()?));
    }
    if has(FLAG_MESSAGE_ID) {
        each(Field::MessageId(r.shortstr()?));
    }
    if has(FLAG_TIMESTAMP) {
        each(Field::Timestamp(r.u64()?));
    }
    if has(FLAG_TYPE) {
        each(Field::Kind(r.shortstr()?));
    }
    if has(FLAG_USER_ID) {
        each(Field::UserId(r.shortstr()?));
    }
    if has(FLAG_APP_ID) {
        each(Field::AppId(r.shortstr()?));
    }
    if has(FLAG_CLUSTER_ID) {
        each(Field::ClusterId(r.shortstr()?));
    }
    if !r.is_empty() {
        return Err(ProtocolError::syntax("trailing bytes after basic properties"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::table::{FieldTable, FieldValue};

    #[test]
    fn all_properties_round_trip() {
        let headers: FieldTable = [(crate::short!("x-a"), FieldValue::I32(1))].into_iter().collect();
        let hb = headers.to_bytes();
        let p = BasicProperties {
            content_type: Some(crate::short!("text/plain")),
            content_encoding: Some(crate::short!("gzip")),
            headers: Some(Table::parse(&hb).unwrap()),
            delivery_mode: Some(2),
            priority: Some(9),
            correlation_id: Some(crate::short!("c")),
            reply_to: Some(crate::short!("amq.rabbitmq.reply-to")),
            expiration: Some(crate::short!("60000")),
            message_id: Some(crate::short!("m")),
            timestamp: Some(1_700_000_000),
            kind: Some(crate::short!("t")),
            user_id: Some(crate::short!("guest")),
            app_id: Some(crate::short!("app")),
            cluster_id: Some(crate::short!("cl")),
        };
        let mut raw = Vec::new();
        p.encode(&mut raw);
        assert_eq!(BasicProperties::decode(&raw).unwrap(), p);
        let mut empty = Vec::new();
        BasicProperties::default().encode(&mut empty);
        assert_eq!(empty, [0, 0]);
    }

    /// `validate` is `decode` without the struct: they accept and refuse the
    /// same bytes (every truncation and every single-byte change of a full set).
    #[test]
    fn validate_accepts_exactly_what_decode_accepts() {
        let headers: FieldTable = [(crate::short!("x-a"), FieldValue::I32(1))].into_iter().collect();
        let hb = headers.to_bytes();
        let p = BasicProperties {
            content_type: Some(crate::short!("text/plain")),
            headers: Some(Table::parse(&hb).unwrap()),
            delivery_mode: Some(2),
            expiration: Some(crate::short!("60000")),
            timestamp: Some(1_700_000_000),
            cluster_id: Some(crate::short!("cl")),
            ..Default::default()
        };
        let mut raw = Vec::new();
        p.encode(&mut raw);
        let same = |bytes: &[u8]| {
            assert_eq!(
                BasicProperties::validate(bytes).is_ok(),
                BasicProperties::decode(bytes).is_ok(),
                "{bytes:?}"
            )
        };
        let (mut accepted, mut refused) = (0, 0);
        for len in 0..=raw.len() {
            same(&raw[..len]);
        }
        for i in 0..raw.len() {
            for v in [0u8, 1, 0x7f, 0x80, 0xc3, 0xff] {
                let mut b = raw.clone();
                b[i] = v;
                same(&b);
                match BasicProperties::decode(&b) {
                    Ok(_) => accepted += 1,
                    Err(_) => refused += 1,
                }
            }
        }
        assert!(accepted > 0 && refused > 0, "{accepted} accepted, {refused} refused");
        same(&[0, 1, 0, 0]);
        same(&[0, 1, 0, 2]);
        same(&[0, 2]);
    }
}
