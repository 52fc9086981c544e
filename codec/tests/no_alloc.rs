//! Decoding a publish, its content header and body allocates nothing: every
//! string, table and the body borrow the receive buffer. A counting global
//! allocator (in its own test binary, so other tests' allocations do not count)
//! checks it.
//!
//! `unsafe` is needed to implement `GlobalAlloc`; it only forwards to `System`.
//! The codec crate itself stays `#![forbid(unsafe_code)]`.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use ringmq_codec::short;
use ringmq_codec::table::{FieldTable, FieldValue, Table};
use ringmq_codec::{decode_frame, encode_content, encode_method, BasicProperties, BasicPublish, Frame, Method};

thread_local! {
    /// Per thread, so the test harness's own threads cannot disturb the count.
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

struct Counting;

// SAFETY: forwards every call unchanged to the system allocator; the counter is
// a thread-local Cell with a const initialiser, which does not allocate.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.with(|n| n.set(n.get() + 1));
        // SAFETY: same contract as our caller's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as our caller's.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.with(|n| n.set(n.get() + 1));
        // SAFETY: same contract as our caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations() -> u64 {
    ALLOCATIONS.with(|n| n.get())
}

#[test]
fn decoding_publish_header_body_does_not_allocate() {
    let headers: FieldTable = [
        (short!("x-match"), FieldValue::from("all")),
        (
            short!("nested"),
            FieldValue::Array(vec![FieldValue::I32(1), FieldValue::Void]),
        ),
    ]
    .into_iter()
    .collect();
    let headers = headers.to_bytes();
    let mut raw = Vec::new();
    BasicProperties {
        content_type: Some(short!("text/plain")),
        delivery_mode: Some(2),
        headers: Some(Table::parse(&headers).unwrap()),
        ..Default::default()
    }
    .encode(&mut raw);
    let mut buf = Vec::new();
    let publish = Method::BasicPublish(BasicPublish {
        ticket: 0,
        exchange: short!("amq.direct"),
        routing_key: short!("rk"),
        mandatory: true,
        immediate: false,
    });
    encode_method(&mut buf, 1, &publish);
    encode_content(&mut buf, 1, 60, &raw, b"0123456789abcdef", 4096);

    let before = allocations();
    let (m, a) = decode_frame(&buf, 4096).unwrap();
    let (h, b) = decode_frame(&buf[a..], 4096).unwrap();
    let (body, c) = decode_frame(&buf[a + b..], 4096).unwrap();
    // Reading the values (properties, header lookups) is allocation-free too.
    let Frame::Header { header, .. } = h else { panic!() };
    let props = header.properties();
    let matched = props.headers.and_then(|t| t.get("x-match")).and_then(|v| v.as_str());
    let after = allocations();

    assert_eq!(after - before, 0, "decoding allocated");
    assert_eq!(a + b + c, buf.len());
    assert_eq!(
        m,
        Frame::Method {
            channel: 1,
            method: publish
        }
    );
    assert_eq!(props.content_type, Some(short!("text/plain")));
    assert_eq!(matched, Some("all"));
    assert_eq!(
        body,
        Frame::Body {
            channel: 1,
            payload: b"0123456789abcdef"
        }
    );
    // The counter works: an allocation is seen.
    let v = std::hint::black_box(vec![1u8; 10]);
    assert!(allocations() > after);
    drop(v);
}
