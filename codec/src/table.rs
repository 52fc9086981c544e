//! Field tables and arrays, borrowed and owned.
//!
//! On the wire a table is a u32 byte length followed by entries
//! `shortstr name, u8 type tag, value`. [`Table`] is a validated, borrowed view of
//! those entry bytes: it is walked once when decoded (so a malformed table is a 502
//! at decode time, not later) and then iterated lazily without allocation.
//! [`FieldTable`] is the owned form for declare arguments, server properties and
//! headers the broker builds itself; `FieldTable::encode` turns it into bytes that
//! [`Table::parse`] accepts.
//!
//! Type tags are RabbitMQ's (which differ from the 0-9-1 spec's table): `s` is a
//! signed 16-bit int, not a short string, and `l`/`L` are both signed 64-bit.

use std::collections::BTreeMap;

use crate::error::ProtocolError;
use crate::short::{ShortStr, ShortString};
use crate::wire::{put_longstr, put_shortstr, put_u16, put_u32, put_u64, Reader};

/// How deep tables and arrays may nest. A 128 KiB frame could otherwise nest 20k
/// levels and overflow the stack of a recursive walk; RabbitMQ's own headers
/// (x-death) nest 3 deep.
pub const TABLE_DEPTH_MAX: usize = 32;

/// A validated borrowed field table (the entry bytes, without the length prefix).
#[derive(Clone, Copy, PartialEq, Eq, Default)]
pub struct Table<'a> {
    bytes: &'a [u8],
}

/// A validated borrowed field array (the value bytes, without the length prefix).
#[derive(Clone, Copy, PartialEq, Eq, Default)]
pub struct Array<'a> {
    bytes: &'a [u8],
}

/// A borrowed field value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum FieldValueRef<'a> {
    Bool(bool),
    I8(i8),
    U8(u8),
    I16(i16),
    U16(u16),
    I32(i32),
    U32(u32),
    I64(i64),
    F32(f32),
    F64(f64),
    Decimal { scale: u8, value: u32 },
    LongString(&'a [u8]),
    ByteArray(&'a [u8]),
    Array(Array<'a>),
    Timestamp(u64),
    Table(Table<'a>),
    Void,
}

/// An owned field value.
#[derive(Debug, Clone, PartialEq)]
pub enum FieldValue {
    Bool(bool),
    I8(i8),
    U8(u8),
    I16(i16),
    U16(u16),
    I32(i32),
    U32(u32),
    I64(i64),
    F32(f32),
    F64(f64),
    Decimal { scale: u8, value: u32 },
    LongString(Vec<u8>),
    ByteArray(Vec<u8>),
    Array(Vec<FieldValue>),
    Timestamp(u64),
    Table(FieldTable),
    Void,
}

/// An owned field table. Keys are kept sorted, which makes argument-equivalence
/// checks a plain `==` and encodes deterministically. Keys are short strings on
/// the wire, so they are [`ShortString`]s here: a key that AMQP cannot carry is
/// refused where the table is built (JSON from the API), not when it is encoded.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct FieldTable(pub BTreeMap<ShortString, FieldValue>);

impl<'a> Table<'a> {
    /// The empty table.
    pub const EMPTY: Table<'static> = Table { bytes: &[] };

    /// Validates entry bytes (no length prefix) and wraps them.
    pub fn parse(bytes: &'a [u8]) -> Result<Table<'a>, ProtocolError> {
        validate_table(bytes, 0)?;
        Ok(Table { bytes })
    }

    /// The encoded entries, ready to be copied onto the wire behind a u32 length.
    pub fn as_bytes(&self) -> &'a [u8] {
        self.bytes
    }

    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// Iterates entries in wire order.
    pub fn iter(&self) -> TableIter<'a> {
        TableIter {
            r: Reader::new(self.bytes),
        }
    }

    /// The first entry with this name. Tables are small (a handful of headers), so
    /// a linear scan beats building an index.
    pub fn get(&self, key: &str) -> Option<FieldValueRef<'a>> {
        self.iter().find(|(k, _)| *k == key).map(|(_, v)| v)
    }

    /// The owned form. A key repeated on the wire keeps its first value, as
    /// [`Table::get`] (and RabbitMQ's `table_lookup`) read it; inserting in order
    /// would keep the last, so `get` and the owned form disagreed.
    pub fn to_owned_table(&self) -> FieldTable {
        let mut t = FieldTable::default();
        for (k, v) in self.iter() {
            t.0.entry(k.into()).or_insert_with(|| v.to_owned_value());
        }
        t
    }
}

impl std::fmt::Debug for Table<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl<'a> Array<'a> {
    pub fn parse(bytes: &'a [u8]) -> Result<Array<'a>, ProtocolError> {
        validate_array(bytes, 0)?;
        Ok(Array { bytes })
    }

    pub fn as_bytes(&self) -> &'a [u8] {
        self.bytes
    }

    pub fn iter(&self) -> ArrayIter<'a> {
        ArrayIter {
            r: Reader::new(self.bytes),
        }
    }
}

