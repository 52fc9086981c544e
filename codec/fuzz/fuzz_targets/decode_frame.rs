//! Splits and decodes frames from arbitrary input, as a connection's receive loop
//! would, under several frame_max values; walks every table and property set it
//! reaches; re-encodes what decoded and checks it decodes to the same value.
//!
//! Invariants asserted (beyond "no panic"):
//! - `Ok` uses at least a frame's 8 bytes of overhead and at most the input;
//! - `Incomplete(n)` has n > 0 and the input plus n bytes fits frame_max;
//! - `Malformed` carries a connection-level reply code (501, 502 or 540);
//! - a decoded prefix of the input decodes the same from just its own bytes;
//! - decode(encode(decoded)) == decoded for methods, headers and tables.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ringmq_codec::table::{FieldValueRef, Table};
use ringmq_codec::{decode_frame, encode_method, BasicProperties, DecodeError, Frame, Method, ReplyCode};

const FRAME_MAXES: [u32; 4] = [0, 4096, 131_072, 64];

fuzz_target!(|data: &[u8]| {
    for frame_max in FRAME_MAXES {
        split_all(data, frame_max);
    }
    // The payload parsers on their own, without a frame around them.
    if let Ok(t) = Table::parse(data) {
        walk_table(t);
    }
    if let Ok(p) = BasicProperties::decode(data) {
        check_properties(p);
    }
    if let Ok(m) = Method::decode(data) {
        check_method(m);
    }
});

fn split_all(mut buf: &[u8], frame_max: u32) {
    // Bounded: every Ok consumes at least 8 bytes.
    loop {
        match decode_frame(buf, frame_max) {
            Ok((frame, used)) => {
                assert!(used >= 8 && used <= buf.len());
                assert!(frame_max == 0 || used <= frame_max as usize);
                assert_eq!(decode_frame(&buf[..used], frame_max), Ok((frame, used)));
                check_frame(frame);
                buf = &buf[used..];
            }
            Err(DecodeError::Incomplete(n)) => {
                assert!(n > 0);
                if frame_max != 0 && buf.len() >= 7 {
                    assert!(buf.len() + n <= frame_max as usize);
                }
                return;
            }
            Err(DecodeError::Malformed(e)) => {
                assert!(
                    matches!(
                        e.code,
                        ReplyCode::FrameError | ReplyCode::SyntaxError | ReplyCode::NotImplemented
                    ),
                    "{e}"
                );
                return;
            }
        }
    }
}

fn check_frame(frame: Frame<'_>) {
    match frame {
        Frame::Method { channel, method } => {
            check_method(method);
            let mut out = Vec::new();
            encode_method(&mut out, channel, &method);
            let (again, used) = decode_frame(&out, 0).expect("re-encoded method decodes");
            assert_eq!(used, out.len());
            assert_eq!(again, Frame::Method { channel, method });
        }
        Frame::Header { header, .. } => check_properties(header.properties()),
        Frame::Body { .. } | Frame::Heartbeat => {}
    }
}

fn check_method(m: Method<'_>) {
    let mut out = Vec::new();
    m.encode_payload(&mut out);
    assert_eq!(Method::decode(&out).expect("re-encoded payload decodes"), m);
    let table = match m {
        Method::ConnectionStart(m) => m.server_properties,
        Method::ConnectionStartOk(m) => m.client_properties,
        Method::ExchangeDeclare(m) => m.arguments,
        Method::ExchangeBind(m) => m.arguments,
        Method::ExchangeUnbind(m) => m.arguments,
        Method::QueueDeclare(m) => m.arguments,
        Method::QueueBind(m) => m.arguments,
        Method::QueueUnbind(m) => m.arguments,
        Method::BasicConsume(m) => m.arguments,
        _ => return,
    };
    walk_table(table);
}

fn check_properties(p: BasicProperties<'_>) {
    let mut raw = Vec::new();
    p.encode(&mut raw);
    assert_eq!(BasicProperties::decode(&raw).expect("re-encoded properties decode"), p);
    if let Some(h) = p.headers {
        walk_table(h);
    }
}

/// Iterates everything (the iterators `expect` on validated bytes, so a gap
/// between validation and iteration would panic here), then checks the owned
/// form re-encodes to bytes that parse back to the same owned form.
fn walk_table(t: Table<'_>) {
    for (k, v) in t.iter() {
        let _ = (k.len(), t.get(&k));
        walk_value(v);
    }
    let owned = t.to_owned_table();
    let bytes = owned.to_bytes();
    let again = Table::parse(&bytes).expect("re-encoded table parses");
    assert_eq!(again.to_owned_table().to_bytes(), bytes);
}

fn walk_value(v: FieldValueRef<'_>) {
    match v {
        FieldValueRef::Table(t) => walk_table(t),
        FieldValueRef::Array(a) => a.iter().for_each(walk_value),
        other => {
            let _ = (other.as_i64(), other.as_str());
        }
    }
}
