//! Helpers shared by the recovery tests (crash.rs, damage.rs): a segment of random
//! records, written through the store, and reopening a folder to read back what
//! comes back.
#![allow(dead_code)]

use std::fs;
use std::path::Path;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use ringmq_store::{MessageRef, QueueStore, RecoveryReport, SegmentPosition, StoreConfig};

/// Segment size of [`write_records`]: all its records fit in one segment.
pub const SEGMENT_BYTES: u32 = 64 * 1024;

/// The seed of a test's random scenario: RINGMQ_TEST_SEED, or a fresh one (each
/// assertion message shows it, so a failure can be replayed).
pub fn seed() -> u64 {
    match std::env::var("RINGMQ_TEST_SEED") {
        Ok(s) => s.parse().expect("RINGMQ_TEST_SEED must be a u64"),
        Err(_) => rand::random(),
    }
}

/// A seeded generator and its seed.
pub fn rng() -> (StdRng, u64) {
    let seed = seed();
    (StdRng::seed_from_u64(seed), seed)
}

pub struct Written {
    /// Segment file bytes after a clean close (no zero tail).
    pub bytes: Vec<u8>,
    /// (offset, end, body) of each record.
    pub records: Vec<(usize, usize, Vec<u8>)>,
    /// End of the last record synced before the rest were written.
    pub synced_end: usize,
}

pub fn config() -> StoreConfig {
    StoreConfig {
        segment_bytes: SEGMENT_BYTES,
        ..StoreConfig::default()
    }
}

/// Writes `count` random messages (syncing after `synced`) into one segment.
pub fn write_records(rng: &mut StdRng, count: usize, synced: usize) -> Written {
    let dir = tempfile::tempdir().unwrap();
    let (mut q, _) = QueueStore::open(dir.path(), config()).unwrap();
    let mut records = Vec::new();
    let mut synced_end = 0;
    for i in 0..count {
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
        if i + 1 == synced {
            q.sync_all_blocking().unwrap();
            assert_eq!(q.synced_seq().0, synced as u64);
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

/// Opens the queue in `dir` and takes every ready message (without acking);
/// returns their bodies in order, and the report.
pub fn read_all(dir: &Path, cfg: StoreConfig) -> (Vec<Vec<u8>>, RecoveryReport) {
    let (mut q, report) = QueueStore::open(dir, cfg).unwrap();
    let mut bodies = Vec::new();
    while let Some(p) = q.next_ready().unwrap() {
        bodies.push(q.read(p).unwrap().body.to_vec());
    }
    (bodies, report)
}

/// Opens a queue whose only segment is `seg` (and ack file `acks`); returns the bodies
/// of the ready messages in order, and the report.
pub fn recover(dir: &Path, seg: &[u8], acks: Option<&[u8]>) -> (Vec<Vec<u8>>, RecoveryReport) {
    for e in fs::read_dir(dir).unwrap() {
        fs::remove_file(e.unwrap().path()).unwrap();
    }
    fs::write(dir.join("msgs.0000000001"), seg).unwrap();
    if let Some(a) = acks {
        fs::write(dir.join("acks.0000000001"), a).unwrap();
    }
    read_all(dir, config())
}

/// The names of the files in `dir`, sorted.
pub fn file_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

/// Writes 60 messages, the body of message `i` 20 times the byte `i`, into segments
/// of 200 bytes (4 messages each); returns the queue (still open), their positions,
/// and the configuration.
pub fn small_segments(dir: &Path) -> (QueueStore, Vec<SegmentPosition>, StoreConfig) {
    let cfg = StoreConfig {
        segment_bytes: 200,
        ..StoreConfig::default()
    };
    let (mut q, _) = QueueStore::open(dir, cfg).unwrap();
    let mut pos = Vec::new();
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
        pos.push(p);
    }
    (q, pos, cfg)
}

/// Copies every file of `from` into a fresh directory: what the disk holds if the
/// machine stopped now with all written pages on it (the store may still be open).
pub fn snapshot(from: &Path) -> tempfile::TempDir {
    let to = tempfile::tempdir().unwrap();
    for e in fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        fs::copy(e.path(), to.path().join(e.file_name())).unwrap();
    }
    to
}
