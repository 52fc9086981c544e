//! The leader's recorder: what a thread's store tells it
//! (`ringmq_store::changes`) becomes numbered [`Op`]s in the replication log
//! ([`ReplLog`]) that every follower's [`super::leader::Session`] serves.
//!
//! A region of a file written by the store's hot path (a record in a
//! segment, acks appended) comes without its bytes: adjacent ones are joined
//! and kept pending, and read back from the file when they are flushed, so a
//! message is copied once by the store (into the mapping) and once more only
//! into the log that is sent. Pending regions are flushed at every group
//! commit ([`Change::Synced`]), past [`PENDING_BYTES_MAX`], and before any
//! other change, which is what keeps reading them later right: a rename,
//! cut or removal told after a region can only run once that region's bytes
//! are read, while the file still holds them under the name they were
//! written to. A later write over a pending region (only the `delivered`
//! mark and segment headers are rewritten, and they come with their bytes)
//! gives the region the newer bytes, which the later change sets anyway.
//!
//! Paths are made relative to the data directory; changes outside it, and
//! to what is not replicated (a vhost's `transient/` and its
//! `transient.trash.N` leftovers, the `.lock`), are dropped.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use ringmq_store::changes::{Change, ChangeSink};

use super::log::ReplLog;
use super::wire::Op;

/// Bytes of regions kept pending before they are read without waiting for
/// the next group commit.
pub const PENDING_BYTES_MAX: u64 = 4 << 20;

/// Whether a path of the data directory (its components) is replicated: not
/// the lock, not a vhost's `transient/` folder or the `transient.trash.N`
/// ones it is set aside as at start (wiped: `VHost::retire_transient`).
pub fn replicated(parts: &[&str]) -> bool {
    let skipped = |p: &&str| *p == "transient" || p.starts_with("transient.trash.");
    !parts.is_empty() && !parts.iter().take(2).any(skipped) && parts != [".lock"]
}

/// A region written, to be read back from its file.
#[derive(Debug)]
struct Region {
    path: String,
    at: PathBuf,
    offset: u64,
    len: u64,
}

/// One thread's recorder ([`ChangeSink`]) into a log shared by the threads.
#[derive(Debug)]
pub struct Recorder {
    root: PathBuf,
    log: Arc<Mutex<ReplLog>>,
    pending: Vec<Region>,
    pending_bytes: u64,
    /// The last change of this thread's last group commit (shared with the
    /// node's confirm gate: `cluster::node`).
    synced_seq: Arc<AtomicU64>,
    /// Woken at every group commit (the followers' connections send).
    grew: Option<Arc<tokio::sync::Notify>>,
}

impl Recorder {
    pub fn new(root: &Path, log: Arc<Mutex<ReplLog>>) -> Recorder {
        Recorder {
            root: root.to_path_buf(),
            log,
            pending: Vec::new(),
            pending_bytes: 0,
            synced_seq: Arc::new(AtomicU64::new(0)),
            grew: None,
        }
    }

    /// Wakes `grew`'s waiters at every group commit.
    pub fn waking(mut self, grew: Arc<tokio::sync::Notify>) -> Recorder {
        self.grew = Some(grew);
        self
    }

    /// [`Self::synced_seq`], readable once the recorder is installed.
    pub fn synced_handle(&self) -> Arc<AtomicU64> {
        self.synced_seq.clone()
    }

    /// The last change covered by this thread's last group commit: a confirm
    /// of what that commit synced waits for followers to hold it.
    pub fn synced_seq(&self) -> u64 {
        self.synced_seq.load(Ordering::Acquire)
    }

    /// `path` relative to the data directory with `/` separators, if it is a
    /// replicated file there.
    pub fn relative(&self, path: &Path) -> Option<String> {
        let rel = path.strip_prefix(&self.root).ok()?;
        let mut parts = Vec::new();
        for c in rel.components() {
            match c {
                Component::Normal(s) => parts.push(s.to_str()?),
                _ => return None,
            }
        }
        replicated(&parts).then(|| parts.join("/"))
    }

    fn append(&mut self, op: Op) {
        let seq = self.log.lock().expect("the replication log's lock").append(op);
        debug_assert!(seq > 0);
    }

    /// Reads every pending region into the log, in order.
    pub fn flush(&mut self) {
        let mut open: Option<(PathBuf, File)> = None;
        for r in std::mem::take(&mut self.pending) {
            if open.as_ref().is_none_or(|(p, _)| *p != r.at) {
                open = File::open(&r.at).ok().map(|f| (r.at.clone(), f));
            }
            let mut bytes = vec![0u8; r.len as usize];
            let read = match &open {
                Some((_, f)) => f.read_exact_at(&mut bytes, r.offset),
                None => Err(std::io::ErrorKind::NotFound.into()),
            };
            if let Err(e) = read {
                // Regions are read before their file can move or shrink: this is
                // a bug, or someone else's hand in the data directory. The
                // follower then differs until its next full sync.
                tracing::error!(path = r.path, offset = r.offset, len = r.len, error = %e, "cannot read a change back");
                debug_assert!(false, "a pending region of {} cannot be read: {e}", r.path);
                continue;
            }
            self.append(Op::Write {
                path: r.path,
                offset: r.offset,
                bytes,
            });
        }
        self.pending_bytes = 0;
    }

