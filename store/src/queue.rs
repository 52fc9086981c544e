//! `QueueStore`: one queue's messages on disk, and the positions that say which are
//! ready, in flight or done.
//!
//! Memory is O(segments + unacked + requeued): a `SegmentMeta` per segment file, a hash
//! set of in-flight positions, an ordered set of requeued positions, and a read cursor.
//! Ready messages after the cursor cost nothing.
//!
//! A message is in exactly one state: ready (requeued set, or at/after the cursor), in
//! flight (delivered, unacked), or done (acked or discarded: its offset is in the
//! segment's ack file). Each segment counts its records (`msg_count`) and done ones
//! (`done_count`); when they are equal and the cursor has passed it, and it is not the
//! segment being written, its files are deleted.

use std::cell::OnceCell;
use std::collections::{BTreeMap, BTreeSet};

use ahash::AHashSet;
use std::fs;
use std::io;
use std::ops::Bound::{Excluded, Unbounded};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::ackfile::AckFile;
use crate::delivered::{DeliveredMark, LastStop};
use crate::record::{self, BodyCrc, MessageRef, MessageView, RecordError, RECORD_HEADER_BYTES, SEGMENT_HEADER_BYTES};
use crate::recovery::{self, RecoveryReport};
use crate::segment::{ack_path, segment_path, spare_path, MapLease, SegmentMap, SharedBytes, WriteSegment};
use crate::sync::SyncState;
use crate::{SegmentId, SegmentPosition, StoreConfig, StoreError};

mod commit;
mod stream_ops;

/// Where the next ready message after the requeued ones is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Cursor {
    pub segment: SegmentId,
    pub offset: u32,
}

/// Bytes of a segment that are not records: an unreadable span that recovery found
/// with intact records after it (recovery.rs). It stays in the file; the cursor
/// jumps over it. Never at the end of the data (an unreadable tail is cut off), and
/// two never touch (each ends where an intact record starts).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Hole {
    pub start: u32,
    pub end: u32,
}

/// What the store keeps per segment file.
pub(crate) struct SegmentMeta {
    /// End of valid data (for the write segment, kept equal to the writer's end).
    end: u32,
    /// Holes in the data, by offset (almost always none: no allocation then).
    holes: Vec<Hole>,
    /// Records in the segment.
    msg_count: u32,
    /// Records acked or discarded.
    done_count: u32,
    /// Records the cursor has moved past.
    passed: u32,
    /// Read mapping, made on first read (hence OnceCell: `read` takes `&self`), or
    /// the write mapping kept from when this was the write segment.
    map: OnceCell<Arc<SegmentMap>>,
    /// Shared by every mapping of the file: see [`QueueStore::retire_segment`].
    lease: Arc<MapLease>,
    /// Ack file, opened on first ack.
    acks: Option<AckFile>,
}

impl SegmentMeta {
    pub(crate) fn recovered(end: u32, msg_count: u32, done_count: u32, passed: u32, holes: Vec<Hole>) -> Self {
        debug_assert!(holes.windows(2).all(|w| w[0].end < w[1].start));
        debug_assert!(holes.last().is_none_or(|h| h.end < end));
        Self {
            end,
            holes,
            msg_count,
            done_count,
            passed,
            map: OnceCell::new(),
            lease: Arc::default(),
            acks: None,
        }
    }

    /// `offset`, or the end of the hole starting there: where the record at or
    /// after `offset` starts.
    fn skip_hole(&self, offset: u32) -> u32 {
        match self.holes.binary_search_by_key(&offset, |h| h.start) {
            Ok(i) => self.holes[i].end,
            Err(_) => offset,
        }
    }
}

#[derive(Debug, Default, Clone, Copy)]
struct Counts {
    ready: u64,
    ready_bytes: u64,
    unacked: u64,
    unacked_bytes: u64,
}

