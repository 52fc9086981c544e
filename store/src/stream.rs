//! [`StreamStore`]: a stream queue's append-only log (issue 20), on the same
//! segment files, records and recovery as a queue's ([`QueueStore`]).
//!
//! Every message gets an offset, 0-based and never reused: the first offset of
//! each segment plus the record's place in it. Nothing is taken or acked; many
//! readers each keep their own place (a [`StreamPosition`]), so a reader costs
//! a cursor, never a copy. Messages leave only by retention, a whole segment
//! at a time, oldest first, never the one being written
//! ([`StreamStore::retain`]).
//!
//! The index (one [`SegmentIndex`] per segment: first offset, count, first and
//! last publish time, bytes) is rebuilt at open from the records, which
//! recovery has checked anyway. What the records cannot say is where the
//! offsets start once retention removed the oldest segments: that is the
//! `stream.base` file (first live segment and its first offset), written (and
//! synced) before any segment is removed, so after a crash in between the
//! segments below it are removed again at open and the offsets stay.
//!
//! Seeks: by offset or time, a binary search over the index and a walk of the
//! record headers of one segment.
//!
//! Each index entry also summarizes the segment's filter values
//! ([`SegmentFilter`], `stream_filter`), so a filtered reader skips segments
//! that cannot hold what it asks for ([`StreamStore::skip_segments`]).

use std::collections::VecDeque;
use std::io;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::record::{MessageRef, MessageView, SEGMENT_HEADER_BYTES};
use crate::recovery::RecoveryReport;
use crate::segment::SharedBytes;
use crate::stream_filter::{self, Covers, FilterQuery, FilterValueOf, SegmentFilter};
use crate::sync::{AppendSeq, SyncBatch};
use crate::{QueueStore, SegmentId, SegmentPosition, StoreConfig, StoreError};

/// Where the offsets of a stream start: its oldest live segment.
const BASE_FILE: &str = "stream.base";

#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
struct Base {
    segment: u32,
    first_offset: u64,
}

/// What the stream knows of one segment without reading it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentIndex {
    pub segment: SegmentId,
    pub first_offset: u64,
    pub count: u64,
    /// Publish times (ms since the epoch) of its first and last records.
    pub first_ts_ms: u64,
    pub last_ts_ms: u64,
    /// Record bytes (headers included).
    pub bytes: u64,
    /// The filter values of its messages.
    pub filter: SegmentFilter,
}

/// A message of the stream: its offset and where it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamPosition {
    pub offset: u64,
    pub pos: SegmentPosition,
}

/// A stream's log. See the module docs.
#[derive(Debug)]
pub struct StreamStore {
    store: QueueStore,
    /// Oldest first; one entry per segment holding a record.
    index: VecDeque<SegmentIndex>,
    next_offset: u64,
    /// The offset of the first message appended since the last sync batch
    /// was taken: the start of the newest "chunk" (RabbitMQ's `last`).
    chunk_start: u64,
    chunk_open: bool,
    /// Server-side offset tracking (`stream_offsets`).
    tracked: crate::stream_offsets::TrackedOffsets,
    value_of: FilterValueOf,
}

impl StreamStore {
    /// Opens (creating if needed) the stream in `dir`, recovering its records
    /// and rebuilding its index; `value_of` reads a message's filter value.
    pub fn open(dir: &Path, cfg: StoreConfig, value_of: FilterValueOf) -> io::Result<(Self, RecoveryReport)> {
        let (store, report) = QueueStore::open(dir, cfg)?;
        let base: Option<Base> = crate::meta::read_json(&dir.join(BASE_FILE))?;
        let mut s = Self {
            store,
            index: VecDeque::new(),
            next_offset: 0,
            chunk_start: 0,
            chunk_open: false,
            tracked: crate::stream_offsets::TrackedOffsets::open(dir)?,
            value_of,
        };
        if let Some(base) = &base {
            // A crash between writing the base and removing the segments below it.
            while s.store.segment_ids().next().is_some_and(|id| id.0 < base.segment) {
                s.store.drop_oldest_segment()?;
            }
            s.next_offset = base.first_offset;
        }
        stream_filter::remove_orphans(dir, |id| s.store.has_segment(id))?;
        let ids: Vec<SegmentId> = s.store.segment_ids().collect();
        for id in ids {
            s.index_segment(id).map_err(io::Error::other)?;
            s.recover_filter(id).map_err(io::Error::other)?;
        }
        s.chunk_start = s.next_offset.saturating_sub(1);
        Ok((s, report))
    }

