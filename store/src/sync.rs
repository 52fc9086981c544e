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
//!
//! # When a batch fails
//!
//! The caller reports a batch whose fsync failed (or that it never ran) with
//! [`crate::QueueStore::sync_failed`]. What a failed `fdatasync` leaves (the 2018
//! "fsyncgate", PostgreSQL's and the kernel's conclusions since): the pages whose
//! write-back failed may be marked clean and never written again, and the error is
//! reported once per open file description, so the next fsync of the same file
//! returns success for them. Nothing appended to a file of the batch before the
//! failure is known to be on disk, and no later fsync of that file can say so: not
//! the batch's appends, not those made while it ran (they would be in the next batch
//! with the same file), and not an overlapping batch's. Hence:
//!
//! - every append made so far is lost as far as the caller knows: `sync_failed`
//!   returns the latest append seq, and the caller must not confirm any append up to
//!   it that it has not confirmed yet (the broker nacks every publish waiting);
//! - the write segment is closed and the next append starts a new file, so an
//!   append that a later batch confirms never shares a file (or a page) with bytes
//!   whose write-back failed; after a crash the old segment may hold a damaged or
//!   zeroed span where the failed writes were (recovery skips or cuts it, see
//!   `recovery`), and every confirmed append after it is in a later segment;
//! - files that were written before the failure are never reused as spare segments
//!   (their blocks may be the bad ones); the directory is synced again by the next
//!   batch, and the `delivered` file's unclean state is written again so that a
//!   later fsync writes it for sure;
//! - acks in a failed ack-file write may be lost at a crash: those messages come back
//!   (at-least-once, as after any crash before a commit). Ack files are not rolled:
//!   an ack lost is a redelivery, never a loss.
//!
//! `synced_seq` is the settled point: every append up to it is on disk, or a
//! `sync_failed` reported it lost before `synced_seq` passed it. A failed batch
//! settles like a completed one, so later successful batches move `synced_seq` on; a
//! caller that confirms appends as `synced_seq` passes them and nacks what
//! `sync_failed` returns (before confirming anything more) never confirms a lost one.
//!
//! Preparing a batch (buffered acks written, the directory opened) can fail too:
//! then nothing is taken, and everything stays for the next batch.

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

    /// Syncs everything with blocking syscalls. On error report the batch with
    /// [`crate::QueueStore::sync_failed`], never retry it: after a failed fsync the
    /// kernel may already have marked the pages clean (the 2018 "fsyncgate"), so a
    /// retry would report durability that is not there (see the module docs).
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
    /// The settled point (see the module docs).
    pub synced_seq: AppendSeq,
    /// Batches handed out and not settled, oldest first: (seq, settled).
    outstanding: VecDeque<(AppendSeq, bool)>,
    /// Rolled-over segments not yet in a batch.
    pub closed_dirty: Vec<Arc<File>>,
    /// The current write segment has appends not yet in a batch.
    pub writer_dirty: bool,
    /// Files were created in the directory since the last batch.
    pub dir_dirty: bool,
}

/// Upper bound on batches taken and not settled. Reaching it is a bug of the caller
/// (batches taken and never reported, with `sync_completed` or `sync_failed`): a new
/// batch is refused with an error ([`SyncState::check_room`]) rather than memory
/// growing, and the caller handles that as any failure to prepare a sync.
pub const SYNC_BATCHES_IN_FLIGHT_MAX: usize = 1024;

impl SyncState {
    /// Whether another batch may be taken; the error to report when not.
    pub fn check_room(&self) -> io::Result<()> {
        if self.outstanding.len() < SYNC_BATCHES_IN_FLIGHT_MAX {
            return Ok(());
        }
        Err(io::Error::other(format!(
            "{SYNC_BATCHES_IN_FLIGHT_MAX} sync batches taken and never reported done or failed"
        )))
    }

    /// Builds a batch from the collected files, or None if there is nothing to sync.
    /// The caller checked [`Self::check_room`].
    pub fn make_batch(&mut self, mut files: Vec<Arc<File>>, dir: Option<Arc<File>>) -> Option<SyncBatch> {
        files.append(&mut self.closed_dirty);
        self.writer_dirty = false;
        self.dir_dirty = false;
        if files.is_empty() && dir.is_none() {
            return None;
        }
        debug_assert!(self.check_room().is_ok(), "make_batch without check_room");
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
        self.settle(seq);
    }

    /// Settles the failed batch with `seq`; returns the seq up to which appends are
    /// lost (see the module docs). The directory goes into the next batch again.
    pub fn failed(&mut self, seq: AppendSeq) -> AppendSeq {
        self.settle(seq);
        self.dir_dirty = true;
        self.append_seq
    }

    fn settle(&mut self, seq: AppendSeq) {
        match self.outstanding.iter_mut().find(|(s, done)| *s == seq && !*done) {
            Some(entry) => entry.1 = true,
            None => panic!("sync batch {seq:?} reported but not taken, or reported twice"),
        }
        while let Some(&(s, true)) = self.outstanding.front() {
            self.synced_seq = self.synced_seq.max(s);
            self.outstanding.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(s: &mut SyncState) -> Option<SyncBatch> {
        s.append_seq.0 += 1;
        s.dir_dirty = true;
        let dir = Arc::new(File::open(".").unwrap());
        s.check_room().ok()?;
        s.make_batch(Vec::new(), Some(dir))
    }

    #[test]
    fn a_failed_batch_settles_like_a_completed_one() {
        let mut s = SyncState::default();
        let b1 = batch(&mut s).unwrap();
        let b2 = batch(&mut s).unwrap();
        let b3 = batch(&mut s).unwrap();
        assert_eq!(s.failed(b2.seq()), AppendSeq(3), "everything appended so far is lost");
        assert!(s.dir_dirty, "the directory is synced again");
        assert_eq!(s.synced_seq, AppendSeq(0), "b1 is not settled yet");
        s.completed(b1.seq());
        assert_eq!(s.synced_seq, AppendSeq(2));
        s.completed(b3.seq());
        assert_eq!(s.synced_seq, AppendSeq(3));
        assert!(s.outstanding.is_empty());
    }

    #[test]
    fn batches_never_reported_are_refused_at_the_bound_with_an_error() {
        let mut s = SyncState::default();
        let taken: Vec<SyncBatch> = (0..SYNC_BATCHES_IN_FLIGHT_MAX)
            .map(|_| batch(&mut s).unwrap())
            .collect();
        assert!(batch(&mut s).is_none());
        assert!(s.check_room().is_err());
        s.failed(taken[0].seq());
        assert!(s.check_room().is_ok(), "a settled batch makes room");
    }
}
