//! Crash recovery: every truncation of the unsynced tail and random bit flips must
//! recover exactly the records the damage did not hit; a tail a crash tore is told
//! apart from damage. Seeded: set RINGMQ_TEST_SEED to replay; the seed is in every
//! assertion message. damage.rs has the tests of damage inside a segment.

mod common;

use std::fs;
use std::path::Path;

use common::*;
use rand::Rng;
use ringmq_store::{BodyCrc, MessageRef, QueueStore, StoreConfig};

const RECORDS: usize = 40;
const SYNCED: usize = 20;

fn expected(w: &Written, damage_at: usize, acked: &[usize]) -> Vec<Vec<u8>> {
    w.records
        .iter()
        .enumerate()
        .filter(|(i, r)| r.1 <= damage_at && !acked.contains(i))
        .map(|(_, r)| r.2.clone())
        .collect()
}

#[test]
fn truncation_at_every_byte_of_the_unsynced_tail() {
    let (mut rng, seed) = rng();
    let w = write_records(&mut rng, RECORDS, SYNCED);
    let dir = tempfile::tempdir().unwrap();
    for cut in w.synced_end..=w.bytes.len() {
        let (got, report) = recover(dir.path(), &w.bytes[..cut], None);
        assert_eq!(got, expected(&w, cut, &[]), "seed {seed}: cut at {cut}");
        let boundary = w.records.iter().map(|r| r.1).filter(|&e| e <= cut).max().unwrap();
        let torn = w.bytes[boundary..cut].iter().any(|&b| b != 0);
        // A torn write of the newest segment: reported as such, not as damage.
        assert_eq!(report.torn_bytes() > 0, torn, "seed {seed}: cut at {cut}: {report:?}");
        assert!(!report.corrupt(), "seed {seed}: cut at {cut}: {report:?}");
        // The same cut inside a preallocated (zero-filled) segment. Where the
        // bytes cut off were zeros anyway (a body ending in zero bytes), the
        // padding restores them exactly: the file is then byte for byte the
        // uncut one up to there, and the record is whole.
        let mut padded = w.bytes[..cut].to_vec();
        padded.resize(SEGMENT_BYTES as usize, 0);
        let mut same = cut;
        while same < w.bytes.len() && w.bytes[same] == 0 {
            same += 1;
        }
        let boundary = w.records.iter().map(|r| r.1).filter(|&e| e <= same).max().unwrap();
        let torn = w.bytes[boundary..same].iter().any(|&b| b != 0);
        let (got, report) = recover(dir.path(), &padded, None);
        assert_eq!(got, expected(&w, same, &[]), "seed {seed}: padded cut at {cut}");
        assert_eq!(
            report.torn_bytes() > 0,
            torn,
            "seed {seed}: padded cut at {cut}: {report:?}"
        );
        assert!(!report.corrupt(), "seed {seed}: padded cut at {cut}: {report:?}");
        let len = fs::metadata(dir.path().join("msgs.0000000001")).unwrap().len() as usize;
        assert_eq!(len, boundary, "seed {seed}: the torn tail is cut off the file");
    }
}

/// A flipped bit anywhere loses only the record it hits: recovery finds the next
/// intact record (it used to keep only the records before the flip). In the last
/// record of the newest segment, with its preallocated zeros still after it, the
/// flip looks like a write a crash tore, and is reported as one.
#[test]
fn a_bit_flip_loses_only_the_record_it_hits() {
    let (mut rng, seed) = rng();
    let w = write_records(&mut rng, RECORDS, SYNCED);
    let dir = tempfile::tempdir().unwrap();
    let mut padded = w.bytes.clone();
    padded.resize(w.bytes.len() + 256, 0);
    let last = w.records.last().unwrap().0;
    for _ in 0..2000 {
        let at = rng.random_range(8..padded.len());
        let mut c = padded.clone();
        c[at] ^= 1 << rng.random_range(0..8);
        let (got, report) = recover(dir.path(), &c, None);
        let hit = w.records.iter().position(|r| (r.0..r.1).contains(&at));
        let want: Vec<Vec<u8>> = (0..RECORDS)
            .filter(|&i| Some(i) != hit)
            .map(|i| w.records[i].2.clone())
            .collect();
        assert_eq!(got, want, "seed {seed}: bit flip in byte {at}");
        // A flip in the last record's length word makes its end a guess: shrunk,
        // non-zero bytes follow the end it claims (no torn write leaves those: a
        // length word is written whole); grown, it claims bytes past the file.
        // Recovery may call that torn or damage; either way only that record is
        // gone (checked above). (It had to be torn, and failed 5% of seeds.)
        let in_length = (last..last + 4).contains(&at);
        if at >= last && !in_length {
            assert!(report.torn_bytes() > 0, "seed {seed}: flip at {at}: {report:?}");
            assert!(!report.corrupt(), "seed {seed}: flip at {at}: {report:?}");
        } else if in_length {
            let torn = report.torn_bytes() > 0 && !report.corrupt();
            let damaged = (report.records_dropped(), report.records_kept_after_damage()) == (1, 0);
            assert!(torn || damaged, "seed {seed}: flip at {at}: {report:?}");
        } else {
            let hit = hit.unwrap();
            let size = (w.records[hit].1 - w.records[hit].0) as u64;
            let after = (RECORDS - hit - 1) as u64;
            let counts = (
                report.records_dropped(),
                report.bytes_dropped(),
                report.records_kept_after_damage(),
            );
            assert_eq!(counts, (1, size, after), "seed {seed}: flip at {at}: {report:?}");
        }
    }
}

