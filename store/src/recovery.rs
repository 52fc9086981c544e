//! Rebuilding a queue from its segment and ack files on open.
//!
//! Per segment: verify every record (length, header, CRC32C) from the start. A record
//! that fails does not end the data: recovery looks for the next intact record
//! (resync.rs) and goes on from there, so damage loses only the records it hit (issue
//! 15, defect 5: one bad record lost every intact one after it). What lies between is
//! a hole: its bytes are copied aside (aside.rs) and left in the file, and the queue
//! skips them ([`Hole`]); every open finds the same holes, and a copy already made
//! is not made again. Unreadable bytes with nothing intact after them are cut off
//! the file, after the copy: corruption (WARN), except in the newest segment of a
//! file not yet cut to its data, where they are the write a crash cut short (INFO;
//! see [`whole_records_to_eof`]). A zero length word followed only by zeros is the
//! preallocated tail, the normal end of data; in a recycled file (version 3) a zero
//! length word ends the data whatever follows (the stale tail of its previous life,
//! see record.rs). Ack files: a torn trailing partial entry is cut off; offsets that
//! do not name a valid record are ignored (they pointed into a torn tail or a hole,
//! or the ack file was damaged).
//!
//! Rebuilding the ready set without O(messages) memory: let P be the last acked record
//! of the queue (by position). Every record after P is unacked, so the cursor starts
//! right after P and needs no skip list. The unacked records before P are the messages
//! that were in flight or requeued at the crash (at run time nothing ready lies before
//! an acked record except requeued ones), so they go to the requeued set, which is
//! O(unacked + requeued) as at run time. Segments are visited newest first so P is
//! known before older segments are seen. Fully acked segments are deleted.
//!
//! Segment ids: a new segment's id is above every segment and spare file in the
//! folder, so a recycled file never gets the id (and so the CRC seed) of one of its
//! earlier lives, and its stale records can never pass for this life's records when
//! the search for intact records runs past a torn write into them.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};

use crate::ackfile;
use crate::aside;
use crate::queue::{Cursor, Hole, SegmentMeta};
use crate::record::{self, CrcSeed, RecordError, SEGMENT_FORMAT_RECYCLED, SEGMENT_HEADER_BYTES};
use crate::resync::{self, Resync};
use crate::segment::{ack_path, parse_file_name, segment_path, ReadMap};
use crate::{SegmentId, SegmentPosition, MAX_SEGMENT_BYTES};

/// What open found, for logs and the management API.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// Messages that are ready after open (never acked before the crash or close).
    pub messages_recovered: u64,
    /// Their on-disk bytes.
    pub bytes_recovered: u64,
    /// Segment files read.
    pub segments_scanned: u32,
    /// Segments deleted because every record in them was acked (or none was valid).
    pub segments_deleted: u32,
    /// Valid records dropped because the caller's keep filter rejected them.
    pub records_filtered: u64,
    /// Segments where something was dropped, skipped or ignored, oldest first.
    pub damaged: Vec<SegmentDamage>,
}

impl RecoveryReport {
    /// Records that could not be read, in all segments (torn tails not included).
    pub fn records_dropped(&self) -> u64 {
        self.damaged.iter().map(|d| d.records_dropped).sum()
    }

    /// Unreadable bytes in all segments (torn tails not included).
    pub fn bytes_dropped(&self) -> u64 {
        self.damaged.iter().map(|d| d.bytes_dropped).sum()
    }

    /// Intact records kept after damage in all segments.
    pub fn records_kept_after_damage(&self) -> u64 {
        self.damaged.iter().map(|d| d.records_kept_after_damage).sum()
    }

    /// Bytes of torn tails cut off in all segments.
    pub fn torn_bytes(&self) -> u64 {
        self.damaged.iter().map(|d| d.torn_bytes).sum()
    }

    /// Whether this open found data that had been written whole damaged (a hole, a
    /// corrupt tail or header) and set it aside: worth a warning, unlike what a
    /// crash leaves (a torn tail, a torn ack entry) or a hole an earlier open
    /// already reported.
    pub fn corrupt(&self) -> bool {
        self.damaged
            .iter()
            .any(|d| d.set_aside.len() > d.set_aside_earlier as usize)
    }
}

