//! Whole packets: the spec's byte layouts, every packet round-tripped in
//! each version, the fixed header's checks, and any bytes decoded without a
//! panic (proptest).

use proptest::prelude::*;

use crate::properties::{put_user_property, Properties};
use crate::*;

const MAX: usize = 1 << 20;

fn round_trip(p: Packet<'_>, v: Version) {
    let mut out = Vec::new();
    encode(&p, v, &mut out);
    // The fuzz target's seeds (.ci/fuzz.sh sets the folder when it has none).
    if let Ok(dir) = std::env::var("RINGMQ_MQTT_FUZZ_SEEDS") {
        std::fs::create_dir_all(&dir).unwrap();
        let name = format!("{v:?}-{}-{}", p.name(), out.iter().map(|&b| u32::from(b)).sum::<u32>());
        std::fs::write(std::path::Path::new(&dir).join(name), &out).unwrap();
    }
    let (back, used) = decode(&out, v, MAX).unwrap_or_else(|e| panic!("{p:?} in {v:?}: {e}"));
    assert_eq!(used, out.len());
    assert_eq!(back, p, "{v:?}");
    for cut in 0..out.len() {
        assert!(
            matches!(decode(&out[..cut], v, MAX), Err(DecodeError::Incomplete(n)) if n > 0),
            "{} of {} bytes of {p:?}",
            cut,
            out.len()
        );
    }
}

#[test]
fn a_3_1_1_connect_is_laid_out_as_the_spec_shows() {
    // Spec 3.1.2.10's example: MQTT, level 4, user name + password + clean
    // session, keep alive 10 s; then client id "c", user "u", password "p".
    let bytes = [
        0x10, 19, 0, 4, b'M', b'Q', b'T', b'T', 4, 0xc2, 0, 10, 0, 1, b'c', 0, 1, b'u', 0, 1, b'p',
    ];
    let (p, used) = decode(&bytes, Version::V3_1_1, MAX).unwrap();
    assert_eq!(used, bytes.len());
    let Packet::Connect(c) = p else { panic!("{p:?}") };
    assert_eq!(
        (
            c.version,
            c.clean_start,
            c.keep_alive_secs,
            c.client_id,
            c.username,
            c.password
        ),
        (Version::V3_1_1, true, 10, "c", Some("u"), Some(&b"p"[..]))
    );
    let mut out = Vec::new();
    encode(&p, Version::V3_1_1, &mut out);
    assert_eq!(out, bytes);
}