impl std::fmt::Debug for Array<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

/// Iterator over a validated table. Infallible: the bytes were validated by `parse`.
pub struct TableIter<'a> {
    r: Reader<'a>,
}

impl<'a> Iterator for TableIter<'a> {
    type Item = (ShortStr<'a>, FieldValueRef<'a>);

    fn next(&mut self) -> Option<Self::Item> {
        if self.r.is_empty() {
            return None;
        }
        // `Table`s are made only by `parse`, which walked these bytes; ending the
        // walk on an error rather than asserting keeps a missed case from aborting.
        let entry = self.r.shortstr().and_then(|k| Ok((k, read_value(&mut self.r)?)));
        debug_assert!(entry.is_ok(), "validated table");
        entry.ok()
    }
}

/// Iterator over a validated array.
pub struct ArrayIter<'a> {
    r: Reader<'a>,
}

impl<'a> Iterator for ArrayIter<'a> {
    type Item = FieldValueRef<'a>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.r.is_empty() {
            return None;
        }
        let v = read_value(&mut self.r);
        debug_assert!(v.is_ok(), "validated array");
        v.ok()
    }
}

fn validate_table(bytes: &[u8], depth: usize) -> Result<(), ProtocolError> {
    if depth >= TABLE_DEPTH_MAX {
        return Err(ProtocolError::syntax("field tables nested too deep"));
    }
    let mut r = Reader::new(bytes);
    while !r.is_empty() {
        r.shortstr()?;
        validate_value(&mut r, depth)?;
    }
    Ok(())
}

fn validate_array(bytes: &[u8], depth: usize) -> Result<(), ProtocolError> {
    if depth >= TABLE_DEPTH_MAX {
        return Err(ProtocolError::syntax("field arrays nested too deep"));
    }
    let mut r = Reader::new(bytes);
    while !r.is_empty() {
        validate_value(&mut r, depth)?;
    }
    Ok(())
}

fn validate_value(r: &mut Reader<'_>, depth: usize) -> Result<(), ProtocolError> {
    match r.u8()? {
        b'F' => {
            let len = r.u32()? as usize;
            validate_table(r.take(len)?, depth + 1)
        }
        b'A' => {
            let len = r.u32()? as usize;
            validate_array(r.take(len)?, depth + 1)
        }
        tag => read_scalar(tag, r).map(|_| ()),
    }
}

/// Reads one value from validated bytes (nested tables are not re-validated).
fn read_value<'a>(r: &mut Reader<'a>) -> Result<FieldValueRef<'a>, ProtocolError> {
    match r.u8()? {
        b'F' => {
            let len = r.u32()? as usize;
            Ok(FieldValueRef::Table(Table { bytes: r.take(len)? }))
        }
        b'A' => {
            let len = r.u32()? as usize;
            Ok(FieldValueRef::Array(Array { bytes: r.take(len)? }))
        }
        tag => read_scalar(tag, r),
    }
}

