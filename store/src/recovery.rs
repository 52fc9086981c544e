//! Rebuilding a queue from its segment and ack files on open.
//!
//! Per segment: verify every record (length, header, CRC32C) from the start; the first
//! record that fails ends the segment's data; the bytes from there are cut off the file
//! and reported. A zero length word followed only by zeros is the preallocated tail, the
//! normal end of data, and not damage; in a recycled file (version 3) a zero length word
//! ends the data whatever follows (the stale tail of its previous life, see record.rs). Ack files: a torn trailing partial entry is cut
//! off; offsets that do not name a valid record are ignored (they pointed into a torn
//! tail, or the ack file was damaged).
//!
//! Rebuilding the ready set without O(messages) memory: let P be the last acked record
//! of the queue (by position). Every record after P is unacked, so the cursor starts
//! right after P and needs no skip list. The unacked records before P are the messages
//! that were in flight or requeued at the crash (at run time nothing ready lies before
//! an acked record except requeued ones), so they go to the requeued set, which is
//! O(unacked + requeued) as at run time. Segments are visited newest first so P is
//! known before older segments are seen. Fully acked segments are deleted.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, OpenOptions};
use std::io;
use std::path::Path;

use crate::ackfile;
use crate::queue::{Cursor, SegmentMeta};
use crate::record::{self, CrcSeed, RecordError, RECORD_HEADER_BYTES, SEGMENT_FORMAT_RECYCLED, SEGMENT_HEADER_BYTES};
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
    /// Segments where something was dropped or ignored, oldest first.
    pub damaged: Vec<SegmentDamage>,
}

impl RecoveryReport {
    /// Records dropped in all segments.
    pub fn records_dropped(&self) -> u64 {
        self.damaged.iter().map(|d| d.records_dropped).sum()
    }

    /// Bytes dropped in all segments.
    pub fn bytes_dropped(&self) -> u64 {
        self.damaged.iter().map(|d| d.bytes_dropped).sum()
    }
}

/// Damage found in one segment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SegmentDamage {
    /// Which segment.
    pub segment: SegmentId,
    /// Records cut off (best effort: frames counted by following their length words
    /// from the first bad one; at least 1 when any non-zero byte was dropped).
    pub records_dropped: u64,
    /// Non-zero bytes cut off the end of the data.
    pub bytes_dropped: u64,
    /// The segment header was not ours; the file was renamed to `msgs.N.corrupt`.
    pub header_corrupt: bool,
    /// Bytes of a torn trailing ack entry.
    pub ack_torn_bytes: u64,
    /// Ack entries that pointed at no valid record.
    pub acks_invalid: u64,
}