#[test]
fn every_packet_round_trips_in_every_version() {
    let mut user = Vec::new();
    put_user_property(&mut user, "k", "v");
    for v in [Version::V3_1, Version::V3_1_1, Version::V5] {
        let v5 = v == Version::V5;
        let props = if v5 {
            Properties {
                repeated: &user,
                ..Default::default()
            }
        } else {
            Properties::default()
        };
        let will = Will {
            topic: "last/words",
            payload: b"bye",
            qos: QoS::AtLeastOnce,
            retain: true,
            properties: if v5 {
                Properties {
                    will_delay_secs: Some(5),
                    ..Default::default()
                }
            } else {
                Properties::default()
            },
        };
        let connect = Connect {
            version: v,
            clean_start: false,
            keep_alive_secs: 60,
            properties: if v5 {
                Properties {
                    session_expiry_secs: Some(3600),
                    receive_maximum: Some(10),
                    ..Default::default()
                }
            } else {
                Properties::default()
            },
            client_id: "dev-1",
            will: Some(will),
            username: Some("vhost:user"),
            password: Some(b"secret"),
        };
        round_trip(Packet::Connect(connect), v);
        round_trip(
            Packet::ConnAck(ConnAck {
                session_present: true,
                code: 0,
                properties: props,
            }),
            v,
        );
        for qos in [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce] {
            round_trip(
                Packet::Publish(Publish {
                    dup: qos != QoS::AtMostOnce,
                    qos,
                    retain: true,
                    topic: "a/b",
                    packet_id: (qos != QoS::AtMostOnce).then_some(7),
                    properties: props,
                    payload: b"hello",
                }),
                v,
            );
        }
        let ack = Ack {
            packet_id: 9,
            reason: if v5 { reason::NO_MATCHING_SUBSCRIBERS } else { 0 },
            properties: props,
        };
        round_trip(Packet::PubAck(ack), v);
        round_trip(Packet::PubRec(Ack::new(9)), v);
        round_trip(Packet::PubRel(ack), v);
        round_trip(Packet::PubComp(Ack::new(9)), v);
        let mut sub = Vec::new();
        Subscribe::encode(
            &mut sub,
            v,
            3,
            &props,
            &[
                ("a/+", SubOptions::qos(QoS::AtLeastOnce)),
                ("#", SubOptions::qos(QoS::AtMostOnce)),
            ],
        );
        let (p, _) = decode(&sub, v, MAX).unwrap();
        let Packet::Subscribe(s) = p else { panic!() };
        assert_eq!(
            s.filters.collect::<Vec<_>>(),
            [
                ("a/+", SubOptions::qos(QoS::AtLeastOnce)),
                ("#", SubOptions::qos(QoS::AtMostOnce))
            ]
        );
        round_trip(p, v);
        round_trip(
            Packet::SubAck(SubAck {
                packet_id: 3,
                properties: props,
                codes: &[1, 0, 0x80],
            }),
            v,
        );
        let mut unsub = Vec::new();
        Unsubscribe::encode(&mut unsub, v, 4, &props, &["a/+", "b"]);
        let (p, _) = decode(&unsub, v, MAX).unwrap();
        let Packet::Unsubscribe(u) = p else { panic!() };
        assert_eq!(u.filters.collect::<Vec<_>>(), ["a/+", "b"]);
        round_trip(p, v);
        round_trip(
            Packet::UnsubAck(SubAck {
                packet_id: 4,
                properties: props,
                codes: if v5 { &[0, 0x11] } else { &[] },
            }),
            v,
        );
        round_trip(Packet::PingReq, v);
        round_trip(Packet::PingResp, v);
        round_trip(Packet::Disconnect(Disconnect::normal()), v);
        if v5 {
            round_trip(
                Packet::Disconnect(Disconnect {
                    reason: reason::DISCONNECT_WITH_WILL,
                    properties: Properties {
                        reason_string: Some("bye"),
                        ..Default::default()
                    },
                }),
                v,
            );
            round_trip(
                Packet::Auth(Auth {
                    reason: 0x18,
                    properties: Properties {
                        auth_method: Some("SCRAM-SHA-1"),
                        auth_data: Some(b"x"),
                        ..Default::default()
                    },
                }),
                v,
            );
        }
    }
}

#[test]
fn the_fixed_header_is_checked_before_the_body() {
    let v = Version::V3_1_1;
    // A PUBLISH announcing 1 MiB against a 64 KiB limit: refused from its
    // first four bytes.
    assert_eq!(
        decode(&[0x30, 0x80, 0x80, 0x40], v, 65_536),
        Err(DecodeError::TooLarge {
            size: 4 + (1 << 20),
            max: 65_536
        })
    );
    // Wrong flags for the type; reserved types; QoS 3; DUP on QoS 0.
    for bad in [
        &[0x82, 0][..],               // SUBSCRIBE without 0b0010
        &[0x61, 2, 0, 1],             // PUBREL with 0b0001
        &[0xc1, 0],                   // PINGREQ with a flag
        &[0x00, 0],                   // type 0
        &[0xf0, 0],                   // AUTH before MQTT 5
        &[0x36, 5, 0, 1, b'a', 0, 1], // QoS 3
        &[0x38, 3, 0, 1, b'a'],       // DUP with QoS 0
        &[0xc0, 1, 0],                // PINGREQ with a body
        &[0x32, 5, 0, 1, b'a', 0, 0], // packet id 0
    ] {
        assert!(
            matches!(decode(bad, v, MAX), Err(DecodeError::Malformed(_))),
            "{bad:?}: {:?}",
            decode(bad, v, MAX)
        );
    }
    assert!(matches!(
        decode(&[0x30, 0xff, 0xff, 0xff, 0xff, 1], v, usize::MAX),
        Err(DecodeError::Malformed(_))
    ));
    assert_eq!(decode(&[0x30], v, MAX), Err(DecodeError::Incomplete(1)));
    assert_eq!(decode(&[], v, MAX), Err(DecodeError::Incomplete(2)));
    assert_eq!(decode(&[0x30, 10, 0], v, MAX), Err(DecodeError::Incomplete(9)));
}

