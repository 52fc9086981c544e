//! What a stream ([`crate::stream::StreamStore`]) asks of a [`QueueStore`]
//! beyond a queue's operations: walking records in order without taking them
//! (many readers, each its own place), reading a record's timestamp without
//! its CRC check (seeks), and dropping the oldest segment whole (retention).
//!
//! A stream never takes, acks or requeues: every record stays "ready" to the
//! queue store until its segment goes by [`QueueStore::drop_oldest_segment`].
//!
//! (These call `segment_map`, not `segment_data`: two more callers of the
//! latter and the compiler stopped inlining it into `read`, 14 instructions a
//! classic message, benches/callgrind.sh.)

use std::io;
use std::ops::Bound::{Excluded, Unbounded};

use super::{record_at, remove_if_exists, QueueStore};
use crate::record::{RECORD_HEADER_BYTES, SEGMENT_HEADER_BYTES};
use crate::segment::ack_path;
use crate::{SegmentId, SegmentPosition, StoreError};

impl QueueStore {
    /// The live segments, oldest first.
    pub fn segment_ids(&self) -> impl Iterator<Item = SegmentId> + '_ {
        self.segments.keys().copied()
    }

    /// The first record of segment `id` at or after `offset` (skipping a hole);
    /// None past its end (or when the segment is gone).
    pub fn record_from(&self, id: SegmentId, offset: u32) -> Result<Option<SegmentPosition>, StoreError> {
        let Some(meta) = self.segments.get(&id) else {
            return Ok(None);
        };
        let offset = meta.skip_hole(offset.max(SEGMENT_HEADER_BYTES));
        if offset >= meta.end {
            return Ok(None);
        }
        record_at(id, offset, meta.end, self.segment_map(id)?.0).map(Some)
    }

    /// The record after `pos` in append order: in its segment, else the first
    /// of the next segment. None when `pos` is the newest record (or its
    /// segment is gone: the caller seeks again).
    pub fn record_after(&self, pos: SegmentPosition) -> Result<Option<SegmentPosition>, StoreError> {
        if !self.segments.contains_key(&pos.segment) {
            return Ok(None);
        }
        if let Some(next) = self.record_from(pos.segment, pos.offset + pos.size)? {
            return Ok(Some(next));
        }
        for (&id, _) in self.segments.range((Excluded(pos.segment), Unbounded)) {
            if let Some(first) = self.record_from(id, SEGMENT_HEADER_BYTES)? {
                return Ok(Some(first));
            }
        }
        Ok(None)
    }

    /// The publish time of the record at `pos`, from its header alone (no CRC
    /// check: seeks read many headers and deliver none of them).
    pub fn timestamp_at(&self, pos: SegmentPosition) -> Result<u64, StoreError> {
        let data = self.segment_map(pos.segment)?.0;
        let start = pos.offset as usize + 8;
        let b = data.get(start..start + 8).ok_or(StoreError::Corrupt {
            pos,
            reason: crate::record::RecordError::Truncated,
        })?;
        Ok(u64::from_le_bytes(b.try_into().expect("8 bytes")))
    }

    /// Segments mapped for reading now (the write segment not counted).
    pub fn mapped_segment_count(&self) -> usize {
        self.segments.values().filter(|m| m.map.get().is_some()).count()
    }

    /// Drops the read mapping of segment `id` (not the one being written):
    /// its pages leave this process's RSS; a send still holding a
    /// [`crate::SharedBytes`] of it keeps that mapping alive until done.
    pub fn release_map(&mut self, id: SegmentId) {
        if self.writer.as_ref().is_some_and(|w| w.id() == id) {
            return;
        }
        if let Some(meta) = self.segments.get_mut(&id) {
            meta.map.take();
        }
    }

    /// Removes the oldest segment with its records, unless it is the one being
    /// written; returns it. The stream's retention: whole segments, never a
    /// record at a time. The file goes the way of a fully acked segment's (kept
    /// as a spare for reuse, or deleted).
    pub fn drop_oldest_segment(&mut self) -> io::Result<Option<SegmentId>> {
        let Some((&id, _)) = self.segments.first_key_value() else {
            return Ok(None);
        };
        if self.writer.as_ref().is_some_and(|w| w.id() == id) {
            return Ok(None);
        }
        let meta = self.segments.remove(&id).expect("first key");
        let ready = u64::from(meta.msg_count - meta.done_count);
        let holes: u32 = meta.holes.iter().map(|h| h.end - h.start).sum();
        let bytes = u64::from(meta.end.saturating_sub(SEGMENT_HEADER_BYTES + holes));
        self.counts.ready = self.counts.ready.saturating_sub(ready);
        self.counts.ready_bytes = self.counts.ready_bytes.saturating_sub(bytes);
        self.dirty_acks.remove(&id);
        let (end, lease) = (meta.end, meta.lease);
        drop(meta.map);
        self.retire_segment(id, end, lease, None)?;
        remove_if_exists(&ack_path(&self.dir, id))?;
        Ok(Some(id))
    }
}

const _: () = assert!(
    RECORD_HEADER_BYTES >= 16,
    "timestamp_at reads bytes 8..16 of the header"
);
