use super::*;

fn cfg() -> StoreConfig {
    StoreConfig {
        segment_bytes: 256,
        ..StoreConfig::default()
    }
}

/// The tests' messages carry their filter value as their whole properties.
fn value_of(properties: &[u8]) -> Option<&[u8]> {
    (!properties.is_empty()).then_some(properties)
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
    let (mut s, _) = StreamStore::open(dir.path(), cfg(), value_of).unwrap();
    fill(&mut s, 50);
    assert!(s.segments().len() > 3, "small segments: {:?}", s.segments().len());
    assert_eq!(read_from(&s, 0), (0..50).collect::<Vec<_>>());
    assert_eq!(read_from(&s, 37), (37..50).collect::<Vec<_>>());
    assert_eq!(body_at(&s, 50), None);
    assert_eq!(s.offset_at_time(1020).unwrap(), 20);
    assert_eq!(s.offset_at_time(0).unwrap(), 0);
    assert_eq!(s.offset_at_time(5000).unwrap(), 50);
    s.close().unwrap();
    let (mut s, _) = StreamStore::open(dir.path(), cfg(), value_of).unwrap();
    assert_eq!((s.first_offset(), s.next_offset(), s.message_count()), (0, 50, 50));
    assert_eq!(read_from(&s, 0), (0..50).collect::<Vec<_>>());
    assert_eq!(s.last_chunk_offset(), 49, "after a restart, the newest message");
    fill(&mut s, 5);
    assert_eq!(read_from(&s, 48), (48..55).collect::<Vec<_>>());
}

#[test]
fn a_reader_at_the_end_goes_on_with_new_messages() {
    let dir = tempfile::tempdir().unwrap();
    let (mut s, _) = StreamStore::open(dir.path(), cfg(), value_of).unwrap();
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
    let (mut s, _) = StreamStore::open(dir.path(), cfg(), value_of).unwrap();
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
    let (mut s, _) = StreamStore::open(dir.path(), cfg(), value_of).unwrap();
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
    let (mut s, _) = StreamStore::open(dir.path(), cfg(), value_of).unwrap();
    fill(&mut s, 40);
    let keep = s.segments()[2].clone();
    let base = Base {
        segment: keep.segment.0,
        first_offset: keep.first_offset,
    };
    crate::meta::write_json_atomic(&dir.path().join(BASE_FILE), &base).unwrap();
    s.close().unwrap();
    let (s, _) = StreamStore::open(dir.path(), cfg(), value_of).unwrap();
    assert_eq!(s.first_offset(), keep.first_offset);
    assert_eq!(read_from(&s, 0), (keep.first_offset..40).collect::<Vec<_>>());
}

/// `last` is the first offset of the newest chunk: what was appended since
/// the batch before.
#[test]
fn the_last_chunk_starts_after_the_last_batch() {
    let dir = tempfile::tempdir().unwrap();
    let (mut s, _) = StreamStore::open(dir.path(), cfg(), value_of).unwrap();
    fill(&mut s, 3);
    assert_eq!(s.last_chunk_offset(), 0);
    let b = s.take_sync_batch().unwrap().unwrap();
    b.run_blocking().unwrap();
    s.sync_completed(b.seq());
    fill(&mut s, 4);
    assert_eq!(s.last_chunk_offset(), 3);
}

/// Appends `n` messages like `fill`, each with the filter value `value` gives
/// its offset.
fn fill_with(s: &mut StreamStore, n: u64, value: impl Fn(u64) -> Option<&'static str>) {
    for _ in 0..n {
        let o = s.next_offset();
        let body = format!("m{o:04}");
        let m = MessageRef {
            properties: value(o).unwrap_or("").as_bytes(),
            ..msg(body.as_bytes(), 1000 + o)
        };
        assert_eq!(s.append(m).unwrap().offset, o);
    }
}

fn query(values: &[&str], match_unfiltered: bool) -> FilterQuery {
    FilterQuery {
        keys: values.iter().map(|v| crate::FilterKey::of(v.as_bytes())).collect(),
        match_unfiltered,
    }
}

/// A filtered reader's walk, as the broker's: past the segments the summaries
/// rule out, then message by message with the exact check. Returns the offsets
/// it matched and the segments whose records it read.
fn read_filtered(s: &StreamStore, values: &[&str], match_unfiltered: bool) -> (Vec<u64>, Vec<SegmentId>) {
    let q = query(values, match_unfiltered);
    let (mut got, mut read) = (Vec::new(), Vec::new());
    let mut next = s.first_offset();
    loop {
        next = s.skip_segments(next, &q).0;
        let Some(at) = s.seek_offset(next).unwrap() else { break };
        if read.last() != Some(&at.pos.segment) {
            read.push(at.pos.segment);
        }
        let v = value_of(s.read(at.pos).unwrap().properties);
        if v.map_or(match_unfiltered, |v| values.iter().any(|w| w.as_bytes() == v)) {
            got.push(at.offset);
        }
        next = at.offset + 1;
    }
    (got, read)
}

