//! Setting unreadable bytes aside: before recovery skips or cuts bytes of a segment
//! that do not read as records, it keeps a copy next to it, so damage never makes
//! the store destroy the only copy of anything (issue 15, defect 5: the bytes cut at
//! the first bad record were gone).
//!
//! Names, all starting `msgs.<id>.corrupt` so one glob finds them:
//! - `msgs.<id>.corrupt`: a whole segment whose header is not ours (moved aside);
//! - `msgs.<id>.corrupt.<offset>`: a copy of the unreadable bytes starting at
//!   `offset` (10 digits) of the segment.
//!
//! An existing file is never replaced: segment ids start at 1 again when a queue
//! reopens empty, so a later `msgs.1` can be damaged too; a name in use gets `.2`,
//! `.3`, ... A copy already holding exactly the same bytes is the same damage seen
//! by an earlier open (a skipped span stays in the segment file, so every open
//! finds it again): it is reported as set aside before, and not written again.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::meta::write_atomic;
use crate::segment::segment_path;
use crate::SegmentId;

/// Names tried for one span or segment before giving up (a limit on the files
/// damage at one place can make).
const NAMES_MAX: u32 = 64;

/// Where unreadable bytes were put.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SetAside {
    /// The file.
    pub path: PathBuf,
    /// An earlier open wrote it (the same bytes); this one did not.
    pub earlier: bool,
}

fn name(base: PathBuf, n: u32) -> PathBuf {
    if n == 1 {
        return base;
    }
    let mut p = base.into_os_string();
    p.push(format!(".{n}"));
    PathBuf::from(p)
}

fn corrupt_base(dir: &Path, id: SegmentId, offset: Option<u32>) -> PathBuf {
    let mut p = segment_path(dir, id).into_os_string();
    p.push(".corrupt");
    if let Some(offset) = offset {
        p.push(format!(".{offset:010}"));
    }
    PathBuf::from(p)
}

fn too_many(base: &Path) -> io::Error {
    io::Error::other(format!("{NAMES_MAX} files named {} already exist", base.display()))
}

/// Copies `bytes`, found at `offset` of segment `id`, to a file beside it, durably
/// (written, synced, renamed into place, directory synced) before the caller cuts
/// or skips them.
pub(crate) fn copy_span(dir: &Path, id: SegmentId, offset: u32, bytes: &[u8]) -> io::Result<SetAside> {
    let base = corrupt_base(dir, id, Some(offset));
    for n in 1..=NAMES_MAX {
        let path = name(base.clone(), n);
        match fs::read(&path) {
            Ok(old) if old == bytes => return Ok(SetAside { path, earlier: true }),
            Ok(_) => continue,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                write_atomic(&path, bytes)?;
                return Ok(SetAside { path, earlier: false });
            }
            Err(e) => return Err(e),
        }
    }
    Err(too_many(&base))
}

/// Moves the whole segment file `id` aside (its header is not ours).
pub(crate) fn move_segment(dir: &Path, id: SegmentId) -> io::Result<PathBuf> {
    let base = corrupt_base(dir, id, None);
    for n in 1..=NAMES_MAX {
        let path = name(base.clone(), n);
        if !path.exists() {
            // (I1) in segment.rs: this directory is ours alone, so nothing can
            // take the name between the check and the rename.
            crate::changes::rename(&segment_path(dir, id), &path)?;
            return Ok(path);
        }
    }
    Err(too_many(&base))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_copy_is_written_once_and_never_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let a = copy_span(dir.path(), SegmentId(1), 40, b"bad bytes").unwrap();
        assert!(!a.earlier);
        assert_eq!(a.path, dir.path().join("msgs.0000000001.corrupt.0000000040"));
        let again = copy_span(dir.path(), SegmentId(1), 40, b"bad bytes").unwrap();
        assert_eq!(
            again,
            SetAside {
                earlier: true,
                ..a.clone()
            }
        );
        let other = copy_span(dir.path(), SegmentId(1), 40, b"other damage").unwrap();
        assert_eq!(other.path, dir.path().join("msgs.0000000001.corrupt.0000000040.2"));
        assert_eq!(fs::read(&a.path).unwrap(), b"bad bytes");

        fs::write(segment_path(dir.path(), SegmentId(3)), b"one").unwrap();
        let moved = move_segment(dir.path(), SegmentId(3)).unwrap();
        fs::write(segment_path(dir.path(), SegmentId(3)), b"two").unwrap();
        let second = move_segment(dir.path(), SegmentId(3)).unwrap();
        assert_eq!(moved, dir.path().join("msgs.0000000003.corrupt"));
        assert_eq!(second, dir.path().join("msgs.0000000003.corrupt.2"));
        assert_eq!(fs::read(moved).unwrap(), b"one");
    }
}
