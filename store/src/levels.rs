//! Priority queues on disk: one [`QueueStore`] per priority level, behind the
//! same calls as a single store.
//!
//! Level 0 lives in the queue's directory itself (so a queue without
//! `x-max-priority` is exactly a plain store), level `k` in the subdirectory
//! `p{k}`. A position carries its level in the top 8 bits of its segment id, so
//! the broker keeps passing plain [`SegmentPosition`]s around; each level's store
//! numbers its own segments from 1 and stays far below 2^24 segments (2^24 × 8 MiB
//! = 128 TiB per level).
//!
//! Delivery takes from the highest level that has ready messages: higher
//! priorities first, FIFO within a priority (RabbitMQ's classic priority queues).

use std::io;
use std::path::Path;

use crate::counts::DeliveryCounts;
use crate::recovery::KeepFilter;
use crate::{
    AppendSeq, BodyCrc, LastStop, MessageRef, MessageView, QueueStore, RecoveryReport, SegmentId, SegmentPosition,
    StoreConfig, StoreError, SyncBatch,
};

/// Bits of the segment id that hold the level.
const LEVEL_SHIFT: u32 = 24;
const SEGMENT_MASK: u32 = (1 << LEVEL_SHIFT) - 1;

/// A queue's messages, in one or more priority levels.
#[derive(Debug)]
pub struct LeveledStore {
    levels: Vec<QueueStore>,
    /// Returns per message for `x-delivery-limit` (positions tagged by level).
    /// Boxed: its header is most of a store's (~120 of 152 bytes), and the
    /// broker keeps a store inline in each queue; None in an unopened store.
    counts: Option<Box<DeliveryCounts>>,
}

fn tag(level: usize, pos: SegmentPosition) -> SegmentPosition {
    debug_assert!(
        pos.segment.0 <= SEGMENT_MASK,
        "segment id overflows into the level bits"
    );
    SegmentPosition {
        segment: SegmentId(((level as u32) << LEVEL_SHIFT) | pos.segment.0),
        ..pos
    }
}

fn untag(pos: SegmentPosition) -> (usize, SegmentPosition) {
    let level = (pos.segment.0 >> LEVEL_SHIFT) as usize;
    (
        level,
        SegmentPosition {
            segment: SegmentId(pos.segment.0 & SEGMENT_MASK),
            ..pos
        },
    )
}

impl LeveledStore {
    /// A store not opened (yet): no level, no file, nothing ready; every call
    /// answers as an empty store would, except [`Self::append`], [`Self::dir`]
    /// and [`Self::delete`], which need an open one. The broker keeps one in a
    /// queue that never got a message, and opens the real one at its first.
    pub fn unopened() -> Self {
        LeveledStore {
            levels: Vec::new(),
            counts: None,
        }
    }

    /// Whether the store was opened (not [`Self::unopened`]).
    #[inline]
    pub fn is_open(&self) -> bool {
        !self.levels.is_empty()
    }

    /// The queue's directory (level 0's; higher levels are `p1`, `p2`... in it).
    /// Open stores only.
    pub fn dir(&self) -> &Path {
        self.levels[0].dir()
    }

    /// Opens a store with `max_priority + 1` levels (1 for a plain queue).
    pub fn open(
        dir: &Path,
        cfg: StoreConfig,
        max_priority: u8,
        keep: KeepFilter<'_>,
    ) -> io::Result<(Self, RecoveryReport)> {
        Self::open_recovering(dir, cfg, max_priority, keep, LastStop::Clean)
    }

    /// Like [`Self::open`], knowing how the store was last stopped (see
    /// [`QueueStore::open_recovering`]).
    pub fn open_recovering(
        dir: &Path,
        cfg: StoreConfig,
        max_priority: u8,
        keep: KeepFilter<'_>,
        last_stop: LastStop,
    ) -> io::Result<(Self, RecoveryReport)> {
        let mut levels = Vec::with_capacity(max_priority as usize + 1);
        let mut total = RecoveryReport::default();
        for level in 0..=max_priority as usize {
            let d = if level == 0 {
                dir.to_path_buf()
            } else {
                dir.join(format!("p{level}"))
            };
            let (s, r) = QueueStore::open_recovering(&d, cfg, keep, last_stop)?;
            total.messages_recovered += r.messages_recovered;
            total.bytes_recovered += r.bytes_recovered;
            total.segments_scanned += r.segments_scanned;
            total.segments_deleted += r.segments_deleted;
            total.records_filtered += r.records_filtered;
            total.damaged.extend(r.damaged);
            levels.push(s);
        }
        let counts = DeliveryCounts::load(dir, |pos| {
            let (l, p) = untag(pos);
            levels.get(l).is_some_and(|s| s.has_segment(p.segment))
        })?;
        let counts = Some(Box::new(counts));
        Ok((LeveledStore { levels, counts }, total))
    }

