//! Behaviour of `QueueStore`: order, counts, acks, requeue, purge, segment deletion,
//! reopen.

use ringmq_store::{MessageRef, QueueStore, StoreConfig, StoreError};

fn msg(body: &[u8]) -> MessageRef<'_> {
    MessageRef {
        timestamp_ms: 7,
        exchange: b"ex",
        routing_key: b"rk",
        properties: b"p",
        body,
    }
}

fn small() -> StoreConfig {
    StoreConfig {
        segment_bytes: 256,
        ..StoreConfig::default()
    }
}

fn body_of(q: &QueueStore, pos: ringmq_store::SegmentPosition) -> Vec<u8> {
    q.read(pos).unwrap().body.to_vec()
}

#[test]
fn append_deliver_ack_in_order_and_segments_are_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let (mut q, report) = QueueStore::open(dir.path(), small()).unwrap();
    assert_eq!(report.messages_recovered, 0);
    for i in 0..100u32 {
        q.append(msg(&i.to_le_bytes())).unwrap();
    }
    assert_eq!(q.ready_count(), 100);
    assert!(q.segment_count() > 10, "small segments roll over");
    let bytes = q.total_bytes();
    for i in 0..100u32 {
        let pos = q.next_ready().unwrap().unwrap();
        let v = q.read(pos).unwrap();
        assert_eq!(
            (v.body, v.exchange, v.routing_key, v.properties, v.timestamp_ms),
            (&i.to_le_bytes()[..], &b"ex"[..], &b"rk"[..], &b"p"[..], 7)
        );
        q.ack(pos).unwrap();
        assert!(matches!(q.ack(pos), Err(StoreError::NotInFlight(_))));
    }
    assert!(bytes > 0);
    assert_eq!((q.ready_count(), q.unacked_count(), q.total_bytes()), (0, 0, 0));
    assert_eq!(q.next_ready().unwrap(), None);
    assert_eq!(q.segment_count(), 1, "only the write segment is left");
    q.close().unwrap();
    // Spare files (kept for reuse, at most SPARES_MAX) are not segments.
    let names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    let files = names.iter().filter(|n| !n.starts_with("spare.")).count();
    assert!(
        files <= 2,
        "fully acked segments and their ack files are gone, found {names:?}"
    );
    assert!(names.len() - files <= ringmq_store::queue::SPARES_MAX);
}

#[test]
fn requeued_come_back_first_in_original_order_and_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let (mut q, _) = QueueStore::open(dir.path(), small()).unwrap();
    for i in 0..20u8 {
        q.append(msg(&[i])).unwrap();
    }
    let taken: Vec<_> = (0..10).map(|_| q.next_ready().unwrap().unwrap()).collect();
    q.ack(taken[0]).unwrap();
    q.requeue(taken[5]).unwrap();
    q.requeue(taken[2]).unwrap();
    assert_eq!((q.ready_count(), q.unacked_count()), (12, 7));
    let p = q.next_ready().unwrap().unwrap();
    assert_eq!(body_of(&q, p), [2]);
    let p2 = q.next_ready().unwrap().unwrap();
    assert_eq!(body_of(&q, p2), [5]);
    let p3 = q.next_ready().unwrap().unwrap();
    assert_eq!(body_of(&q, p3), [10]);
    q.ack(taken[9]).unwrap();
    drop(q); // crash-like: no close, no sync
    let (mut q, report) = QueueStore::open(dir.path(), small()).unwrap();
    // 0 and 9 acked; everything else is back, in order.
    assert_eq!(report.messages_recovered, 18);
    let mut got = Vec::new();
    while let Some(p) = q.next_ready().unwrap() {
        got.push(body_of(&q, p)[0]);
    }
    let want: Vec<u8> = (1..20).filter(|&i| i != 9).collect();
    assert_eq!(got, want);
}

