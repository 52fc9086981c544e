//! The group-commit side of [`QueueStore`]: the append sequence, taking a sync
//! batch (prepared, then taken), and what its caller reports back (see `sync`).

use std::fs::File;
use std::io;
use std::sync::Arc;

use super::QueueStore;
use crate::sync::{AppendSeq, SyncBatch};

impl QueueStore {
    /// Sequence number of the latest append (0 before the first since open).
    pub fn append_seq(&self) -> AppendSeq {
        self.sync.append_seq
    }

    /// Appends up to this seq are settled: on disk, unless [`Self::sync_failed`]
    /// reported them lost before this passed them (see [`crate::sync`]).
    pub fn synced_seq(&self) -> AppendSeq {
        self.sync.synced_seq
    }

    /// Collects the files dirtied since the last batch (buffered acks are written out
    /// first). None when there is nothing to sync. The caller fdatasyncs them (e.g.
    /// [`SyncBatch::run_blocking`]) and then calls [`Self::sync_completed`], or
    /// [`Self::sync_failed`] if that failed. On an error nothing is taken: what was
    /// dirty stays so for the next batch.
    pub fn take_sync_batch(&mut self) -> io::Result<Option<SyncBatch>> {
        let prepared = self.prepare_sync()?;
        Ok(self.take_prepared(prepared))
    }

    /// The half of taking a batch that can fail, done before anything is taken: a
    /// batch that failed half way used to drop the ack files (and `delivered`) it had
    /// taken, so they were never synced.
    pub(crate) fn prepare_sync(&mut self) -> io::Result<PreparedSync> {
        let room = self.sync.check_room();
        debug_assert!(room.is_ok(), "sync batches taken and never reported");
        room?;
        self.flush_acks()?;
        self.delivered.rewrite_after_failure(&self.dir)?;
        let dir = if self.sync.dir_dirty {
            Some(Arc::new(File::open(&self.dir)?))
        } else {
            None
        };
        Ok(PreparedSync { dir })
    }

    /// The batch of what [`Self::prepare_sync`] readied (nothing may change between
    /// the two).
    pub(crate) fn take_prepared(&mut self, prepared: PreparedSync) -> Option<SyncBatch> {
        let mut files = Vec::new();
        for id in std::mem::take(&mut self.dirty_acks) {
            if let Some(acks) = self.segments.get_mut(&id).and_then(|m| m.acks.as_mut()) {
                files.extend(acks.take_written());
            }
        }
        if self.sync.writer_dirty {
            files.extend(self.writer.as_ref().map(|w| Arc::clone(w.file())));
        }
        files.extend(self.delivered.take_for_sync());
        // What the batch covers is all told: a recorder forwards it now.
        crate::changes::synced();
        self.sync.make_batch(files, prepared.dir)
    }

    /// Writes buffered acks (and discards) to their ack files, without syncing.
    /// A plain write is what kill -9 needs: the data is then in the page cache,
    /// which outlives the process; the fdatasync that power loss needs comes with
    /// the next group commit (the files stay in `dirty_acks` for it). The broker
    /// calls this within a bounded delay of an ack (issue 15 defect 2: acks of a
    /// queue without persistent publishes stayed in memory and came back after a
    /// crash) and before dead-lettered copies are stored elsewhere.
    pub fn flush_acks(&mut self) -> io::Result<()> {
        for id in &self.dirty_acks {
            if let Some(acks) = self.segments.get_mut(id).and_then(|m| m.acks.as_mut()) {
                acks.flush()?;
            }
        }
        Ok(())
    }

    /// Reports that the batch with `seq` was synced. Batches may complete out of order;
    /// [`Self::synced_seq`] only moves past a batch when all earlier ones are done.
    pub fn sync_completed(&mut self, seq: AppendSeq) {
        self.sync.completed(seq);
    }

    /// Reports that the batch with `seq` was not made durable: its fsync failed, or it
    /// was never run. Returns the seq up to which appends are lost: the caller must not
    /// confirm any of them that it has not confirmed yet. The store goes on: the next
    /// append starts a new segment, and later batches make later appends durable as
    /// usual. Why, and what it means for [`Self::synced_seq`]: see [`crate::sync`].
    ///
    /// Closing the write segment may fail (truncating it); that is logged: the segment
    /// is closed either way, and recovery reads a segment left untruncated.
    pub fn sync_failed(&mut self, seq: AppendSeq) -> AppendSeq {
        let lost = self.sync.failed(seq);
        self.reuse_from = self.next_segment;
        if let Err(e) = self.close_writer() {
            tracing::warn!(dir = %self.dir.display(), error = %e, "closing the write segment after a failed sync");
        }
        self.delivered.sync_failed();
        lost
    }

    /// Whether appends or acks are waiting for a sync.
    pub fn needs_sync(&self) -> bool {
        self.sync.needs_batch() || !self.dirty_acks.is_empty() || self.delivered.rewrite_pending()
    }

    /// Takes and runs one batch with blocking syscalls (tests, tools, clean shutdown);
    /// a failed one is reported failed (its error returned).
    pub fn sync_all_blocking(&mut self) -> io::Result<()> {
        if let Some(batch) = self.take_sync_batch()? {
            if let Err(e) = batch.run_blocking() {
                self.sync_failed(batch.seq());
                return Err(e);
            }
            self.sync_completed(batch.seq());
        }
        Ok(())
    }
}

/// What [`QueueStore::prepare_sync`] readied for [`QueueStore::take_prepared`].
pub(crate) struct PreparedSync {
    /// The queue's directory, opened when its entries changed.
    dir: Option<Arc<File>>,
}
