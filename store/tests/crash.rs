//! Crash recovery: every truncation of the unsynced tail and random bit flips must
//! recover exactly the records before the damage. Seeded: set RINGMQ_TEST_SEED to
//! replay; the seed is in every assertion message.

use std::fs;
use std::path::Path;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use ringmq_store::{MessageRef, QueueStore, StoreConfig};

const SEGMENT_BYTES: u32 = 64 * 1024;
const RECORDS: usize = 40;
const SYNCED: usize = 20;

fn seed() -> u64 {
    match std::env::var("RINGMQ_TEST_SEED") {
        Ok(s) => s.parse().expect("RINGMQ_TEST_SEED must be a u64"),
        Err(_) => rand::random(),
    }
}

struct Written {
    /// Segment file bytes after a clean close (no zero tail).
    bytes: Vec<u8>,
    /// (offset, end, body) of each record.
    records: Vec<(usize, usize, Vec<u8>)>,
    synced_end: usize,
}

/// Writes RECORDS random messages (syncing after SYNCED) into one segment.
fn write_records(rng: &mut StdRng) -> Written {
    let dir = tempfile::tempdir().unwrap();
    let cfg = StoreConfig {
        segment_bytes: SEGMENT_BYTES,
        ..StoreConfig::default()
    };
    let (mut q, _) = QueueStore::open(dir.path(), cfg).unwrap();
    let mut records = Vec::new();
    let mut synced_end = 0;
    for i in 0..RECORDS {
        let body: Vec<u8> = (0..rng.random_range(0..120)).map(|_| rng.random()).collect();
        let ex: Vec<u8> = vec![b'e'; rng.random_range(0..10)];
        let rk: Vec<u8> = vec![b'r'; rng.random_range(0..10)];
        let props: Vec<u8> = (0..rng.random_range(0..8)).map(|_| rng.random()).collect();
        let m = MessageRef {
            timestamp_ms: i as u64,
            exchange: &ex,
            routing_key: &rk,
            properties: &props,
            body: &body,
        };
        let pos = q.append(m).unwrap();
        assert_eq!(pos.segment.0, 1);
        records.push((pos.offset as usize, (pos.offset + pos.size) as usize, body));
        if i + 1 == SYNCED {
            q.sync_all_blocking().unwrap();
            assert_eq!(q.synced_seq().0, SYNCED as u64);
            synced_end = (pos.offset + pos.size) as usize;
        }
    }
    q.close().unwrap();
    let bytes = fs::read(dir.path().join("msgs.0000000001")).unwrap();
    assert_eq!(
        bytes.len(),
        records.last().unwrap().1,
        "clean close truncates to the data"
    );
    Written {
        bytes,
        records,
        synced_end,
    }
}

/// Opens a queue whose only segment is `seg` (and ack file `acks`); returns the bodies
/// of the ready messages in order, and the report.
fn recover(dir: &Path, seg: &[u8], acks: Option<&[u8]>) -> (Vec<Vec<u8>>, ringmq_store::RecoveryReport) {
    for e in fs::read_dir(dir).unwrap() {
        fs::remove_file(e.unwrap().path()).unwrap();
    }
    fs::write(dir.join("msgs.0000000001"), seg).unwrap();
    if let Some(a) = acks {
        fs::write(dir.join("acks.0000000001"), a).unwrap();
    }
    let cfg = StoreConfig {
        segment_bytes: SEGMENT_BYTES,
        ..StoreConfig::default()
    };
    let (mut q, report) = QueueStore::open(dir, cfg).unwrap();
    let mut bodies = Vec::new();
    while let Some(p) = q.next_ready().unwrap() {
        bodies.push(q.read(p).unwrap().body.to_vec());
    }
    (bodies, report)
}

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
    let seed = seed();
    let mut rng = StdRng::seed_from_u64(seed);
    let w = write_records(&mut rng);
    let dir = tempfile::tempdir().unwrap();
    for cut in w.synced_end..=w.bytes.len() {
        let (got, report) = recover(dir.path(), &w.bytes[..cut], None);
        assert_eq!(got, expected(&w, cut, &[]), "seed {seed}: cut at {cut}");
        let boundary = w.records.iter().map(|r| r.1).filter(|&e| e <= cut).max().unwrap();
        let torn = w.bytes[boundary..cut].iter().any(|&b| b != 0);
        assert_eq!(
            report.records_dropped() > 0,
            torn,
            "seed {seed}: cut at {cut}: {report:?}"
        );
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
            report.records_dropped() > 0,
            torn,
            "seed {seed}: padded cut at {cut}: {report:?}"
        );
        let len = fs::metadata(dir.path().join("msgs.0000000001")).unwrap().len() as usize;
        assert_eq!(len, boundary, "seed {seed}: the torn tail is cut off the file");
    }
}

#[test]
fn random_bit_flips_in_the_unsynced_tail() {
    let seed = seed();
    let mut rng = StdRng::seed_from_u64(seed);
    let w = write_records(&mut rng);
    let dir = tempfile::tempdir().unwrap();
    let mut padded = w.bytes.clone();
    padded.resize(w.bytes.len() + 256, 0);
    for _ in 0..2000 {
        let at = rng.random_range(w.synced_end..padded.len());
        let mut c = padded.clone();
        c[at] ^= 1 << rng.random_range(0..8);
        let (got, report) = recover(dir.path(), &c, None);
        assert_eq!(got, expected(&w, at, &[]), "seed {seed}: bit flip in byte {at}");
        assert!(report.bytes_dropped() > 0, "seed {seed}: flip at {at} not reported");
    }
}

#[test]
fn ack_files_with_torn_entries_and_dangling_offsets() {
    let seed = seed();
    let mut rng = StdRng::seed_from_u64(seed);
    let w = write_records(&mut rng);
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
    let cfg = StoreConfig {
        segment_bytes: 200,
        ..StoreConfig::default()
    };
    let (mut q, _) = QueueStore::open(dir.path(), cfg).unwrap();
    let mut per_segment = std::collections::BTreeMap::<u32, Vec<u8>>::new();
    for i in 0..60u8 {
        let p = q
            .append(MessageRef {
                timestamp_ms: 0,
                exchange: b"",
                routing_key: b"k",
                properties: b"",
                body: &[i; 20],
            })
            .unwrap();
        per_segment.entry(p.segment.0).or_default().push(i);
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
    assert!(dir.path().join(format!("msgs.{other:010}.corrupt")).exists());
}

/// Copies every file of `from` into a fresh directory: what the disk holds if the
/// machine stopped now with all written pages on it (the store is still open).
fn snapshot(from: &Path) -> tempfile::TempDir {
    let to = tempfile::tempdir().unwrap();
    for e in fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        fs::copy(e.path(), to.path().join(e.file_name())).unwrap();
    }
    to
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
    assert!(report.bytes_dropped() > 0, "{report:?}");
    drop(q);
}
