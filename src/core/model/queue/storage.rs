//! What the rest of the core asks of a queue's messages, without knowing how
//! the queue keeps them: counts and sizes (views, stats, limits), its folder,
//! its part in the group commit, and its end (close or delete).
//!
//! The queue's store (`ringmq_store::LeveledStore`: segments, ack files,
//! priority levels) is private to `model`; these methods are the queue
//! interface that stream and replicated queues will implement their own way.

use std::io;
use std::path::Path;

use ringmq_store::{AppendSeq, MessageView, SegmentPosition, StoreError, SyncBatch};

use crate::core::model::queue::Queue;

impl Queue {
    /// Messages ready for delivery.
    #[inline]
    pub fn ready_count(&self) -> u64 {
        self.store.ready_count()
    }

    /// Messages delivered and not yet acked.
    #[inline]
    pub fn unacked_count(&self) -> u64 {
        self.store.unacked_count()
    }

    /// Body bytes of the ready messages.
    pub fn ready_bytes(&self) -> u64 {
        self.store.ready_bytes()
    }

    /// Bytes the queue's files take on disk.
    pub fn total_bytes(&self) -> u64 {
        self.store.total_bytes()
    }

    /// The queue's folder.
    pub fn dir(&self) -> &Path {
        self.store.dir()
    }

    /// Every ready message in delivery order, read-only (invariant checks).
    pub fn for_each_ready(&self, f: impl FnMut(SegmentPosition, &MessageView<'_>)) -> Result<(), StoreError> {
        self.store.for_each_ready(f)
    }

    /// The files the next group commit must sync, per priority level (see
    /// `ringmq_store::sync`); nothing is taken on an error.
    pub(crate) fn take_sync_batches(&mut self) -> io::Result<Vec<(usize, SyncBatch)>> {
        self.store.take_sync_batches()
    }

    /// The commit that took batch `seq` of `level` is done.
    pub(crate) fn sync_completed(&mut self, level: usize, seq: AppendSeq) {
        self.store.sync_completed(level, seq);
    }

    /// The commit that took batch `seq` of `level` failed: the store goes on in
    /// new files (see `ringmq_store::sync`).
    pub(crate) fn sync_failed(&mut self, level: usize, seq: AppendSeq) {
        self.store.sync_failed(level, seq);
    }

    /// Syncs everything appended, now (delayed messages' copies, outside the
    /// group commit).
    pub(crate) fn sync_all_blocking(&mut self) -> io::Result<()> {
        self.store.sync_all_blocking()
    }

    /// Clean close: everything synced.
    pub(crate) fn close(self) -> io::Result<()> {
        self.store.close()
    }

    /// The queue is gone: its folder and everything in it.
    pub(crate) fn delete(self) -> io::Result<()> {
        self.store.delete()
    }
}
