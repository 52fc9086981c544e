//! Damage inside a segment (issue 15, defect 5): recovery resynchronises past a bad
//! record and keeps every intact record after it, in order, with acks that still
//! work; the unreadable bytes are copied aside (`msgs.N.corrupt.OFFSET`) before
//! anything is cut; counts are true; a second open gives the same result and writes
//! nothing new. Seeded: set RINGMQ_TEST_SEED to replay.

mod common;

use std::fs;
use std::ops::Range;
use std::path::Path;

use common::*;
use rand::Rng;
use ringmq_store::{MessageRef, QueueStore, RecoveryReport, StoreConfig};

const RECORDS: usize = 200;

/// The file a copy of the unreadable bytes at `offset` of segment `seg` goes to.
fn copy_path(dir: &Path, seg: u32, offset: usize) -> std::path::PathBuf {
    dir.join(format!("msgs.{seg:010}.corrupt.{offset:010}"))
}

/// Bodies of every record but those at `lost` (indexes).
fn all_but(w: &Written, lost: &[usize]) -> Vec<Vec<u8>> {
    (0..w.records.len())
        .filter(|i| !lost.contains(i))
        .map(|i| w.records[i].2.clone())
        .collect()
}

/// (records that could not be read, unreadable bytes, intact records kept after the
/// damage, torn bytes)
fn counts(r: &RecoveryReport) -> (u64, u64, u64, u64) {
    (
        r.records_dropped(),
        r.bytes_dropped(),
        r.records_kept_after_damage(),
        r.torn_bytes(),
    )
}

/// Opens `dir` again: the same messages and counts, every copy reported as made by
/// the earlier open, and no file added or changed.
fn assert_second_open_agrees(dir: &Path, first: &(Vec<Vec<u8>>, RecoveryReport), what: &str) {
    let files = file_names(dir);
    let seg = fs::read(dir.join("msgs.0000000001")).unwrap();
    let (got, report) = read_all(dir, config());
    assert_eq!(got, first.0, "{what}: second open");
    assert_eq!(counts(&report), counts(&first.1), "{what}: second open");
    let d = &report.damaged[0];
    assert_eq!(d.set_aside, first.1.damaged[0].set_aside, "{what}");
    assert_eq!(d.set_aside_earlier as usize, d.set_aside.len(), "{what}");
    assert!(!report.corrupt(), "{what}: reported by the first open");
    assert_eq!(file_names(dir), files, "{what}: the second open wrote no file");
    assert_eq!(fs::read(dir.join("msgs.0000000001")).unwrap(), seg, "{what}");
}

