//! Shared proptest strategies: owned argument pools that borrowed methods,
//! properties and tables are built from.
#![allow(dead_code)]

pub mod methods_gen;

use proptest::collection::vec;
use proptest::prelude::*;
use ringmq_codec::table::{FieldTable, FieldValue, Table};
use ringmq_codec::{BasicProperties, ShortStr, ShortString};

pub use methods_gen::*;

/// Owned values for every argument of any one method: each field of type T takes
/// the next unused slot of T's array, in spec argument order.
#[derive(Debug, Clone, Default)]
pub struct Args {
    pub bits: [bool; MAX_BITS],
    pub u8s: [u8; MAX_U8S],
    pub u16s: [u16; MAX_U16S],
    pub u32s: [u32; MAX_U32S],
    pub u64s: [u64; MAX_U64S],
    pub shortstrs: [String; MAX_SHORTSTRS],
    pub longstrs: [Vec<u8>; MAX_LONGSTRS],
    /// Encoded table entries (see [`FieldTable::to_bytes`]).
    pub tables: [Vec<u8>; MAX_TABLES],
}

impl Args {
    pub fn table(&self, k: usize) -> Table<'_> {
        Table::parse(&self.tables[k]).expect("strategy makes valid tables")
    }

    pub fn short(&self, k: usize) -> ShortStr<'_> {
        ShortStr::new(&self.shortstrs[k]).expect("strategy makes short strings")
    }
}

/// Short strings: mostly ASCII names, sometimes any Unicode, up to the 255-byte
/// limit (60 chars of at most 4 bytes each stays under it).
pub fn shortstr() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-zA-Z0-9._-]{0,20}",
        "\\PC{0,60}",
        Just("x".repeat(255)),
        Just(String::new()),
    ]
}

pub fn longstr() -> impl Strategy<Value = Vec<u8>> {
    vec(any::<u8>(), 0..64)
}

/// Floats without NaN, so owned values compare with `==`; NaN payloads are
/// covered byte-wise in the table tests.
fn f32_no_nan() -> impl Strategy<Value = f32> {
    prop::num::f32::NORMAL | prop::num::f32::SUBNORMAL | prop::num::f32::ZERO | prop::num::f32::INFINITE
}

fn f64_no_nan() -> impl Strategy<Value = f64> {
    prop::num::f64::NORMAL | prop::num::f64::SUBNORMAL | prop::num::f64::ZERO | prop::num::f64::INFINITE
}

/// Every scalar field value type: t b B s u I i l f d D S x T V.
pub fn scalar_value() -> impl Strategy<Value = FieldValue> {
    prop_oneof![
        any::<bool>().prop_map(FieldValue::Bool),
        any::<i8>().prop_map(FieldValue::I8),
        any::<u8>().prop_map(FieldValue::U8),
        any::<i16>().prop_map(FieldValue::I16),
        any::<u16>().prop_map(FieldValue::U16),
        any::<i32>().prop_map(FieldValue::I32),
        any::<u32>().prop_map(FieldValue::U32),
        any::<i64>().prop_map(FieldValue::I64),
        f32_no_nan().prop_map(FieldValue::F32),
        f64_no_nan().prop_map(FieldValue::F64),
        (any::<u8>(), any::<u32>()).prop_map(|(scale, value)| FieldValue::Decimal { scale, value }),
        longstr().prop_map(FieldValue::LongString),
        longstr().prop_map(FieldValue::ByteArray),
        any::<u64>().prop_map(FieldValue::Timestamp),
        Just(FieldValue::Void),
    ]
}

/// Any field value, with tables (F) and arrays (A) nested a few levels.
pub fn field_value() -> impl Strategy<Value = FieldValue> {
    scalar_value().prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..6).prop_map(FieldValue::Array),
            vec(("[a-z]{0,8}", inner), 0..6).prop_map(|kv| FieldValue::Table(kv.into_iter().map(short_key).collect())),
        ]
    })
}

fn short_key<V>((k, v): (String, V)) -> (ShortString, V) {
    (ShortString::try_from(k).expect("strategy makes short strings"), v)
}

pub fn field_table() -> impl Strategy<Value = FieldTable> {
    vec((shortstr(), field_value()), 0..8).prop_map(|kv| kv.into_iter().map(short_key).collect())
}

pub fn args() -> impl Strategy<Value = Args> {
    (
        any::<[bool; MAX_BITS]>(),
        any::<[u8; MAX_U8S]>(),
        any::<[u16; MAX_U16S]>(),
        any::<[u32; MAX_U32S]>(),
        any::<[u64; MAX_U64S]>(),
        [shortstr(), shortstr(), shortstr()],
        [longstr(), longstr()],
        field_table(),
    )
        .prop_map(|(bits, u8s, u16s, u32s, u64s, shortstrs, longstrs, table)| Args {
            bits,
            u8s,
            u16s,
            u32s,
            u64s,
            shortstrs,
            longstrs,
            tables: [table.to_bytes()],
        })
}