impl SegmentDamage {
    fn is_damage(&self) -> bool {
        self.records_dropped + self.bytes_dropped + self.ack_torn_bytes + self.acks_invalid > 0 || self.header_corrupt
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

struct SegmentScan {
    /// (offset, size) of each valid record.
    records: Vec<(u32, u32)>,
    /// Offsets of valid records the caller's `keep` filter rejected.
    discarded: Vec<u32>,
    end: u32,
}

/// Decides at recovery which valid records stay. The broker uses it to drop
/// non-persistent messages of durable queues at restart, as RabbitMQ does; the
/// decision is written to the ack files so every later recovery agrees.
pub type KeepFilter<'a> = &'a dyn Fn(&crate::MessageView<'_>) -> bool;

/// Counts frames in a damaged tail by following length words (best effort).
fn count_frames(tail: &[u8]) -> u64 {
    let mut n = 0u64;
    let mut at = 0usize;
    while at < tail.len() {
        n += 1;
        let len = record::peek_len(&tail[at..]) as usize;
        if len < RECORD_HEADER_BYTES as usize || tail[at..].iter().all(|&b| b == 0) {
            break;
        }
        at += len;
    }
    n.max(1)
}

/// Verifies the records of one segment and cuts a damaged tail off the file.
fn scan_segment(
    dir: &Path,
    id: SegmentId,
    damage: &mut SegmentDamage,
    keep: KeepFilter<'_>,
) -> io::Result<Option<SegmentScan>> {
    let path = segment_path(dir, id);
    let file = OpenOptions::new().read(true).write(true).open(&path)?;
    let file_len = file.metadata()?.len();
    let map = ReadMap::of_file(&file)?;
    let data = map.data();
    let Some(version) = record::check_segment_header(data) else {
        let nonzero = data.iter().filter(|&&b| b != 0).count() as u64;
        drop(map);
        if nonzero == 0 {
            // Created but the header never reached the disk: nothing was in it.
            fs::remove_file(&path)?;
        } else {
            tracing::warn!(path = %path.display(), bytes = file_len, "segment header is not ours; moving it aside");
            let mut aside = path.into_os_string();
            aside.push(".corrupt");
            fs::rename(segment_path(dir, id), aside)?;
            damage.header_corrupt = true;
            damage.bytes_dropped = file_len;
        }
        return Ok(None);
    };
    let seed = CrcSeed::for_version(version, id);
    let limit = data.len().min(MAX_SEGMENT_BYTES as usize);
    let mut records = Vec::new();
    let mut discarded = Vec::new();
    let mut at = SEGMENT_HEADER_BYTES as usize;
    let stop = loop {
        match record::decode(&data[at..limit], seed) {
            Ok((view, len)) => {
                if !keep(&view) {
                    discarded.push(at as u32);
                }
                records.push((at as u32, len));
                at += len as usize;
            }
            Err(e) => break e,
        }
    };
    let tail = if version == SEGMENT_FORMAT_RECYCLED && stop == RecordError::EndOfData {
        // The writer's end mark: what follows is zeros or stale bytes of a recycled
        // file's previous life (see record.rs), never data of this one.
        &[][..]
    } else {
        &data[at..]
    };
    let tail_used = tail.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
    if tail_used > 0 {
        damage.bytes_dropped = tail_used as u64;
        damage.records_dropped = count_frames(&tail[..tail_used]);
        tracing::warn!(
            path = %path.display(), offset = at, reason = %stop, records = damage.records_dropped,
            bytes = damage.bytes_dropped, "torn or corrupt tail in segment; dropping it"
        );
    } else {
        debug_assert!(matches!(stop, RecordError::EndOfData | RecordError::Truncated));
    }
    drop(map); // (I2) in segment.rs: unmap before shrinking
    if file_len > at as u64 {
        file.set_len(at as u64)?;
    }
    Ok(Some(SegmentScan {
        records,
        discarded,
        end: at as u32,
    }))
}

fn remove_if_exists(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Lists segment ids (sorted) and deletes ack files without a segment.
fn list_segments(dir: &Path) -> io::Result<Vec<SegmentId>> {
    let mut segs = BTreeSet::new();
    let mut acks = Vec::new();
    for entry in fs::read_dir(dir)? {
        let name = entry?.file_name();
        let Some(name) = name.to_str() else { continue };
        if let Some(id) = parse_file_name(name, "msgs") {
            segs.insert(id);
        } else if let Some(id) = parse_file_name(name, "acks") {
            acks.push(id);
        }
    }
    for id in acks {
        if !segs.contains(&id) {
            remove_if_exists(&ack_path(dir, id))?;
        }
    }
    Ok(segs.into_iter().collect())
}

/// Rebuilds the queue in `dir` (see the module docs for how).
pub(crate) fn recover(dir: &Path, keep: KeepFilter<'_>) -> io::Result<(Recovered, RecoveryReport)> {
    let ids = list_segments(dir)?;
    let next_segment = SegmentId(ids.last().map_or(1, |id| id.0 + 1));
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
        let scan = scan_segment(dir, id, &mut damage, keep)?;
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
        let meta = SegmentMeta::recovered(scan.end, scan.records.len() as u32, acked.len() as u32, passed as u32);
        out.segments.insert(id, meta);
    }
    damaged.reverse();
    report.damaged = damaged;
    report.messages_recovered = out.ready;
    report.bytes_recovered = out.ready_bytes;
    Ok((out, report))
}