#[test]
fn ack_files_with_torn_entries_and_dangling_offsets() {
    let (mut rng, seed) = rng();
    let w = write_records(&mut rng, RECORDS, SYNCED);
    let dir = tempfile::tempdir().unwrap();
    for round in 0..200 {
        let acked: Vec<usize> = (0..RECORDS).filter(|_| rng.random_bool(0.3)).collect();
        let mut acks: Vec<u8> = acked
            .iter()
            .flat_map(|&i| (w.records[i].0 as u32).to_le_bytes())
            .collect();
        // Offsets that point at no record: inside a record, past the end.
        acks.extend_from_slice(&(w.records[3].0 as u32 + 1).to_le_bytes());
        acks.extend_from_slice(&(SEGMENT_BYTES * 2).to_le_bytes());
        let torn = rng.random_range(0..4);
        acks.extend(std::iter::repeat_n(0xEE, torn));
        let cut = rng.random_range(w.synced_end..=w.bytes.len());
        let (got, report) = recover(dir.path(), &w.bytes[..cut], Some(&acks));
        assert_eq!(
            got,
            expected(&w, cut, &acked),
            "seed {seed}: round {round} cut {cut} acked {acked:?}"
        );
        let want_reported = expected(&w, cut, &acked).len() as u64;
        assert_eq!(report.messages_recovered, want_reported, "seed {seed}: round {round}");
        if let Some(d) = report.damaged.first() {
            assert_eq!(d.ack_torn_bytes, torn as u64, "seed {seed}: round {round}");
            assert!(d.acks_invalid >= 2, "seed {seed}: round {round}");
        }
    }
}

#[test]
fn a_corrupt_segment_loses_only_its_own_tail() {
    let dir = tempfile::tempdir().unwrap();
    let (q, pos, cfg) = small_segments(dir.path());
    let mut per_segment = std::collections::BTreeMap::<u32, Vec<u8>>::new();
    let mut last_offset = std::collections::BTreeMap::<u32, u32>::new();
    for (i, p) in pos.iter().enumerate() {
        per_segment.entry(p.segment.0).or_default().push(i as u8);
        last_offset.insert(p.segment.0, p.offset);
    }
    q.close().unwrap();
    let segs: Vec<u32> = per_segment.keys().copied().collect();
    let victim = segs[segs.len() / 2];
    let other = segs[1];
    let path = dir.path().join(format!("msgs.{victim:010}"));
    let mut bytes = fs::read(&path).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x40; // damages the last record of the victim
    fs::write(&path, &bytes).unwrap();
    // The other segment loses its header: moved aside, all its records gone.
    let other_path = dir.path().join(format!("msgs.{other:010}"));
    let mut ob = fs::read(&other_path).unwrap();
    ob[0] = b'X';
    fs::write(&other_path, &ob).unwrap();
    let (mut q, report) = QueueStore::open(dir.path(), cfg).unwrap();
    let mut got = Vec::new();
    while let Some(p) = q.next_ready().unwrap() {
        got.push(q.read(p).unwrap().body[0]);
    }
    let mut want = Vec::new();
    for (seg, ids) in &per_segment {
        if *seg == other {
            continue;
        }
        let keep = if *seg == victim { ids.len() - 1 } else { ids.len() };
        want.extend_from_slice(&ids[..keep]);
    }
    assert_eq!(got, want);
    assert_eq!(report.damaged.len(), 2, "{report:?}");
    assert!(report.damaged.iter().any(|d| d.header_corrupt && d.segment.0 == other));
    assert_eq!(
        fs::read(dir.path().join(format!("msgs.{other:010}.corrupt"))).unwrap(),
        ob
    );
    // The victim's damaged record was copied aside before it was cut off.
    let copy = format!("msgs.{victim:010}.corrupt.{:010}", last_offset[&victim]);
    assert_eq!(
        fs::read(dir.path().join(copy)).unwrap(),
        bytes[last_offset[&victim] as usize..]
    );
    assert!(report.corrupt());
}