/// "rare" at two offsets, no value at multiples of 25, "common" elsewhere.
fn value(o: u64) -> Option<&'static str> {
    match o {
        7 | 52 => Some("rare"),
        o if o % 25 == 0 => None,
        _ => Some("common"),
    }
}

fn segment_of(s: &StreamStore, offset: u64) -> SegmentId {
    s.seek_offset(offset).unwrap().unwrap().pos.segment
}

/// A filtered reader reads only the segments whose summary may hold its
/// values (or unfiltered messages, when it asks for those) and gets every
/// message it asks for: after a clean restart (saved summaries), after
/// losing or damaging them (rebuilt) and after a crash.
#[test]
fn filtered_readers_skip_segments_and_miss_nothing_across_recovery() {
    let dir = tempfile::tempdir().unwrap();
    let (mut s, _) = StreamStore::open(dir.path(), cfg(), value_of).unwrap();
    fill_with(&mut s, 80, value);
    assert!(s.segments().len() >= 8, "{} segments", s.segments().len());
    let check = |s: &StreamStore, when: &str| {
        let (got, read) = read_filtered(s, &["rare"], false);
        assert_eq!(got, [7, 52], "{when}");
        assert_eq!(
            read,
            [segment_of(s, 7), segment_of(s, 52)],
            "{when}: only the segments holding 'rare'"
        );
        let (got, read) = read_filtered(s, &["rare"], true);
        assert_eq!(got, [0, 7, 25, 50, 52, 75], "{when}");
        assert!(read.len() < s.segments().len(), "{when}: {read:?}");
        let (got, read) = read_filtered(s, &["absent"], false);
        assert_eq!((got.len(), read.len()), (0, 0), "{when}");
        let (got, _) = read_filtered(s, &["common"], false);
        assert_eq!(got.len(), 80 - 2 - 4, "{when}");
    };
    check(&s, "written");
    s.close().unwrap();
    let (s, _) = StreamStore::open(dir.path(), cfg(), value_of).unwrap();
    check(&s, "reopened");
    let files = || std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().path());
    let summaries: Vec<_> = files().filter(|p| p.to_str().unwrap().contains("filter.")).collect();
    assert_eq!(summaries.len(), s.segments().len(), "one saved per segment");
    drop(s);
    for (i, p) in summaries.iter().enumerate() {
        if i % 2 == 0 {
            std::fs::remove_file(p).unwrap();
        } else {
            std::fs::write(p, [0u8; 100]).unwrap();
        }
    }
    let (mut s, _) = StreamStore::open(dir.path(), cfg(), value_of).unwrap();
    check(&s, "summaries lost or damaged");
    // A crash (no close) while "rare" is in the write segment only.
    fill_with(&mut s, 20, |o| Some(if o == 95 { "rare" } else { "common" }));
    drop(s);
    let (s, _) = StreamStore::open(dir.path(), cfg(), value_of).unwrap();
    assert_eq!(read_filtered(&s, &["rare"], false).0, [7, 52, 95]);
}

/// A summary left by a segment that went (retention, then a crash before the
/// summary followed) is removed at open: the segment that gets its id next
/// must not be judged by it.
#[test]
fn a_summary_without_its_segment_is_removed_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let (mut s, _) = StreamStore::open(dir.path(), cfg(), value_of).unwrap();
    fill_with(&mut s, 1, |_| Some("aaaa")); // as long as "rare"
    let only = s.segments()[0].clone();
    drop(s); // a crash: the segment's summary is not saved
    let next = SegmentId(only.segment.0 + 1);
    // An empty summary, valid for what the next segment will hold.
    let covers = |seg: &SegmentIndex| Covers {
        segment: next,
        count: seg.count,
        bytes: seg.bytes,
    };
    stream_filter::save(dir.path(), &SegmentFilter::default(), covers(&only)).unwrap();
    let (mut s, _) = StreamStore::open(dir.path(), cfg(), value_of).unwrap();
    fill_with(&mut s, 1, |_| Some("rare"));
    assert_eq!(s.segments()[1].segment, next);
    assert_eq!((s.segments()[1].count, s.segments()[1].bytes), (only.count, only.bytes));
    drop(s);
    let (s, _) = StreamStore::open(dir.path(), cfg(), value_of).unwrap();
    assert_eq!(read_filtered(&s, &["rare"], false).0, [1]);
}