/// One queue's message store. See the crate docs for the call protocol.
pub struct QueueStore {
    dir: PathBuf,
    cfg: StoreConfig,
    segments: BTreeMap<SegmentId, SegmentMeta>,
    writer: Option<WriteSegment>,
    next_segment: SegmentId,
    cursor: Cursor,
    /// Delivered, not yet acked or requeued: one insert and one remove per
    /// message, so hashed with ahash (SipHash was ~4% of the broker's
    /// instructions per message; positions are the store's own, not a peer's).
    in_flight: AHashSet<SegmentPosition>,
    requeued: BTreeSet<SegmentPosition>,
    dirty_acks: BTreeSet<SegmentId>,
    counts: Counts,
    sync: SyncState,
    closed: bool,
    /// Highest position handed out by `next_ready`, persisted at each sync batch
    /// and at close (see [`DeliveredMark`]).
    delivered: DeliveredMark,
    /// Fully acked segment files kept (as `spare.N`) for the next rollovers instead
    /// of being deleted, oldest first: see [`Self::retire_segment`].
    spares: std::collections::VecDeque<Spare>,
    /// Write mappings of segments the cursor has left, whose messages are not all
    /// acked yet, newest last (at most [`SPARES_MAX`]): kept for the spare the
    /// segment becomes ([`Self::retire_segment`]), dropped when more come.
    passed_maps: std::collections::VecDeque<(SegmentId, Arc<SegmentMap>)>,
    /// See [`Self::take_space_low`].
    space_low: bool,
    /// Segments below this id were open when a sync failed: never kept as spares
    /// (see [`Self::sync_failed`]).
    reuse_from: SegmentId,
}

impl std::fmt::Debug for QueueStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueueStore")
            .field("dir", &self.dir)
            .field("segments", &self.segments.len())
            .field("ready", &self.counts.ready)
            .field("unacked", &self.counts.unacked)
            .finish()
    }
}

impl QueueStore {
    /// Opens (creating if needed) the queue in `dir`, recovering it from its files.
    /// Messages that were in flight when the store was last closed or crashed come back
    /// ready, in their original order. The first write segment is created lazily, on
    /// the first append, so idle queues take no disk.
    pub fn open(dir: &Path, cfg: StoreConfig) -> io::Result<(Self, RecoveryReport)> {
        Self::open_filtered(dir, cfg, &|_| true)
    }

    /// Like [`Self::open`], but drops (as if acked) every recovered message for
    /// which `keep` says false.
    pub fn open_filtered(
        dir: &Path,
        cfg: StoreConfig,
        keep: recovery::KeepFilter<'_>,
    ) -> io::Result<(Self, RecoveryReport)> {
        Self::open_recovering(dir, cfg, keep, LastStop::Clean)
    }

    /// Like [`Self::open_filtered`], for a caller that knows how the store was
    /// last stopped: after [`LastStop::Unclean`] every recovered message counts
    /// as delivered before this open ([`Self::delivered_before_open`]),
    /// whatever the queue's `delivered` file says (see `delivered`).
    pub fn open_recovering(
        dir: &Path,
        cfg: StoreConfig,
        keep: recovery::KeepFilter<'_>,
        last_stop: LastStop,
    ) -> io::Result<(Self, RecoveryReport)> {
        cfg.validate()?;
        fs::create_dir_all(dir)?;
        let (rec, report) = recovery::recover(dir, keep)?;
        let mut delivered = DeliveredMark::load(dir, rec.next_segment, last_stop);
        delivered.rewrite_if_stale(dir)?;
        let store = Self {
            dir: dir.to_path_buf(),
            cfg,
            segments: rec.segments,
            writer: None,
            next_segment: rec.next_segment,
            cursor: rec.cursor,
            in_flight: AHashSet::new(),
            requeued: rec.requeued,
            dirty_acks: BTreeSet::new(),
            counts: Counts {
                ready: rec.ready,
                ready_bytes: rec.ready_bytes,
                ..Counts::default()
            },
            sync: SyncState::default(),
            closed: false,
            delivered,
            spares: find_spares(dir)?,
            passed_maps: std::collections::VecDeque::new(),
            space_low: false,
            reuse_from: SegmentId(0),
        };
        Ok((store, report))
    }

    /// The queue's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Appends a message (ready, behind all others). Not durable until a sync batch
    /// covering [`Self::append_seq`] completes.
    pub fn append(&mut self, msg: MessageRef<'_>) -> Result<SegmentPosition, StoreError> {
        self.append_with(msg, BodyCrc::Checked)
    }