    /// Counts the records of a recovered segment into the index.
    fn index_segment(&mut self, id: SegmentId) -> Result<(), StoreError> {
        let mut at = self.store.record_from(id, SEGMENT_HEADER_BYTES)?;
        while let Some(pos) = at.filter(|p| p.segment == id) {
            let ts = self.store.timestamp_at(pos)?;
            self.note_appended(pos, ts);
            at = self.store.record_after(pos)?;
        }
        Ok(())
    }

    /// The filter summary of a recovered segment: its saved one when that
    /// covers exactly the records recovered, else rebuilt from them (and saved
    /// for the next open).
    fn recover_filter(&mut self, id: SegmentId) -> Result<(), StoreError> {
        let dir = self.store.dir();
        let Some(seg) = self.index.back_mut().filter(|s| s.segment == id) else {
            return Ok(()); // no record in it
        };
        let covers = Covers {
            segment: id,
            count: seg.count,
            bytes: seg.bytes,
        };
        if let Some(f) = stream_filter::load(dir, covers) {
            seg.filter = f;
            return Ok(());
        }
        let mut filter = SegmentFilter::default();
        let mut at = self.store.record_from(id, SEGMENT_HEADER_BYTES)?;
        while let Some(pos) = at.filter(|p| p.segment == id) {
            filter.add((self.value_of)(self.store.read(pos)?.properties));
            at = self.store.record_after(pos)?;
        }
        if let Err(e) = stream_filter::save(dir, &filter, covers) {
            tracing::warn!(dir = %dir.display(), error = %e, "cannot save a stream segment's filter summary");
        }
        seg.filter = filter;
        Ok(())
    }

    /// The writer left the newest indexed segment: it is sealed, its summary
    /// final. A failed save costs a rebuild at the next open.
    fn save_sealed_filter(&self) {
        let Some(seg) = self.index.back() else { return };
        let covers = Covers {
            segment: seg.segment,
            count: seg.count,
            bytes: seg.bytes,
        };
        if let Err(e) = stream_filter::save(self.store.dir(), &seg.filter, covers) {
            tracing::warn!(dir = %self.store.dir().display(), error = %e, "cannot save a stream segment's filter summary");
        }
    }

    fn note_appended(&mut self, pos: SegmentPosition, ts: u64) {
        let offset = self.next_offset;
        match self.index.back_mut() {
            Some(last) if last.segment == pos.segment => {
                last.count += 1;
                last.last_ts_ms = ts;
                last.bytes += u64::from(pos.size);
            }
            _ => self.index.push_back(SegmentIndex {
                segment: pos.segment,
                first_offset: offset,
                count: 1,
                first_ts_ms: ts,
                last_ts_ms: ts,
                bytes: u64::from(pos.size),
                filter: SegmentFilter::default(),
            }),
        }
        self.next_offset += 1;
    }

    /// Appends a message; returns its offset and position. Durable once a
    /// sync batch covering [`Self::append_seq`] completes.
    pub fn append(&mut self, msg: MessageRef<'_>) -> Result<StreamPosition, StoreError> {
        let pos = self.store.append(msg)?;
        if self.index.back().is_some_and(|last| last.segment != pos.segment) {
            self.save_sealed_filter();
        }
        if !self.chunk_open {
            self.chunk_open = true;
            self.chunk_start = self.next_offset;
        }
        let offset = self.next_offset;
        self.note_appended(pos, msg.timestamp_ms);
        let last = self.index.back_mut().expect("appended");
        last.filter.add((self.value_of)(msg.properties));
        Ok(StreamPosition { offset, pos })
    }

