//! The `running` marker of a vhost folder: present (and durable) from the moment
//! the vhost's stores open until they all closed cleanly, so that the next open
//! knows whether the last stop was clean.
//!
//! Why a marker of its own: each queue's `delivered` file (queue.rs) says
//! "unclean" only from its first delivery after open, and that write is made
//! durable by the queue's next group commit. A power loss before that commit
//! left the file saying "clean" with the mark of the previous clean close, and
//! a message delivered since came back without the redelivered flag (found by
//! the core's simulation, `sim::redelivered_flag_after_power_loss`). The marker
//! is synced, with its directory, before the vhost serves anything, so a stop
//! that did not remove it is always seen; the caller then treats every
//! recovered message as possibly delivered, as RabbitMQ does after an unclean
//! stop (its queue index cannot know either).
//!
//! Order at a clean stop: every store of the vhost is closed (synced) first, the
//! marker is removed last, and the removal is synced too. A crash in between
//! leaves the marker: the next open flags more than it must, never less.

use std::fs::{File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};

/// The marker file's name in a vhost folder.
pub const RUNNING_FILE: &str = "running";

/// The marker, held while the vhost is open. Dropping it without
/// [`Running::release`] leaves the file: the stop counts as unclean.
#[derive(Debug)]
pub struct Running {
    dir: PathBuf,
    /// The previous stop was unclean (the marker was there at open).
    unclean: bool,
}

impl Running {
    /// Creates the marker in `dir` (which must exist) and makes it durable: the
    /// file and the directory entry are synced before this returns.
    pub fn acquire(dir: &Path) -> io::Result<Running> {
        let path = dir.join(RUNNING_FILE);
        let unclean = path.exists();
        // Synced even when it was there already: a marker written by a run that
        // died before its sync may not be on the disk yet.
        OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)?
            .sync_all()?;
        if !unclean {
            crate::changes::set_len(&path, 0);
        }
        File::open(dir)?.sync_all()?;
        Ok(Running {
            dir: dir.to_path_buf(),
            unclean,
        })
    }

    /// Whether the marker was found at [`Self::acquire`]: the previous run did
    /// not stop cleanly (or never got to remove it).
    pub fn previous_stop_unclean(&self) -> bool {
        self.unclean
    }

    /// Clean stop, after every store of the vhost closed: removes the marker and
    /// syncs the directory.
    pub fn release(self) -> io::Result<()> {
        match crate::changes::remove_file(&self.dir.join(RUNNING_FILE)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        File::open(&self.dir)?.sync_all()
    }
}

#[cfg(test)]
mod tests {
    use super::{Running, RUNNING_FILE};

    #[test]
    fn a_fresh_folder_was_stopped_cleanly_and_the_marker_is_there_while_open() {
        let dir = tempfile::tempdir().unwrap();
        let r = Running::acquire(dir.path()).unwrap();
        assert!(!r.previous_stop_unclean());
        assert!(dir.path().join(RUNNING_FILE).exists());
    }

    #[test]
    fn release_removes_the_marker_so_the_next_open_is_clean() {
        let dir = tempfile::tempdir().unwrap();
        Running::acquire(dir.path()).unwrap().release().unwrap();
        assert!(!dir.path().join(RUNNING_FILE).exists());
        assert!(!Running::acquire(dir.path()).unwrap().previous_stop_unclean());
    }

    #[test]
    fn a_marker_left_by_a_crash_makes_the_next_open_unclean_until_a_clean_stop() {
        let dir = tempfile::tempdir().unwrap();
        drop(Running::acquire(dir.path()).unwrap()); // kill -9: no release
        let r = Running::acquire(dir.path()).unwrap();
        assert!(r.previous_stop_unclean());
        // Crashed again: still unclean.
        drop(r);
        let r = Running::acquire(dir.path()).unwrap();
        assert!(r.previous_stop_unclean());
        r.release().unwrap();
        assert!(!Running::acquire(dir.path()).unwrap().previous_stop_unclean());
    }

    #[test]
    fn release_of_a_marker_removed_meanwhile_is_no_error() {
        let dir = tempfile::tempdir().unwrap();
        let r = Running::acquire(dir.path()).unwrap();
        std::fs::remove_file(dir.path().join(RUNNING_FILE)).unwrap();
        r.release().unwrap();
    }

    #[test]
    fn acquire_in_a_missing_folder_fails() {
        let dir = tempfile::tempdir().unwrap();
        assert!(Running::acquire(&dir.path().join("gone")).is_err());
    }
}