    /// [`Self::append`], with the body left out of the record's CRC when `body` says
    /// so: for messages that no recovery keeps (see `record.rs`).
    pub fn append_with(&mut self, msg: MessageRef<'_>, body: BodyCrc) -> Result<SegmentPosition, StoreError> {
        let len = record::encoded_len(&msg, self.cfg.max_record_bytes)?;
        let full = |e: io::Error| match e.raw_os_error() {
            Some(libc::ENOSPC) | Some(libc::EDQUOT) => StoreError::DiskFull { record_bytes: len },
            _ => StoreError::Io(e),
        };
        let mut took_space = false;
        if self.writer.as_ref().is_none_or(|w| w.remaining() < len) {
            self.roll(len).map_err(full)?;
            took_space = true;
        }
        let w = self.writer.as_mut().expect("roll opened a writer");
        let allocated = w.allocated();
        let offset = w.append(&msg, len, body).map_err(full)?;
        took_space |= w.allocated() != allocated;
        if took_space && self.cfg.free_disk_min_bytes > 0 {
            // Checked where space is taken, not only on the caller's timer: a fast
            // publisher went from 64 MB free to ENOSPC between two checks a second
            // apart (issue 15, defect 4).
            match crate::segment::free_bytes(w.file()) {
                Ok(free) => self.space_low |= free < self.cfg.free_disk_min_bytes,
                Err(e) => tracing::warn!(error = %e, "cannot read free disk space"),
            }
        }
        let w = self.writer.as_ref().expect("roll opened a writer");
        let meta = self.segments.get_mut(&w.id()).expect("writer has a meta");
        meta.end = w.end();
        meta.msg_count += 1;
        self.counts.ready += 1;
        self.counts.ready_bytes += u64::from(len);
        self.sync.append_seq.0 += 1;
        self.sync.writer_dirty = true;
        Ok(SegmentPosition {
            segment: w.id(),
            offset,
            size: len,
        })
    }

    /// Closes the write segment (if any) and opens a new one with room for `len`.
    fn roll(&mut self, len: u32) -> io::Result<()> {
        self.close_writer()?;
        let capacity = self.cfg.segment_bytes.max(SEGMENT_HEADER_BYTES + len);
        // Disk for the header, this record and its end mark; more as it fills.
        let first = SEGMENT_HEADER_BYTES + len + record::END_MARK_BYTES;
        let id = self.next_segment;
        let meta = SegmentMeta::recovered(SEGMENT_HEADER_BYTES, 0, 0, 0, Vec::new());
        let lease = Arc::clone(&meta.lease);
        // The oldest spare no mapping uses any more (segment.rs, I5).
        let free = self.spares.iter().position(Spare::is_free);
        let w = match free.filter(|_| capacity == self.cfg.segment_bytes) {
            Some(i) => {
                let spare = self.spares.remove(i).expect("found above");
                // New ids are above every spare's (recovery.rs), so a recycled
                // file's stale records never carry the seed of its new id.
                assert!(spare.id < id, "spare {:?} not below new segment {id:?}", spare.id);
                let path = spare_path(&self.dir, spare.id);
                // Free (checked above): the spare holds the only reference.
                let map = spare.map.and_then(|m| Arc::try_unwrap(m).ok());
                match WriteSegment::recycle(&self.dir, &path, id, capacity, map, Arc::clone(&lease)) {
                    Ok(w) => w,
                    Err(e) => {
                        tracing::warn!(path = %path.display(), error = %e, "cannot reuse a spare segment; deleting it");
                        remove_if_exists(&path)?;
                        WriteSegment::create(&self.dir, id, capacity, first, lease)?
                    }
                }
            }
            None => WriteSegment::create(&self.dir, id, capacity, first, lease)?,
        };
        self.next_segment = SegmentId(id.0 + 1);
        self.segments.insert(id, meta);
        self.writer = Some(w);
        self.sync.dir_dirty = true;
        Ok(())
    }

    /// Unmaps and truncates the write segment; it becomes an ordinary closed segment.
    fn close_writer(&mut self) -> io::Result<()> {
        let Some(w) = self.writer.take() else { return Ok(()) };
        let id = w.id();
        let end = w.end();
        let (file, map) = w.finish()?;
        if std::mem::take(&mut self.sync.writer_dirty) {
            self.sync.closed_dirty.push(file);
        }
        // A reader keeping up (in this segment's last quarter) goes on through the
        // mapping the writer faulted in, rather than mapping the file again. A
        // reader far behind, or none (a queue filling up with no consumer), does
        // not keep the written pages in the broker's RSS: the segment is mapped
        // again when read, and faulted in from the page cache page by page
        // (~2,000 minor faults for 8 MiB). 100 M queued messages held the whole
        // first segment resident (8 MiB of a 27 MB RSS).
        let keeping_up = end.saturating_sub(self.cursor.offset) <= self.cfg.segment_bytes / 4;
        if self.cursor.segment == id && keeping_up {
            if let Some(meta) = self.segments.get(&id) {
                let _ = meta.map.set(map);
            }
        } else if self.cursor.segment == id && self.cursor.offset > SEGMENT_HEADER_BYTES {
            // A reader behind, but in this segment: it will be done with it
            // soon. The write mapping waits for the spare the segment becomes
            // (and serves the reader meanwhile); with no reader, or one far
            // behind, the pages go back as above.
            self.keep_passed_map(id, map);
        }
        self.maybe_delete(id)
    }

