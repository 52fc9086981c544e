use proptest::prelude::*;

use super::*;

fn path() -> impl Strategy<Value = String> {
    prop::collection::vec("[a-z0-9._-]{1,12}", 1..4)
        .prop_filter("no . or ..", |cs| cs.iter().all(|c| c != "." && c != ".."))
        .prop_map(|cs| cs.join("/"))
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (path(), any::<u64>(), prop::collection::vec(any::<u8>(), 0..64)).prop_map(|(path, offset, bytes)| Op::Write {
            path,
            offset,
            bytes
        }),
        (path(), prop::collection::vec(any::<u8>(), 0..64)).prop_map(|(path, bytes)| Op::Replace { path, bytes }),
        (path(), any::<u64>()).prop_map(|(path, len)| Op::Truncate { path, len }),
        path().prop_map(|path| Op::Remove { path }),
        (path(), path()).prop_map(|(from, to)| Op::Rename { from, to }),
    ]
}

fn frame() -> impl Strategy<Value = Frame> {
    prop_oneof![
        (any::<i64>(), any::<[u8; 16]>()).prop_map(|(term, nonce)| Frame::Challenge { term, nonce }),
        (
            "[a-z]{0,20}",
            any::<[u8; 32]>(),
            prop::collection::vec((path(), any::<u64>(), any::<u32>()), 0..8)
        )
            .prop_map(|(node, proof, files)| Frame::Hello {
                node,
                proof,
                files: files
                    .into_iter()
                    .map(|(path, len, crc32c)| FileSum { path, len, crc32c })
                    .collect(),
            }),
        (any::<u64>(), prop::collection::vec(op(), 0..8)).prop_map(|(first_seq, ops)| Frame::Ops { first_seq, ops }),
        any::<u64>().prop_map(|seq| Frame::Synced { seq }),
        any::<u64>().prop_map(|seq| Frame::Ack { seq }),
    ]
}

proptest! {
    /// Frames come back as they went, one after another, and a cut short
    /// stream says how much more it needs.
    #[test]
    fn frames_round_trip(fs in prop::collection::vec(frame(), 1..6)) {
        let mut buf = Vec::new();
        for f in &fs {
            encode(&mut buf, f);
        }
        let mut at = 0;
        for f in &fs {
            let (got, used) = decode(&buf[at..]).unwrap();
            prop_assert_eq!(&got, f);
            for cut in 0..used {
                prop_assert!(matches!(decode(&buf[at..at + cut]), Err(WireError::Incomplete(n)) if n > cut));
            }
            at += used;
        }
        prop_assert_eq!(at, buf.len());
    }

    /// Any bytes: a frame, incomplete or malformed, never a panic.
    #[test]
    fn any_bytes_decode_without_panic(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        let _ = decode(&bytes);
    }
}

#[test]
fn paths_outside_the_data_directory_are_refused() {
    for bad in ["", "/etc/passwd", "../x", "a/../../x", "a//b", "./a", "a/.", "a\0b"] {
        assert!(check_path(bad).is_err(), "{bad:?}");
    }
    for good in ["a", "vhosts/abc/queues/q/0000000001.seg", "a.b/..c"] {
        check_path(good).unwrap();
    }
    // A leader's frame naming one is malformed at the follower.
    let mut buf = Vec::new();
    encode(
        &mut buf,
        &Frame::Ops {
            first_seq: 1,
            ops: vec![Op::Remove { path: "abc".into() }],
        },
    );
    let at = buf.len() - 3;
    buf[at..].copy_from_slice(b"../"[..3].as_ref());
    assert!(
        matches!(decode(&buf), Err(WireError::Malformed(_))),
        "{:?}",
        decode(&buf)
    );
}

#[test]
fn lengths_are_bounded() {
    let mut huge = (FRAME_MAX as u32 + 1).to_be_bytes().to_vec();
    huge.push(ACK);
    assert!(matches!(decode(&huge), Err(WireError::Malformed(_))));
    // A count past its bound is refused before anything is allocated for it.
    let mut buf = Vec::new();
    encode(
        &mut buf,
        &Frame::Ops {
            first_seq: 0,
            ops: vec![],
        },
    );
    let n = buf.len();
    buf[n - 4..].copy_from_slice(&(OPS_MAX as u32 + 1).to_be_bytes());
    assert!(matches!(decode(&buf), Err(WireError::Malformed(_))));
}
