//! A group commit that fails (an fsync error, or a batch that could not be
//! prepared), and what the store does after it: the failed batch is settled, so
//! later batches move the durable point on and no bound is reached however many
//! fail; every append made before the failure is reported lost; later appends go
//! to a new segment, so a crash that lost the failed writes (a damaged or zeroed
//! span in the old segment) loses nothing confirmed after them; and preparing a
//! batch that fails takes nothing. See the module docs of `ringmq_store::sync`.

mod common;

use std::fs;
use std::path::Path;

use common::{file_names, snapshot};
use ringmq_store::sync::SYNC_BATCHES_IN_FLIGHT_MAX;
use ringmq_store::{AppendSeq, LeveledStore, MessageRef, QueueStore, SegmentPosition, StoreConfig};

fn msg(body: &[u8]) -> MessageRef<'_> {
    MessageRef {
        timestamp_ms: 0,
        exchange: b"",
        routing_key: b"k",
        properties: b"",
        body,
    }
}

/// Four messages of [`msg`] with a 20-byte body fit a segment.
fn small() -> StoreConfig {
    StoreConfig {
        segment_bytes: 200,
        ..StoreConfig::default()
    }
}

/// Every ready message's body, in order, without acking.
fn bodies(q: &mut QueueStore) -> Vec<Vec<u8>> {
    std::iter::from_fn(|| {
        let p = q.next_ready().unwrap()?;
        Some(q.read(p).unwrap().body.to_vec())
    })
    .collect()
}

#[test]
fn a_failed_batch_is_settled_and_later_batches_move_the_durable_point() {
    let dir = tempfile::tempdir().unwrap();
    let (mut q, _) = QueueStore::open(dir.path(), StoreConfig::default()).unwrap();
    q.append(msg(b"a")).unwrap();
    q.sync_all_blocking().unwrap();
    q.append(msg(b"b")).unwrap();
    let failed = q.take_sync_batch().unwrap().unwrap();
    // Appended while the failing fsync ran: in the same file, so lost with it.
    q.append(msg(b"c")).unwrap();
    assert_eq!(q.sync_failed(failed.seq()), AppendSeq(3), "b and c are lost");
    assert_eq!(q.synced_seq(), AppendSeq(2), "the failed batch is settled");

    q.append(msg(b"d")).unwrap();
    q.sync_all_blocking().unwrap();
    assert_eq!(q.synced_seq(), AppendSeq(4), "a later batch moves the durable point");
    assert!(!q.needs_sync());
    assert_eq!(
        bodies(&mut q),
        [b"a", b"b", b"c", b"d"],
        "the store keeps what it holds"
    );
}

#[test]
fn more_failed_batches_than_may_be_in_flight_neither_panic_nor_stall() {
    let dir = tempfile::tempdir().unwrap();
    let (mut q, _) = QueueStore::open(dir.path(), StoreConfig::default()).unwrap();
    let rounds = SYNC_BATCHES_IN_FLIGHT_MAX as u64 + 8;
    for i in 0..rounds {
        q.append(msg(&i.to_le_bytes())).unwrap();
        let b = q.take_sync_batch().unwrap().expect("a batch for the append");
        assert_eq!(q.sync_failed(b.seq()), AppendSeq(i + 1));
    }
    q.append(msg(b"last")).unwrap();
    q.sync_all_blocking().unwrap();
    assert_eq!(q.synced_seq(), AppendSeq(rounds + 1));
    assert_eq!(q.segment_count() as u64, rounds + 1, "one segment per failure");
    q.close().unwrap();
    let (mut q, r) = QueueStore::open(dir.path(), StoreConfig::default()).unwrap();
    assert_eq!(r.messages_recovered, rounds + 1);
    assert_eq!(bodies(&mut q).last().unwrap(), b"last");
}

/// Overwrites `len` bytes of segment `pos.segment` from `pos.offset` (to the end of
/// the file when None) in the copy `dir` with `byte`: the failed writes as a crash
/// may leave them.
fn damage_from(dir: &Path, pos: SegmentPosition, len: Option<usize>, byte: u8) {
    let path = dir.join(format!("msgs.{}", pos.segment));
    let mut bytes = fs::read(&path).unwrap();
    let start = pos.offset as usize;
    let end = len.map_or(bytes.len(), |l| start + l);
    bytes[start..end].fill(byte);
    fs::write(&path, bytes).unwrap();
}