/// Byte ranges of one record (at `off`, `len` bytes) that the damage goes to.
fn parts(off: usize, len: usize) -> [(&'static str, Range<usize>); 6] {
    [
        ("length word", off..off + 1),
        ("length word, high byte", off + 3..off + 4),
        ("crc", off + 5..off + 6),
        ("header fields", off + 20..off + 23),
        ("last byte", off + len - 1..off + len),
        ("3 bytes across the length and crc", off + 2..off + 5),
    ]
}

#[test]
fn one_damaged_record_in_the_middle_loses_only_itself() {
    let (mut rng, seed) = rng();
    let w = write_records(&mut rng, RECORDS, RECORDS);
    let dir = tempfile::tempdir().unwrap();
    let victim = 80;
    let (off, end, _) = w.records[victim];
    for (part, range) in parts(off, end - off) {
        let what = format!("seed {seed}: {part}");
        let mut c = w.bytes.clone();
        for b in &mut c[range] {
            *b ^= 0xa5;
        }
        let first = recover(dir.path(), &c, None);
        assert_eq!(first.0, all_but(&w, &[victim]), "{what}");
        let after = (RECORDS - victim - 1) as u64;
        assert_eq!(counts(&first.1), (1, (end - off) as u64, after, 0), "{what}");
        assert!(first.1.corrupt(), "{what}");
        assert_eq!(first.1.damaged[0].holes, 1, "{what}");
        assert_eq!(
            fs::read(copy_path(dir.path(), 1, off)).unwrap(),
            c[off..end],
            "{what}: the copy holds the bad bytes"
        );
        assert_eq!(
            fs::read(dir.path().join("msgs.0000000001")).unwrap(),
            c,
            "{what}: file unchanged"
        );
        assert_second_open_agrees(dir.path(), &first, &what);
    }
}

#[test]
fn two_damaged_records_next_to_each_other_or_apart() {
    let (mut rng, seed) = rng();
    let w = write_records(&mut rng, RECORDS, RECORDS);
    let dir = tempfile::tempdir().unwrap();
    for (victims, holes) in [([80, 81], 1), ([30, 150], 2), ([0, 198], 2)] {
        let what = format!("seed {seed}: records {victims:?}");
        let mut c = w.bytes.clone();
        // The first one's length word, the second one's body: the span's count
        // cannot just follow the first length word.
        c[w.records[victims[0]].0] ^= 0x10;
        c[w.records[victims[1]].1 - 1] ^= 0x01;
        let first = recover(dir.path(), &c, None);
        assert_eq!(first.0, all_but(&w, &victims), "{what}");
        let bytes: usize = victims.iter().map(|&v| w.records[v].1 - w.records[v].0).sum();
        let after = (RECORDS - victims[0] - 2) as u64;
        assert_eq!(counts(&first.1), (2, bytes as u64, after, 0), "{what}");
        assert_eq!(first.1.damaged[0].holes, holes, "{what}");
        assert_eq!(first.1.damaged[0].set_aside.len(), holes as usize, "{what}");
        assert_second_open_agrees(dir.path(), &first, &what);
    }
}

/// Acks of records after a hole are kept across opens; acking every intact record
/// retires the segment, and the copy of the bad bytes stays.
#[test]
fn acks_work_across_a_hole() {
    let (mut rng, seed) = rng();
    let w = write_records(&mut rng, RECORDS, RECORDS);
    let dir = tempfile::tempdir().unwrap();
    let victim = 50;
    let mut c = w.bytes.clone();
    c[w.records[victim].0 + 30] ^= 0xff;
    recover(dir.path(), &c, None);
    let (mut q, _) = QueueStore::open(dir.path(), config()).unwrap();
    let mut seen = Vec::new();
    q.for_each_ready(|_, m| seen.push(m.body.to_vec())).unwrap();
    assert_eq!(
        seen,
        all_but(&w, &[victim]),
        "seed {seed}: for_each_ready skips the hole"
    );
    let mut left = Vec::new();
    let mut i = 0;
    while let Some(p) = q.next_ready().unwrap() {
        if i % 3 == 0 {
            left.push(q.read(p).unwrap().body.to_vec());
        } else {
            q.ack(p).unwrap();
        }
        i += 1;
    }
    q.close().unwrap();
    let (mut q, report) = QueueStore::open(dir.path(), config()).unwrap();
    assert_eq!(report.records_dropped(), 1, "seed {seed}: {report:?}");
    assert_eq!(report.messages_recovered, left.len() as u64, "seed {seed}");
    let mut got = Vec::new();
    while let Some(p) = q.next_ready().unwrap() {
        got.push(q.read(p).unwrap().body.to_vec());
        q.ack(p).unwrap();
    }
    assert_eq!(got, left, "seed {seed}");
    q.close().unwrap();
    let names = file_names(dir.path());
    assert!(
        !names.contains(&"msgs.0000000001".to_string()),
        "seed {seed}: {names:?}"
    );
    assert!(
        copy_path(dir.path(), 1, w.records[victim].0).exists(),
        "seed {seed}: {names:?}"
    );
    let (got, report) = read_all(dir.path(), config());
    assert!(got.is_empty() && report.damaged.is_empty(), "seed {seed}: {report:?}");
}

fn flip(dir: &Path, seg: u32, at: usize) -> Vec<u8> {
    let path = dir.join(format!("msgs.{seg:010}"));
    let mut bytes = fs::read(&path).unwrap();
    bytes[at] ^= 0x08;
    fs::write(&path, &bytes).unwrap();
    bytes
}

fn first_bytes(got: &[Vec<u8>]) -> Vec<u8> {
    got.iter().map(|b| b[0]).collect()
}

/// In a segment closed at a rollover or a clean stop (cut to its data), a bad last
/// record is damage: set aside, then cut, and reported as corruption, in the newest
/// segment too. A segment still preallocated (being written at a crash) whose last
/// record is bad ends in a torn write: cut, not set aside, not corruption.
#[test]
fn damage_in_a_closed_segment_versus_a_torn_tail_of_the_newest() {
    let dir = tempfile::tempdir().unwrap();
    let (q, pos, cfg) = small_segments(dir.path());
    let pos: Vec<(u32, usize, usize)> = pos
        .iter()
        .map(|p| (p.segment.0, p.offset as usize, p.size as usize))
        .collect();
    // A crash now: the newest segment is still preallocated.
    let crashed = snapshot(dir.path());
    q.close().unwrap();
    let newest = pos.last().unwrap().0;
    let last_of = |seg: u32| pos.iter().rposition(|p| p.0 == seg).unwrap();
    let (older, newest_last) = (last_of(3), last_of(newest));
    let all: Vec<u8> = (0..60).collect();
    let without =
        |lost: &[usize]| -> Vec<u8> { all.iter().copied().filter(|&i| !lost.contains(&(i as usize))).collect() };

    // Clean stop: the last record of an older segment and of the newest are bad.
    let p = pos[older];
    let older_bytes = flip(dir.path(), p.0, p.1 + p.2 - 1);
    let n = pos[newest_last];
    let newest_bytes = flip(dir.path(), n.0, n.1 + 4);
    let (got, report) = read_all(dir.path(), cfg);
    assert_eq!(first_bytes(&got), without(&[older, newest_last]));
    assert_eq!(report.records_dropped(), 2, "{report:?}");
    assert_eq!(report.torn_bytes(), 0, "{report:?}");
    assert!(report.corrupt());
    assert_eq!(fs::read(copy_path(dir.path(), p.0, p.1)).unwrap(), older_bytes[p.1..]);
    assert_eq!(fs::read(copy_path(dir.path(), n.0, n.1)).unwrap(), newest_bytes[n.1..]);
    let (again, report) = read_all(dir.path(), cfg);
    assert_eq!(again, got, "cut off after the copy: the next open finds no damage");
    assert!(report.damaged.is_empty(), "{report:?}");

    // The crash: the newest segment's last record torn (its second half never
    // written), and a record in the middle of an older segment bad.
    let path = crashed.path().join(format!("msgs.{newest:010}"));
    let mut bytes = fs::read(&path).unwrap();
    assert!(bytes.len() > n.1 + n.2, "the crashed writer is preallocated");
    bytes[n.1 + n.2 / 2..n.1 + n.2].fill(0);
    fs::write(&path, &bytes).unwrap();
    let mid = pos.iter().position(|p| p.0 == 2).unwrap() + 1;
    let m = pos[mid];
    flip(crashed.path(), m.0, m.1 + 12);
    let (got, report) = read_all(crashed.path(), cfg);
    assert_eq!(first_bytes(&got), without(&[mid, newest_last]));
    assert_eq!(report.records_dropped(), 1, "{report:?}");
    assert_eq!(report.bytes_dropped(), m.2 as u64, "{report:?}");
    let torn = report.damaged.iter().find(|d| d.segment.0 == newest).unwrap();
    assert_eq!((torn.torn_records, torn.bytes_dropped), (1, 0), "{report:?}");
    assert!(torn.set_aside.is_empty(), "{report:?}");
    let names = file_names(crashed.path());
    let copies: Vec<&String> = names.iter().filter(|n| n.contains("corrupt")).collect();
    assert_eq!(copies, [&format!("msgs.{:010}.corrupt.{:010}", m.0, m.1)]);
}

/// What damage does to the bytes of a segment.
#[derive(Debug, Clone, Copy)]
enum Damage {
    /// Flip bits in `n` bytes in a row.
    Flip(usize),
    /// Zero `n` bytes (a lost page, a zeroed sector).
    Zero(usize),
    /// Random bytes over `n` bytes.
    Garbage(usize),
}

/// Random damage anywhere after the header never panics and never loses a record
/// outside the damaged bytes: exactly the records whose bytes it changed are gone,
/// the others come back in order, and a second open agrees.
#[test]
fn random_damage_loses_exactly_the_records_it_changes() {
    let (mut rng, seed) = rng();
    let w = write_records(&mut rng, RECORDS, RECORDS);
    let dir = tempfile::tempdir().unwrap();
    let mut padded = w.bytes.clone();
    padded.resize(w.bytes.len() + 512, 0);
    for round in 0..300 {
        let mut c = padded.clone();
        let mut done = Vec::new();
        for _ in 0..rng.random_range(1..=3) {
            let d = match rng.random_range(0..3) {
                0 => Damage::Flip(rng.random_range(1..=4)),
                1 => Damage::Zero(rng.random_range(1..=600)),
                _ => Damage::Garbage(rng.random_range(1..=600)),
            };
            let (Damage::Flip(n) | Damage::Zero(n) | Damage::Garbage(n)) = d;
            let at = rng.random_range(8..c.len());
            let end = (at + n).min(c.len());
            for b in &mut c[at..end] {
                *b = match d {
                    Damage::Flip(_) => *b ^ rng.random_range(1..=255u8),
                    Damage::Zero(_) => 0,
                    Damage::Garbage(_) => rng.random(),
                };
            }
            done.push((d, at));
        }
        let what = format!("seed {seed}: round {round}: {done:?}");
        let changed = |r: &(usize, usize, Vec<u8>)| c[r.0..r.1] != padded[r.0..r.1];
        let lost: Vec<usize> = (0..RECORDS).filter(|&i| changed(&w.records[i])).collect();
        let (got, _) = recover(dir.path(), &c, None);
        assert_eq!(got, all_but(&w, &lost), "{what}");
        let files = file_names(dir.path());
        let (again, _) = read_all(dir.path(), config());
        assert_eq!(again, got, "{what}: second open");
        assert_eq!(file_names(dir.path()), files, "{what}: second open");
    }
}

/// A queue whose only files are spares (fully acked segments kept for reuse) gives
/// new segments ids above theirs, so a recycled file's stale records never carry
/// the CRC seed of its new id: when its last write is torn, the search for intact
/// records runs into them and must not bring any back.
#[test]
fn a_recycled_file_never_gets_the_id_of_an_earlier_life() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = StoreConfig {
        segment_bytes: 1024,
        ..StoreConfig::default()
    };
    let msg = |i: u32| format!("message {i:06}").into_bytes();
    let append = |q: &mut QueueStore, i: u32| {
        q.append(MessageRef {
            timestamp_ms: 0,
            exchange: b"",
            routing_key: b"k",
            properties: b"",
            body: &msg(i),
        })
        .unwrap()
    };
    let (mut q, _) = QueueStore::open(dir.path(), cfg).unwrap();
    let mut i = 0;
    while append(&mut q, i).segment.0 < 3 {
        i += 1;
    }
    while let Some(p) = q.next_ready().unwrap() {
        q.ack(p).unwrap();
    }
    q.close().unwrap();
    assert_eq!(
        file_names(dir.path()),
        ["delivered", "spare.0000000001", "spare.0000000002"]
    );
    let stale = fs::read(dir.path().join("spare.0000000001")).unwrap();

    let (mut q, _) = QueueStore::open(dir.path(), cfg).unwrap();
    let kept = append(&mut q, 1000);
    let torn = append(&mut q, 1001);
    assert_eq!(kept.segment.0, 3, "above the spares' ids, not 1 again");
    // A crash: the second record's write (and its end mark) never reached the disk,
    // so its bytes are still those of the old life, where an old record starts at
    // the same offset (all records are equally long).
    let crashed = snapshot(dir.path());
    drop(q);
    let path = crashed.path().join("msgs.0000000003");
    let mut bytes = fs::read(&path).unwrap();
    let (from, to) = (torn.offset as usize, (torn.offset + torn.size) as usize + 4);
    bytes[from..to].copy_from_slice(&stale[from..to]);
    fs::write(&path, &bytes).unwrap();
    let (got, report) = read_all(crashed.path(), cfg);
    assert_eq!(got, [msg(1000)], "{report:?}");
    assert!(report.torn_bytes() > 0 && !report.corrupt(), "{report:?}");
}
