//! Malformed input: each class of error closes with the right reply code, and
//! arbitrary bytes never panic and give consistent answers.
//!
//! - 501 FRAME_ERROR: the frame itself is wrong (end octet, size over frame_max,
//!   unknown type, heartbeat on a channel or with a payload, a method payload too
//!   short to hold its ids).
//! - 502 SYNTAX_ERROR: a field inside a well-framed payload is wrong.
//! - 540 NOT_IMPLEMENTED: a class or method id we do not know.
//!
//! RabbitMQ itself answers 501 ("cannot decode") for any undecodable method
//! arguments; we separate "bad framing" (501) from "bad field" (502) as the spec's
//! reply-code descriptions do.

use proptest::prelude::*;
use ringmq_codec::frame::{FRAME_BODY, FRAME_END, FRAME_HEADER, FRAME_HEARTBEAT, FRAME_METHOD, FRAME_MIN_SIZE};
use ringmq_codec::table::{FieldTable, FieldValue, Table};
use ringmq_codec::wire::{put_longstr, put_u16, put_u32, put_u64, Reader};
use ringmq_codec::*;

/// A short string's wire bytes, whatever they are (the encoder takes only valid ones).
fn raw_short(out: &mut Vec<u8>, s: &[u8]) {
    out.push(s.len() as u8);
    out.extend_from_slice(s);
}

fn frame(frame_type: u8, channel: u16, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![frame_type];
    put_u16(&mut out, channel);
    put_u32(&mut out, payload.len() as u32);
    out.extend_from_slice(payload);
    out.push(FRAME_END);
    out
}

fn method_payload(class_id: u16, method_id: u16, args: &[u8]) -> Vec<u8> {
    let mut p = Vec::new();
    put_u16(&mut p, class_id);
    put_u16(&mut p, method_id);
    p.extend_from_slice(args);
    p
}

fn header_payload(properties_raw: &[u8]) -> Vec<u8> {
    let mut p = Vec::new();
    put_u16(&mut p, 60);
    put_u16(&mut p, 0);
    put_u64(&mut p, 10);
    p.extend_from_slice(properties_raw);
    p
}

/// The error `decode_frame` gives for a complete frame.
fn error_of(bytes: &[u8]) -> ProtocolError {
    match decode_frame(bytes, FRAME_MIN_SIZE) {
        Err(DecodeError::Malformed(e)) => e,
        other => panic!("expected malformed, got {other:?}"),
    }
}

fn code_of(bytes: &[u8]) -> u16 {
    error_of(bytes).code.code()
}

#[test]
fn frame_errors_are_501() {
    let mut bad_end = frame(FRAME_BODY, 1, b"abc");
    *bad_end.last_mut().unwrap() = 0xCD;
    assert_eq!(code_of(&bad_end), 501);

    // Over frame_max is refused from the header alone, before waiting for the rest.
    let mut header_only = vec![FRAME_BODY, 0, 1];
    put_u32(&mut header_only, FRAME_MIN_SIZE - 7);
    assert_eq!(code_of(&header_only), 501);
    let mut fits = vec![FRAME_BODY, 0, 1];
    put_u32(&mut fits, FRAME_MIN_SIZE - 8);
    assert_eq!(
        decode_frame(&fits, FRAME_MIN_SIZE),
        Err(DecodeError::Incomplete(FRAME_MIN_SIZE as usize - 7))
    );
    // frame_max 0 ("no limit") accepts the largest size that fits a u32.
    let mut huge = vec![FRAME_BODY, 0, 1];
    put_u32(&mut huge, u32::MAX - 8);
    assert!(matches!(decode_frame(&huge, 0), Err(DecodeError::Incomplete(_))));

    for unknown in [0u8, 4, 5, 9, b'A', 0xff] {
        assert_eq!(code_of(&frame(unknown, 1, b"")), 501, "type {unknown}");
    }
    assert_eq!(code_of(&frame(FRAME_HEARTBEAT, 1, b"")), 501);
    assert_eq!(code_of(&frame(FRAME_HEARTBEAT, 0, b"x")), 501);
    assert_eq!(code_of(&frame(FRAME_METHOD, 1, &[0, 60, 0])), 501);
}

