//! Builds the seed corpus for `codec/fuzz` (one valid frame stream per file) and
//! checks every seed decodes completely. With `RINGMQ_FUZZ_SEEDS=<dir>` set it
//! also writes them there (an absolute path: tests run in `codec/`):
//!
//! ```text
//! RINGMQ_FUZZ_SEEDS=$PWD/codec/fuzz/corpus/decode_frame cargo test -p ringmq-codec --test fuzz_seeds
//! ```

mod common;

use common::*;
use ringmq_codec::frame::FRAME_MIN_SIZE;
use ringmq_codec::table::{FieldTable, FieldValue};
use ringmq_codec::*;

fn sample_table() -> FieldTable {
    let mut inner = FieldTable::new();
    inner.insert(short!("count"), FieldValue::I64(3));
    inner.insert(short!("reason"), "expired");
    [
        (short!("t"), FieldValue::Bool(true)),
        (short!("b"), FieldValue::I8(-2)),
        (short!("B"), FieldValue::U8(2)),
        (short!("s"), FieldValue::I16(-3)),
        (short!("u"), FieldValue::U16(3)),
        (short!("I"), FieldValue::I32(-4)),
        (short!("i"), FieldValue::U32(4)),
        (short!("l"), FieldValue::I64(-5)),
        (short!("f"), FieldValue::F32(1.5)),
        (short!("d"), FieldValue::F64(2.5)),
        (short!("D"), FieldValue::Decimal { scale: 2, value: 314 }),
        (short!("S"), FieldValue::from("text")),
        (short!("x"), FieldValue::ByteArray(vec![1, 2, 3])),
        (short!("T"), FieldValue::Timestamp(1_700_000_000)),
        (short!("V"), FieldValue::Void),
        (
            short!("A"),
            FieldValue::Array(vec![FieldValue::Table(inner.clone()), FieldValue::I32(1)]),
        ),
        (short!("F"), FieldValue::Table(inner)),
    ]
    .into_iter()
    .collect()
}

fn sample_args() -> Args {
    Args {
        bits: [true, false, true, false, true],
        u8s: [0, 9],
        u16s: [200, 60, 40],
        u32s: [131_072, 7],
        u64s: [42],
        shortstrs: ["amq.direct".into(), "routing.key".into(), "ctag-1".into()],
        longstrs: [b"\0guest\0guest".to_vec(), b"en_US".to_vec()],
        tables: [sample_table().to_bytes()],
    }
}

/// (file name, bytes) of every seed.
fn seeds() -> Vec<(String, Vec<u8>)> {
    let mut seeds = Vec::new();
    let a = sample_args();
    let empty = Args::default();
    for (i, &(_, _, name, _)) in METHOD_TABLE.iter().enumerate() {
        for (suffix, args) in [("full", &a), ("empty", &empty)] {
            let mut out = Vec::new();
            encode_method(&mut out, 1, &build_method(i, args));
            seeds.push((format!("method-{name}-{suffix}"), out));
        }
    }
    let headers = sample_table().to_bytes();
    let props = BasicProperties {
        content_type: Some(short!("application/json")),
        delivery_mode: Some(2),
        headers: Some(Table::parse(&headers).unwrap()),
        priority: Some(5),
        message_id: Some(short!("m-1")),
        timestamp: Some(1_700_000_000),
        ..Default::default()
    };
    let mut raw = Vec::new();
    props.encode(&mut raw);
    let mut publish = Vec::new();
    let m = Method::BasicPublish(BasicPublish {
        ticket: 0,
        exchange: short!("amq.topic"),
        routing_key: short!("a.b.c"),
        mandatory: true,
        immediate: false,
    });
    encode_method(&mut publish, 1, &m);
    encode_content(&mut publish, 1, 60, &raw, &[0xab; 5000], FRAME_MIN_SIZE);
    seeds.push(("publish-header-body".into(), publish));
    let mut deliver = Vec::new();
    encode_deliver(
        &mut deliver,
        2,
        short!("ctag"),
        7,
        true,
        short!(""),
        short!("q"),
        &raw,
        b"0123456789abcdef",
        FRAME_MIN_SIZE,
    );
    encode_heartbeat(&mut deliver);
    seeds.push(("deliver-heartbeat".into(), deliver));
    let mut hb = Vec::new();
    encode_heartbeat(&mut hb);
    seeds.push(("heartbeat".into(), hb));
    seeds
}

#[test]
fn seeds_decode_and_are_written_on_request() {
    let seeds = seeds();
    for (name, bytes) in &seeds {
        let mut at = 0;
        while at < bytes.len() {
            let (_, used) = decode_frame(&bytes[at..], FRAME_MIN_SIZE).unwrap_or_else(|e| panic!("{name}: {e}"));
            at += used;
        }
    }
    if let Some(dir) = std::env::var_os("RINGMQ_FUZZ_SEEDS") {
        let dir = std::path::PathBuf::from(dir);
        std::fs::create_dir_all(&dir).unwrap();
        for (name, bytes) in &seeds {
            std::fs::write(dir.join(name), bytes).unwrap();
        }
        println!("wrote {} seeds to {}", seeds.len(), dir.display());
    }
}
