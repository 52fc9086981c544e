//! Restart bookkeeping: the delivered mark and the recovery keep-filter.

use ringmq_store::{LastStop, MessageRef, QueueStore, StoreConfig};

fn msg(body: &[u8]) -> MessageRef<'_> {
    MessageRef {
        timestamp_ms: 1,
        exchange: b"x",
        routing_key: b"k",
        properties: if body.starts_with(b"keep") { b"P" } else { b"T" },
        body,
    }
}

#[test]
fn delivered_mark_survives_close_and_flags_only_delivered() {
    let dir = tempfile::tempdir().unwrap();
    let (mut s, _) = QueueStore::open(dir.path(), StoreConfig::default()).unwrap();
    let p1 = s.append(msg(b"one")).unwrap();
    let p2 = s.append(msg(b"two")).unwrap();
    assert_eq!(s.next_ready().unwrap(), Some(p1));
    s.close().unwrap();
    let (mut s, _) = QueueStore::open(dir.path(), StoreConfig::default()).unwrap();
    assert!(
        s.delivered_before_open(p1),
        "delivered, never acked: redelivered after restart"
    );
    assert!(!s.delivered_before_open(p2), "never delivered");
    assert_eq!(s.next_ready().unwrap(), Some(p1));
    s.close().unwrap();
    // The mark never moves back: still there after another restart.
    let (s, _) = QueueStore::open(dir.path(), StoreConfig::default()).unwrap();
    assert!(s.delivered_before_open(p1));
}

/// A queue drained and closed cleanly reopens with segment ids from 1; its old
/// mark must not cover the new messages, also after a crash that follows
/// without a delivery (the mark was cut in memory only, and the file's old one
/// came back: found by the model test, tests/model.rs).
#[test]
fn old_mark_does_not_cover_new_messages_after_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let (mut s, _) = QueueStore::open(dir.path(), StoreConfig::default()).unwrap();
    for body in [&b"one"[..], b"two", b"three"] {
        s.append(msg(body)).unwrap();
    }
    while let Some(p) = s.next_ready().unwrap() {
        s.ack(p).unwrap();
    }
    s.close().unwrap();
    let (mut s, _) = QueueStore::open(dir.path(), StoreConfig::default()).unwrap();
    let fresh = s.append(msg(b"fresh")).unwrap();
    assert!(!s.delivered_before_open(fresh));
    s.sync_all_blocking().unwrap();
    drop(s); // a crash: no clean close
    let (s, r) = QueueStore::open(dir.path(), StoreConfig::default()).unwrap();
    assert_eq!(r.messages_recovered, 1);
    assert!(!s.delivered_before_open(fresh), "never delivered, not flagged");
}

/// What the `delivered` file cannot know alone: its "unclean" write at the
/// first delivery after open is durable only at the next sync batch, so a
/// power loss before it leaves the clean file of the last close. The caller's
/// `running` marker says the stop was unclean: every recovered message counts.
#[test]
fn unclean_last_stop_flags_every_recovered_message_whatever_the_file_says() {
    let dir = tempfile::tempdir().unwrap();
    let (mut s, _) = QueueStore::open(dir.path(), StoreConfig::default()).unwrap();
    let p1 = s.append(msg(b"one")).unwrap();
    let p2 = s.append(msg(b"two")).unwrap();
    assert_eq!(s.next_ready().unwrap(), Some(p1));
    s.close().unwrap();
    let clean_file = std::fs::read(dir.path().join("delivered")).unwrap();
    let (mut s, _) = QueueStore::open(dir.path(), StoreConfig::default()).unwrap();
    assert_eq!(s.next_ready().unwrap(), Some(p1));
    assert_eq!(s.next_ready().unwrap(), Some(p2)); // writes "unclean", unsynced
    drop(s);
    // Power loss: the unsynced write is lost, the clean file of the close is back.
    std::fs::write(dir.path().join("delivered"), &clean_file).unwrap();
    let (s, _) = QueueStore::open(dir.path(), StoreConfig::default()).unwrap();
    assert!(!s.delivered_before_open(p2), "the file alone does not know");
    drop(s);
    let keep_all = |_: &ringmq_store::MessageView<'_>| true;
    let (s, _) = QueueStore::open_recovering(dir.path(), StoreConfig::default(), &keep_all, LastStop::Unclean).unwrap();
    assert!(s.delivered_before_open(p1) && s.delivered_before_open(p2));
}

