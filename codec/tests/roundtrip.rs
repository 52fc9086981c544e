//! Encode → decode_frame → equal, for every method, the content header with every
//! combination of the 14 properties, body frames, and field tables of every type.
//! Every strict prefix of an encoded frame must be "need more bytes", never an
//! error, and say how many more.

mod common;

use common::*;
use proptest::prelude::*;
use ringmq_codec::frame::{encode_body, encode_content_header, FRAME_MIN_SIZE};
use ringmq_codec::table::{FieldTable, FieldValue, FieldValueRef, Table};
use ringmq_codec::*;

/// Checks that `frame` (exactly one encoded frame) decodes, uses all of itself,
/// and that each strict prefix asks for more bytes. Before the 7-byte header is
/// complete the decoder cannot know the size, so it asks for the rest of the
/// header; after that it knows exactly how many bytes are missing.
fn decode_whole<'a>(frame: &'a [u8], frame_max: u32) -> Frame<'a> {
    for cut in 0..frame.len() {
        match decode_frame(&frame[..cut], frame_max) {
            Err(DecodeError::Incomplete(n)) => {
                assert!(n > 0, "prefix {cut}: Incomplete(0)");
                if cut < 7 {
                    assert_eq!(n, 7 - cut, "prefix {cut}");
                } else {
                    assert_eq!(cut + n, frame.len(), "prefix {cut}");
                }
            }
            other => panic!("prefix {cut} of {}: {other:?}", frame.len()),
        }
    }
    let (f, used) = decode_frame(frame, frame_max).expect("decodes");
    assert_eq!(used, frame.len());
    f
}

fn method_frame(channel: u16, m: &Method<'_>) -> Vec<u8> {
    let mut out = Vec::new();
    encode_method(&mut out, channel, m);
    out
}

#[test]
fn build_method_matches_method_table() {
    let a = Args::default();
    assert_eq!(METHOD_TABLE.len(), METHOD_COUNT);
    for (i, &(class_id, method_id, name, _)) in METHOD_TABLE.iter().enumerate() {
        let m = build_method(i, &a);
        assert_eq!((m.class_id(), m.method_id(), m.name()), (class_id, method_id, name));
    }
}