    /// Keeps the write mapping of closed segment `id` for the spare it becomes
    /// (`passed_maps`), the oldest going when there are more than [`SPARES_MAX`].
    fn keep_passed_map(&mut self, id: SegmentId, map: Arc<SegmentMap>) {
        if self.passed_maps.iter().any(|(s, _)| *s == id) {
            return;
        }
        self.passed_maps.push_back((id, map));
        if self.passed_maps.len() > SPARES_MAX {
            self.passed_maps.pop_front();
        }
    }

    /// Bytes of segment `id` up to its end of data, mapping it if needed.
    /// Inlined into `read` (with the stream's code in the crate the compiler
    /// stopped: 14 instructions a message, benches/callgrind.sh).
    #[inline(always)]
    fn segment_data(&self, id: SegmentId) -> Result<&[u8], StoreError> {
        Ok(self.segment_map(id)?.0)
    }

    /// Like [`Self::segment_data`], with the mapping the bytes live in.
    fn segment_map(&self, id: SegmentId) -> Result<(&[u8], &Arc<SegmentMap>), StoreError> {
        if let Some(w) = self.writer.as_ref().filter(|w| w.id() == id) {
            return Ok((w.map().bytes(w.end()), w.map()));
        }
        let meta = self.segments.get(&id).ok_or(StoreError::UnknownSegment(id))?;
        if meta.map.get().is_none() {
            let map = match self.passed_maps.iter().find(|(s, _)| *s == id) {
                Some((_, m)) => Arc::clone(m),
                None => Arc::new(SegmentMap::open_read(&self.dir, id, Arc::clone(&meta.lease))?),
            };
            let _ = meta.map.set(map);
        }
        let map = meta.map.get().expect("mapped above");
        let data = map.bytes(map_len_bound(map, meta.end));
        let Some(data) = data.get(..meta.end as usize) else {
            let pos = SegmentPosition {
                segment: id,
                offset: meta.end,
                size: 0,
            };
            return Err(StoreError::Corrupt {
                pos,
                reason: RecordError::Truncated,
            });
        };
        Ok((data, map))
    }