#[test]
fn purge_keeps_in_flight_and_remove_next_ready_discards_head() {
    let dir = tempfile::tempdir().unwrap();
    let (mut q, _) = QueueStore::open(dir.path(), small()).unwrap();
    for i in 0..50u8 {
        q.append(msg(&[i])).unwrap();
    }
    let a = q.next_ready().unwrap().unwrap();
    let b = q.next_ready().unwrap().unwrap();
    q.requeue(b).unwrap();
    assert_eq!(q.peek_ready().unwrap(), Some(b));
    assert_eq!(q.remove_next_ready().unwrap(), Some(b));
    let c = q.remove_next_ready().unwrap().unwrap();
    assert_eq!(body_of(&q, c), [2]);
    assert_eq!(q.purge().unwrap(), 47);
    assert_eq!((q.ready_count(), q.unacked_count()), (0, 1));
    assert_eq!(body_of(&q, a), [0]);
    let d = q.append(msg(b"new")).unwrap();
    assert_eq!(q.next_ready().unwrap(), Some(d));
    q.ack(a).unwrap();
    q.ack(d).unwrap();
    assert_eq!(q.segment_count(), 1);
    drop(q);
    let (q, report) = QueueStore::open(dir.path(), small()).unwrap();
    assert_eq!(report.messages_recovered, 0);
    assert_eq!(q.segment_count(), 0);
    q.delete().unwrap();
    assert!(!dir.path().exists());
}

#[test]
fn large_message_gets_its_own_segment_and_limits_apply() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = StoreConfig {
        segment_bytes: 256,
        max_record_bytes: 100_000,
        ..StoreConfig::default()
    };
    let (mut q, _) = QueueStore::open(dir.path(), cfg).unwrap();
    let big = vec![0xAB; 50_000];
    let p = q.append(msg(&big)).unwrap();
    q.append(msg(b"small")).unwrap();
    assert_eq!(q.read(p).unwrap().body, &big[..]);
    assert!(matches!(
        q.append(msg(&vec![0; 200_000])),
        Err(StoreError::MessageTooLarge { .. })
    ));
    let long = [b'x'; 300];
    let bad = MessageRef {
        routing_key: &long,
        ..msg(b"")
    };
    assert!(matches!(q.append(bad), Err(StoreError::ShortStrTooLong { .. })));
    q.close().unwrap();
    let (q, r) = QueueStore::open(dir.path(), cfg).unwrap();
    assert_eq!(r.messages_recovered, 2);
    assert!(r.damaged.is_empty());
    drop(q);
}

#[test]
fn group_commit_batches_many_appends_and_orders_overlapping_batches() {
    let dir = tempfile::tempdir().unwrap();
    let (mut q, _) = QueueStore::open(dir.path(), small()).unwrap();
    assert!(q.take_sync_batch().unwrap().is_none());
    for i in 0..30u8 {
        q.append(msg(&[i])).unwrap();
    }
    let b1 = q.take_sync_batch().unwrap().unwrap();
    assert_eq!(b1.seq().0, 30);
    assert!(b1.dir().is_some(), "new segment files need a directory sync");
    assert!(!b1.files().is_empty());
    q.append(msg(b"x")).unwrap();
    let b2 = q.take_sync_batch().unwrap().unwrap();
    assert_eq!(b2.files().len(), 1);
    b2.run_blocking().unwrap();
    q.sync_completed(b2.seq());
    assert_eq!(q.synced_seq().0, 0, "b1 is not done yet");
    b1.run_blocking().unwrap();
    q.sync_completed(b1.seq());
    assert_eq!(q.synced_seq().0, 31);
    assert!(!q.needs_sync());
    let p = q.next_ready().unwrap().unwrap();
    q.ack(p).unwrap();
    assert!(q.needs_sync(), "acks are synced too");
    q.sync_all_blocking().unwrap();
    assert!(!q.needs_sync());
}