/// Each bit argument lands in its own bit, the first one in the least significant
/// bit of the octet (spec 4.2.5.2), and decodes back to the same field.
#[test]
fn bits_in_every_position() {
    for (i, &n) in BIT_COUNTS.iter().enumerate() {
        let clear = Args::default();
        let base = method_frame(1, &build_method(i, &clear));
        for j in 0..n {
            let mut a = Args::default();
            a.bits[j] = true;
            let m = build_method(i, &a);
            let bytes = method_frame(1, &m);
            assert_eq!(bytes.len(), base.len());
            let diff: Vec<(usize, u8)> = (0..bytes.len())
                .filter(|&k| bytes[k] != base[k])
                .map(|k| (k, bytes[k] ^ base[k]))
                .collect();
            assert_eq!(diff.len(), 1, "{}: bit {j} changed {diff:?}", m.name());
            assert_eq!(diff[0].1, 1 << j, "{}: bit {j}", m.name());
            assert_eq!(decode_whole(&bytes, 0), Frame::Method { channel: 1, method: m });
        }
        if n > 0 {
            let a = Args {
                bits: [true; MAX_BITS],
                ..Args::default()
            };
            let m = build_method(i, &a);
            assert_eq!(
                decode_whole(&method_frame(1, &m), 0),
                Frame::Method { channel: 1, method: m }
            );
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// All 66 methods with the same arbitrary argument pool per case.
    #[test]
    fn every_method_round_trips(a in args(), channel in any::<u16>()) {
        for i in 0..METHOD_COUNT {
            let m = build_method(i, &a);
            let bytes = method_frame(channel, &m);
            prop_assert_eq!(decode_whole(&bytes, 0), Frame::Method { channel, method: m });
            // Decoding is canonical: re-encoding what was decoded gives the same bytes.
            let (Frame::Method { method, .. }, _) = decode_frame(&bytes, 0).unwrap() else { unreachable!() };
            prop_assert_eq!(method_frame(channel, &method), bytes);
        }
    }

    #[test]
    fn content_header_round_trips(p in props(), body_size in any::<u64>(), channel in any::<u16>()) {
        let view = p.view();
        let mut raw = Vec::new();
        view.encode(&mut raw);
        let mut bytes = Vec::new();
        encode_content_header(&mut bytes, channel, 60, &raw, body_size);
        let Frame::Header { channel: ch, header } = decode_whole(&bytes, 0) else { panic!("not a header") };
        prop_assert_eq!(ch, channel);
        prop_assert_eq!(header.class_id, 60);
        prop_assert_eq!(header.body_size, body_size);
        prop_assert_eq!(header.properties_raw, &raw[..]);
        prop_assert_eq!(header.properties(), view);
    }

    #[test]
    fn bodies_split_and_reassemble(
        body in proptest::collection::vec(any::<u8>(), 0..20_000),
        frame_max in prop_oneof![Just(0u32), Just(FRAME_MIN_SIZE), FRAME_MIN_SIZE..20_000],
        channel in 1u16..,
    ) {
        let mut bytes = Vec::new();
        encode_body(&mut bytes, channel, &body, frame_max);
        let mut at = 0;
        let mut got = Vec::new();
        while at < bytes.len() {
            let (f, used) = decode_frame(&bytes[at..], frame_max).unwrap();
            prop_assert!(frame_max == 0 || used <= frame_max as usize);
            let Frame::Body { channel: ch, payload } = f else { panic!("not a body") };
            prop_assert_eq!(ch, channel);
            prop_assert!(!payload.is_empty());
            got.extend_from_slice(payload);
            at += used;
        }
        prop_assert_eq!(got, body);
    }

    /// The deliver hot path writes exactly what the generic encoders write.
    #[test]
    fn encode_deliver_matches_generic(
        a in args(),
        p in props(),
        body in proptest::collection::vec(any::<u8>(), 0..9000),
        channel in any::<u16>(),
    ) {
        let mut raw = Vec::new();
        p.view().encode(&mut raw);
        let d = BasicDeliver {
            consumer_tag: a.short(0),
            delivery_tag: a.u64s[0],
            redelivered: a.bits[0],
            exchange: a.short(1),
            routing_key: a.short(2),
        };
        let mut fast = Vec::new();
        encode_deliver(&mut fast, channel, d.consumer_tag, d.delivery_tag, d.redelivered,
            d.exchange, d.routing_key, &raw, &body, FRAME_MIN_SIZE);
        let mut slow = Vec::new();
        encode_method(&mut slow, channel, &Method::BasicDeliver(d));
        encode_content(&mut slow, channel, 60, &raw, &body, FRAME_MIN_SIZE);
        prop_assert_eq!(fast, slow);
    }

    #[test]
    fn tables_round_trip(t in field_table()) {
        let bytes = t.to_bytes();
        let parsed = Table::parse(&bytes).unwrap();
        prop_assert_eq!(parsed.to_owned_table(), t.clone());
        // Keys are sorted and unique in a FieldTable, so re-encoding is byte-exact.
        prop_assert_eq!(parsed.to_owned_table().to_bytes(), bytes.clone());
        // And the same inside a method frame (queue.declare arguments).
        let m = Method::QueueDeclare(QueueDeclare {
            ticket: 0, queue: short!("q"), passive: false, durable: true, exclusive: false,
            auto_delete: false, no_wait: false, arguments: parsed,
        });
        let frame = method_frame(3, &m);
        let Frame::Method { method: Method::QueueDeclare(d), .. } = decode_whole(&frame, 0) else { panic!() };
        prop_assert_eq!(d.arguments.to_owned_table(), t);
    }

    /// Floats go through as bit patterns, NaN payloads included.
    #[test]
    fn float_bits_preserved(f in any::<u32>(), d in any::<u64>()) {
        let t: FieldTable = [(short!("f"), FieldValue::F32(f32::from_bits(f))), (short!("d"), FieldValue::F64(f64::from_bits(d)))]
            .into_iter()
            .collect();
        let bytes = t.to_bytes();
        let parsed = Table::parse(&bytes).unwrap();
        let Some(FieldValueRef::F32(g)) = parsed.get("f") else { panic!() };
        let Some(FieldValueRef::F64(e)) = parsed.get("d") else { panic!() };
        prop_assert_eq!((g.to_bits(), e.to_bits()), (f, d));
    }
}

/// Fixed values for all 14 properties, then each of the 2^14 present/absent
/// combinations through a header frame.
#[test]
fn all_property_combinations() {
    let headers: FieldTable = [
        (short!("x-match"), FieldValue::from("all")),
        (short!("n"), FieldValue::I32(-1)),
    ]
    .into_iter()
    .collect();
    let full = Props {
        content_type: Some("application/json".into()),
        content_encoding: Some("gzip".into()),
        headers: Some(headers.to_bytes()),
        delivery_mode: Some(2),
        priority: Some(9),
        correlation_id: Some("corr-1".into()),
        reply_to: Some("amq.rabbitmq.reply-to".into()),
        expiration: Some("60000".into()),
        message_id: Some("msg-1".into()),
        timestamp: Some(1_700_000_000),
        kind: Some("order.created".into()),
        user_id: Some("guest".into()),
        app_id: Some("app".into()),
        cluster_id: Some("c1".into()),
    };
    let mut raw = Vec::new();
    let mut bytes = Vec::new();
    for mask in 0u16..(1 << 14) {
        let p = Props::with_mask(&full, mask);
        let view = p.view();
        raw.clear();
        view.encode(&mut raw);
        // Flag bit 15 is the first property, down to bit 2 for the 14th.
        let flags = u16::from_be_bytes([raw[0], raw[1]]);
        assert_eq!(flags, mask.reverse_bits(), "mask {mask:#x}");
        bytes.clear();
        encode_content_header(&mut bytes, 7, 60, &raw, 16);
        let (f, used) = decode_frame(&bytes, FRAME_MIN_SIZE).unwrap();
        assert_eq!(used, bytes.len());
        let Frame::Header { header, .. } = f else { panic!() };
        assert_eq!(header.properties(), view, "mask {mask:#x}");
    }
}

/// One table holding every value type, nested inside arrays inside tables.
#[test]
fn every_value_type_nested() {
    let every: Vec<(ShortStr<'_>, FieldValue)> = vec![
        (short!("t"), FieldValue::Bool(true)),
        (short!("b"), FieldValue::I8(i8::MIN)),
        (short!("B"), FieldValue::U8(u8::MAX)),
        (short!("s"), FieldValue::I16(i16::MIN)),
        (short!("u"), FieldValue::U16(u16::MAX)),
        (short!("I"), FieldValue::I32(i32::MIN)),
        (short!("i"), FieldValue::U32(u32::MAX)),
        (short!("l"), FieldValue::I64(i64::MIN)),
        (short!("f"), FieldValue::F32(-0.5)),
        (short!("d"), FieldValue::F64(1e300)),
        (
            short!("D"),
            FieldValue::Decimal {
                scale: 3,
                value: 123_456,
            },
        ),
        (short!("S"), FieldValue::LongString("héllo".as_bytes().to_vec())),
        (short!("x"), FieldValue::ByteArray(vec![0, 0xff, 0xce])),
        (short!("T"), FieldValue::Timestamp(u64::MAX)),
        (short!("V"), FieldValue::Void),
    ];
    let flat: FieldTable = every.iter().cloned().collect();
    let array = FieldValue::Array(every.iter().map(|(_, v)| v.clone()).collect());
    let mut nested = flat.clone();
    nested.insert(short!("A"), array.clone());
    nested.insert(short!("F"), FieldValue::Table(flat.clone()));
    let mut outer = nested.clone();
    outer.insert(
        short!("deep"),
        FieldValue::Array(vec![
            FieldValue::Table(nested.clone()),
            array,
            FieldValue::Array(vec![]),
        ]),
    );
    let bytes = outer.to_bytes();
    let parsed = Table::parse(&bytes).unwrap();
    assert_eq!(parsed.to_owned_table(), outer);
    // The tags on the wire are RabbitMQ's.
    let tags: Vec<u8> = flat.0.keys().map(|k| k.as_bytes()[0]).collect();
    let wire = flat.to_bytes();
    let mut r = ringmq_codec::wire::Reader::new(&wire);
    for (tag, (_, v)) in tags.iter().zip(flat.0.iter()) {
        let key = r.shortstr().unwrap();
        assert_eq!(key.as_bytes()[0], *tag);
        assert_eq!(r.u8().unwrap(), *tag, "{key}");
        let mut one = Vec::new();
        v.encode(&mut one);
        r.take(one.len() - 1).unwrap();
    }
}

#[test]
fn heartbeat_round_trips() {
    let mut hb = Vec::new();
    encode_heartbeat(&mut hb);
    assert_eq!(decode_whole(&hb, FRAME_MIN_SIZE), Frame::Heartbeat);
}