    /// Reads and verifies (lengths and CRC) the message at `pos`. The slices borrow the
    /// segment mapping, so no `&mut self` call can run while they live.
    #[inline]
    pub fn read(&self, pos: SegmentPosition) -> Result<MessageView<'_>, StoreError> {
        let data = self.segment_data(pos.segment)?;
        let range = pos.offset as usize..pos.offset as usize + pos.size as usize;
        let buf = data.get(range).ok_or(StoreError::Corrupt {
            pos,
            reason: RecordError::Truncated,
        })?;
        let (view, len) = record::decode_verified(buf).map_err(|reason| StoreError::Corrupt { pos, reason })?;
        if len != pos.size || pos.offset < SEGMENT_HEADER_BYTES {
            return Err(StoreError::Corrupt {
                pos,
                reason: RecordError::BadLength,
            });
        }
        Ok(view)
    }

    /// Like [`Self::read`], and the body as [`SharedBytes`]: it keeps the segment's
    /// mapping alive, so it can be handed to the kernel by a send that completes
    /// after this borrow (and after the segment is acked and deleted) ends.
    pub fn read_shared(&self, pos: SegmentPosition) -> Result<(MessageView<'_>, SharedBytes), StoreError> {
        let view = self.read(pos)?;
        let (_, map) = self.segment_map(pos.segment)?;
        let body_len = view.body.len() as u32;
        let body = SharedBytes::new(Arc::clone(map), pos.offset + pos.size - body_len, body_len);
        debug_assert_eq!(body.as_slice().as_ptr(), view.body.as_ptr());
        Ok((view, body))
    }

    /// The record under the cursor, moving the cursor to the next segment when it is at
    /// the end of one. Does not consume it.
    fn cursor_peek(&mut self) -> Result<Option<SegmentPosition>, StoreError> {
        loop {
            let id = self.cursor.segment;
            if let Some(meta) = self.segments.get(&id) {
                self.cursor.offset = meta.skip_hole(self.cursor.offset);
                if self.cursor.offset < meta.end {
                    let (offset, end) = (self.cursor.offset, meta.end);
                    return record_at(id, offset, end, self.segment_data(id)?).map(Some);
                }
            }
            let next = self.segments.range((Excluded(id), Unbounded)).next().map(|(k, _)| *k);
            let Some(next) = next else { return Ok(None) };
            self.cursor = Cursor {
                segment: next,
                offset: SEGMENT_HEADER_BYTES,
            };
            if let Some(meta) = self.segments.get_mut(&id) {
                // The cursor is gone: give the pages back (see segment.rs), but
                // keep the write mapping of a few for their spares.
                if let Some(map) = meta.map.take().filter(|m| m.is_writable()) {
                    self.keep_passed_map(id, map);
                }
            }
            self.maybe_delete(id)?;
        }
    }

    /// Takes the next ready message: requeued first, then the cursor.
    fn take_ready(&mut self) -> Result<Option<SegmentPosition>, StoreError> {
        let pos = match self.requeued.pop_first() {
            Some(p) => p,
            None => {
                let Some(p) = self.cursor_peek()? else { return Ok(None) };
                self.cursor.offset += p.size;
                self.segments.get_mut(&p.segment).expect("cursor segment exists").passed += 1;
                p
            }
        };
        self.counts.ready -= 1;
        self.counts.ready_bytes -= u64::from(pos.size);
        Ok(Some(pos))
    }

    /// Takes the next message to deliver (requeued first, in original order, then new
    /// ones) and marks it in flight until [`Self::ack`] or [`Self::requeue`].
    ///
    /// When the queue's `delivered` mark cannot be written (out of descriptors,
    /// EIO) the take is undone: the message is ready again, first in line, not
    /// left neither ready nor in flight until a restart. (Undone as a requeue,
    /// which puts it back in its place; only this error path pays for it.)
    pub fn next_ready(&mut self) -> Result<Option<SegmentPosition>, StoreError> {
        let Some(pos) = self.take_ready()? else { return Ok(None) };
        if let Err(e) = self.delivered.note(&self.dir, pos) {
            self.counts.ready += 1;
            self.counts.ready_bytes += u64::from(pos.size);
            self.requeued.insert(pos);
            return Err(e.into());
        }
        self.in_flight.insert(pos);
        self.counts.unacked += 1;
        self.counts.unacked_bytes += u64::from(pos.size);
        Ok(Some(pos))
    }

    /// The message [`Self::next_ready`] would return, without taking it (for TTL checks
    /// of the head).
    pub fn peek_ready(&mut self) -> Result<Option<SegmentPosition>, StoreError> {
        match self.requeued.first() {
            Some(p) => Ok(Some(*p)),
            None => self.cursor_peek(),
        }
    }

    /// Discards the head of the ready messages without delivering it (TTL expiry,
    /// max-length drop-head); persisted like an ack.
    pub fn remove_next_ready(&mut self) -> Result<Option<SegmentPosition>, StoreError> {
        let Some(pos) = self.take_ready()? else { return Ok(None) };
        self.mark_done(pos)?;
        Ok(Some(pos))
    }

    /// Acknowledges a delivered message: it is done and will not come back.
    pub fn ack(&mut self, pos: SegmentPosition) -> Result<(), StoreError> {
        if !self.in_flight.remove(&pos) {
            return Err(StoreError::NotInFlight(pos));
        }
        self.counts.unacked -= 1;
        self.counts.unacked_bytes -= u64::from(pos.size);
        Ok(self.mark_done(pos)?)
    }

    /// Returns a delivered message to the ready ones, ahead of all not yet delivered.
    pub fn requeue(&mut self, pos: SegmentPosition) -> Result<(), StoreError> {
        if !self.in_flight.remove(&pos) {
            return Err(StoreError::NotInFlight(pos));
        }
        self.counts.unacked -= 1;
        self.counts.unacked_bytes -= u64::from(pos.size);
        self.counts.ready += 1;
        self.counts.ready_bytes += u64::from(pos.size);
        self.requeued.insert(pos);
        Ok(())
    }

    /// Records `pos` as done in its segment's ack file.
    fn mark_done(&mut self, pos: SegmentPosition) -> io::Result<()> {
        let meta = self
            .segments
            .get_mut(&pos.segment)
            .expect("a live position's segment exists");
        if meta.acks.is_none() {
            let (acks, created) = AckFile::open(&self.dir, pos.segment)?;
            meta.acks = Some(acks);
            self.sync.dir_dirty |= created;
        }
        meta.acks.as_mut().expect("opened above").push(pos.offset)?;
        meta.done_count += 1;
        assert!(
            meta.done_count <= meta.msg_count,
            "more acks than records in {:?}",
            pos.segment
        );
        self.dirty_acks.insert(pos.segment);
        self.maybe_delete(pos.segment)
    }

    /// Deletes segment `id` if all its records are done, the cursor has passed it, and
    /// it is not being written.
    fn maybe_delete(&mut self, id: SegmentId) -> io::Result<()> {
        let Some(meta) = self.segments.get(&id) else {
            return Ok(());
        };
        let cursor_past = self.cursor.segment > id || (self.cursor.segment == id && self.cursor.offset >= meta.end);
        let writing = self.writer.as_ref().is_some_and(|w| w.id() == id);
        if meta.done_count < meta.msg_count || !cursor_past || writing {
            return Ok(());
        }
        let end = meta.end;
        let SegmentMeta { map, lease, .. } = self.segments.remove(&id).expect("checked above");
        self.dirty_acks.remove(&id);
        // Segment first: if the second unlink is lost in a crash, an orphan ack file is
        // deleted by recovery; the other order could resurrect acked messages.
        self.retire_segment(id, end, lease, map.into_inner())?;
        remove_if_exists(&ack_path(&self.dir, id))
    }

    /// A fully acked segment leaves the queue: kept as the spare when there is none
    /// (and it is an ordinary-sized one), otherwise deleted.
    ///
    /// Why keep one: a rollover into a fresh file makes every append fault in and
    /// zero new page-cache pages, and the delete frees them again; reusing the file
    /// keeps its pages. Measured (`pwrite` of 64 KiB into an 8 MiB file, this VM):
    /// 24-38 µs into a new file, 4 µs into an existing one; 1p1c 64 KiB spent 35% of
    /// the broker's CPU in that copy. One spare is enough for a queue that is read
    /// as fast as it is written (the reader frees one segment per segment written);
    /// it costs at most one segment of disk per queue, like the write segment's
    /// preallocation. Renaming is atomic, so after a crash the file is either still
    /// a segment (fully acked: recovery deletes it) or the spare.
    ///
    /// Only a file no mapping uses any more is reused (`lease` is ours alone, checked
    /// at the rollover that would reuse it, not here): a send in flight may still
    /// read the segment's pages through the [`SharedBytes`] it holds, and reuse would
    /// overwrite them under it (segment.rs, I5). Sends of up to a megabyte that
    /// span a segment boundary are common when the reader keeps up (the client acks
    /// the last message of a segment while the rest of the send is on its way), so
    /// checking at retirement would mostly delete; a segment later, they are done.
    /// [`SPARES_MAX`] is 2, not 1, because a reader that keeps up retires a segment
    /// about when the writer rolls over: with one spare, the rollover right after a
    /// retirement found it still read by a send and made a fresh file (1p1c 64 KiB
    /// with sends from the mapping: ext4 inode eviction and fresh-page faults back
    /// at ~15% of the broker's CPU).
    ///
    /// The write mapping (`map`, kept by a reader that kept up: `close_writer`)
    /// goes with the spare when it is the file's whole length: the next life
    /// writes into pages that are still mapped. 1p1c 1 KiB spent ~16% of the
    /// broker's CPU faulting a new mapping's pages in (`MADV_POPULATE_WRITE`)
    /// and ~4% unmapping them. It keeps up to [`SPARES_MAX`] segments of page
    /// cache mapped (in the RSS) per queue that was busy.
    fn retire_segment(
        &mut self,
        id: SegmentId,
        end: u32,
        lease: Arc<MapLease>,
        map: Option<Arc<SegmentMap>>,
    ) -> io::Result<()> {
        let path = segment_path(&self.dir, id);
        let passed = self.passed_maps.iter().position(|(s, _)| *s == id);
        let passed = passed.and_then(|i| self.passed_maps.remove(i)).map(|(_, m)| m);
        let map = map.or(passed);
        // (Never replace a spare; ids only restart at 1 in a folder without any.)
        let clash = self.spares.iter().any(|s| s.id == id);
        let reusable = id >= self.reuse_from;
        if self.spares.len() < SPARES_MAX && end <= self.cfg.segment_bytes && !clash && reusable {
            crate::changes::rename(&path, &spare_path(&self.dir, id))?;
            let whole = self.cfg.segment_bytes;
            let map = map.filter(|m| m.is_writable() && m.bytes_len() == whole);
            self.spares.push_back(Spare {
                id,
                lease: Some(lease),
                map,
            });
            return Ok(());
        }
        crate::changes::remove_file(&path)
    }

    /// Segments made from now on are `bytes` long (a stream's segment size
    /// changed by a policy); those already made keep theirs. The spares go:
    /// one of the old size would be recycled too large (or wastefully large).
    pub fn set_segment_bytes(&mut self, bytes: u32) -> io::Result<()> {
        let cfg = StoreConfig {
            segment_bytes: bytes,
            ..self.cfg
        };
        cfg.validate()?;
        if bytes == self.cfg.segment_bytes {
            return Ok(());
        }
        self.cfg = cfg;
        while let Some(spare) = self.spares.pop_front() {
            remove_if_exists(&spare_path(&self.dir, spare.id))?;
        }
        Ok(())
    }

    /// Drops every ready message (requeued and not yet delivered); in-flight ones stay.
    /// Returns how many were dropped. Whole segments are deleted without touching their
    /// records, so the cost is O(segments) plus at most one segment's records.
    pub fn purge(&mut self) -> Result<u64, StoreError> {
        let purged = self.counts.ready;
        for pos in std::mem::take(&mut self.requeued) {
            self.mark_done(pos)?;
        }
        // The write segment becomes an ordinary closed one, so it can be deleted whole.
        self.close_writer()?;
        let cur = self.cursor.segment;
        if let Some(meta) = self.segments.get(&cur).filter(|m| self.cursor.offset < m.end) {
            // Every passed record is in flight or done (requeued ones were just marked
            // done), and only passed records can be done.
            debug_assert!(meta.done_count <= meta.passed);
            let in_flight_here = meta.passed - meta.done_count;
            if in_flight_here == 0 {
                let meta = self.segments.get_mut(&cur).expect("checked above");
                meta.done_count = meta.msg_count;
                meta.passed = meta.msg_count;
                self.cursor.offset = meta.end;
                self.maybe_delete(cur)?;
            } else {
                while let Some(pos) = self.cursor_peek()?.filter(|p| p.segment == cur) {
                    self.take_ready()?;
                    self.mark_done(pos)?;
                }
            }
        }
        // Everything after the cursor segment is ready, never delivered: delete it.
        let later: Vec<SegmentId> = self
            .segments
            .range((Excluded(cur), Unbounded))
            .map(|(k, _)| *k)
            .collect();
        self.cursor = Cursor {
            segment: self.next_segment,
            offset: SEGMENT_HEADER_BYTES,
        };
        for id in later {
            let meta = self.segments.get_mut(&id).expect("listed above");
            meta.done_count = meta.msg_count;
            meta.passed = meta.msg_count;
            self.maybe_delete(id)?;
        }
        self.counts.ready = 0;
        self.counts.ready_bytes = 0;
        Ok(purged)
    }

    /// Whether taking disk space for segments since the last call left less than
    /// [`StoreConfig::free_disk_min_bytes`] free (then the caller should block
    /// publishers until it sees enough free space again). Clears the flag.
    pub fn take_space_low(&mut self) -> bool {
        std::mem::take(&mut self.space_low)
    }

    /// Messages ready for delivery. O(1).
    pub fn ready_count(&self) -> u64 {
        self.counts.ready
    }

    /// Messages delivered and not yet acked. O(1).
    pub fn unacked_count(&self) -> u64 {
        self.counts.unacked
    }

    /// On-disk record bytes (header, names, properties, body) of ready messages. O(1).
    pub fn ready_bytes(&self) -> u64 {
        self.counts.ready_bytes
    }

    /// Visits every ready message in delivery order (requeued first, then from the
    /// cursor on). O(ready messages) and reads every record: for rare whole-queue
    /// work (a length limit switched on by a policy, recounting after recovery),
    /// never for the message path.
    pub fn for_each_ready(&self, mut f: impl FnMut(SegmentPosition, &MessageView<'_>)) -> Result<(), StoreError> {
        for &pos in &self.requeued {
            f(pos, &self.read(pos)?);
        }
        let mut offset = self.cursor.offset;
        for (&id, meta) in self.segments.range(self.cursor.segment..) {
            if id != self.cursor.segment {
                offset = SEGMENT_HEADER_BYTES;
            }
            let data = self.segment_data(id)?;
            loop {
                offset = meta.skip_hole(offset);
                if offset >= meta.end {
                    break;
                }
                let pos = record_at(id, offset, meta.end, data)?;
                f(pos, &self.read(pos)?);
                offset += pos.size;
            }
        }
        Ok(())
    }

    /// Record bytes of ready plus unacked messages. O(1).
    pub fn total_bytes(&self) -> u64 {
        self.counts.ready_bytes + self.counts.unacked_bytes
    }

    /// Whether segment `id` is alive (has records not yet done, or is written).
    pub fn has_segment(&self, id: SegmentId) -> bool {
        self.segments.contains_key(&id)
    }

    /// Segment files currently alive (for metrics and tests).
    pub fn segment_count(&self) -> usize {
        self.segments.len()
    }

    /// Whether a recovered message was handed out before this open (and not
    /// acked): its next delivery should say redelivered.
    pub fn delivered_before_open(&self, pos: SegmentPosition) -> bool {
        self.delivered.covers(pos)
    }

    /// Counts `pos` (a message just appended) and every position before it as
    /// delivered before: their deliveries say redelivered, in this run and
    /// after a restart. For a copy of a message that may have reached a
    /// consumer already (a delayed message routed again after an unclean
    /// stop); messages ahead of it are flagged too, which the protocol allows
    /// ("may have been delivered"), and this is rare.
    pub fn note_maybe_delivered(&mut self, pos: SegmentPosition) -> io::Result<()> {
        self.delivered.note_maybe_delivered(&self.dir, pos)
    }

    /// Clean close: truncates the write segment to its data and syncs everything.
    pub fn close(mut self) -> io::Result<()> {
        self.close_writer()?;
        self.flush_acks()?;
        if self.delivered.current.is_some() {
            // The acks first: a clean mark must never cover an ack that is lost.
            self.sync_all_blocking()?;
            self.delivered.write(&self.dir, true)?.sync_data()?;
        }
        self.sync_all_blocking()?;
        self.closed = true;
        Ok(())
    }

    /// Deletes the queue's directory and everything in it.
    pub fn delete(mut self) -> io::Result<()> {
        self.closed = true;
        self.writer = None;
        self.segments.clear();
        crate::changes::remove_dir_all(&self.dir)
    }
}