/// A recycled segment (a fully acked file reused at rollover) holds its previous
/// life's records behind the new ones, with valid CRCs of their own. After a crash
/// exactly the new records come back, nothing is reported; and when the last write
/// was torn (its bytes still the old ones), no stale record comes back either, even
/// where an old record sits at exactly the same offset (all records equally long).
#[test]
fn a_recycled_segment_recovers_only_its_new_records() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = StoreConfig {
        segment_bytes: 1024,
        ..StoreConfig::default()
    };
    let (mut q, _) = QueueStore::open(dir.path(), cfg).unwrap();
    let mut next = 0u32;
    let mut append = |q: &mut QueueStore| {
        let body = format!("message {next:06}").into_bytes();
        next += 1;
        q.append(MessageRef {
            timestamp_ms: 0,
            exchange: b"",
            routing_key: b"k",
            properties: b"",
            body: &body,
        })
        .unwrap()
    };
    // Segment 1 full, one record in segment 2; deliver and ack all of segment 1.
    let mut pos = Vec::new();
    while pos
        .last()
        .is_none_or(|p: &ringmq_store::SegmentPosition| p.segment.0 == 1)
    {
        pos.push(append(&mut q));
    }
    let mut delivered = Vec::new();
    while let Some(p) = q.next_ready().unwrap() {
        delivered.push(p);
    }
    for p in delivered.iter().filter(|p| p.segment.0 == 1) {
        q.ack(*p).unwrap();
    }
    let spare = dir.path().join("spare.0000000001");
    assert!(spare.exists(), "the acked segment is kept as the spare");
    assert!(!dir.path().join("msgs.0000000001").exists());
    let stale = fs::read(&spare).unwrap();
    // Fill segment 2, then two records into segment 3, the recycled file.
    let mut last = append(&mut q);
    while last.segment.0 == 2 {
        last = append(&mut q);
    }
    let in_3 = [last, append(&mut q)];
    assert!(!spare.exists(), "the spare became segment 3");
    let seg3 = "msgs.0000000003";
    assert_eq!(fs::metadata(dir.path().join(seg3)).unwrap().len(), 1024);
    let body_of = |q: &QueueStore, p| q.read(p).unwrap().body.to_vec();
    // Everything not acked, in order: the delivered record of segment 2, then all
    // appended after it.
    let mut expect = vec![body_of(&q, *delivered.last().unwrap())];
    while let Some(p) = q.next_ready().unwrap() {
        expect.push(body_of(&q, p));
    }
    let read_all = |d: &Path| {
        let (mut r, report) = QueueStore::open(d, cfg).unwrap();
        let mut got = Vec::new();
        while let Some(p) = r.next_ready().unwrap() {
            got.push(r.read(p).unwrap().body.to_vec());
        }
        (got, report)
    };
    let crash = snapshot(dir.path());
    let (got, report) = read_all(crash.path());
    assert_eq!(got, expect);
    assert!(report.damaged.is_empty(), "{report:?}");

    // The last record's write never reached the disk: its bytes (and its end mark)
    // are still the old life's, where an old record starts at the same offset.
    let torn = snapshot(dir.path());
    let path = torn.path().join(seg3);
    let mut bytes = fs::read(&path).unwrap();
    let (from, to) = (in_3[1].offset as usize, (in_3[1].offset + in_3[1].size) as usize + 4);
    bytes[from..to].copy_from_slice(&stale[from..to]);
    assert_eq!(
        u32::from_le_bytes(stale[from..from + 4].try_into().unwrap()),
        in_3[1].size
    );
    fs::write(&path, &bytes).unwrap();
    let (got, report) = read_all(torn.path());
    assert_eq!(got, expect[..expect.len() - 1]);
    assert!(report.torn_bytes() > 0, "{report:?}");
    assert!(!report.corrupt(), "a torn write is not damage: {report:?}");
    assert!(
        !file_names(torn.path()).iter().any(|n| n.contains("corrupt")),
        "a torn write is not set aside"
    );
    drop(q);
}