    pub fn level_count(&self) -> usize {
        self.levels.len()
    }

    /// Appends at `priority` (clamped to the highest level). Open stores only.
    pub fn append(&mut self, msg: MessageRef<'_>, priority: u8) -> Result<SegmentPosition, StoreError> {
        self.append_with(msg, priority, BodyCrc::Checked)
    }

    /// [`Self::append`] with [`QueueStore::append_with`]'s choice of CRC.
    pub fn append_with(
        &mut self,
        msg: MessageRef<'_>,
        priority: u8,
        body: BodyCrc,
    ) -> Result<SegmentPosition, StoreError> {
        let level = (priority as usize).min(self.levels.len() - 1);
        Ok(tag(level, self.levels[level].append_with(msg, body)?))
    }

    /// [`QueueStore::take_space_low`] of every level.
    pub fn take_space_low(&mut self) -> bool {
        self.levels.iter_mut().fold(false, |low, s| s.take_space_low() | low)
    }

    /// The highest level with ready messages.
    fn top(&self) -> Option<usize> {
        (0..self.levels.len()).rev().find(|&l| self.levels[l].ready_count() > 0)
    }

    pub fn next_ready(&mut self) -> Result<Option<SegmentPosition>, StoreError> {
        let Some(l) = self.top() else { return Ok(None) };
        Ok(self.levels[l].next_ready()?.map(|p| tag(l, p)))
    }

    pub fn peek_ready(&mut self) -> Result<Option<SegmentPosition>, StoreError> {
        let Some(l) = self.top() else { return Ok(None) };
        Ok(self.levels[l].peek_ready()?.map(|p| tag(l, p)))
    }

    pub fn remove_next_ready(&mut self) -> Result<Option<SegmentPosition>, StoreError> {
        let Some(l) = self.top() else { return Ok(None) };
        Ok(self.levels[l].remove_next_ready()?.map(|p| tag(l, p)))
    }

    fn level_of(&self, pos: SegmentPosition) -> Result<(usize, SegmentPosition), StoreError> {
        let (l, p) = untag(pos);
        if l >= self.levels.len() {
            return Err(StoreError::UnknownSegment(pos.segment));
        }
        Ok((l, p))
    }