/// Same without any `delivered` file: the queue's first delivery ever was
/// lost with the power.
#[test]
fn unclean_last_stop_flags_recovered_messages_without_a_delivered_file() {
    let dir = tempfile::tempdir().unwrap();
    let keep_all = |_: &ringmq_store::MessageView<'_>| true;
    let (mut s, _) = QueueStore::open(dir.path(), StoreConfig::default()).unwrap();
    let p1 = s.append(msg(b"one")).unwrap();
    s.sync_all_blocking().unwrap();
    drop(s);
    let (mut s, _) = QueueStore::open(dir.path(), StoreConfig::default()).unwrap();
    assert!(!s.delivered_before_open(p1));
    assert_eq!(s.next_ready().unwrap(), Some(p1)); // writes the file, unsynced
    drop(s);
    // Power loss: that write is lost.
    std::fs::remove_file(dir.path().join("delivered")).unwrap();
    let (mut s, _) =
        QueueStore::open_recovering(dir.path(), StoreConfig::default(), &keep_all, LastStop::Unclean).unwrap();
    assert!(s.delivered_before_open(p1));
    // New messages are not recovered ones: never flagged.
    let fresh = s.append(msg(b"fresh")).unwrap();
    assert!(!s.delivered_before_open(fresh));
}

/// A copy that may have been delivered already (a delayed message routed
/// again after a crash) is flagged, in this run and after a clean restart;
/// messages behind it are not.
#[test]
fn noted_maybe_delivered_is_flagged_now_and_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (mut s, _) = QueueStore::open(dir.path(), StoreConfig::default()).unwrap();
    let copy = s.append(msg(b"copy")).unwrap();
    s.note_maybe_delivered(copy).unwrap();
    let later = s.append(msg(b"later")).unwrap();
    assert!(s.delivered_before_open(copy));
    assert!(!s.delivered_before_open(later));
    s.close().unwrap();
    let (mut s, _) = QueueStore::open(dir.path(), StoreConfig::default()).unwrap();
    assert!(s.delivered_before_open(copy));
    assert!(!s.delivered_before_open(later));
    assert_eq!(s.next_ready().unwrap(), Some(copy));
}

#[test]
fn keep_filter_drops_for_good() {
    let dir = tempfile::tempdir().unwrap();
    let (mut s, _) = QueueStore::open(dir.path(), StoreConfig::default()).unwrap();
    s.append(msg(b"keep-1")).unwrap();
    s.append(msg(b"drop-1")).unwrap();
    s.append(msg(b"keep-2")).unwrap();
    s.close().unwrap();
    let keep = |m: &ringmq_store::MessageView<'_>| m.properties == b"P";
    let (mut s, report) = QueueStore::open_filtered(dir.path(), StoreConfig::default(), &keep).unwrap();
    assert_eq!(report.records_filtered, 1);
    assert_eq!(s.ready_count(), 2);
    let a = s.next_ready().unwrap().unwrap();
    assert_eq!(s.read(a).unwrap().body, b"keep-1");
    let b = s.next_ready().unwrap().unwrap();
    assert_eq!(s.read(b).unwrap().body, b"keep-2");
    s.close().unwrap();
    // Without the filter the dropped one stays dropped (it was written as acked).
    let (s, _) = QueueStore::open(dir.path(), StoreConfig::default()).unwrap();
    assert_eq!(s.ready_count(), 2);
}

#[test]
fn large_records_written_with_pwritev_read_back_and_recover() {
    let dir = tempfile::tempdir().unwrap();
    let big: Vec<u8> = (0..200_000u32).map(|i| (i * 7) as u8).collect();
    let (mut s, _) = QueueStore::open(dir.path(), StoreConfig::default()).unwrap();
    let small = s.append(msg(b"small")).unwrap();
    let large = s.append(msg(&big)).unwrap();
    let after = s.append(msg(b"after")).unwrap();
    assert_eq!(s.read(large).unwrap().body, &big[..]);
    assert_eq!(s.read(after).unwrap().body, b"after");
    assert_eq!(s.read(small).unwrap().body, b"small");
    s.close().unwrap();
    let (mut s, r) = QueueStore::open(dir.path(), StoreConfig::default()).unwrap();
    assert_eq!(r.messages_recovered, 3);
    let mut bodies = Vec::new();
    while let Some(p) = s.next_ready().unwrap() {
        bodies.push(s.read(p).unwrap().body.len());
    }
    assert_eq!(bodies, [5, big.len(), 5]);
}
