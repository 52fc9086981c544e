//! Group commit, sans-IO: the store says which files are dirty, the caller syncs them.
//!
//! Flow: appends bump the append sequence number; [`crate::QueueStore::take_sync_batch`]
//! returns a [`SyncBatch`] with every file dirtied since the previous batch and the
//! sequence number it covers; the caller runs `fdatasync` on them (today
//! [`SyncBatch::run_blocking`], later through io_uring) and reports back with
//! [`crate::QueueStore::sync_completed`]. Many appends, one batch, one fdatasync per
//! dirty file.
//!
//! Why no `msync`: the segment is a `MAP_SHARED` mapping of the file, so its dirty pages
//! ARE the file's page-cache pages; `fdatasync(fd)` writes back every dirty page of the
//! file, however it was dirtied. On Linux `msync(MS_SYNC)` is itself implemented as
//! `vfs_fsync_range` over the mapped range, i.e. the same write-back, so calling it
//! first would only sync twice. (`MS_ASYNC` is a no-op since 2.6.19.)
//!
//! Why the directory is in a batch: a new segment or ack file is only durable once its
//! directory entry is, and `fdatasync` of the file does not promise that.
//!
//! Batches may overlap (a second batch taken while the first is still syncing); the
//! durable point only advances past a batch once every earlier batch completed, since a
//! later batch does not contain the files of an earlier one.

use std::collections::VecDeque;
use std::fs::File;
use std::io;
use std::sync::Arc;

/// Sequence number of appends: the n-th append since open has seq n.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct AppendSeq(pub u64);

/// Files to `fdatasync` for one group commit. The handles are shared (`Arc`), so they
/// stay valid even if the store deletes a segment meanwhile (syncing a deleted file is
/// harmless).
#[derive(Debug)]
pub struct SyncBatch {
    seq: AppendSeq,
    files: Vec<Arc<File>>,
    dir: Option<Arc<File>>,
}

impl SyncBatch {
    /// Appends up to and including this seq are durable once the batch has run.
    pub fn seq(&self) -> AppendSeq {
        self.seq
    }

    /// The data files to fdatasync.
    pub fn files(&self) -> &[Arc<File>] {
        &self.files
    }

    /// The queue directory, to fsync after the files when new files were created.
    pub fn dir(&self) -> Option<&Arc<File>> {
        self.dir.as_ref()
    }

    /// Syncs everything with blocking syscalls. On error the store must be considered
    /// failed: after a failed fsync the kernel may already have marked the pages clean
    /// (the 2018 "fsyncgate"), so retrying would report durability that is not there.
    pub fn run_blocking(&self) -> io::Result<()> {
        for f in &self.files {
            f.sync_data()?;
        }
        if let Some(d) = &self.dir {
            d.sync_all()?;
        }
        Ok(())
    }
}

/// Bookkeeping of what is dirty and what is durable.
#[derive(Debug, Default)]
pub(crate) struct SyncState {
    pub append_seq: AppendSeq,
    pub synced_seq: AppendSeq,
    /// Batches handed out and not completed, oldest first: (seq, completed).
    outstanding: VecDeque<(AppendSeq, bool)>,
    /// Rolled-over segments not yet in a batch.
    pub closed_dirty: Vec<Arc<File>>,
    /// The current write segment has appends not yet in a batch.
    pub writer_dirty: bool,
    /// Files were created in the directory since the last batch.
    pub dir_dirty: bool,
}

/// Upper bound on batches taken and not completed: a caller that never completes them
/// is a bug, caught here rather than by memory growth.
pub const SYNC_BATCHES_IN_FLIGHT_MAX: usize = 1024;

impl SyncState {
    /// Builds a batch from the collected files, or None if there is nothing to sync.
    pub fn make_batch(&mut self, mut files: Vec<Arc<File>>, dir: Option<Arc<File>>) -> Option<SyncBatch> {
        files.append(&mut self.closed_dirty);
        self.writer_dirty = false;
        self.dir_dirty = false;
        if files.is_empty() && dir.is_none() {
            return None;
        }
        assert!(
            self.outstanding.len() < SYNC_BATCHES_IN_FLIGHT_MAX,
            "sync batches taken but never completed"
        );
        self.outstanding.push_back((self.append_seq, false));
        Some(SyncBatch {
            seq: self.append_seq,
            files,
            dir,
        })
    }

    /// Whether there is anything a new batch could cover.
    pub fn needs_batch(&self) -> bool {
        self.writer_dirty || self.dir_dirty || !self.closed_dirty.is_empty()
    }

    /// Marks the batch with `seq` done and advances the durable point.
    pub fn completed(&mut self, seq: AppendSeq) {
        match self.outstanding.iter_mut().find(|(s, done)| *s == seq && !*done) {
            Some(entry) => entry.1 = true,
            None => panic!("sync_completed({seq:?}) for a batch that was not taken or already completed"),
        }
        while let Some(&(s, true)) = self.outstanding.front() {
            self.synced_seq = self.synced_seq.max(s);
            self.outstanding.pop_front();
        }
    }
}
