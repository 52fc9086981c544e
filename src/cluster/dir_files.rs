//! [`Files`] over a directory on disk: what a follower applies its leader's
//! changes to, and what a leader lists and reads for a full sync. Paths are
//! relative with `/` separators and were checked by the codec
//! (`wire::check_path`); a write past [`FILE_MAX`] is refused, so a leader
//! cannot make a follower allocate without bound.

use std::collections::BTreeSet;
use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use super::files::Files;
use super::wire::{FileSum, Op};

/// The largest file a change may make (segments are far smaller).
pub const FILE_MAX: u64 = 1 << 40;

/// A data directory on disk; `skip` names top-level folders that are not
/// replicated, besides what `record::replicated` leaves out (a vhost's
/// transient queues, the lock).
#[derive(Debug)]
pub struct DirFiles {
    root: PathBuf,
    skip: Vec<String>,
    /// Files and folders changed since the last sync.
    dirty: BTreeSet<PathBuf>,
}

impl DirFiles {
    pub fn new(root: &Path, skip: &[&str]) -> DirFiles {
        DirFiles {
            root: root.to_path_buf(),
            skip: skip.iter().map(|s| s.to_string()).collect(),
            dirty: BTreeSet::new(),
        }
    }

    fn at(&self, path: &str) -> PathBuf {
        self.root.join(path)
    }

    fn walk(&self, dir: &Path, rel: &str, out: &mut Vec<FileSum>) -> io::Result<()> {
        let mut entries: Vec<_> = std::fs::read_dir(dir)?.collect::<Result<_, _>>()?;
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let name = e.file_name().to_string_lossy().into_owned();
            let path = if rel.is_empty() {
                name.clone()
            } else {
                format!("{rel}/{name}")
            };
            let kind = e.file_type()?;
            if !super::record::replicated(&path.split('/').collect::<Vec<_>>()) {
                continue;
            }
            if kind.is_dir() {
                if !(rel.is_empty() && self.skip.contains(&name)) {
                    self.walk(&e.path(), &path, out)?;
                }
            } else if kind.is_file() {
                let (len, crc32c) = crc_of(&e.path(), u64::MAX)?;
                out.push(FileSum { path, len, crc32c });
            }
        }
        Ok(())
    }

    fn open(&mut self, path: &str) -> io::Result<File> {
        let p = self.at(path);
        if let Some(parent) = p.parent() {
            if !parent.exists() {
                std::fs::create_dir_all(parent)?;
                self.dirty.insert(parent.to_path_buf());
            }
        }
        self.dirty.insert(p.clone());
        OpenOptions::new().create(true).write(true).truncate(false).open(p)
    }
}

/// The length of the first `max` bytes of `p` and their CRC32C.
fn crc_of(p: &Path, max: u64) -> io::Result<(u64, u32)> {
    let mut f = File::open(p)?.take(max);
    let mut buf = vec![0u8; 1 << 16];
    let (mut len, mut crc) = (0u64, 0u32);
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            return Ok((len, crc));
        }
        crc = crc32c::crc32c_append(crc, &buf[..n]);
        len += n as u64;
    }
}

impl Files for DirFiles {
    fn list(&self) -> Vec<FileSum> {
        let mut out = Vec::new();
        if let Err(e) = self.walk(&self.root, "", &mut out) {
            tracing::warn!(error = %e, dir = %self.root.display(), "cannot list the data directory for a sync");
        }
        out
    }

    fn read(&self, path: &str, offset: u64, len: u64) -> Vec<u8> {
        let Ok(f) = File::open(self.at(path)) else {
            return Vec::new();
        };
        let size = f.metadata().map_or(0, |m| m.len());
        let n = len.min(size.saturating_sub(offset)) as usize;
        let mut buf = vec![0u8; n];
        match f.read_exact_at(&mut buf, offset) {
            Ok(()) => buf,
            Err(_) => Vec::new(),
        }
    }

    fn crc_of_prefix(&self, path: &str, len: u64) -> Option<u32> {
        match crc_of(&self.at(path), len) {
            Ok((got, crc)) if got == len => Some(crc),
            _ => None,
        }
    }