/// Damage found in one segment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SegmentDamage {
    /// Which segment.
    pub segment: SegmentId,
    /// Valid records in the segment, all kept (before and after any damage).
    pub records_kept: u64,
    /// Of those, the ones after the first unreadable byte: what cutting the segment
    /// at its first bad record used to lose.
    pub records_kept_after_damage: u64,
    /// Unreadable spans with intact records after them (skipped, left in the file).
    pub holes: u32,
    /// Records that could not be read in holes and a corrupt tail (best effort: see
    /// `resync::count_records`; at least 1 per span), or after a header that is not
    /// ours.
    pub records_dropped: u64,
    /// Unreadable bytes in holes and a corrupt tail (up to its last non-zero byte),
    /// or the whole file when the header is not ours.
    pub bytes_dropped: u64,
    /// Files holding a copy of those bytes (`msgs.N.corrupt.OFFSET`), or the whole
    /// segment moved aside (`msgs.N.corrupt`).
    pub set_aside: Vec<PathBuf>,
    /// How many of `set_aside` an earlier open had already written (a hole stays in
    /// the segment file, so every open finds it again).
    pub set_aside_earlier: u32,
    /// The search for intact records stopped at its work limit (resync.rs): the
    /// rest of the segment counted as unreadable.
    pub search_gave_up: bool,
    /// Bytes of a torn tail (up to its last non-zero byte): the newest segment ended
    /// in a write that a crash cut short, never confirmed. Cut off, not set aside,
    /// and not counted in `records_dropped` / `bytes_dropped`.
    pub torn_bytes: u64,
    /// Records in that torn tail (best effort, at least 1 when there is one).
    pub torn_records: u64,
    /// The segment header was not ours; the file was moved aside.
    pub header_corrupt: bool,
    /// Bytes of a torn trailing ack entry.
    pub ack_torn_bytes: u64,
    /// Ack entries that pointed at no valid record.
    pub acks_invalid: u64,
}

impl SegmentDamage {
    fn is_damage(&self) -> bool {
        self.records_dropped + self.bytes_dropped + self.torn_bytes + self.ack_torn_bytes + self.acks_invalid > 0
            || self.header_corrupt
    }
}

/// The rebuilt state of a queue, handed to `QueueStore`.
pub(crate) struct Recovered {
    pub segments: BTreeMap<SegmentId, SegmentMeta>,
    pub requeued: BTreeSet<SegmentPosition>,
    pub cursor: Cursor,
    pub next_segment: SegmentId,
    pub ready: u64,
    pub ready_bytes: u64,
}

/// What reading one segment's records found.
#[derive(Default)]
struct SegmentScan {
    /// (offset, size) of each valid record.
    records: Vec<(u32, u32)>,
    /// Offsets of valid records the caller's `keep` filter rejected.
    discarded: Vec<u32>,
    /// Unreadable spans with intact records after them, and why the first byte of
    /// each failed.
    holes: Vec<(Hole, RecordError)>,
    /// End of the last valid record: where the data ends.
    end: u32,
    /// Bytes from `end` on are unreadable (not only zeros), and why.
    bad_tail: Option<RecordError>,
    /// The search for intact records gave up (resync.rs).
    gave_up: bool,
}

