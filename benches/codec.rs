//! Codec hot paths, one message per iteration:
//! - `decode_publish`: basic.publish + content header + 16-byte body from one buffer
//! - `encode_deliver`: basic.deliver + header + body into a reused Vec
//! - `encode_method_publish`: the generic method encoder on basic.publish
//! - `parse_headers_table`: validating a typical 5-entry headers table
//!
//! Run: `cargo bench --bench codec`.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use ringmq_codec::table::{FieldTable, FieldValue, Table};
use ringmq_codec::{
    decode_frame, encode_content, encode_deliver, encode_method, BasicProperties, BasicPublish, Frame, Method,
};

const FRAME_MAX: u32 = 131_072;
const BODY: &[u8; 16] = b"0123456789abcdef";

fn properties_raw() -> Vec<u8> {
    let mut raw = Vec::new();
    BasicProperties {
        content_type: Some(ringmq_codec::short!("application/json")),
        delivery_mode: Some(2),
        ..Default::default()
    }
    .encode(&mut raw);
    raw
}

fn publish() -> Method<'static> {
    Method::BasicPublish(BasicPublish {
        ticket: 0,
        exchange: ringmq_codec::short!("amq.topic"),
        routing_key: ringmq_codec::short!("orders.eu.created"),
        mandatory: false,
        immediate: false,
    })
}

fn decode_publish(c: &mut Criterion) {
    let mut buf = Vec::new();
    encode_method(&mut buf, 1, &publish());
    encode_content(&mut buf, 1, 60, &properties_raw(), BODY, FRAME_MAX);
    let mut g = c.benchmark_group("codec");
    g.throughput(Throughput::Elements(1));
    g.bench_function("decode_publish", |b| {
        b.iter(|| {
            let buf = black_box(&buf[..]);
            let (m, a) = decode_frame(buf, FRAME_MAX).unwrap();
            let (h, b2) = decode_frame(&buf[a..], FRAME_MAX).unwrap();
            let (body, c2) = decode_frame(&buf[a + b2..], FRAME_MAX).unwrap();
            let (
                Frame::Method {
                    method: Method::BasicPublish(p),
                    ..
                },
                Frame::Header { header, .. },
                Frame::Body { payload, .. },
            ) = (m, h, body)
            else {
                unreachable!()
            };
            black_box((p.routing_key, header.body_size, payload, a + b2 + c2))
        })
    });
    g.finish();
}

fn encode_deliver_bench(c: &mut Criterion) {
    let raw = properties_raw();
    let mut out = Vec::with_capacity(256);
    let mut g = c.benchmark_group("codec");
    g.throughput(Throughput::Elements(1));
    let mut tag = 0u64;
    g.bench_function("encode_deliver", |b| {
        b.iter(|| {
            out.clear();
            tag += 1;
            encode_deliver(
                &mut out,
                black_box(1),
                black_box(ringmq_codec::short!("amq.ctag-XyZ0123456789abcdefghij")),
                tag,
                false,
                black_box(ringmq_codec::short!("amq.topic")),
                black_box(ringmq_codec::short!("orders.eu.created")),
                black_box(&raw),
                black_box(BODY),
                FRAME_MAX,
            );
            black_box(out.len())
        })
    });
    g.finish();
}

fn encode_method_publish(c: &mut Criterion) {
    let m = publish();
    let mut out = Vec::with_capacity(128);
    let mut g = c.benchmark_group("codec");
    g.throughput(Throughput::Elements(1));
    g.bench_function("encode_method_publish", |b| {
        b.iter(|| {
            out.clear();
            encode_method(&mut out, 1, black_box(&m));
            black_box(out.len())
        })
    });
    g.finish();
}

fn parse_headers_table(c: &mut Criterion) {
    let t: FieldTable = [
        (ringmq_codec::short!("x-match"), FieldValue::from("all")),
        (ringmq_codec::short!("region"), FieldValue::from("eu-west-1")),
        (ringmq_codec::short!("priority"), FieldValue::I32(5)),
        (ringmq_codec::short!("retry"), FieldValue::Bool(false)),
        (ringmq_codec::short!("x-delay"), FieldValue::I64(30_000)),
    ]
    .into_iter()
    .collect();
    let bytes = t.to_bytes();
    let mut g = c.benchmark_group("codec");
    g.throughput(Throughput::Elements(1));
    g.bench_function("parse_headers_table", |b| {
        b.iter(|| black_box(Table::parse(black_box(&bytes)).unwrap()))
    });
    g.finish();
}

criterion_group!(
    benches,
    decode_publish,
    encode_deliver_bench,
    encode_method_publish,
    parse_headers_table
);
criterion_main!(benches);