/// Spare segment files kept per queue: at most this many segments of disk beyond
/// the data (see [`QueueStore::retire_segment`]).
pub const SPARES_MAX: usize = 2;

/// A spare segment file (`spare.N`, N its id as a segment).
struct Spare {
    id: SegmentId,
    /// The lease of the segment it was, while mappings of it may live (None when
    /// found at open: nothing of this process maps it).
    lease: Option<Arc<MapLease>>,
    /// Its write mapping, kept for the next life when the reader kept up (see
    /// [`QueueStore::retire_segment`]): its pages stay mapped, so the next
    /// writer does not fault them in again.
    map: Option<Arc<SegmentMap>>,
}

impl Spare {
    /// No mapping of the file is in use any more but the spare's own (segment.rs, I5).
    fn is_free(&self) -> bool {
        match (&self.lease, &self.map) {
            (None, _) => true,
            (Some(l), None) => Arc::strong_count(l) == 1,
            // The kept mapping holds the lease once; a send in flight holds the
            // mapping (its `SharedBytes`), another mapping the lease.
            (Some(l), Some(m)) => Arc::strong_count(m) == 1 && Arc::strong_count(l) == 2,
        }
    }
}

/// The spare files left in `dir` (by an earlier run), up to [`SPARES_MAX`]; the
/// rest are deleted.
fn find_spares(dir: &Path) -> io::Result<std::collections::VecDeque<Spare>> {
    let mut ids = Vec::new();
    for entry in fs::read_dir(dir)? {
        let name = entry?.file_name();
        if let Some(id) = name.to_str().and_then(|n| crate::segment::parse_file_name(n, "spare")) {
            ids.push(id);
        }
    }
    ids.sort_unstable();
    let keep = ids.split_off(ids.len().saturating_sub(SPARES_MAX));
    for id in ids {
        remove_if_exists(&spare_path(dir, id))?;
    }
    Ok(keep
        .into_iter()
        .map(|id| Spare {
            id,
            lease: None,
            map: None,
        })
        .collect())
}