/// A body handed out as `SharedBytes` (for a send in flight) keeps its bytes while
/// its segment is acked, retired and the queue rolls over many times: the file is
/// not reused under it (its spare is passed over until the bytes are dropped).
#[test]
fn shared_bytes_survive_retirement_and_recycling() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = StoreConfig {
        segment_bytes: 4096,
        ..StoreConfig::default()
    };
    let (mut q, _) = QueueStore::open(dir.path(), cfg).unwrap();
    let body = |i: u32| vec![(i % 251) as u8; 1000];
    let mut held = Vec::new();
    for i in 0..200u32 {
        let b = body(i);
        q.append(MessageRef {
            timestamp_ms: 0,
            exchange: b"",
            routing_key: b"k",
            properties: b"",
            body: &b,
        })
        .unwrap();
        let p = q.next_ready().unwrap().unwrap();
        if i % 7 == 0 {
            let (_, shared) = q.read_shared(p).unwrap();
            held.push((i, shared));
        }
        q.ack(p).unwrap();
        held.retain(|(j, s)| {
            assert_eq!(s.as_slice(), &body(*j)[..], "body {j} changed under its holder");
            i - j < 40
        });
    }
    let spares = std::fs::read_dir(dir.path())
        .unwrap()
        .filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().starts_with("spare."))
        .count();
    assert!(spares <= ringmq_store::queue::SPARES_MAX);
}

/// Taking a message writes the queue's `delivered` mark first (for the
/// redelivered flag after a crash). When that write fails (EMFILE, EIO, ...)
/// the take fails and the message stays ready, first in line: it was neither
/// lost from the queue nor left in flight with no delivery to settle it.
#[test]
fn a_take_that_cannot_write_its_delivered_mark_leaves_the_message_ready() {
    let dir = tempfile::tempdir().unwrap();
    let (mut q, _) = QueueStore::open(dir.path(), small()).unwrap();
    for i in 0..3u32 {
        q.append(msg(&i.to_le_bytes())).unwrap();
    }
    // A directory where the mark's file goes: opening it for writing fails.
    let mark = dir.path().join("delivered");
    std::fs::create_dir(&mark).unwrap();
    for _ in 0..2 {
        assert!(
            q.next_ready().is_err(),
            "the take must fail when its mark cannot be written"
        );
        assert_eq!((q.ready_count(), q.unacked_count()), (3, 0), "nothing taken");
        assert_eq!(
            q.peek_ready().unwrap().map(|p| body_of(&q, p)),
            Some(0u32.to_le_bytes().to_vec())
        );
    }
    std::fs::remove_dir(&mark).unwrap();
    for i in 0..3u32 {
        let pos = q.next_ready().unwrap().expect("still ready");
        assert_eq!(body_of(&q, pos), i.to_le_bytes(), "in order");
        q.ack(pos).unwrap();
    }
    assert_eq!((q.ready_count(), q.unacked_count()), (0, 0));
    assert_eq!(q.next_ready().unwrap(), None);
}

/// Resident bytes of this process's mappings of `file` (`/proc/self/smaps`).
fn resident_kib(file: &std::path::Path) -> u64 {
    let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap();
    let mut ours = false;
    let mut kib = 0;
    for line in smaps.lines() {
        let first = line.split_whitespace().next().unwrap_or("");
        if first.contains('-') && first.chars().all(|c| c.is_ascii_hexdigit() || c == '-') {
            ours = line.ends_with(&*file.to_string_lossy());
        } else if ours && first == "Rss:" {
            kib += line.split_whitespace().nth(1).unwrap().parse::<u64>().unwrap();
        }
    }
    kib
}

#[test]
fn a_queue_filling_with_no_reader_keeps_no_written_segment_resident() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = StoreConfig {
        segment_bytes: 1 << 20,
        ..StoreConfig::default()
    };
    let (mut q, _) = QueueStore::open(dir.path(), cfg).unwrap();
    let body = vec![7u8; 4000];
    // Three segments' worth, nothing read: the cursor stays at the first message.
    for _ in 0..3 * 256 {
        q.append(msg(&body)).unwrap();
    }
    let first = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with("msgs."))
        .min()
        .expect("a segment file");
    assert_eq!(
        resident_kib(&first),
        0,
        "the first segment stays mapped with its written pages: {}",
        first.display()
    );
    // It is mapped again when read, and reads back what was written.
    let pos = q.next_ready().unwrap().expect("a message");
    assert_eq!(body_of(&q, pos), body);
}