    fn wrote(&mut self, at: &Path, offset: u64, len: u64) {
        let Some(path) = self.relative(at) else { return };
        self.pending_bytes += len;
        match self.pending.last_mut() {
            Some(last) if last.path == path && last.offset + last.len == offset => last.len += len,
            _ => self.pending.push(Region {
                path,
                at: at.to_path_buf(),
                offset,
                len,
            }),
        }
        if self.pending_bytes > PENDING_BYTES_MAX {
            self.flush();
        }
    }

    fn op(&self, c: Change<'_>) -> Option<Op> {
        let rel = |p: &Path| self.relative(p);
        Some(match c {
            Change::Wrote { .. } | Change::Barrier | Change::Synced => return None,
            Change::WroteBytes { path, offset, bytes } => Op::Write {
                path: rel(path)?,
                offset,
                bytes: bytes.to_vec(),
            },
            Change::Replaced { path, bytes } => Op::Replace {
                path: rel(path)?,
                bytes: bytes.to_vec(),
            },
            Change::SetLen { path, len } => Op::Truncate { path: rel(path)?, len },
            Change::Removed { path } => Op::Remove { path: rel(path)? },
            Change::Renamed { from, to } => match (rel(from), rel(to)) {
                (Some(from), Some(to)) => Op::Rename { from, to },
                (None, None) => return None,
                // Into or out of what is not replicated: as a removal, or as
                // a file that appears (not made by the store: a bug).
                (Some(path), None) => Op::Remove { path },
                (None, Some(to)) => {
                    tracing::error!(path = to, "a file renamed into the replicated files from outside");
                    return None;
                }
            },
        })
    }
}

impl ChangeSink for Recorder {
    fn change(&mut self, c: Change<'_>) {
        match c {
            Change::Wrote { path, offset, len } => self.wrote(path, offset, len),
            Change::Synced => {
                self.flush();
                let last = self.log.lock().expect("the replication log's lock").last_seq();
                self.synced_seq.store(last, Ordering::Release);
                if let Some(grew) = &self.grew {
                    grew.notify_waiters();
                }
            }
            c => {
                self.flush();
                if let Some(op) = self.op(c) {
                    self.append(op);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recorder(root: &Path) -> (Recorder, Arc<Mutex<ReplLog>>) {
        let log = Arc::new(Mutex::new(ReplLog::new(usize::MAX)));
        (Recorder::new(root, log.clone()), log)
    }

    fn ops(log: &Arc<Mutex<ReplLog>>) -> Vec<Op> {
        log.lock().unwrap().since(1, usize::MAX, usize::MAX).unwrap()
    }

    /// Adjacent regions become one write, read at the group commit; a gap
    /// or another file starts a new one; nothing reaches the log before.
    #[test]
    fn adjacent_regions_are_joined_and_read_at_the_commit() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("v/a"), dir.path().join("v/b"));
        std::fs::create_dir_all(dir.path().join("v")).unwrap();
        std::fs::write(&a, b"0123456789").unwrap();
        std::fs::write(&b, b"abcdef").unwrap();
        let (mut r, log) = recorder(dir.path());
        let wrote = |path, offset, len| Change::Wrote { path, offset, len };
        for c in [
            wrote(&a, 0, 2),
            wrote(&a, 2, 3),
            wrote(&a, 7, 1),
            wrote(&b, 1, 2),
            wrote(&b, 3, 1),
        ] {
            r.change(c);
        }
        assert!(ops(&log).is_empty(), "pending until the commit");
        r.change(Change::Synced);
        let w = |path: &str, offset, bytes: &[u8]| Op::Write {
            path: path.into(),
            offset,
            bytes: bytes.to_vec(),
        };
        let want = vec![w("v/a", 0, b"01234"), w("v/a", 7, b"7"), w("v/b", 1, b"bcd")];
        assert_eq!(ops(&log), want);
        assert_eq!(r.synced_seq(), 3);
    }

    /// A barrier reads what is pending before the file moves; what is not
    /// replicated is dropped, and a rename out of the replicated files is a
    /// removal.
    #[test]
    fn a_barrier_reads_first_and_transient_files_are_left_out() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("v/transient")).unwrap();
        std::fs::write(root.join("v/q"), b"xy").unwrap();
        let (mut r, log) = recorder(root);
        r.change(Change::Wrote {
            path: &root.join("v/q"),
            offset: 0,
            len: 2,
        });
        r.change(Change::Barrier);
        std::fs::remove_file(root.join("v/q")).unwrap();
        r.change(Change::Removed {
            path: &root.join("v/q"),
        });
        for path in [
            root.join("v/transient/t"),
            root.join("v/transient.trash.3/t"),
            root.join(".lock"),
        ] {
            r.change(Change::Replaced {
                path: &path,
                bytes: b"no",
            });
        }
        r.change(Change::Renamed {
            from: &root.join("v/x"),
            to: &root.join("v/transient/x"),
        });
        r.change(Change::Replaced {
            path: Path::new("/elsewhere/f"),
            bytes: b"no",
        });
        let want = vec![
            Op::Write {
                path: "v/q".into(),
                offset: 0,
                bytes: b"xy".to_vec(),
            },
            Op::Remove { path: "v/q".into() },
            Op::Remove { path: "v/x".into() },
        ];
        assert_eq!(ops(&log), want);
    }
}