/// The record at `offset` of segment `id`, whose data (`data`) ends at `end`: its
/// length is checked to fit. Records were verified at recovery or written by us, so
/// a bad length means the page cache changed under us.
fn record_at(id: SegmentId, offset: u32, end: u32, data: &[u8]) -> Result<SegmentPosition, StoreError> {
    let size = record::peek_len(&data[offset as usize..]);
    let pos = SegmentPosition {
        segment: id,
        offset,
        size,
    };
    if size < RECORD_HEADER_BYTES || offset + size > end {
        return Err(StoreError::Corrupt {
            pos,
            reason: RecordError::BadLength,
        });
    }
    Ok(pos)
}

/// `end`, or less when the mapping is shorter (a file cut by recovery): the caller's
/// range check then reports it as truncated instead of the map panicking.
fn map_len_bound(map: &SegmentMap, end: u32) -> u32 {
    end.min(map.bytes_len())
}

fn remove_if_exists(path: &Path) -> io::Result<()> {
    match crate::changes::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

impl Drop for QueueStore {
    /// Without `close`: write buffered acks and truncate the write segment, but do not
    /// sync (a dropped store is not a durability point; recovery copes either way).
    fn drop(&mut self) {
        if self.closed {
            return;
        }
        for meta in self.segments.values_mut() {
            if let Some(acks) = meta.acks.as_mut() {
                if let Err(e) = acks.flush() {
                    tracing::warn!(error = %e, "writing acks on drop failed");
                }
            }
        }
        if let Err(e) = self.close_writer() {
            tracing::warn!(error = %e, "closing the write segment on drop failed");
        }
    }
}