#[test]
fn field_errors_are_502() {
    // basic.publish: ticket, exchange shortstr claiming 9 bytes with 3 present.
    let mut args = vec![0, 0, 9];
    args.extend_from_slice(b"amq");
    let e = error_of(&frame(FRAME_METHOD, 1, &method_payload(60, 40, &args)));
    assert_eq!((e.code.code(), e.class_id, e.method_id), (502, 60, 40));

    // Non-UTF-8 short string.
    let mut args = vec![0, 0];
    raw_short(&mut args, b"\xff\xfe");
    raw_short(&mut args, b"rk");
    args.push(0);
    assert_eq!(code_of(&frame(FRAME_METHOD, 1, &method_payload(60, 40, &args))), 502);

    // Missing bit octet at the end.
    let mut args = vec![0, 0];
    raw_short(&mut args, b"x");
    raw_short(&mut args, b"rk");
    assert_eq!(code_of(&frame(FRAME_METHOD, 1, &method_payload(60, 40, &args))), 502);

    // Trailing bytes after the last argument.
    let mut args = vec![0, 0];
    raw_short(&mut args, b"x");
    raw_short(&mut args, b"rk");
    args.extend_from_slice(&[0, 7]);
    assert_eq!(code_of(&frame(FRAME_METHOD, 1, &method_payload(60, 40, &args))), 502);

    // connection.secure with a long string longer than the frame.
    let mut args = Vec::new();
    put_u32(&mut args, 1000);
    args.extend_from_slice(b"abc");
    assert_eq!(code_of(&frame(FRAME_METHOD, 0, &method_payload(10, 20, &args))), 502);
}

/// queue.declare with the given argument-table entry bytes.
fn declare_with_table(entries: &[u8]) -> Vec<u8> {
    let mut args = vec![0, 0];
    raw_short(&mut args, b"q");
    args.push(0);
    put_longstr(&mut args, entries);
    frame(FRAME_METHOD, 1, &method_payload(50, 10, &args))
}

#[test]
fn table_errors_are_502() {
    let good: FieldTable = [(short!("x-max-length"), FieldValue::I32(5))].into_iter().collect();
    let good = good.to_bytes();
    assert!(decode_frame(&declare_with_table(&good), FRAME_MIN_SIZE).is_ok());

    let mut bad_tag = good.clone();
    bad_tag[13] = b'?';
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("bad type tag", bad_tag),
        ("cut value", good[..good.len() - 1].to_vec()),
        ("cut key", vec![5, b'a']),
        ("non-UTF-8 key", vec![1, 0xff, b'V']),
        (
            "long string past end",
            [&[1, b'k', b'S'][..], &[0, 0, 1, 0], b"ab"].concat(),
        ),
        ("nested table past end", [&[1, b'k', b'F'][..], &[0, 0, 0, 9]].concat()),
        ("unknown short string tag", vec![1, b'k', b'_', 1, b'v']),
    ];
    for (what, entries) in cases {
        assert_eq!(code_of(&declare_with_table(&entries)), 502, "{what}");
    }
    // A table length beyond the frame is a field error too.
    let mut args = vec![0, 0, 1, b'q', 0];
    put_u32(&mut args, 100);
    assert_eq!(code_of(&frame(FRAME_METHOD, 1, &method_payload(50, 10, &args))), 502);
    // Nesting past TABLE_DEPTH_MAX.
    let mut v = FieldValue::Void;
    for _ in 0..=ringmq_codec::table::TABLE_DEPTH_MAX {
        v = FieldValue::Array(vec![v]);
    }
    let deep: FieldTable = [(short!("d"), v)].into_iter().collect();
    assert_eq!(code_of(&declare_with_table(&deep.to_bytes())), 502);
}