/// Records of messages no recovery keeps ([`BodyCrc::Unrecovered`]: the broker's
/// transient messages) leave their body out of the CRC. Recovery still walks past
/// them by their checked length and drops them by their checked properties, so
/// whatever happened to their bodies (torn by a crash, damaged after), exactly the
/// checked records come back and nothing is reported as damage; large ones
/// (`pwritev`) and small ones (through the mapping) alike. A flip in an
/// unrecovered record's header or properties is damage as before, and loses
/// only that record.
#[test]
fn unrecovered_records_are_walked_past_whatever_their_bodies_hold() {
    let (mut rng, seed) = rng();
    let dir = tempfile::tempdir().unwrap();
    let (mut q, _) = QueueStore::open(dir.path(), config()).unwrap();
    // (start, end, body start, checked, body) of each record.
    let mut recs = Vec::new();
    // The last one checked: a flip in the newest segment's last record may be
    // taken as a torn write rather than damage (a_bit_flip_loses_only_the_record_it_hits).
    for i in 0..25u64 {
        let checked = i % 3 == 0;
        // Three large records (16,500 bytes: `pwritev`), one of them checked.
        let len = if [1, 9, 10].contains(&i) {
            16_500
        } else {
            rng.random_range(0..200)
        };
        let body: Vec<u8> = (0..len).map(|_| rng.random()).collect();
        let props = [u8::from(checked)];
        let m = MessageRef {
            timestamp_ms: i,
            exchange: b"ex",
            routing_key: b"rk",
            properties: &props,
            body: &body,
        };
        let crc = if checked {
            BodyCrc::Checked
        } else {
            BodyCrc::Unrecovered
        };
        let p = q.append_with(m, crc).unwrap();
        assert_eq!(p.segment.0, 1);
        let end = (p.offset + p.size) as usize;
        recs.push((p.offset as usize, end, end - body.len(), checked, body));
    }
    q.close().unwrap();
    let bytes = fs::read(dir.path().join("msgs.0000000001")).unwrap();
    let keep = |m: &ringmq_store::MessageView<'_>| m.properties == [1];
    let want: Vec<Vec<u8>> = recs.iter().filter(|r| r.3).map(|r| r.4.clone()).collect();
    let run = |seg: &[u8]| {
        let d = tempfile::tempdir().unwrap();
        fs::write(d.path().join("msgs.0000000001"), seg).unwrap();
        let (mut q, report) = QueueStore::open_filtered(d.path(), config(), &keep).unwrap();
        let mut got = Vec::new();
        while let Some(p) = q.next_ready().unwrap() {
            got.push(q.read(p).unwrap().body.to_vec());
        }
        (got, report)
    };
    let (got, report) = run(&bytes);
    assert_eq!(got, want, "seed {seed}: intact");
    assert!(!report.corrupt(), "seed {seed}: {report:?}");
    for r in recs.iter().filter(|r| !r.3 && r.1 > r.2) {
        // The body zeroed (a write torn inside a preallocated segment), or with
        // random bytes flipped (damage a CRC would have caught).
        let mut zeroed = bytes.clone();
        zeroed[r.2..r.1].fill(0);
        let mut flipped = bytes.clone();
        for _ in 0..4 {
            let at = rng.random_range(r.2..r.1);
            flipped[at] ^= 1 << rng.random_range(0..8);
        }
        for (how, seg) in [("zeroed", &zeroed), ("flipped", &flipped)] {
            let (got, report) = run(seg);
            assert_eq!(got, want, "seed {seed}: body of record at {} {how}", r.0);
            assert!(!report.corrupt(), "seed {seed}: {how} at {}: {report:?}", r.0);
        }
        // A flip in its header or properties: that record is damage, the rest stays.
        let mut c = bytes.clone();
        let at = rng.random_range(r.0 + 8..r.2);
        c[at] ^= 1 << rng.random_range(0..8);
        let (got, report) = run(&c);
        assert_eq!(got, want, "seed {seed}: header flip at {at}");
        assert_eq!(
            report.records_dropped(),
            1,
            "seed {seed}: header flip at {at}: {report:?}"
        );
    }
}
