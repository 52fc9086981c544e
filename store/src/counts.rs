//! `delivery_counts`: how often each message was returned to its queue, for
//! `x-delivery-limit`, kept on disk as quorum queues keep theirs, so that a
//! poison message does not get a fresh set of deliveries after every restart
//! (issue 15, defect 12).
//!
//! An append-only file of 20-byte entries (segment, offset, size, count,
//! crc32c of the 16 bytes before); the last entry of a position wins. Entries
//! are buffered and written with the ack files (the broker's bounded-delay
//! flush, group commits and close), so counting makes no syscall per return.
//! A torn or bad entry ends the file (it is from the crash). Only messages that
//! were returned have an entry, and the file is rewritten from the live ones
//! at open and when it holds more than twice as many entries as live positions.

use ahash::AHashMap as HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::changes;
use crate::{SegmentId, SegmentPosition};

const FILE: &str = "delivery_counts";
const ENTRY_BYTES: usize = 20;
/// Entries in the file beyond twice the live ones before it is rewritten.
const COMPACT_SLACK_ENTRIES: usize = 4096;

/// The counts of one queue (all priority levels: positions carry their level).
#[derive(Debug)]
pub struct DeliveryCounts {
    path: PathBuf,
    map: HashMap<SegmentPosition, u32>,
    file: Option<File>,
    pending: Vec<u8>,
    entries_in_file: usize,
}

fn encode(out: &mut Vec<u8>, pos: SegmentPosition, count: u32) {
    let start = out.len();
    for w in [pos.segment.0, pos.offset, pos.size, count] {
        out.extend_from_slice(&w.to_le_bytes());
    }
    let crc = crc32c::crc32c(&out[start..]);
    out.extend_from_slice(&crc.to_le_bytes());
}

impl DeliveryCounts {
    /// Reads the counts in `dir`, keeping those for which `live` says yes, and
    /// rewrites the file when some were dropped.
    pub fn load(dir: &Path, live: impl Fn(SegmentPosition) -> bool) -> io::Result<DeliveryCounts> {
        let path = dir.join(FILE);
        let mut map = HashMap::new();
        let mut entries = 0;
        // A torn or bad tail is rewritten away, so later appends stay aligned.
        let mut damaged = false;
        match fs::read(&path) {
            Ok(bytes) => {
                damaged = bytes.len() % ENTRY_BYTES != 0;
                for e in bytes.chunks_exact(ENTRY_BYTES) {
                    let w = |i: usize| u32::from_le_bytes([e[i], e[i + 1], e[i + 2], e[i + 3]]);
                    if crc32c::crc32c(&e[..16]) != w(16) {
                        damaged = true;
                        break;
                    }
                    entries += 1;
                    let pos = SegmentPosition {
                        segment: SegmentId(w(0)),
                        offset: w(4),
                        size: w(8),
                    };
                    map.insert(pos, w(12));
                }
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        map.retain(|p, c| *c > 0 && live(*p));
        let mut counts = DeliveryCounts {
            path,
            map,
            file: None,
            pending: Vec::new(),
            entries_in_file: entries,
        };
        if damaged || entries != counts.map.len() {
            counts.rewrite()?;
        }
        Ok(counts)
    }

    pub fn get(&self, pos: SegmentPosition) -> u32 {
        self.map.get(&pos).copied().unwrap_or(0)
    }

    /// Adds one return of `pos`; returns the new count.
    pub fn bump(&mut self, pos: SegmentPosition) -> u32 {
        let c = self.map.entry(pos).or_insert(0);
        *c += 1;
        let c = *c;
        encode(&mut self.pending, pos, c);
        c
    }

    /// The message is done: its count is no longer needed (its stale entry goes
    /// with the next rewrite; the position is never delivered again).
    pub fn forget(&mut self, pos: SegmentPosition) {
        if !self.map.is_empty() {
            self.map.remove(&pos);
        }
    }

    /// Writes buffered entries (no fsync: see `QueueStore::flush_acks`).
    pub fn flush(&mut self) -> io::Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        if self.entries_in_file > 2 * self.map.len() + COMPACT_SLACK_ENTRIES {
            self.pending.clear();
            return self.rewrite();
        }
        if self.file.is_none() {
            self.file = Some(OpenOptions::new().create(true).append(true).open(&self.path)?);
        }
        let mut file = self.file.as_ref().expect("opened above");
        file.write_all(&self.pending)?;
        changes::appended(&self.path, file, self.pending.len());
        self.entries_in_file += self.pending.len() / ENTRY_BYTES;
        self.pending.clear();
        Ok(())
    }

    /// Replaces the file with the live counts (a new file renamed over the old
    /// one: a crash leaves one or the other, whole).
    fn rewrite(&mut self) -> io::Result<()> {
        self.file = None;
        if self.map.is_empty() {
            self.entries_in_file = 0;
            return match changes::remove_file(&self.path) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
                _ => Ok(()),
            };
        }
        let mut buf = Vec::with_capacity(self.map.len() * ENTRY_BYTES);
        for (&pos, &c) in &self.map {
            encode(&mut buf, pos, c);
        }
        let tmp = self.path.with_extension("tmp");
        fs::write(&tmp, &buf)?;
        changes::barrier();
        fs::rename(&tmp, &self.path)?;
        changes::replaced(&self.path, &buf);
        self.entries_in_file = self.map.len();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(offset: u32) -> SegmentPosition {
        SegmentPosition {
            segment: SegmentId(1),
            offset,
            size: 10,
        }
    }

    #[test]
    fn counts_survive_reopen_and_dead_ones_are_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = DeliveryCounts::load(dir.path(), |_| true).unwrap();
        assert_eq!(c.bump(p(8)), 1);
        assert_eq!(c.bump(p(8)), 2);
        assert_eq!(c.bump(p(18)), 1);
        c.flush().unwrap();
        let c = DeliveryCounts::load(dir.path(), |pos| pos.offset == 8).unwrap();
        assert_eq!((c.get(p(8)), c.get(p(18))), (2, 0));
        // Torn tail: a partial entry is ignored.
        let path = dir.path().join(FILE);
        let mut bytes = fs::read(&path).unwrap();
        assert_eq!(bytes.len(), ENTRY_BYTES, "rewritten with the live entry only");
        bytes.extend_from_slice(&[1, 2, 3]);
        fs::write(&path, bytes).unwrap();
        let mut c = DeliveryCounts::load(dir.path(), |_| true).unwrap();
        assert_eq!(c.get(p(8)), 2);
        assert_eq!(c.bump(p(8)), 3);
        c.flush().unwrap();
        let c = DeliveryCounts::load(dir.path(), |_| true).unwrap();
        assert_eq!(c.get(p(8)), 3, "appends after a torn tail stay readable");
    }
}
