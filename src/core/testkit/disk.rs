//! Power loss in process: the data directory as it was at the last durability
//! point, restored at a "crash".
//!
//! The store has no fault-injecting file layer (the real power-loss test,
//! `tests/power_loss.rs`, freezes a loop-mounted file system and needs root).
//! Here the simulation copies the whole data directory into a snapshot each time
//! the broker may have made something durable: a group commit completed
//! (`handle_sync_done`), or a step that syncs inline (declares and deletes write
//! the definitions log with an fdatasync, delayed messages fired sync their
//! copies and acks, an open rewrites a stale delivered mark, an expired queue
//! is deleted). A crash drops the broker without `close` and puts the snapshot
//! back: every write after the last durability point is lost, every write
//! before it kept.
//!
//! Limits of the model (what it cannot find):
//! - writes before the snapshot that were never synced are all kept (the page
//!   cache happened to flush them): no torn writes, no lost prefix of a file, no
//!   reordering between files or between a file and its directory entry;
//! - the snapshot is taken between steps, so an inline sync and a later unsynced
//!   write within the same step are kept together;
//! - so it checks what is promised at a sync point (confirms, commit-oks, the
//!   group commit's coverage), not the store's recovery from partial writes,
//!   which `store/tests` and `tests/power_loss.rs` cover.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// The snapshot of a data directory at its last durability point.
pub struct Disk {
    data: PathBuf,
    snapshot: tempfile::TempDir,
    /// Snapshots taken (for failure messages).
    taken: u64,
}

impl Disk {
    /// Takes the first snapshot of `data` (which must exist).
    pub fn new(data: &Path) -> io::Result<Disk> {
        let mut d = Disk {
            data: data.to_path_buf(),
            snapshot: tempfile::tempdir()?,
            taken: 0,
        };
        d.snapshot()?;
        Ok(d)
    }

    /// Everything in the data directory now counts as on disk.
    pub fn snapshot(&mut self) -> io::Result<()> {
        let to = self.snapshot.path();
        fs::remove_dir_all(to)?;
        copy_tree(&self.data, to)?;
        self.taken += 1;
        Ok(())
    }

    /// Power loss: the data directory becomes the last snapshot. The broker
    /// must be dropped first (its files may still be mapped).
    pub fn crash(&mut self) -> io::Result<()> {
        fs::remove_dir_all(&self.data)?;
        copy_tree(self.snapshot.path(), &self.data)
    }

    pub fn snapshots_taken(&self) -> u64 {
        self.taken
    }
}

/// Copies `from` into a new directory `to`, recursively (regular files and
/// directories: the store makes nothing else).
pub(super) fn copy_tree(from: &Path, to: &Path) -> io::Result<()> {
    fs::create_dir_all(to)?;
    for entry in fs::read_dir(from)? {
        let entry = entry?;
        let kind = entry.file_type()?;
        let dest = to.join(entry.file_name());
        if kind.is_dir() {
            copy_tree(&entry.path(), &dest)?;
        } else if kind.is_file() {
            fs::copy(entry.path(), dest)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::Disk;

    #[test]
    fn a_crash_keeps_what_was_there_at_the_snapshot_and_nothing_after() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        std::fs::create_dir_all(data.join("q")).unwrap();
        std::fs::write(data.join("q/a"), b"synced").unwrap();
        let mut disk = Disk::new(&data).unwrap();
        std::fs::write(data.join("q/a"), b"synced, then more").unwrap();
        std::fs::write(data.join("q/b"), b"new").unwrap();
        disk.crash().unwrap();
        assert_eq!(std::fs::read(data.join("q/a")).unwrap(), b"synced");
        assert!(!data.join("q/b").exists());
        assert_eq!(disk.snapshots_taken(), 1);
    }
}
