//! A header value as bytes, and a hash of bytes that is the same in every run.
//!
//! Both the consistent-hash exchange (`hash-header`) and the deduplication cache
//! (`x-deduplication-header`) take "the value of a header" as their key, whatever
//! its type. Comparing the encoded bytes (type tag + value) keeps `1` as `I` and
//! `1` as `l` apart, as RabbitMQ's consistent-hash plugin does when it hashes the
//! `{Type, Value}` pair, and makes a NaN equal to itself, which a key must be.

use std::hash::Hasher;

use ringmq_codec::FieldValueRef;

/// Where encoded bytes go: a buffer (to store a key) or a hasher (to route
/// without allocating).
pub trait ByteSink {
    fn put(&mut self, bytes: &[u8]);
}

impl ByteSink for Vec<u8> {
    fn put(&mut self, bytes: &[u8]) {
        self.extend_from_slice(bytes);
    }
}

/// Writes `value` as it goes on the wire: tag, then the value (with a u32 length
/// before strings, arrays and tables). The same bytes as `FieldValue::encode` of
/// the owned value, without building it.
pub fn encode_field_value(value: FieldValueRef<'_>, out: &mut impl ByteSink) {
    fn with_len(out: &mut impl ByteSink, tag: u8, bytes: &[u8]) {
        out.put(&[tag]);
        // Values come from a decoded frame, so they are under 4 GiB.
        out.put(&(bytes.len() as u32).to_be_bytes());
        out.put(bytes);
    }
    match value {
        FieldValueRef::Bool(v) => out.put(&[b't', v as u8]),
        FieldValueRef::I8(v) => out.put(&[b'b', v as u8]),
        FieldValueRef::U8(v) => out.put(&[b'B', v]),
        FieldValueRef::I16(v) => tagged(out, b's', &v.to_be_bytes()),
        FieldValueRef::U16(v) => tagged(out, b'u', &v.to_be_bytes()),
        FieldValueRef::I32(v) => tagged(out, b'I', &v.to_be_bytes()),
        FieldValueRef::U32(v) => tagged(out, b'i', &v.to_be_bytes()),
        FieldValueRef::I64(v) => tagged(out, b'l', &v.to_be_bytes()),
        FieldValueRef::F32(v) => tagged(out, b'f', &v.to_bits().to_be_bytes()),
        FieldValueRef::F64(v) => tagged(out, b'd', &v.to_bits().to_be_bytes()),
        FieldValueRef::Decimal { scale, value } => {
            out.put(&[b'D', scale]);
            out.put(&value.to_be_bytes());
        }
        FieldValueRef::LongString(v) => with_len(out, b'S', v),
        FieldValueRef::ByteArray(v) => with_len(out, b'x', v),
        FieldValueRef::Array(a) => with_len(out, b'A', a.as_bytes()),
        FieldValueRef::Timestamp(v) => tagged(out, b'T', &v.to_be_bytes()),
        FieldValueRef::Table(t) => with_len(out, b'F', t.as_bytes()),
        FieldValueRef::Void => out.put(b"V"),
    }
}

fn tagged(out: &mut impl ByteSink, tag: u8, bytes: &[u8]) {
    out.put(&[tag]);
    out.put(bytes);
}

/// FNV-1a over the bytes, finished with splitmix64's mixer.
///
/// Not `std`'s `DefaultHasher`: its algorithm may change between Rust releases,
/// and a consistent-hash exchange must send a key to the same queue after an
/// upgrade. FNV alone spreads short keys that differ in the last byte poorly in
/// the high bits; the final mix fixes that. Keys here are routing keys and
/// header values of messages the client chose, but a skewed spread only costs
/// balance (a client can pick its own keys anyway), so a keyed hash buys nothing.
#[derive(Debug, Clone, Copy)]
pub struct StableHasher(u64);

impl Default for StableHasher {
    fn default() -> Self {
        StableHasher(0xcbf2_9ce4_8422_2325)
    }
}

impl Hasher for StableHasher {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 ^= b as u64;
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }

    fn finish(&self) -> u64 {
        mix64(self.0)
    }
}

impl ByteSink for StableHasher {
    fn put(&mut self, bytes: &[u8]) {
        self.write(bytes);
    }
}

/// splitmix64's output function: a bijection on u64 with full avalanche.
pub fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ringmq_codec::{FieldTable, FieldValue, Table};

    #[test]
    fn encoding_matches_the_owned_encoder_for_every_type() {
        let mut inner = FieldTable::new();
        inner.insert(ringmq_codec::short!("n"), FieldValue::I32(-7));
        let values = [
            FieldValue::Bool(true),
            FieldValue::I8(-1),
            FieldValue::U8(255),
            FieldValue::I16(-300),
            FieldValue::U16(60000),
            FieldValue::I32(i32::MIN),
            FieldValue::U32(u32::MAX),
            FieldValue::I64(i64::MIN),
            FieldValue::F32(1.5),
            FieldValue::F64(f64::NAN),
            FieldValue::Decimal { scale: 2, value: 12345 },
            FieldValue::LongString(b"hello".to_vec()),
            FieldValue::ByteArray(vec![0, 1, 2]),
            FieldValue::Array(vec![FieldValue::Void, FieldValue::Table(inner.clone())]),
            FieldValue::Timestamp(1_700_000_000),
            FieldValue::Table(inner),
            FieldValue::Void,
        ];
        for v in values {
            let mut t = FieldTable::new();
            t.insert(ringmq_codec::short!("k"), v.clone());
            let bytes = t.to_bytes();
            let got = Table::parse(&bytes).unwrap().get("k").unwrap();
            let mut ours = Vec::new();
            encode_field_value(got, &mut ours);
            let mut want = Vec::new();
            v.encode(&mut want);
            assert_eq!(ours, want, "{v:?}");
        }
    }

    #[test]
    fn stable_hash_is_fixed() {
        // Pinned (value from an independent FNV-1a + splitmix64 in Python):
        // changing the hash moves every consistent-hash key to another queue on
        // upgrade, which must be a deliberate decision.
        let mut h = StableHasher::default();
        h.write(b"order-42");
        assert_eq!(h.finish(), 6_371_757_786_061_637_967);
    }
}