    /// Segments made from now on are `bytes` long; see
    /// [`QueueStore::set_segment_bytes`].
    pub fn set_segment_bytes(&mut self, bytes: u32) -> io::Result<()> {
        self.store.set_segment_bytes(bytes)
    }

    /// The oldest offset still in the stream (the next offset when empty).
    pub fn first_offset(&self) -> u64 {
        self.index.front().map_or(self.next_offset, |s| s.first_offset)
    }

    /// The offset the next append gets.
    pub fn next_offset(&self) -> u64 {
        self.next_offset
    }

    /// Messages in the stream.
    pub fn message_count(&self) -> u64 {
        self.next_offset - self.first_offset()
    }

    /// The first offset of the newest chunk: the messages appended since the
    /// group commit before the last one took its batch (RabbitMQ's `last`);
    /// after a restart, the newest message.
    pub fn last_chunk_offset(&self) -> u64 {
        self.chunk_start.max(self.first_offset())
    }

    /// The last offset consumer `tag` acked (server-side offset tracking).
    pub fn tracked_offset(&self, tag: &str) -> Option<u64> {
        self.tracked.get(tag)
    }

    /// Consumer `tag` acked `offset`.
    pub fn track(&mut self, tag: &str, offset: u64) -> io::Result<()> {
        self.tracked.set(tag, offset)
    }

    /// The index, oldest segment first.
    pub fn segments(&self) -> &VecDeque<SegmentIndex> {
        &self.index
    }

    /// The first message at or after `offset` (clamped to the oldest); None
    /// when there is none yet.
    pub fn seek_offset(&self, offset: u64) -> Result<Option<StreamPosition>, StoreError> {
        let offset = offset.max(self.first_offset());
        if offset >= self.next_offset {
            return Ok(None);
        }
        let i = self.index.partition_point(|s| s.first_offset + s.count <= offset);
        let seg = &self.index[i];
        let mut at = self.store.record_from(seg.segment, SEGMENT_HEADER_BYTES)?;
        for _ in seg.first_offset..offset {
            at = at.map(|p| self.store.record_after(p)).transpose()?.flatten();
        }
        Ok(at.map(|pos| StreamPosition { offset, pos }))
    }

    /// The first offset at or after `offset` in a segment whose summary may
    /// hold what `q` asks for (the next offset when none does), and how many
    /// segments were passed over unread to get there.
    pub fn skip_segments(&self, offset: u64, q: &FilterQuery) -> (u64, u64) {
        let mut i = self.index.partition_point(|s| s.first_offset + s.count <= offset);
        let mut at = offset;
        let mut skipped = 0;
        while let Some(seg) = self.index.get(i).filter(|s| !s.filter.may_match(q)) {
            at = seg.first_offset + seg.count;
            (i, skipped) = (i + 1, skipped + 1);
        }
        (at, skipped)
    }

    /// The offset of the first message published at or after `ts_ms` (the
    /// next offset when none is).
    pub fn offset_at_time(&self, ts_ms: u64) -> Result<u64, StoreError> {
        let i = self.index.partition_point(|s| s.last_ts_ms < ts_ms);
        let Some(seg) = self.index.get(i) else {
            return Ok(self.next_offset);
        };
        let mut at = self.store.record_from(seg.segment, SEGMENT_HEADER_BYTES)?;
        let mut offset = seg.first_offset;
        while let Some(pos) = at {
            if self.store.timestamp_at(pos)? >= ts_ms {
                return Ok(offset);
            }
            offset += 1;
            at = self.store.record_after(pos)?;
        }
        Ok(self.next_offset)
    }