#[test]
fn appends_after_a_failed_batch_go_to_a_new_segment_and_outlive_the_failed_span() {
    let dir = tempfile::tempdir().unwrap();
    let (mut q, _) = QueueStore::open(dir.path(), StoreConfig::default()).unwrap();
    q.append(msg(b"confirmed before")).unwrap();
    q.sync_all_blocking().unwrap();
    let b = q.append(msg(b"failed")).unwrap();
    let failed = q.take_sync_batch().unwrap().unwrap();
    let c = q.append(msg(b"appended while it ran")).unwrap();
    q.sync_failed(failed.seq());
    let d = q.append(msg(b"confirmed after")).unwrap();
    q.sync_all_blocking().unwrap();
    assert_eq!(c.segment, b.segment);
    assert!(
        d.segment > b.segment,
        "an append after the failure shares the failed file"
    );

    // The failed writes never reached the disk: zeros (a fresh file) or other
    // bytes (a recycled one) from there on, or only over the failed record.
    for (len, byte) in [(None, 0), (None, 0xA5), (Some(b.size as usize), 0xA5)] {
        let crashed = snapshot(dir.path());
        damage_from(crashed.path(), b, len, byte);
        let (mut r, _) = QueueStore::open(crashed.path(), StoreConfig::default()).unwrap();
        let got = bodies(&mut r);
        assert_eq!(got.first().unwrap(), b"confirmed before", "{len:?} {byte}: {got:?}");
        assert_eq!(got.last().unwrap(), b"confirmed after", "{len:?} {byte}: {got:?}");
    }
}

#[test]
fn a_segment_written_before_a_failed_sync_is_never_reused() {
    let dir = tempfile::tempdir().unwrap();
    let (mut q, _) = QueueStore::open(dir.path(), small()).unwrap();
    q.append(msg(&[1; 20])).unwrap();
    let failed = q.take_sync_batch().unwrap().unwrap();
    q.sync_failed(failed.seq());
    // Two more segments' worth: the first of them is retired once read.
    for i in 2..=9 {
        q.append(msg(&[i; 20])).unwrap();
    }
    q.sync_all_blocking().unwrap();
    for _ in 1..=9 {
        let p = q.next_ready().unwrap().unwrap();
        q.ack(p).unwrap();
    }
    let names = file_names(dir.path());
    assert!(!names.contains(&"spare.0000000001".to_string()), "{names:?}");
    assert!(
        names.contains(&"spare.0000000002".to_string()),
        "a segment begun after the failure is reused as usual: {names:?}"
    );
}

#[test]
fn a_batch_that_cannot_be_prepared_takes_nothing() {
    let base = tempfile::tempdir().unwrap();
    let dir = base.path().join("q");
    let (mut q, _) = QueueStore::open(&dir, StoreConfig::default()).unwrap();
    q.append(msg(b"m")).unwrap();
    q.sync_all_blocking().unwrap();
    let p = q.next_ready().unwrap().unwrap(); // writes `delivered`
    q.ack(p).unwrap(); // creates the ack file: the directory must be synced
    let moved = base.path().join("moved");
    fs::rename(&dir, &moved).unwrap();
    assert!(q.take_sync_batch().is_err(), "the directory cannot be opened");
    fs::rename(&moved, &dir).unwrap();
    let b = q.take_sync_batch().unwrap().expect("everything is still to sync");
    assert_eq!(b.files().len(), 2, "the ack file and `delivered`");
    assert!(b.dir().is_some());
    b.run_blocking().unwrap();
    q.sync_completed(b.seq());
    assert!(!q.needs_sync());
}

#[test]
fn a_level_that_cannot_be_prepared_takes_nothing_from_the_others() {
    let base = tempfile::tempdir().unwrap();
    let (mut s, _) = LeveledStore::open(base.path(), StoreConfig::default(), 1, &|_| true).unwrap();
    s.append(msg(b"low"), 0).unwrap();
    s.append(msg(b"high"), 1).unwrap();
    let (p1, moved) = (base.path().join("p1"), base.path().join("moved"));
    fs::rename(&p1, &moved).unwrap();
    assert!(s.take_sync_batches().is_err());
    fs::rename(&moved, &p1).unwrap();
    let batches = s.take_sync_batches().unwrap();
    let levels: Vec<usize> = batches.iter().map(|(l, _)| *l).collect();
    assert_eq!(levels, [0, 1], "a level's batch was taken and dropped");
    for (l, b) in batches {
        b.run_blocking().unwrap();
        s.sync_completed(l, b.seq());
    }
}

#[test]
fn the_delivered_file_is_written_again_for_the_batch_after_a_failed_one() {
    let dir = tempfile::tempdir().unwrap();
    let (mut q, _) = QueueStore::open(dir.path(), StoreConfig::default()).unwrap();
    q.append(msg(b"m")).unwrap();
    q.sync_all_blocking().unwrap();
    q.next_ready().unwrap().unwrap(); // `delivered` now says unclean
    let failed = q.take_sync_batch().unwrap().unwrap();
    assert_eq!(failed.files().len(), 1, "`delivered`");
    q.sync_failed(failed.seq());
    assert!(q.needs_sync());
    let b = q.take_sync_batch().unwrap().expect("a batch after the failure");
    assert_eq!(b.files().len(), 1, "`delivered`, written again");
    b.run_blocking().unwrap();
    q.sync_completed(b.seq());
    assert!(!q.needs_sync());
}