/// Owned basic properties; [`Props::view`] borrows them as [`BasicProperties`].
#[derive(Debug, Clone, Default)]
pub struct Props {
    pub content_type: Option<String>,
    pub content_encoding: Option<String>,
    /// Encoded table entries.
    pub headers: Option<Vec<u8>>,
    pub delivery_mode: Option<u8>,
    pub priority: Option<u8>,
    pub correlation_id: Option<String>,
    pub reply_to: Option<String>,
    pub expiration: Option<String>,
    pub message_id: Option<String>,
    pub timestamp: Option<u64>,
    pub kind: Option<String>,
    pub user_id: Option<String>,
    pub app_id: Option<String>,
    pub cluster_id: Option<String>,
}

impl Props {
    pub fn view(&self) -> BasicProperties<'_> {
        BasicProperties {
            content_type: self
                .content_type
                .as_deref()
                .map(|s| ShortStr::new(s).expect("strategy makes short strings")),
            content_encoding: self
                .content_encoding
                .as_deref()
                .map(|s| ShortStr::new(s).expect("strategy makes short strings")),
            headers: self.headers.as_deref().map(|h| Table::parse(h).expect("valid headers")),
            delivery_mode: self.delivery_mode,
            priority: self.priority,
            correlation_id: self
                .correlation_id
                .as_deref()
                .map(|s| ShortStr::new(s).expect("strategy makes short strings")),
            reply_to: self
                .reply_to
                .as_deref()
                .map(|s| ShortStr::new(s).expect("strategy makes short strings")),
            expiration: self
                .expiration
                .as_deref()
                .map(|s| ShortStr::new(s).expect("strategy makes short strings")),
            message_id: self
                .message_id
                .as_deref()
                .map(|s| ShortStr::new(s).expect("strategy makes short strings")),
            timestamp: self.timestamp,
            kind: self
                .kind
                .as_deref()
                .map(|s| ShortStr::new(s).expect("strategy makes short strings")),
            user_id: self
                .user_id
                .as_deref()
                .map(|s| ShortStr::new(s).expect("strategy makes short strings")),
            app_id: self
                .app_id
                .as_deref()
                .map(|s| ShortStr::new(s).expect("strategy makes short strings")),
            cluster_id: self
                .cluster_id
                .as_deref()
                .map(|s| ShortStr::new(s).expect("strategy makes short strings")),
        }
    }

    /// A fixed value for every property, then `mask` bit i (i = 0 is content-type,
    /// the spec's first property) keeps property i present.
    pub fn with_mask(full: &Props, mask: u16) -> Props {
        let keep = |i: u32| mask & (1 << i) != 0;
        Props {
            content_type: full.content_type.clone().filter(|_| keep(0)),
            content_encoding: full.content_encoding.clone().filter(|_| keep(1)),
            headers: full.headers.clone().filter(|_| keep(2)),
            delivery_mode: full.delivery_mode.filter(|_| keep(3)),
            priority: full.priority.filter(|_| keep(4)),
            correlation_id: full.correlation_id.clone().filter(|_| keep(5)),
            reply_to: full.reply_to.clone().filter(|_| keep(6)),
            expiration: full.expiration.clone().filter(|_| keep(7)),
            message_id: full.message_id.clone().filter(|_| keep(8)),
            timestamp: full.timestamp.filter(|_| keep(9)),
            kind: full.kind.clone().filter(|_| keep(10)),
            user_id: full.user_id.clone().filter(|_| keep(11)),
            app_id: full.app_id.clone().filter(|_| keep(12)),
            cluster_id: full.cluster_id.clone().filter(|_| keep(13)),
        }
    }
}

/// All 14 properties present with arbitrary values; combine with a mask.
pub fn full_props() -> impl Strategy<Value = Props> {
    (
        (shortstr(), shortstr(), field_table(), any::<u8>(), any::<u8>()),
        (shortstr(), shortstr(), shortstr(), shortstr(), any::<u64>()),
        (shortstr(), shortstr(), shortstr(), shortstr()),
    )
        .prop_map(|((ct, ce, h, dm, pr), (ci, rt, ex, mi, ts), (ty, ui, ai, cl))| Props {
            content_type: Some(ct),
            content_encoding: Some(ce),
            headers: Some(h.to_bytes()),
            delivery_mode: Some(dm),
            priority: Some(pr),
            correlation_id: Some(ci),
            reply_to: Some(rt),
            expiration: Some(ex),
            message_id: Some(mi),
            timestamp: Some(ts),
            kind: Some(ty),
            user_id: Some(ui),
            app_id: Some(ai),
            cluster_id: Some(cl),
        })
}

/// Props of `full` with the properties of `mask` present (bit i = property i).
pub fn props() -> impl Strategy<Value = Props> {
    (full_props(), 0u16..(1 << 14)).prop_map(|(full, mask)| Props::with_mask(&full, mask))
}
