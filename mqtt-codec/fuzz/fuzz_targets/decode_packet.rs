//! Splits and decodes MQTT packets from arbitrary input, as a connection's
//! receive loop would, in each protocol version and under several packet size
//! limits; re-encodes what decoded and checks it decodes to the same value.
//!
//! Invariants asserted (beyond "no panic"):
//! - `Ok` takes at least the fixed header's two bytes and at most the input;
//! - `Incomplete(n)` has n > 0 and the packet it waits for fits the limit
//!   (or its fixed header, at most 5 bytes, is not whole yet);
//! - `TooLarge` names a size over the limit;
//! - decode(encode(decoded)) == decoded, and it takes the whole encoding;
//! - the lists of SUBSCRIBE and UNSUBSCRIBE iterate without a stop.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ringmq_mqtt_codec::{decode, encode, DecodeError, Packet, Version};

const LIMITS: [usize; 3] = [2, 64, 1 << 20];
const VERSIONS: [Version; 3] = [Version::V3_1, Version::V3_1_1, Version::V5];

fuzz_target!(|data: &[u8]| {
    for version in VERSIONS {
        for max in LIMITS {
            split_all(data, version, max);
        }
    }
});

fn split_all(mut buf: &[u8], version: Version, max: usize) {
    loop {
        match decode(buf, version, max) {
            Ok((p, used)) => {
                assert!(used >= 2 && used <= buf.len() && used <= max);
                check(p, version);
                buf = &buf[used..];
            }
            Err(DecodeError::Incomplete(n)) => {
                assert!(n > 0);
                assert!(buf.len() + n <= max.max(5), "waits for a packet it would refuse");
                return;
            }
            Err(DecodeError::TooLarge { size, max: m }) => {
                assert!(size > m && m == max);
                return;
            }
            Err(_) => return,
        }
    }
}

fn check(p: Packet<'_>, version: Version) {
    let version = match p {
        Packet::Connect(c) => c.version,
        _ => version,
    };
    if let Packet::Subscribe(s) = p {
        let n = s.filters.count();
        assert!(n > 0);
    }
    if let Packet::Unsubscribe(u) = p {
        assert!(u.filters.count() > 0);
    }
    let mut out = Vec::new();
    encode(&p, version, &mut out);
    let (back, used) = decode(&out, version, usize::MAX).expect("what we encode decodes");
    assert_eq!(used, out.len());
    assert_eq!(back, p);
}