/// Decides at recovery which valid records stay. The broker uses it to drop
/// non-persistent messages of durable queues at restart, as RabbitMQ does; the
/// decision is written to the ack files so every later recovery agrees.
pub type KeepFilter<'a> = &'a dyn Fn(&crate::MessageView<'_>) -> bool;

/// Reads the records of a segment's bytes (`data`, from its header on), skipping
/// past damage to the next intact record.
fn read_records(data: &[u8], version: u32, seed: CrcSeed, keep: KeepFilter<'_>) -> SegmentScan {
    let mut scan = SegmentScan::default();
    let mut resync = Resync::new(data, seed);
    let used = resync.used();
    let mut at = SEGMENT_HEADER_BYTES as usize;
    loop {
        match record::decode(&data[at..], seed) {
            Ok((view, len)) => {
                if !keep(&view) {
                    scan.discarded.push(at as u32);
                }
                scan.records.push((at as u32, len));
                at += len as usize;
            }
            // The writer's end mark: what follows in a recycled file is zeros or
            // stale bytes of its previous life (see record.rs), never data of this one.
            Err(RecordError::EndOfData) if version == SEGMENT_FORMAT_RECYCLED => break,
            // Only zeros from here: the preallocated tail, or the end of the file.
            Err(_) if at >= used => break,
            Err(reason) => match resync.next_intact(at + 1) {
                Some(next) => {
                    let hole = Hole {
                        start: at as u32,
                        end: next as u32,
                    };
                    scan.holes.push((hole, reason));
                    at = next;
                }
                None => {
                    scan.bad_tail = Some(reason);
                    break;
                }
            },
        }
    }
    scan.end = at as u32;
    scan.gave_up = resync.gave_up();
    scan
}

/// Whether `tail` (from the end of a segment's last valid record to the end of the
/// file) holds records written whole: their length words lead exactly to the end of
/// the file. If not, in the newest segment, the unreadable end is a write a crash
/// cut short, rather than records damaged after they were written.
///
/// Every closed segment, and the newest one at a clean shutdown, is cut to its
/// data (`WriteSegment::finish`), and a clean shutdown syncs it first: after it,
/// records run exactly to the end of the file. Only a segment that was being written
/// at a crash still has its preallocated space after the data (at least the end
/// mark). So bytes whose length words lead exactly to the end of the file were
/// records written whole: damage, reported and set aside. Anything else there (a
/// record running past the data, zeros or stale bytes after it, a header too broken
/// to follow) is taken as torn: it was never confirmed, since a confirm waits for
/// the fsync of every byte before it. A torn write is not copied aside: crashes are
/// routine, a `.corrupt` file after each would teach operators to ignore them, and
/// in a recycled file what follows is megabytes of an earlier life's records.
/// Misread as torn: the newest segment's last record with its length word or header
/// damaged after a clean shutdown (reported at INFO, not set aside).
fn whole_records_to_eof(tail: &[u8]) -> bool {
    let mut steps = u32::MAX;
    let (n, stop) = resync::follow_frames(tail, &mut steps);
    n > 0 && stop == tail.len()
}

/// Verifies the records of one segment; sets unreadable bytes aside, then cuts an
/// unreadable tail off the file. `newest`: the segment last written (where a
/// crash can leave a torn tail).
fn scan_segment(
    dir: &Path,
    id: SegmentId,
    newest: bool,
    damage: &mut SegmentDamage,
    keep: KeepFilter<'_>,
) -> io::Result<Option<SegmentScan>> {
    let path = segment_path(dir, id);
    let file = OpenOptions::new().read(true).write(true).open(&path)?;
    let file_len = file.metadata()?.len();
    let map = ReadMap::of_file(&file)?;
    let data = map.data();
    let Some(version) = record::check_segment_header(data) else {
        if resync::used_len(data) == 0 {
            drop(map);
            // Created but the header never reached the disk: nothing was in it.
            crate::changes::remove_file(&path)?;
            return Ok(None);
        }
        damage.records_dropped = resync::count_records(data.get(SEGMENT_HEADER_BYTES as usize..).unwrap_or(&[]));
        drop(map);
        let aside = aside::move_segment(dir, id)?;
        tracing::warn!(
            path = %path.display(), bytes = file_len, records = damage.records_dropped,
            moved_to = %aside.display(), "segment header is not ours; moved the file aside"
        );
        damage.header_corrupt = true;
        damage.bytes_dropped = file_len;
        damage.set_aside.push(aside);
        return Ok(None);
    };
    let data = &data[..data.len().min(MAX_SEGMENT_BYTES as usize)];
    let scan = read_records(data, version, CrcSeed::for_version(version, id), keep);
    let end = scan.end as usize;
    let mut spans: Vec<(u32, &[u8])> = scan
        .holes
        .iter()
        .map(|(h, _)| (h.start, &data[h.start as usize..h.end as usize]))
        .collect();
    if scan.bad_tail.is_some() {
        let whole = whole_records_to_eof(&data[end..]);
        // Records whole to the end of the file are set aside whole, zero bytes at
        // their end too; otherwise up to the last non-zero byte.
        let tail = &data[end..if whole { data.len() } else { resync::used_len(data) }];
        if newest && !whole {
            damage.torn_bytes = tail.len() as u64;
            damage.torn_records = resync::count_records(tail);
            tracing::info!(
                path = %path.display(), offset = end, bytes = damage.torn_bytes, records = damage.torn_records,
                "the newest segment ends in a write a crash cut short (never confirmed); cutting it off"
            );
        } else {
            spans.push((scan.end, tail));
        }
    }
    set_aside(dir, id, &spans, damage)?;
    damage.holes = scan.holes.len() as u32;
    damage.search_gave_up = scan.gave_up;
    damage.records_kept = scan.records.len() as u64;
    if let Some(&(first, _)) = spans.first() {
        damage.records_kept_after_damage = scan.records.iter().filter(|r| r.0 > first).count() as u64;
        let reason = scan.holes.first().map(|h| h.1).or(scan.bad_tail);
        log_damage(&path, first, reason, spans.len() > scan.holes.len(), damage);
    }
    drop(map); // (I2) in segment.rs: unmap before shrinking
    if file_len > end as u64 {
        crate::changes::barrier();
        file.set_len(end as u64)?;
        crate::changes::set_len(&path, end as u64);
    }
    Ok(Some(scan))
}

/// Copies each unreadable span (offset, bytes) of segment `id` aside and counts it.
fn set_aside(dir: &Path, id: SegmentId, spans: &[(u32, &[u8])], damage: &mut SegmentDamage) -> io::Result<()> {
    for &(offset, bytes) in spans {
        let copy = aside::copy_span(dir, id, offset, bytes)?;
        damage.set_aside_earlier += u32::from(copy.earlier);
        damage.set_aside.push(copy.path);
        damage.records_dropped += resync::count_records(bytes);
        damage.bytes_dropped += bytes.len() as u64;
    }
    Ok(())
}

/// One line per damaged segment with the true counts: WARN the first time, INFO
/// at later opens (a hole stays in the file, and the copy is there already).
fn log_damage(path: &Path, first: u32, reason: Option<RecordError>, tail_cut: bool, d: &SegmentDamage) {
    let reason = reason.map(|r| r.to_string()).unwrap_or_default();
    if (d.set_aside_earlier as usize) < d.set_aside.len() {
        tracing::warn!(
            path = %path.display(), first_bad_offset = first, reason, records_kept = d.records_kept,
            records_kept_after_damage = d.records_kept_after_damage, records_unreadable = d.records_dropped,
            bytes_unreadable = d.bytes_dropped, holes = d.holes, tail_cut, search_gave_up = d.search_gave_up,
            set_aside = ?d.set_aside,
            "damaged records in segment; kept the intact records after them and copied the unreadable bytes aside"
        );
    } else {
        tracing::info!(
            path = %path.display(), first_bad_offset = first, records_kept = d.records_kept,
            records_kept_after_damage = d.records_kept_after_damage, records_unreadable = d.records_dropped,
            bytes_unreadable = d.bytes_dropped, set_aside = ?d.set_aside,
            "segment has damaged records set aside at an earlier open; skipping them"
        );
    }
}

fn remove_if_exists(path: &Path) -> io::Result<()> {
    match crate::changes::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Lists segment ids (sorted) and deletes ack files without a segment; also returns
/// the id the next new segment gets: above every segment and spare file (see the
/// module docs).
fn list_segments(dir: &Path) -> io::Result<(Vec<SegmentId>, SegmentId)> {
    let mut segs = BTreeSet::new();
    let mut acks = Vec::new();
    let mut highest = 0;
    for entry in fs::read_dir(dir)? {
        let name = entry?.file_name();
        let Some(name) = name.to_str() else { continue };
        if let Some(id) = parse_file_name(name, "msgs") {
            segs.insert(id);
            highest = highest.max(id.0);
        } else if let Some(id) = parse_file_name(name, "acks") {
            acks.push(id);
        } else if let Some(id) = parse_file_name(name, "spare") {
            highest = highest.max(id.0);
        }
    }
    for id in acks {
        if !segs.contains(&id) {
            remove_if_exists(&ack_path(dir, id))?;
        }
    }
    Ok((segs.into_iter().collect(), SegmentId(highest + 1)))
}

/// Rebuilds the queue in `dir` (see the module docs for how).
pub(crate) fn recover(dir: &Path, keep: KeepFilter<'_>) -> io::Result<(Recovered, RecoveryReport)> {
    let (ids, next_segment) = list_segments(dir)?;
    let mut report = RecoveryReport::default();
    let mut out = Recovered {
        segments: BTreeMap::new(),
        requeued: BTreeSet::new(),
        cursor: Cursor {
            segment: next_segment,
            offset: SEGMENT_HEADER_BYTES,
        },
        next_segment,
        ready: 0,
        ready_bytes: 0,
    };
    let mut found_ack = false;
    let mut damaged = Vec::new();
    for &id in ids.iter().rev() {
        report.segments_scanned += 1;
        let mut damage = SegmentDamage {
            segment: id,
            ..Default::default()
        };
        let newest = Some(&id) == ids.last();
        let scan = scan_segment(dir, id, newest, &mut damage, keep)?;
        let acks = ackfile::load(dir, id)?;
        damage.ack_torn_bytes = acks.torn_bytes;
        let records = scan.as_ref().map_or(&[][..], |s| &s.records[..]);
        let mut acked: Vec<u32> = acks
            .offsets
            .iter()
            .copied()
            .filter(|o| records.binary_search_by_key(o, |r| r.0).is_ok())
            .collect();
        damage.acks_invalid = (acks.offsets.len() - acked.len()) as u64;
        if let Some(scan) = &scan {
            acked.sort_unstable();
            let newly: Vec<u32> = scan
                .discarded
                .iter()
                .copied()
                .filter(|o| acked.binary_search(o).is_err())
                .collect();
            if !newly.is_empty() {
                let (mut f, _) = ackfile::AckFile::open(dir, id)?;
                for &o in &newly {
                    f.push(o)?;
                }
                f.flush()?;
                report.records_filtered += newly.len() as u64;
                acked.extend(newly);
                acked.sort_unstable();
            }
        }
        if damage.acks_invalid > 0 {
            tracing::warn!(
                segment = id.0,
                ignored = damage.acks_invalid,
                "ack entries point at no valid record"
            );
        }
        if damage.is_damage() {
            damaged.push(damage);
        }
        let Some(scan) = scan.filter(|s| s.records.len() > acked.len()) else {
            // Every record acked (or none valid): the segment has nothing left.
            remove_if_exists(&segment_path(dir, id))?;
            remove_if_exists(&ack_path(dir, id))?;
            report.segments_deleted += 1;
            found_ack |= !acked.is_empty();
            continue;
        };
        let is_acked = |off: u32| acked.binary_search(&off).is_ok();
        let mut passed = scan.records.len();
        if found_ack {
            for &(off, size) in &scan.records {
                if !is_acked(off) {
                    out.requeued.insert(SegmentPosition {
                        segment: id,
                        offset: off,
                        size,
                    });
                }
            }
        } else if let Some(&last_ack) = acked.last() {
            found_ack = true;
            passed = scan.records.partition_point(|r| r.0 <= last_ack);
            for &(off, size) in &scan.records[..passed] {
                if !is_acked(off) {
                    out.requeued.insert(SegmentPosition {
                        segment: id,
                        offset: off,
                        size,
                    });
                }
            }
            if let Some(&(off, _)) = scan.records.get(passed) {
                out.cursor = Cursor {
                    segment: id,
                    offset: off,
                };
            }
        } else {
            passed = 0;
            out.cursor = Cursor {
                segment: id,
                offset: scan.records[0].0,
            };
        }
        for &(off, size) in &scan.records {
            if !is_acked(off) {
                out.ready += 1;
                out.ready_bytes += u64::from(size);
            }
        }
        let holes = scan.holes.iter().map(|h| h.0).collect();
        let meta = SegmentMeta::recovered(
            scan.end,
            scan.records.len() as u32,
            acked.len() as u32,
            passed as u32,
            holes,
        );
        out.segments.insert(id, meta);
    }
    damaged.reverse();
    report.damaged = damaged;
    report.messages_recovered = out.ready;
    report.bytes_recovered = out.ready_bytes;
    Ok((out, report))
}
