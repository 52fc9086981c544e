//! What replication reads and writes of a data directory, as an interface:
//! the leader lists and reads its files for a full sync, a follower applies
//! changes ([`Op`]) to its own. The broker's will be the data directory on
//! disk (the `Files` seam of `docs/cluster.md`); [`MemFiles`] is the one the
//! state machines' tests use.

use std::collections::BTreeMap;

use super::wire::{FileSum, Op};

/// A data directory, as replication sees it.
pub trait Files {
    /// Every file with its length and CRC32C.
    fn list(&self) -> Vec<FileSum>;
    /// `len` bytes of `path` from `offset` (fewer at its end; none if it does
    /// not exist).
    fn read(&self, path: &str, offset: u64, len: u64) -> Vec<u8>;
    /// The CRC32C of the first `len` bytes of `path`.
    fn crc_of_prefix(&self, path: &str, len: u64) -> Option<u32>;
    /// Applies a change (the follower's side; the leader records its own
    /// as it makes them).
    fn apply(&mut self, op: &Op) -> std::io::Result<()>;
    /// Makes every change applied so far durable (before an ack says so).
    fn sync(&mut self) -> std::io::Result<()>;
}

/// Files in memory.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct MemFiles {
    pub files: BTreeMap<String, Vec<u8>>,
}

impl Files for MemFiles {
    fn list(&self) -> Vec<FileSum> {
        (self.files.iter())
            .map(|(path, b)| FileSum {
                path: path.clone(),
                len: b.len() as u64,
                crc32c: crc32c::crc32c(b),
            })
            .collect()
    }

    fn read(&self, path: &str, offset: u64, len: u64) -> Vec<u8> {
        let Some(b) = self.files.get(path) else {
            return Vec::new();
        };
        let from = (offset as usize).min(b.len());
        let to = (offset.saturating_add(len) as usize).min(b.len());
        b[from..to].to_vec()
    }

    fn crc_of_prefix(&self, path: &str, len: u64) -> Option<u32> {
        let b = self.files.get(path)?;
        b.get(..len as usize).map(crc32c::crc32c)
    }

    fn sync(&mut self) -> std::io::Result<()> {
        Ok(())
    }

    fn apply(&mut self, op: &Op) -> std::io::Result<()> {
        match op {
            Op::Write { path, offset, bytes } => {
                let f = self.files.entry(path.clone()).or_default();
                let end = *offset as usize + bytes.len();
                if f.len() < end {
                    f.resize(end, 0);
                }
                f[*offset as usize..end].copy_from_slice(bytes);
            }
            Op::Replace { path, bytes } => {
                self.files.insert(path.clone(), bytes.clone());
            }
            Op::Truncate { path, len } => {
                self.files.entry(path.clone()).or_default().resize(*len as usize, 0);
            }
            Op::Remove { path } => {
                self.files.remove(path);
                let inside = format!("{path}/");
                self.files.retain(|p, _| !p.starts_with(&inside));
            }
            Op::Rename { from, to } => {
                if let Some(b) = self.files.remove(from) {
                    self.files.insert(to.clone(), b);
                }
                let inside = format!("{from}/");
                let moved: Vec<String> = self.files.keys().filter(|p| p.starts_with(&inside)).cloned().collect();
                for p in moved {
                    let b = self.files.remove(&p).expect("listed");
                    self.files.insert(format!("{to}/{}", &p[inside.len()..]), b);
                }
            }
        }
        Ok(())
    }
}