    /// The message after `at`, the one a reader takes next; None when `at` is
    /// the newest. When retention removed `at`'s segment, the oldest message.
    pub fn after(&self, at: StreamPosition) -> Result<Option<StreamPosition>, StoreError> {
        if at.offset + 1 < self.first_offset() || !self.store.has_segment(at.pos.segment) {
            return self.seek_offset(at.offset + 1);
        }
        let next = self.store.record_after(at.pos)?;
        Ok(next.map(|pos| StreamPosition {
            offset: at.offset + 1,
            pos,
        }))
    }

    pub fn read(&self, pos: SegmentPosition) -> Result<MessageView<'_>, StoreError> {
        self.store.read(pos)
    }

    /// No reader is in `segment` any more: its mapping goes (mapped again
    /// when read). See [`QueueStore::release_map`].
    pub fn release_map(&mut self, segment: SegmentId) {
        self.store.release_map(segment);
    }

    /// Segments mapped for reading now.
    pub fn mapped_segment_count(&self) -> usize {
        self.store.mapped_segment_count()
    }

    pub fn read_shared(&self, pos: SegmentPosition) -> Result<(MessageView<'_>, SharedBytes), StoreError> {
        self.store.read_shared(pos)
    }

    /// Removes the oldest segments while the stream is over `max_bytes` or
    /// their newest message is older than `max_age_ms` before `now_ms`; never
    /// the segment being written. Returns the messages removed.
    pub fn retain(&mut self, max_bytes: Option<u64>, max_age_ms: Option<u64>, now_ms: u64) -> io::Result<u64> {
        let mut total: u64 = self.index.iter().map(|s| s.bytes).sum();
        let mut drop = 0;
        for s in self.index.iter().take(self.index.len().saturating_sub(1)) {
            let too_big = max_bytes.is_some_and(|m| total > m);
            let too_old = max_age_ms.is_some_and(|a| s.last_ts_ms.saturating_add(a) < now_ms);
            if !too_big && !too_old {
                break;
            }
            total -= s.bytes;
            drop += 1;
        }
        if drop == 0 {
            return Ok(0);
        }
        let keep = &self.index[drop];
        let base = Base {
            segment: keep.segment.0,
            first_offset: keep.first_offset,
        };
        crate::meta::write_json_atomic(&self.store.dir().join(BASE_FILE), &base)?;
        let mut removed = 0;
        for _ in 0..drop {
            let gone = self.index.pop_front().expect("counted above");
            // The summary first: a crash between leaves a segment without
            // one (rebuilt at open), not a summary without its segment.
            stream_filter::remove(self.store.dir(), gone.segment)?;
            let dropped = self.store.drop_oldest_segment()?;
            debug_assert_eq!(dropped, Some(gone.segment));
            removed += gone.count;
        }
        Ok(removed)
    }

    pub fn total_bytes(&self) -> u64 {
        self.store.total_bytes()
    }

    pub fn dir(&self) -> &Path {
        self.store.dir()
    }

    pub fn take_space_low(&mut self) -> bool {
        self.store.take_space_low()
    }

    pub fn append_seq(&self) -> AppendSeq {
        self.store.append_seq()
    }

    /// The group commit's batch; what is appended after it is the next chunk.
    pub fn take_sync_batch(&mut self) -> io::Result<Option<SyncBatch>> {
        let batch = self.store.take_sync_batch()?;
        self.chunk_open = false;
        Ok(batch)
    }

    pub fn sync_completed(&mut self, seq: AppendSeq) {
        self.store.sync_completed(seq);
    }

    pub fn sync_failed(&mut self, seq: AppendSeq) {
        self.store.sync_failed(seq);
    }

    pub fn sync_all_blocking(&mut self) -> io::Result<()> {
        self.store.sync_all_blocking()
    }

    /// Closes the stream; the write segment's summary is saved too (the
    /// store writes into a new segment after the next open).
    pub fn close(self) -> io::Result<()> {
        self.save_sealed_filter();
        self.store.close()
    }

    pub fn delete(self) -> io::Result<()> {
        self.store.delete()
    }
}

#[cfg(test)]
#[path = "stream_tests.rs"]
mod tests;