    fn apply(&mut self, op: &Op) -> io::Result<()> {
        match op {
            Op::Write { path, offset, bytes } => {
                if offset.saturating_add(bytes.len() as u64) > FILE_MAX {
                    return Err(io::Error::other(format!("a write past {FILE_MAX} bytes into {path}")));
                }
                self.open(path)?.write_all_at(bytes, *offset)
            }
            Op::Replace { path, bytes } => {
                let tmp = format!("{path}.replica-tmp");
                let mut f = self.open(&tmp)?;
                f.set_len(0)?;
                std::io::Write::write_all(&mut f, bytes)?;
                f.sync_data()?;
                self.dirty.remove(&self.at(&tmp));
                std::fs::rename(self.at(&tmp), self.at(path))?;
                self.dirty.insert(self.at(path));
                Ok(())
            }
            Op::Truncate { path, len } => {
                if *len > FILE_MAX {
                    return Err(io::Error::other(format!("a length past {FILE_MAX} bytes for {path}")));
                }
                self.open(path)?.set_len(*len)
            }
            Op::Remove { path } if self.at(path).is_dir() => {
                std::fs::remove_dir_all(self.at(path))?;
                let inside = self.at(path);
                self.dirty.retain(|p| !p.starts_with(&inside));
                self.dirty.extend(inside.parent().map(Path::to_path_buf));
                Ok(())
            }
            Op::Rename { from, to } => {
                let (from, to) = (self.at(from), self.at(to));
                if let Some(parent) = to.parent() {
                    std::fs::create_dir_all(parent)?;
                }
                std::fs::rename(&from, &to)?;
                // What was dirty under the old name is synced under the new one.
                let moved: Vec<PathBuf> = self.dirty.iter().filter(|p| p.starts_with(&from)).cloned().collect();
                for p in moved {
                    self.dirty.remove(&p);
                    let rest = p.strip_prefix(&from).expect("filtered");
                    let renamed = if rest.as_os_str().is_empty() {
                        to.clone()
                    } else {
                        to.join(rest)
                    };
                    self.dirty.insert(renamed);
                }
                self.dirty.insert(to.clone());
                self.dirty.extend(from.parent().map(Path::to_path_buf));
                Ok(())
            }
            Op::Remove { path } => match std::fs::remove_file(self.at(path)) {
                Ok(()) => {
                    self.dirty.remove(&self.at(path));
                    if let Some(parent) = self.at(path).parent() {
                        self.dirty.insert(parent.to_path_buf());
                    }
                    Ok(())
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
                Err(e) => Err(e),
            },
        }
    }

    fn sync(&mut self) -> io::Result<()> {
        // Files first, then the folders whose entries changed (new files,
        // renames, removals), each folder once.
        let mut folders = BTreeSet::new();
        for p in std::mem::take(&mut self.dirty) {
            match File::open(&p) {
                Ok(f) => f.sync_all()?,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
            if let Some(parent) = p.parent() {
                folders.insert(parent.to_path_buf());
            }
        }
        for d in folders {
            if let Ok(f) = File::open(&d) {
                f.sync_all()?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::files::MemFiles;

    /// The same changes on disk and in memory give the same files, and the
    /// skipped folder is not listed.
    #[test]
    fn changes_on_disk_match_changes_in_memory() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("transient/q")).unwrap();
        std::fs::write(dir.path().join("transient/q/seg"), b"not replicated").unwrap();
        let mut disk = DirFiles::new(dir.path(), &["transient"]);
        let mut mem = MemFiles::default();
        let ops = [
            Op::Write {
                path: "v/q1/0001.seg".into(),
                offset: 0,
                bytes: b"hello".to_vec(),
            },
            Op::Write {
                path: "v/q1/0001.seg".into(),
                offset: 5,
                bytes: b" world".to_vec(),
            },
            Op::Write {
                path: "v/q1/0001.seg".into(),
                offset: 0,
                bytes: b"J".to_vec(),
            },
            Op::Replace {
                path: "v/defs.json".into(),
                bytes: b"{}".to_vec(),
            },
            Op::Replace {
                path: "v/defs.json".into(),
                bytes: b"{\"a\":1}".to_vec(),
            },
            Op::Write {
                path: "v/q2/0001.seg".into(),
                offset: 3,
                bytes: b"x".to_vec(),
            },
            Op::Truncate {
                path: "v/q1/0001.seg".into(),
                len: 8,
            },
            Op::Write {
                path: "v/q3/gone".into(),
                offset: 0,
                bytes: b"bye".to_vec(),
            },
            Op::Remove {
                path: "v/q3/gone".into(),
            },
            Op::Remove {
                path: "never/was".into(),
            },
        ];
        for op in &ops {
            disk.apply(op).unwrap();
            mem.apply(op).unwrap();
        }
        disk.sync().unwrap();
        assert_eq!(disk.list(), mem.list());
        assert_eq!(disk.read("v/q1/0001.seg", 0, 100), b"Jello wo");
        assert_eq!(disk.read("v/q2/0001.seg", 0, 100), b"\0\0\0x");
        assert_eq!(disk.crc_of_prefix("v/q1/0001.seg", 5), Some(crc32c::crc32c(b"Jello")));
        assert_eq!(disk.crc_of_prefix("v/q1/0001.seg", 50), None, "shorter than asked");
        let far = Op::Write {
            path: "v/big".into(),
            offset: FILE_MAX,
            bytes: b"x".to_vec(),
        };
        assert!(disk.apply(&far).is_err(), "a write past FILE_MAX");
    }
}