#[test]
fn property_errors_are_502() {
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("unused flag bit 1", vec![0b0000_0000, 0b0000_0010]),
        ("continuation word with flags", vec![0, 1, 0x80, 0]),
        ("too many flag words", vec![0, 1, 0, 1, 0, 1, 0, 1, 0, 0]),
        ("flags cut", vec![0x80]),
        ("content-type past end", vec![0x80, 0, 5, b'a']),
        ("content-type not UTF-8", vec![0x80, 0, 1, 0xc0]),
        ("delivery-mode missing", vec![0x10, 0]),
        ("trailing bytes", vec![0, 0, 1]),
        ("bad headers table", vec![0x20, 0, 0, 0, 0, 3, 1, b'k', b'?']),
    ];
    for (what, raw) in cases {
        assert_eq!(code_of(&frame(FRAME_HEADER, 1, &header_payload(&raw))), 502, "{what}");
    }
    // An empty continuation word is legal.
    assert!(decode_frame(&frame(FRAME_HEADER, 1, &header_payload(&[0, 1, 0, 0])), FRAME_MIN_SIZE).is_ok());
    // A header payload too short for class, weight and body size.
    assert_eq!(code_of(&frame(FRAME_HEADER, 1, &[0, 60, 0, 0, 0])), 502);
}

#[test]
fn unknown_ids_are_540_and_named() {
    for (class_id, method_id) in [(70, 10), (60, 999), (10, 12), (0, 0), (90, 40), (85, 12)] {
        let e = error_of(&frame(FRAME_METHOD, 1, &method_payload(class_id, method_id, b"")));
        assert_eq!(e.code, ReplyCode::NotImplemented);
        assert_eq!((e.class_id, e.method_id), (class_id, method_id));
    }
}

#[test]
fn reader_errors_are_502() {
    let mut r = Reader::new(&[3, b'a']);
    assert_eq!(r.shortstr().unwrap_err().code, ReplyCode::SyntaxError);
    assert_eq!(Table::parse(&[1]).unwrap_err().code, ReplyCode::SyntaxError);
}

/// Arbitrary bytes, often starting with a plausible frame header so the payload
/// decoders are reached too.
fn junk() -> impl Strategy<Value = Vec<u8>> {
    let raw = proptest::collection::vec(any::<u8>(), 0..300);
    let framed = (
        prop_oneof![Just(1u8), Just(2), Just(3), Just(8), any::<u8>()],
        any::<u16>(),
        proptest::collection::vec(any::<u8>(), 0..300),
        prop_oneof![Just(FRAME_END), any::<u8>()],
        0usize..4,
    )
        .prop_map(|(t, ch, payload, end, lie)| {
            let mut f = frame(t, ch, &payload);
            *f.last_mut().unwrap() = end;
            // Sometimes lie about the size.
            let size = (payload.len() as u32).wrapping_add(lie as u32).wrapping_sub(1);
            if lie > 0 {
                f[3..7].copy_from_slice(&size.to_be_bytes());
            }
            f
        });
    prop_oneof![raw, framed]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2048))]

    /// Never panics; Ok uses at most the input and decodes identically from just the
    /// bytes it used; every shorter prefix of an Ok frame is Incomplete; Incomplete
    /// stays Incomplete on every prefix and never asks past what it said.
    #[test]
    fn arbitrary_bytes_are_consistent(
        data in junk(),
        frame_max in prop_oneof![Just(0u32), Just(FRAME_MIN_SIZE), 8u32..400],
    ) {
        match decode_frame(&data, frame_max) {
            Ok((f, used)) => {
                prop_assert!(used >= 8 && used <= data.len());
                prop_assert_eq!(decode_frame(&data[..used], frame_max), Ok((f, used)));
                for cut in 0..used {
                    let r = decode_frame(&data[..cut], frame_max);
                    prop_assert!(matches!(r, Err(DecodeError::Incomplete(n)) if n > 0 && cut + n <= used), "{:?}", r);
                }
            }
            Err(DecodeError::Incomplete(n)) => {
                prop_assert!(n > 0);
                for cut in 0..data.len() {
                    let r = decode_frame(&data[..cut], frame_max);
                    prop_assert!(matches!(r, Err(DecodeError::Incomplete(m)) if cut + m <= data.len() + n), "{:?}", r);
                }
            }
            Err(DecodeError::Malformed(e)) => {
                prop_assert!(matches!(e.code.code(), 501 | 502 | 540), "{}", e);
                // More bytes never rescue a malformed frame.
                let mut more = data.clone();
                more.extend_from_slice(&[FRAME_END; 16]);
                prop_assert!(matches!(decode_frame(&more, frame_max), Err(DecodeError::Malformed(_))));
            }
        }
        // The payload decoders on their own must not panic either.
        let _ = Table::parse(&data);
        let _ = BasicProperties::decode(&data);
        let _ = Method::decode(&data);
    }
}
