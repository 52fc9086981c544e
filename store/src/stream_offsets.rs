//! [`TrackedOffsets`]: a stream's server-side offset tracking (LavinMQ's): the
//! last acked offset per consumer tag, kept in the stream's `offsets` file so a
//! consumer that names itself resumes where it left off, across restarts.
//!
//! The file is append-only records `[u8 tag len][tag][u64 LE offset][u32 LE
//! crc32c of what precedes]`; the last record of a tag wins. Reading stops at
//! the first record that fails its check (a torn tail after a crash: the
//! consumer then resumes a little earlier, at-least-once). It is compacted
//! (rewritten atomically with one record per tag) when it holds more than
//! [`COMPACT_RECORDS_PER_TAG`] times as many records as tags. Writes are not
//! synced: an update lost to power loss makes a consumer read again what it
//! had acked, never skip.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

const FILE: &str = "offsets";
/// Tags tracked per stream, at most (a limit on everything): the oldest
/// updated one is not evicted; a new tag past the limit is not tracked.
pub const TRACKED_TAGS_MAX: usize = 10_000;
/// Compaction when the file holds this many records per tag (plus a floor).
const COMPACT_RECORDS_PER_TAG: usize = 8;
const COMPACT_RECORDS_MIN: usize = 1024;

/// The tracked offsets of one stream. See the module docs.
#[derive(Debug)]
pub struct TrackedOffsets {
    path: PathBuf,
    offsets: HashMap<String, u64>,
    file: Option<File>,
    records: usize,
}

fn record(tag: &str, offset: u64) -> Vec<u8> {
    let mut r = Vec::with_capacity(tag.len() + 13);
    r.push(tag.len() as u8);
    r.extend_from_slice(tag.as_bytes());
    r.extend_from_slice(&offset.to_le_bytes());
    let crc = crc32c::crc32c(&r);
    r.extend_from_slice(&crc.to_le_bytes());
    r
}

/// The records of `bytes` up to the first that fails its check.
fn parse(bytes: &[u8]) -> (HashMap<String, u64>, usize) {
    let (mut offsets, mut n, mut at) = (HashMap::new(), 0, 0);
    while let Some(&len) = bytes.get(at) {
        let end = at + 1 + usize::from(len) + 12;
        let Some(r) = bytes.get(at..end) else { break };
        let crc = u32::from_le_bytes(r[r.len() - 4..].try_into().expect("4 bytes"));
        let tag = std::str::from_utf8(&r[1..1 + usize::from(len)]);
        let (Ok(tag), true) = (tag, crc32c::crc32c(&r[..r.len() - 4]) == crc) else {
            break;
        };
        let offset = u64::from_le_bytes(r[r.len() - 12..r.len() - 4].try_into().expect("8 bytes"));
        offsets.insert(tag.to_owned(), offset);
        (n, at) = (n + 1, end);
    }
    (offsets, n)
}

impl TrackedOffsets {
    /// Reads the stream's tracked offsets (none when there is no file).
    pub fn open(dir: &Path) -> io::Result<Self> {
        let path = dir.join(FILE);
        let mut bytes = Vec::new();
        match File::open(&path) {
            Ok(mut f) => {
                f.read_to_end(&mut bytes)?;
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        let (offsets, records) = parse(&bytes);
        let mut t = Self {
            path,
            offsets,
            file: None,
            records,
        };
        let clean_len: usize = t.offsets.keys().map(|k| k.len() + 13).sum();
        if bytes.len() != clean_len {
            t.compact()?; // a torn tail or old records: start clean
        }
        Ok(t)
    }

    /// The last offset `tag` acked, if tracked.
    pub fn get(&self, tag: &str) -> Option<u64> {
        self.offsets.get(tag).copied()
    }

    /// `tag` acked `offset`: kept if it is past what was tracked.
    pub fn set(&mut self, tag: &str, offset: u64) -> io::Result<()> {
        if tag.len() > usize::from(u8::MAX) || self.get(tag).is_some_and(|o| o >= offset) {
            return Ok(());
        }
        if !self.offsets.contains_key(tag) && self.offsets.len() >= TRACKED_TAGS_MAX {
            return Ok(());
        }
        self.offsets.insert(tag.to_owned(), offset);
        if self.records >= COMPACT_RECORDS_MIN.max(self.offsets.len() * COMPACT_RECORDS_PER_TAG) {
            return self.compact();
        }
        if self.file.is_none() {
            self.file = Some(OpenOptions::new().create(true).append(true).open(&self.path)?);
        }
        let rec = record(tag, offset);
        let file = self.file.as_mut().expect("opened");
        file.write_all(&rec)?;
        crate::changes::appended(&self.path, file, rec.len());
        self.records += 1;
        Ok(())
    }

    /// Rewrites the file with one record per tag.
    fn compact(&mut self) -> io::Result<()> {
        let mut tags: Vec<_> = self.offsets.iter().collect();
        tags.sort();
        let bytes: Vec<u8> = tags.into_iter().flat_map(|(t, &o)| record(t, o)).collect();
        self.file = None;
        crate::meta::write_atomic(&self.path, &bytes)?;
        self.records = self.offsets.len();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_persist_compact_and_survive_a_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        let mut t = TrackedOffsets::open(dir.path()).unwrap();
        assert_eq!(t.get("a"), None);
        for o in 0..3000 {
            t.set("a", o).unwrap();
            t.set("b", o / 2).unwrap();
        }
        t.set("a", 5).unwrap(); // behind: ignored
        let len = std::fs::metadata(dir.path().join(FILE)).unwrap().len();
        assert!(len < 64 * 1024, "compacted: {len} bytes");
        drop(t);
        let t = TrackedOffsets::open(dir.path()).unwrap();
        assert_eq!((t.get("a"), t.get("b")), (Some(2999), Some(1499)));
        // A torn last record: the one before it stands.
        let mut f = OpenOptions::new().append(true).open(dir.path().join(FILE)).unwrap();
        let r = record("a", 9999);
        f.write_all(&r[..r.len() - 3]).unwrap();
        drop((f, t));
        let t = TrackedOffsets::open(dir.path()).unwrap();
        assert_eq!(t.get("a"), Some(2999));
    }
}