    #[inline]
    pub fn read(&self, pos: SegmentPosition) -> Result<MessageView<'_>, StoreError> {
        let (l, p) = self.level_of(pos)?;
        self.levels[l].read(p)
    }

    /// [`QueueStore::read_shared`] of the message's level.
    pub fn read_shared(&self, pos: SegmentPosition) -> Result<(MessageView<'_>, crate::SharedBytes), StoreError> {
        let (l, p) = self.level_of(pos)?;
        self.levels[l].read_shared(p)
    }

    /// Times `pos` was returned to the queue (for `x-delivery-limit`).
    pub fn delivery_count(&self, pos: SegmentPosition) -> u32 {
        self.counts.as_ref().map_or(0, |c| c.get(pos))
    }

    /// Counts one more return of `pos`; returns the new count. Written with the
    /// acks ([`Self::flush_acks`]).
    pub fn bump_delivery_count(&mut self, pos: SegmentPosition) -> u32 {
        self.counts.as_mut().map_or(1, |c| c.bump(pos))
    }

    pub fn forget_delivery_count(&mut self, pos: SegmentPosition) {
        if let Some(c) = self.counts.as_mut() {
            c.forget(pos);
        }
    }

    pub fn ack(&mut self, pos: SegmentPosition) -> Result<(), StoreError> {
        let (l, p) = self.level_of(pos)?;
        self.levels[l].ack(p)
    }

    pub fn requeue(&mut self, pos: SegmentPosition) -> Result<(), StoreError> {
        let (l, p) = self.level_of(pos)?;
        self.levels[l].requeue(p)
    }

    pub fn delivered_before_open(&self, pos: SegmentPosition) -> bool {
        self.level_of(pos)
            .is_ok_and(|(l, p)| self.levels[l].delivered_before_open(p))
    }

    /// See [`QueueStore::note_maybe_delivered`] (within `pos`'s level).
    pub fn note_maybe_delivered(&mut self, pos: SegmentPosition) -> Result<(), StoreError> {
        let (l, p) = self.level_of(pos)?;
        Ok(self.levels[l].note_maybe_delivered(p)?)
    }

    pub fn purge(&mut self) -> Result<u64, StoreError> {
        let mut n = 0;
        for s in &mut self.levels {
            n += s.purge()?;
        }
        Ok(n)
    }

    pub fn ready_count(&self) -> u64 {
        self.levels.iter().map(QueueStore::ready_count).sum()
    }

    pub fn unacked_count(&self) -> u64 {
        self.levels.iter().map(QueueStore::unacked_count).sum()
    }

    pub fn ready_bytes(&self) -> u64 {
        self.levels.iter().map(QueueStore::ready_bytes).sum()
    }

    /// Visits every ready message, highest priority level first (delivery order).
    pub fn for_each_ready(&self, mut f: impl FnMut(SegmentPosition, &MessageView<'_>)) -> Result<(), StoreError> {
        for (l, level) in self.levels.iter().enumerate().rev() {
            level.for_each_ready(|p, v| f(tag(l, p), v))?;
        }
        Ok(())
    }

    pub fn total_bytes(&self) -> u64 {
        self.levels.iter().map(QueueStore::total_bytes).sum()
    }

    /// One sync batch per level that has something to sync, with its level. Every
    /// level is prepared before any batch is taken, so an error takes nothing from
    /// any level (a level's batch taken before another failed was dropped, never
    /// synced nor reported: its appends stayed unsynced and the store's durable
    /// point stuck behind it).
    pub fn take_sync_batches(&mut self) -> io::Result<Vec<(usize, SyncBatch)>> {
        let prepared = (self.levels.iter_mut())
            .map(QueueStore::prepare_sync)
            .collect::<io::Result<Vec<_>>>()?;
        let levels = self.levels.iter_mut().zip(prepared).enumerate();
        Ok(levels
            .filter_map(|(l, (s, p))| s.take_prepared(p).map(|b| (l, b)))
            .collect())
    }

    /// Takes and runs every level's batch with blocking syscalls, reporting each
    /// done or failed; the first error is returned.
    pub fn sync_all_blocking(&mut self) -> io::Result<()> {
        let mut first = Ok(());
        for (level, batch) in self.take_sync_batches()? {
            match batch.run_blocking() {
                Ok(()) => self.sync_completed(level, batch.seq()),
                Err(e) => {
                    self.sync_failed(level, batch.seq());
                    first = first.and(Err(e));
                }
            }
        }
        first
    }

    /// [`QueueStore::flush_acks`] of every level, and the delivery counts.
    pub fn flush_acks(&mut self) -> io::Result<()> {
        for s in &mut self.levels {
            s.flush_acks()?;
        }
        self.counts.as_mut().map_or(Ok(()), |c| c.flush())
    }

    pub fn sync_completed(&mut self, level: usize, seq: AppendSeq) {
        if let Some(s) = self.levels.get_mut(level) {
            s.sync_completed(seq);
        }
    }

    /// [`QueueStore::sync_failed`] of `level`'s batch `seq`.
    pub fn sync_failed(&mut self, level: usize, seq: AppendSeq) {
        if let Some(s) = self.levels.get_mut(level) {
            s.sync_failed(seq);
        }
    }

    pub fn close(mut self) -> io::Result<()> {
        let mut first = self.counts.as_mut().map_or(Ok(()), |c| c.flush());
        for s in self.levels {
            let r = s.close();
            if first.is_ok() {
                first = r;
            }
        }
        first
    }

    /// Deletes every level; level 0 owns the directory, so it goes last. Open
    /// stores only.
    pub fn delete(self) -> io::Result<()> {
        let mut levels = self.levels;
        let base = levels.remove(0);
        for s in levels {
            s.delete()?;
        }
        base.delete()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(body: &[u8]) -> MessageRef<'_> {
        MessageRef {
            timestamp_ms: 0,
            exchange: b"",
            routing_key: b"q",
            properties: b"",
            body,
        }
    }

    #[test]
    fn an_unopened_store_is_empty() {
        let mut s = LeveledStore::unopened();
        assert!(!s.is_open());
        assert_eq!((s.ready_count(), s.unacked_count(), s.total_bytes()), (0, 0, 0));
        assert_eq!(s.next_ready().unwrap(), None);
        assert_eq!(s.purge().unwrap(), 0);
        assert!(s.take_sync_batches().unwrap().is_empty());
        s.flush_acks().unwrap();
        let pos = SegmentPosition {
            segment: SegmentId(1),
            offset: 0,
            size: 1,
        };
        assert!(s.read(pos).is_err() && s.ack(pos).is_err());
        assert_eq!(s.delivery_count(pos), 0);
        s.close().unwrap();
    }

    #[test]
    fn highest_priority_first_fifo_within() {
        let dir = tempfile::tempdir().unwrap();
        let (mut s, _) = LeveledStore::open(dir.path(), StoreConfig::default(), 5, &|_| true).unwrap();
        for (body, p) in [
            (&b"low1"[..], 0),
            (b"high1", 5),
            (b"mid", 3),
            (b"high2", 9),
            (b"low2", 0),
        ] {
            s.append(m(body), p).unwrap();
        }
        let mut got = Vec::new();
        while let Some(pos) = s.next_ready().unwrap() {
            got.push(String::from_utf8(s.read(pos).unwrap().body.to_vec()).unwrap());
            s.ack(pos).unwrap();
        }
        assert_eq!(got, ["high1", "high2", "mid", "low1", "low2"]);
        s.close().unwrap();
    }

    #[test]
    fn survives_reopen_and_requeue_goes_back_to_its_level() {
        let dir = tempfile::tempdir().unwrap();
        let (mut s, _) = LeveledStore::open(dir.path(), StoreConfig::default(), 2, &|_| true).unwrap();
        s.append(m(b"a"), 0).unwrap();
        s.append(m(b"b"), 2).unwrap();
        let top = s.next_ready().unwrap().unwrap();
        assert_eq!(s.read(top).unwrap().body, b"b");
        s.requeue(top).unwrap();
        s.close().unwrap();
        let (mut s, r) = LeveledStore::open(dir.path(), StoreConfig::default(), 2, &|_| true).unwrap();
        assert_eq!(r.messages_recovered, 2);
        let p = s.next_ready().unwrap().unwrap();
        assert_eq!(s.read(p).unwrap().body, b"b");
        s.delete().unwrap();
        assert!(!dir.path().exists());
    }

    #[test]
    fn for_each_ready_visits_what_delivery_would_take_in_order() {
        let dir = tempfile::tempdir().unwrap();
        // Small segments so the walk crosses segment files.
        let cfg = StoreConfig {
            segment_bytes: 4096,
            ..StoreConfig::default()
        };
        let (mut s, _) = LeveledStore::open(dir.path(), cfg, 3, &|_| true).unwrap();
        let body = [7u8; 300];
        for i in 0..60u8 {
            s.append(m(&body[..100 + i as usize]), i % 4).unwrap();
        }
        // Take some, requeue one, ack the rest of those taken.
        let taken: Vec<_> = (0..10).map(|_| s.next_ready().unwrap().unwrap()).collect();
        s.requeue(taken[3]).unwrap();
        for (i, p) in taken.iter().enumerate() {
            if i != 3 {
                s.ack(*p).unwrap();
            }
        }
        let mut walked = Vec::new();
        let mut body_bytes = 0;
        s.for_each_ready(|p, v| {
            walked.push(p);
            body_bytes += v.body.len();
        })
        .unwrap();
        assert_eq!(walked.len() as u64, s.ready_count());
        let mut delivered = Vec::new();
        let mut delivered_bytes = 0;
        while let Some(p) = s.next_ready().unwrap() {
            delivered_bytes += s.read(p).unwrap().body.len();
            delivered.push(p);
        }
        assert_eq!(walked, delivered);
        assert_eq!(body_bytes, delivered_bytes);
    }
}