fn read_scalar<'a>(tag: u8, r: &mut Reader<'a>) -> Result<FieldValueRef<'a>, ProtocolError> {
    Ok(match tag {
        b't' => FieldValueRef::Bool(r.u8()? != 0),
        b'b' => FieldValueRef::I8(r.u8()? as i8),
        b'B' => FieldValueRef::U8(r.u8()?),
        b's' | b'U' => FieldValueRef::I16(r.u16()? as i16),
        b'u' => FieldValueRef::U16(r.u16()?),
        b'I' => FieldValueRef::I32(r.u32()? as i32),
        b'i' => FieldValueRef::U32(r.u32()?),
        b'l' | b'L' => FieldValueRef::I64(r.u64()? as i64),
        b'f' => FieldValueRef::F32(f32::from_bits(r.u32()?)),
        b'd' => FieldValueRef::F64(f64::from_bits(r.u64()?)),
        b'D' => FieldValueRef::Decimal {
            scale: r.u8()?,
            value: r.u32()?,
        },
        b'S' => FieldValueRef::LongString(r.longstr()?),
        b'x' => FieldValueRef::ByteArray(r.longstr()?),
        b'T' => FieldValueRef::Timestamp(r.u64()?),
        b'V' => FieldValueRef::Void,
        _ => return Err(ProtocolError::syntax("unknown field value type")),
    })
}

impl<'a> FieldValueRef<'a> {
    pub fn to_owned_value(&self) -> FieldValue {
        match *self {
            FieldValueRef::Bool(v) => FieldValue::Bool(v),
            FieldValueRef::I8(v) => FieldValue::I8(v),
            FieldValueRef::U8(v) => FieldValue::U8(v),
            FieldValueRef::I16(v) => FieldValue::I16(v),
            FieldValueRef::U16(v) => FieldValue::U16(v),
            FieldValueRef::I32(v) => FieldValue::I32(v),
            FieldValueRef::U32(v) => FieldValue::U32(v),
            FieldValueRef::I64(v) => FieldValue::I64(v),
            FieldValueRef::F32(v) => FieldValue::F32(v),
            FieldValueRef::F64(v) => FieldValue::F64(v),
            FieldValueRef::Decimal { scale, value } => FieldValue::Decimal { scale, value },
            FieldValueRef::LongString(v) => FieldValue::LongString(v.to_vec()),
            FieldValueRef::ByteArray(v) => FieldValue::ByteArray(v.to_vec()),
            FieldValueRef::Array(a) => FieldValue::Array(a.iter().map(|v| v.to_owned_value()).collect()),
            FieldValueRef::Timestamp(v) => FieldValue::Timestamp(v),
            FieldValueRef::Table(t) => FieldValue::Table(t.to_owned_table()),
            FieldValueRef::Void => FieldValue::Void,
        }
    }

    /// The value as a signed integer, for arguments like `x-max-length` that
    /// clients send with whatever integer type their language prefers.
    pub fn as_i64(&self) -> Option<i64> {
        Some(match *self {
            FieldValueRef::I8(v) => v as i64,
            FieldValueRef::U8(v) => v as i64,
            FieldValueRef::I16(v) => v as i64,
            FieldValueRef::U16(v) => v as i64,
            FieldValueRef::I32(v) => v as i64,
            FieldValueRef::U32(v) => v as i64,
            FieldValueRef::I64(v) => v,
            _ => return None,
        })
    }

    /// The value as text, for string arguments (long strings must be UTF-8).
    pub fn as_str(&self) -> Option<&'a str> {
        match *self {
            FieldValueRef::LongString(v) => std::str::from_utf8(v).ok(),
            _ => None,
        }
    }
}

