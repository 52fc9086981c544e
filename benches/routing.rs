//! Routing cost per exchange type: one `Bindings::route` call, with the caller's
//! output Vec reused as the broker does.
//!
//! Run: `cargo bench -p ringmq --bench routing`.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use ringmq::core::model::exchange::{Bindings, ExchangeKind};
use ringmq_codec::{FieldTable, FieldValue, Table};

/// The shape the broker uses: a binding points at a queue or an exchange.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Dest {
    Queue(u32),
    #[allow(dead_code)]
    Exchange(u32),
}

fn s(v: &str) -> FieldValue {
    FieldValue::LongString(v.as_bytes().to_vec())
}

fn bench_route(c: &mut Criterion, name: &str, b: &Bindings<Dest>, key: &str, headers: Option<Table<'_>>, want: usize) {
    let mut out = Vec::with_capacity(64);
    b.route(key, headers, &mut out);
    assert_eq!(out.len(), want, "{name}: {out:?}");
    c.bench_function(name, |bench| {
        bench.iter(|| {
            out.clear();
            b.route(black_box(key), black_box(headers), &mut out);
            black_box(out.len())
        })
    });
}

fn direct(c: &mut Criterion) {
    let mut b = Bindings::new(ExchangeKind::Direct);
    for i in 0..1000 {
        b.bind(
            Dest::Queue(i),
            ringmq_codec::ShortStr::new(&format!("orders.eu.{i}")).unwrap(),
            &FieldTable::new(),
        );
    }
    bench_route(c, "direct/1000 bindings/hit", &b, "orders.eu.517", None, 1);
    bench_route(c, "direct/1000 bindings/miss", &b, "orders.us.517", None, 0);
}

/// 1000 patterns in the shapes real topic users bind: literal prefixes with a
/// trailing `#`, `*` in the middle, leading `#`, and a few catch-alls.
fn topic_bindings() -> Bindings<Dest> {
    let mut b = Bindings::new(ExchangeKind::Topic);
    for i in 0..1000u32 {
        let pattern = match i % 5 {
            0 => format!("stock.{}.#", i / 5),
            1 => format!("stock.*.{}", i / 5),
            2 => format!("#.nyse.{}", i / 5),
            3 => format!("*.{}.*.trade", i / 5),
            _ => format!("region.{}.#.close", i % 37),
        };
        b.bind(
            Dest::Queue(i),
            ringmq_codec::ShortStr::new(&pattern).unwrap(),
            &FieldTable::new(),
        );
    }
    b
}

fn topic(c: &mut Criterion) {
    let b = topic_bindings();
    // Matches "stock.*.{n}" (n = 42: queue 211) and "#.nyse.{n}" (queue 212).
    bench_route(c, "topic/1000 patterns/2 matches", &b, "stock.nyse.42", None, 2);
    bench_route(c, "topic/1000 patterns/miss", &b, "fx.eur.usd.tick", None, 0);
    // "region.3.#.close" is bound by the five queues with i % 5 == 4 and i % 37 == 3.
    bench_route(c, "topic/1000 patterns/6 words", &b, "region.3.a.b.c.close", None, 5);
}

fn fanout(c: &mut Criterion) {
    let mut b = Bindings::new(ExchangeKind::Fanout);
    for i in 0..10 {
        b.bind(Dest::Queue(i), ringmq_codec::short!(""), &FieldTable::new());
    }
    bench_route(c, "fanout/10 destinations", &b, "anything", None, 10);
}

fn headers(c: &mut Criterion) {
    let mut b = Bindings::new(ExchangeKind::Headers);
    for i in 0..100u32 {
        let mode = if i % 2 == 0 { "all" } else { "any" };
        let args: FieldTable = [
            (ringmq_codec::short!("x-match"), s(mode)),
            (ringmq_codec::short!("type"), s(&format!("report-{}", i / 2))),
            (ringmq_codec::short!("format"), s(if i % 4 < 2 { "pdf" } else { "zip" })),
        ]
        .into_iter()
        .collect();
        b.bind(Dest::Queue(i), ringmq_codec::short!(""), &args);
    }
    let message: FieldTable = [
        (ringmq_codec::short!("format"), s("pdf")),
        (ringmq_codec::short!("type"), s("report-6")),
        (ringmq_codec::short!("size"), FieldValue::I64(12_345)),
        (ringmq_codec::short!("x-trace"), s("abc")),
    ]
    .into_iter()
    .collect();
    let bytes = message.to_bytes();
    let table = Table::parse(&bytes).unwrap();
    // all: queue 12 (report-6 and pdf); any: the 25 odd queues with pdf (i % 4 == 1,
    // queue 13 among them, which also has report-6).
    bench_route(c, "headers/100 bindings", &b, "", Some(table), 26);
}

criterion_group!(benches, direct, topic, fanout, headers);
criterion_main!(benches);
