//! The replication seam (`docs/cluster.md`, step 2): every durable change the
//! store (and the broker, through the helpers here) makes to the data
//! directory is told, as a small [`Change`], to the [`ChangeSink`] installed
//! on the writing thread. With none installed (clustering off) a change costs
//! one thread-local flag test, inlined; nothing is built or copied.
//!
//! A change names a file and a region, not its bytes, when the bytes are in a
//! file already (the segment path: a message is copied once, into the
//! mapping). The sink reads them back from the file when it forwards the
//! change (LavinMQ does the same from its mmap'd files), so it must do so
//! before a later change moves or cuts that file: the leader's recorder
//! (`cluster::record`) resolves every pending region before any change that
//! is not itself a region. Small writes whose bytes are at hand are given
//! with them ([`Change::WroteBytes`], [`Change::Replaced`]).
//!
//! What is not told: files under a vhost's `transient/` folder (the sink
//! drops them by path: they are wiped at start), temp files renamed over a
//! file (told as the file [`Change::Replaced`]), fsyncs of directories.

use std::cell::{Cell, RefCell};
use std::fs::File;
use std::io;
use std::path::Path;

/// One durable change to a file of the data directory. Paths are as the
/// writer named them (absolute, or relative to its working directory).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change<'a> {
    /// `len` bytes at `offset` of `path` were written (the sink reads them).
    Wrote {
        path: &'a Path,
        offset: u64,
        len: u64,
    },
    /// `bytes` were written at `offset` of `path`.
    WroteBytes {
        path: &'a Path,
        offset: u64,
        bytes: &'a [u8],
    },
    /// `path` is now exactly `bytes` (an atomic replace, or a new small file).
    Replaced {
        path: &'a Path,
        bytes: &'a [u8],
    },
    /// `path`'s length was set (cut, or grown with zeros: `fallocate`), the
    /// file made if it was not there.
    SetLen {
        path: &'a Path,
        len: u64,
    },
    Renamed {
        from: &'a Path,
        to: &'a Path,
    },
    /// A file, or a folder with everything in it, was removed.
    Removed {
        path: &'a Path,
    },
    /// A file is about to be moved, cut or removed: regions told without
    /// their bytes must be read now (changes are told after they are made;
    /// this one comes before).
    Barrier,
    /// A group commit: every change told before is durable on this node.
    Synced,
}

/// Where a thread's changes go (the leader's recorder; a test's).
pub trait ChangeSink {
    fn change(&mut self, c: Change<'_>);
}

thread_local! {
    static ON: Cell<bool> = const { Cell::new(false) };
    static SINK: RefCell<Option<Box<dyn ChangeSink>>> = const { RefCell::new(None) };
}

/// Sends this thread's changes to `sink` from now on; returns the one before.
pub fn install(sink: Box<dyn ChangeSink>) -> Option<Box<dyn ChangeSink>> {
    ON.with(|on| on.set(true));
    SINK.with(|s| s.borrow_mut().replace(sink))
}

/// Stops telling this thread's changes; returns the sink.
pub fn uninstall() -> Option<Box<dyn ChangeSink>> {
    ON.with(|on| on.set(false));
    SINK.with(|s| s.borrow_mut().take())
}

/// Whether this thread's changes are told: test it before building a
/// [`Change`] (the hot path's only cost when clustering is off).
#[inline(always)]
pub fn recording() -> bool {
    ON.with(Cell::get)
}

/// Tells `c` to this thread's sink, if any.
#[cold]
#[inline(never)]
pub fn tell(c: Change<'_>) {
    SINK.with(|s| {
        if let Some(sink) = s.borrow_mut().as_mut() {
            sink.change(c);
        }
    })
}

/// `n` bytes were just appended to `file` (opened to append at `path`, by
/// this thread alone): told as written where they end, found from the
/// file's length (one `fstat`, only while recording).
pub fn appended(path: &Path, file: &File, n: usize) {
    if !recording() || n == 0 {
        return;
    }
    match file.metadata() {
        Ok(m) => tell(Change::Wrote {
            path,
            offset: m.len().saturating_sub(n as u64),
            len: n as u64,
        }),
        // The append stands but cannot be placed: a follower then differs until
        // its next full sync; say so.
        Err(e) => tracing::error!(path = %path.display(), error = %e, "cannot place an append for replication"),
    }
}

/// Before a file is moved, cut or removed (see [`Change::Barrier`]).
#[inline]
pub fn barrier() {
    if recording() {
        tell(Change::Barrier);
    }
}

/// `std::fs::rename`, told.
pub fn rename(from: &Path, to: &Path) -> io::Result<()> {
    barrier();
    std::fs::rename(from, to)?;
    if recording() {
        tell(Change::Renamed { from, to });
    }
    Ok(())
}

/// `std::fs::remove_file`, told.
pub fn remove_file(path: &Path) -> io::Result<()> {
    barrier();
    std::fs::remove_file(path)?;
    if recording() {
        tell(Change::Removed { path });
    }
    Ok(())
}

/// `std::fs::remove_dir_all`, told.
pub fn remove_dir_all(path: &Path) -> io::Result<()> {
    barrier();
    std::fs::remove_dir_all(path)?;
    if recording() {
        tell(Change::Removed { path });
    }
    Ok(())
}

/// `path` was set to `len` bytes (`set_len`, `fallocate`); a cut comes
/// after a [`barrier`].
#[inline]
pub fn set_len(path: &Path, len: u64) {
    if recording() {
        tell(Change::SetLen { path, len });
    }
}

/// `bytes` were written at `offset` of `path`.
#[inline]
pub fn wrote_bytes(path: &Path, offset: u64, bytes: &[u8]) {
    if recording() {
        tell(Change::WroteBytes { path, offset, bytes });
    }
}

/// `path` is now `bytes`.
#[inline]
pub fn replaced(path: &Path, bytes: &[u8]) {
    if recording() {
        tell(Change::Replaced { path, bytes });
    }
}

/// A group commit ran: what was told before it is durable.
#[inline]
pub fn synced() {
    if recording() {
        tell(Change::Synced);
    }
}