impl FieldValue {
    /// RabbitMQ's name for the value's type, as its error texts print it
    /// (`signedint` for `I`, `longstr` for `S`, ...).
    pub fn type_name(&self) -> &'static str {
        match self {
            FieldValue::Bool(_) => "bool",
            FieldValue::I8(_) => "byte",
            FieldValue::U8(_) => "unsignedbyte",
            FieldValue::I16(_) => "short",
            FieldValue::U16(_) => "unsignedshort",
            FieldValue::I32(_) => "signedint",
            FieldValue::U32(_) => "unsignedint",
            FieldValue::I64(_) => "long",
            FieldValue::F32(_) => "float",
            FieldValue::F64(_) => "double",
            FieldValue::Decimal { .. } => "decimal",
            FieldValue::LongString(_) => "longstr",
            FieldValue::ByteArray(_) => "binary",
            FieldValue::Array(_) => "array",
            FieldValue::Timestamp(_) => "timestamp",
            FieldValue::Table(_) => "table",
            FieldValue::Void => "void",
        }
    }

    /// Borrowed-view helpers on owned values, so argument parsing is written once.
    pub fn as_i64(&self) -> Option<i64> {
        Some(match *self {
            FieldValue::I8(v) => v as i64,
            FieldValue::U8(v) => v as i64,
            FieldValue::I16(v) => v as i64,
            FieldValue::U16(v) => v as i64,
            FieldValue::I32(v) => v as i64,
            FieldValue::U32(v) => v as i64,
            FieldValue::I64(v) => v,
            _ => return None,
        })
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            FieldValue::LongString(v) => std::str::from_utf8(v).ok(),
            _ => None,
        }
    }

    /// Appends the type tag and value.
    pub fn encode(&self, out: &mut Vec<u8>) {
        match self {
            FieldValue::Bool(v) => out.extend_from_slice(&[b't', *v as u8]),
            FieldValue::I8(v) => out.extend_from_slice(&[b'b', *v as u8]),
            FieldValue::U8(v) => out.extend_from_slice(&[b'B', *v]),
            FieldValue::I16(v) => {
                out.push(b's');
                put_u16(out, *v as u16)
            }
            FieldValue::U16(v) => {
                out.push(b'u');
                put_u16(out, *v)
            }
            FieldValue::I32(v) => {
                out.push(b'I');
                put_u32(out, *v as u32)
            }
            FieldValue::U32(v) => {
                out.push(b'i');
                put_u32(out, *v)
            }
            FieldValue::I64(v) => {
                out.push(b'l');
                put_u64(out, *v as u64)
            }
            FieldValue::F32(v) => {
                out.push(b'f');
                put_u32(out, v.to_bits())
            }
            FieldValue::F64(v) => {
                out.push(b'd');
                put_u64(out, v.to_bits())
            }
            FieldValue::Decimal { scale, value } => {
                out.extend_from_slice(&[b'D', *scale]);
                put_u32(out, *value)
            }
            FieldValue::LongString(v) => {
                out.push(b'S');
                put_longstr(out, v)
            }
            FieldValue::ByteArray(v) => {
                out.push(b'x');
                put_longstr(out, v)
            }
            FieldValue::Array(items) => {
                out.push(b'A');
                with_length_prefix(out, |out| {
                    for v in items {
                        v.encode(out);
                    }
                })
            }
            FieldValue::Timestamp(v) => {
                out.push(b'T');
                put_u64(out, *v)
            }
            FieldValue::Table(t) => {
                out.push(b'F');
                with_length_prefix(out, |out| t.encode_entries(out))
            }
            FieldValue::Void => out.push(b'V'),
        }
    }
}

impl From<&str> for FieldValue {
    fn from(s: &str) -> Self {
        FieldValue::LongString(s.as_bytes().to_vec())
    }
}

impl From<crate::short::ShortStr<'_>> for FieldValue {
    fn from(s: crate::short::ShortStr<'_>) -> Self {
        FieldValue::LongString(s.as_bytes().to_vec())
    }
}

impl From<bool> for FieldValue {
    fn from(v: bool) -> Self {
        FieldValue::Bool(v)
    }
}

impl From<i64> for FieldValue {
    fn from(v: i64) -> Self {
        FieldValue::I64(v)
    }
}

impl From<FieldTable> for FieldValue {
    fn from(v: FieldTable) -> Self {
        FieldValue::Table(v)
    }
}