#[test]
fn connect_rules() {
    let connect = |level: u8, name: &[u8], flags: u8| {
        let mut b = vec![0x10, 0];
        b.extend_from_slice(&[0, name.len() as u8]);
        b.extend_from_slice(name);
        b.extend_from_slice(&[level, flags, 0, 0]);
        if level == 5 {
            b.push(0);
        }
        b.extend_from_slice(&[0, 1, b'c']);
        b[1] = (b.len() - 2) as u8;
        b
    };
    let v = Version::V3_1_1;
    assert!(decode(&connect(4, b"MQTT", 0x02), v, MAX).is_ok());
    assert!(decode(&connect(3, b"MQIsdp", 0x02), v, MAX).is_ok());
    assert!(decode(&connect(5, b"MQTT", 0x02), v, MAX).is_ok());
    assert_eq!(
        decode(&connect(6, b"MQTT", 0), v, MAX),
        Err(DecodeError::UnsupportedVersion(6))
    );
    assert_eq!(
        decode(&connect(4, b"MQIsdp", 0), v, MAX),
        Err(DecodeError::UnsupportedVersion(4))
    );
    assert!(matches!(
        decode(&connect(4, b"HTTP", 0), v, MAX),
        Err(DecodeError::Protocol(_))
    ));
    for flags in [0x01, 0x08, 0x20, 0x40] {
        // reserved bit; will QoS or retain without a will; password without user (3.1.1)
        assert!(
            matches!(
                decode(&connect(4, b"MQTT", flags), v, MAX),
                Err(DecodeError::Malformed(_))
            ),
            "{flags:#x}"
        );
    }
    assert!(
        matches!(
            decode(&connect(4, b"MQTT", 0x1c), v, MAX),
            Err(DecodeError::Malformed(_))
        ),
        "will QoS 3"
    );
}

#[test]
fn subscriptions_are_checked_whole() {
    let v = Version::V3_1_1;
    let sub = |filter: &str, options: u8| {
        let mut b = vec![0x82, 0, 0, 1, 0, filter.len() as u8];
        b.extend_from_slice(filter.as_bytes());
        b.push(options);
        b[1] = (b.len() - 2) as u8;
        b
    };
    assert!(decode(&sub("a/#", 1), v, MAX).is_ok());
    assert!(matches!(
        decode(&sub("a/#/b", 1), v, MAX),
        Err(DecodeError::Protocol(_))
    ));
    assert!(
        matches!(decode(&sub("a", 3), v, MAX), Err(DecodeError::Malformed(_))),
        "QoS 3"
    );
    assert!(
        matches!(decode(&sub("a", 0x04), v, MAX), Err(DecodeError::Malformed(_))),
        "5's bits in 3.1.1"
    );
    assert!(
        decode(&sub("a", 0x04), Version::V5, MAX).is_err(),
        "5 needs a property block"
    );
    assert!(
        matches!(decode(&[0x82, 2, 0, 1], v, MAX), Err(DecodeError::Protocol(_))),
        "no filter"
    );
}

proptest! {
    #[test]
    fn any_bytes_decode_without_panic_and_what_decodes_re_encodes(
        bytes in proptest::collection::vec(any::<u8>(), 0..200),
        v in prop_oneof![Just(Version::V3_1), Just(Version::V3_1_1), Just(Version::V5)],
    ) {
        if let Ok((p, used)) = decode(&bytes, v, MAX) {
            prop_assert!(used <= bytes.len());
            let v = match p { Packet::Connect(c) => c.version, _ => v };
            let mut out = Vec::new();
            encode(&p, v, &mut out);
            let (back, _) = decode(&out, v, MAX).expect("what we encode decodes");
            prop_assert_eq!(back, p);
        }
    }
}
