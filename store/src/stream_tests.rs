use super::*;

fn cfg() -> StoreConfig {
    StoreConfig {
        segment_bytes: 256,
        ..StoreConfig::default()
    }
}

fn msg(body: &[u8], ts: u64) -> MessageRef<'_> {
    MessageRef {
        timestamp_ms: ts,
        exchange: b"",
        routing_key: b"s",
        properties: &[],
        body,
    }
}

/// Appends `n` messages whose bodies are their offsets, at time 1000 + offset.
fn fill(s: &mut StreamStore, n: u64) {
    for _ in 0..n {
        let o = s.next_offset();
        let body = format!("m{o:04}");
        let at = s.append(msg(body.as_bytes(), 1000 + o)).unwrap();
        assert_eq!(at.offset, o);
    }
}

fn body_at(s: &StreamStore, offset: u64) -> Option<String> {
    let at = s.seek_offset(offset).unwrap()?;
    assert!(at.offset >= offset);
    Some(String::from_utf8(s.read(at.pos).unwrap().body.to_vec()).unwrap())
}

/// Reads everything from `offset` on, the way a consumer does.
fn read_from(s: &StreamStore, offset: u64) -> Vec<u64> {
    let mut out = Vec::new();
    let mut at = s.seek_offset(offset).unwrap();
    while let Some(p) = at {
        let body = s.read(p.pos).unwrap().body;
        assert_eq!(body, format!("m{:04}", p.offset).as_bytes());
        out.push(p.offset);
        at = s.after(p).unwrap();
    }
    out
}

#[test]
fn offsets_seek_and_read_across_segments_and_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (mut s, _) = StreamStore::open(dir.path(), cfg()).unwrap();
    fill(&mut s, 50);
    assert!(s.segments().len() > 3, "small segments: {:?}", s.segments().len());
    assert_eq!(read_from(&s, 0), (0..50).collect::<Vec<_>>());
    assert_eq!(read_from(&s, 37), (37..50).collect::<Vec<_>>());
    assert_eq!(body_at(&s, 50), None);
    assert_eq!(s.offset_at_time(1020).unwrap(), 20);
    assert_eq!(s.offset_at_time(0).unwrap(), 0);
    assert_eq!(s.offset_at_time(5000).unwrap(), 50);
    s.close().unwrap();
    let (mut s, _) = StreamStore::open(dir.path(), cfg()).unwrap();
    assert_eq!((s.first_offset(), s.next_offset(), s.message_count()), (0, 50, 50));
    assert_eq!(read_from(&s, 0), (0..50).collect::<Vec<_>>());
    assert_eq!(s.last_chunk_offset(), 49, "after a restart, the newest message");
    fill(&mut s, 5);
    assert_eq!(read_from(&s, 48), (48..55).collect::<Vec<_>>());
}

#[test]
fn a_reader_at_the_end_goes_on_with_new_messages() {
    let dir = tempfile::tempdir().unwrap();
    let (mut s, _) = StreamStore::open(dir.path(), cfg()).unwrap();
    fill(&mut s, 1);
    let first = s.seek_offset(0).unwrap().unwrap();
    assert_eq!(s.after(first).unwrap(), None);
    fill(&mut s, 20); // into new segments
    let mut at = first;
    for o in 1..21 {
        at = s.after(at).unwrap().unwrap();
        assert_eq!(at.offset, o);
    }
}

#[test]
fn retention_drops_whole_old_segments_and_keeps_offsets_across_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (mut s, _) = StreamStore::open(dir.path(), cfg()).unwrap();
    fill(&mut s, 60);
    let segs = s.segments().len();
    let total: u64 = s.segments().iter().map(|x| x.bytes).sum();
    // By size: down to at most 400 bytes, whole segments only.
    let removed = s.retain(Some(400), None, 0).unwrap();
    assert!(removed > 0);
    let first = s.first_offset();
    assert_eq!(first, removed);
    assert!(s.segments().iter().map(|x| x.bytes).sum::<u64>() <= 400);
    assert!(s.segments().len() < segs && total > 400);
    assert_eq!(
        read_from(&s, 0),
        (first..60).collect::<Vec<_>>(),
        "a seek before the first starts at it"
    );
    s.close().unwrap();
    let (mut s, _) = StreamStore::open(dir.path(), cfg()).unwrap();
    assert_eq!((s.first_offset(), s.next_offset()), (first, 60));
    assert_eq!(read_from(&s, 0), (first..60).collect::<Vec<_>>());
    // By age: everything but the segment being written.
    fill(&mut s, 1);
    let removed = s.retain(None, Some(10), 100_000).unwrap();
    assert!(removed > 0);
    assert_eq!(s.segments().len(), 1, "the write segment stays");
    assert_eq!(s.next_offset(), 61);
}

/// A crash after the base file was written and before the segments below it
/// were removed: they are removed at open, and the offsets stay.
#[test]
fn segments_below_the_base_are_removed_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let (mut s, _) = StreamStore::open(dir.path(), cfg()).unwrap();
    fill(&mut s, 40);
    let keep = s.segments()[2];
    let base = Base {
        segment: keep.segment.0,
        first_offset: keep.first_offset,
    };
    crate::meta::write_json_atomic(&dir.path().join(BASE_FILE), &base).unwrap();
    s.close().unwrap();
    let (s, _) = StreamStore::open(dir.path(), cfg()).unwrap();
    assert_eq!(s.first_offset(), keep.first_offset);
    assert_eq!(read_from(&s, 0), (keep.first_offset..40).collect::<Vec<_>>());
}

/// `last` is the first offset of the newest chunk: what was appended since
/// the batch before.
#[test]
fn the_last_chunk_starts_after_the_last_batch() {
    let dir = tempfile::tempdir().unwrap();
    let (mut s, _) = StreamStore::open(dir.path(), cfg()).unwrap();
    fill(&mut s, 3);
    assert_eq!(s.last_chunk_offset(), 0);
    let b = s.take_sync_batch().unwrap().unwrap();
    b.run_blocking().unwrap();
    s.sync_completed(b.seq());
    fill(&mut s, 4);
    assert_eq!(s.last_chunk_offset(), 3);
}