/// Writes a u32 length placeholder, runs `f`, then patches the length.
fn with_length_prefix(out: &mut Vec<u8>, f: impl FnOnce(&mut Vec<u8>)) {
    let at = out.len();
    put_u32(out, 0);
    f(out);
    let len = u32::try_from(out.len() - at - 4).expect("table over 4 GiB");
    out[at..at + 4].copy_from_slice(&len.to_be_bytes());
}

impl FieldTable {
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets `key` (a [`ShortStr::lit`] for a literal key).
    pub fn insert(&mut self, key: impl Into<ShortString>, value: impl Into<FieldValue>) {
        self.0.insert(key.into(), value.into());
    }

    pub fn get(&self, key: &str) -> Option<&FieldValue> {
        self.0.get(key)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Appends the entries (no length prefix): the bytes [`Table::parse`] takes.
    pub fn encode_entries(&self, out: &mut Vec<u8>) {
        for (k, v) in &self.0 {
            put_shortstr(out, k.as_short());
            v.encode(out);
        }
    }

    /// The encoded entries in a fresh buffer, to borrow as a [`Table`] in a method.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode_entries(&mut out);
        out
    }
}

impl<K: Into<ShortString>, V: Into<FieldValue>> FromIterator<(K, V)> for FieldTable {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        FieldTable(iter.into_iter().map(|(k, v)| (k.into(), v.into())).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_type_round_trips() {
        let mut inner = FieldTable::new();
        inner.insert(crate::short!("n"), FieldValue::I32(-7));
        let t: FieldTable = [
            (crate::short!("t"), FieldValue::Bool(true)),
            (crate::short!("b"), FieldValue::I8(-1)),
            (crate::short!("B"), FieldValue::U8(255)),
            (crate::short!("s"), FieldValue::I16(-300)),
            (crate::short!("u"), FieldValue::U16(60000)),
            (crate::short!("I"), FieldValue::I32(i32::MIN)),
            (crate::short!("i"), FieldValue::U32(u32::MAX)),
            (crate::short!("l"), FieldValue::I64(i64::MIN)),
            (crate::short!("f"), FieldValue::F32(1.5)),
            (crate::short!("d"), FieldValue::F64(-2.25)),
            (crate::short!("D"), FieldValue::Decimal { scale: 2, value: 12345 }),
            (crate::short!("S"), FieldValue::LongString(b"hello".to_vec())),
            (crate::short!("x"), FieldValue::ByteArray(vec![0, 1, 2])),
            (
                crate::short!("A"),
                FieldValue::Array(vec![FieldValue::Void, FieldValue::Table(inner.clone())]),
            ),
            (crate::short!("T"), FieldValue::Timestamp(1_700_000_000)),
            (crate::short!("F"), FieldValue::Table(inner)),
            (crate::short!("V"), FieldValue::Void),
        ]
        .into_iter()
        .collect();
        let bytes = t.to_bytes();
        let parsed = Table::parse(&bytes).unwrap();
        assert_eq!(parsed.to_owned_table(), t);
        assert_eq!(parsed.get("u"), Some(FieldValueRef::U16(60000)));
        assert_eq!(parsed.get("missing"), None);
    }

    #[test]
    fn rejects_truncated_and_unknown() {
        let t: FieldTable = [(crate::short!("k"), FieldValue::LongString(b"value".to_vec()))]
            .into_iter()
            .collect();
        let bytes = t.to_bytes();
        for cut in 1..bytes.len() {
            assert!(Table::parse(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        assert!(Table::parse(&[1, b'k', b'?']).is_err());
    }

    #[test]
    fn deep_nesting_is_refused_not_overflowed() {
        let mut v = FieldValue::Void;
        for _ in 0..200 {
            let mut t = FieldTable::new();
            t.insert(crate::short!("a"), v);
            v = FieldValue::Table(t);
        }
        let mut t = FieldTable::new();
        t.insert(crate::short!("a"), v);
        // Encoding is recursive too, but only for tables we build ourselves.
        let bytes = t.to_bytes();
        let err = Table::parse(&bytes).unwrap_err();
        assert_eq!(err.code, crate::ReplyCode::SyntaxError);
    }
}