/// Small records go through the mapping, prefaulted ahead of the writer
/// (`POPULATE_AHEAD_BYTES` at a time, only where disk is reserved): every byte
/// written reads back, in the run and after a reopen.
#[test]
fn small_records_across_prefaulted_windows_read_back_and_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = StoreConfig {
        segment_bytes: 1 << 20,
        ..StoreConfig::default()
    };
    let body = |i: u32| -> Vec<u8> { (0..300u32).map(|j| (i.wrapping_mul(31) ^ j) as u8).collect() };
    let n = 8_000u32; // ~2.6 MiB: three segments, each grown from 4 KiB by doubling
    {
        let (mut q, _) = QueueStore::open(dir.path(), cfg).unwrap();
        for i in 0..n {
            q.append(msg(&body(i))).unwrap();
        }
        for i in 0..100 {
            let pos = q.next_ready().unwrap().expect("a message");
            assert_eq!(body_of(&q, pos), body(i), "message {i}");
        }
        // Taken, not acked: ready again after the reopen.
    }
    let (mut q, _) = QueueStore::open(dir.path(), cfg).unwrap();
    for i in 0..n {
        let pos = q.next_ready().unwrap().expect("a message");
        assert_eq!(body_of(&q, pos), body(i), "message {i} after reopen");
        q.ack(pos).unwrap();
    }
    assert!(q.next_ready().unwrap().is_none());
}

/// A reader that keeps up: each retired segment's write mapping goes with its
/// spare, and the segment that recycles the file writes through it again. Over
/// many lives every record reads back as written (through the old mapping, the
/// stale bytes of earlier lives behind it), and the files as they are after a
/// sync and one more append (a crash now, the queue still open) recover exactly
/// the messages not acked.
#[test]
fn recycled_write_mappings_hold_only_the_new_life() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = StoreConfig {
        segment_bytes: 4096,
        ..StoreConfig::default()
    };
    let (mut q, _) = QueueStore::open(dir.path(), cfg).unwrap();
    let body = |i: u32| vec![(i % 251) as u8; 100 + (i as usize * 37) % 600];
    // Of a later life than any before (the ids in the files differ anyway).
    let last = |i: u32| vec![(i % 7) as u8 + 1; 100 + (i as usize * 37) % 600];
    // Reads trail the appends by `ahead` messages (the writer closes segments
    // the reader has not reached), acks trail the reads by `lag` (the cursor
    // leaves a segment before its last ack; more segments than there are
    // spares wait for acks).
    for (n, (ahead, lag)) in [(0, 0), (0, 3), (0, 25), (12, 5), (30, 0)].into_iter().enumerate() {
        let mut unacked = std::collections::VecDeque::new();
        let read = |q: &mut QueueStore, i: u32, unacked: &mut std::collections::VecDeque<_>| {
            let p = q.next_ready().unwrap().unwrap();
            assert_eq!(body_of(q, p), body(i), "message {i}");
            unacked.push_back(p);
            while unacked.len() > lag {
                q.ack(unacked.pop_front().unwrap()).unwrap();
            }
        };
        let first = 1000 * n as u32;
        for i in first..first + 300 {
            q.append(msg(&body(i))).unwrap();
            if i >= first + ahead {
                read(&mut q, i - ahead, &mut unacked);
            }
        }
        for i in first + 300 - ahead..first + 300 {
            read(&mut q, i, &mut unacked);
        }
        for p in unacked {
            q.ack(p).unwrap();
        }
    }
    let mut left = Vec::new();
    for i in 300..306u32 {
        q.append(msg(&last(i))).unwrap();
        left.push(last(i));
    }
    // The acks on disk (they are written with the sync), the records not synced.
    q.sync_all_blocking().unwrap();
    q.append(msg(&last(306))).unwrap();
    left.push(last(306));
    let copy = tempfile::tempdir().unwrap();
    for e in std::fs::read_dir(dir.path()).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), copy.path().join(e.file_name())).unwrap();
    }
    let (mut r, report) = QueueStore::open(copy.path(), cfg).unwrap();
    assert!(!report.corrupt(), "{report:?}");
    let mut got = Vec::new();
    while let Some(p) = r.next_ready().unwrap() {
        got.push(body_of(&r, p));
    }
    assert!(got == left, "recovered {} messages, want {}", got.len(), left.len());
}
