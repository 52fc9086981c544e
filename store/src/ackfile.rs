//! Ack files: `acks.NNNNNNNNNN`, an append-only list of little-endian u32 offsets of
//! records in `msgs.NNNNNNNNNN` that were acked or discarded (as LavinMQ does).
//!
//! Acks are buffered in memory and written in one `write` per [`ACK_BUFFER_BYTES`] or
//! per group commit, not one syscall per ack: a lost ack only means a redelivery after a
//! crash (at-least-once), while a syscall per ack costs as much as the ack itself.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::changes;
use crate::segment::ack_path;
use crate::SegmentId;

/// Bytes of buffered acks that force a write (1024 acks).
pub const ACK_BUFFER_BYTES: usize = 4096;
/// Size of one entry.
pub const ACK_ENTRY_BYTES: usize = 4;

/// An open ack file with its write buffer.
pub struct AckFile {
    file: Arc<File>,
    /// To tell its appends by (`changes`).
    path: PathBuf,
    pending: Vec<u8>,
    /// Written but not yet in a sync batch.
    unsynced: bool,
}

impl AckFile {
    /// Opens (creating if needed) for appending. Returns whether it was created, so the
    /// caller can fsync the directory in the next batch.
    pub fn open(dir: &Path, id: SegmentId) -> io::Result<(Self, bool)> {
        let path = ack_path(dir, id);
        let created = !path.exists();
        let file = OpenOptions::new().append(true).create(true).open(&path)?;
        if created {
            changes::set_len(&path, 0);
        }
        Ok((
            Self {
                file: Arc::new(file),
                path,
                pending: Vec::new(),
                unsynced: false,
            },
            created,
        ))
    }

    /// Buffers one offset; writes when the buffer is full.
    pub fn push(&mut self, offset: u32) -> io::Result<()> {
        self.pending.extend_from_slice(&offset.to_le_bytes());
        if self.pending.len() >= ACK_BUFFER_BYTES {
            self.flush()?;
        }
        Ok(())
    }

    /// Writes the buffered offsets to the file (not synced). On an error the
    /// bytes that did reach the file are dropped from the buffer, the rest kept
    /// for the next flush (see [`write_out`]).
    pub fn flush(&mut self) -> io::Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let r = write_out(&mut &*self.file, &mut self.pending);
        changes::appended(&self.path, &self.file, *r.as_ref().unwrap_or_else(|(n, _)| n));
        // Whatever reached the file needs the next sync, even after an error.
        self.unsynced |= r.as_ref().map_or_else(|(n, _)| *n > 0, |n| *n > 0);
        r.map(|_| ()).map_err(|(_, e)| e)
    }

    /// Hands out the file if it has writes no sync batch has taken yet. Buffered acks
    /// are not among them: [`Self::flush`] first (which can fail, while taking
    /// cannot: a batch is prepared before anything is taken from the store).
    pub fn take_written(&mut self) -> Option<Arc<File>> {
        debug_assert!(self.pending.is_empty(), "take_written with buffered acks");
        std::mem::take(&mut self.unsynced).then(|| Arc::clone(&self.file))
    }
}

/// Writes `pending` to `w` (a file opened to append) and drains what was
/// written: all of it, or on an error the prefix that did reach the file.
/// Returns the bytes written (with the error when one stopped it).
///
/// Why not `write_all`: a short write followed by an error (ENOSPC mid-buffer,
/// EFBIG) leaves part of the buffer in the file; `write_all` then keeps the
/// whole buffer, the next flush appends it again from a point inside an entry,
/// and every later entry is misaligned: read back as offsets that are not the
/// acked ones, one of which could fall on a live record and drop it.
fn write_out(w: &mut impl Write, pending: &mut Vec<u8>) -> Result<usize, (usize, io::Error)> {
    let mut done = 0;
    let result = loop {
        if done == pending.len() {
            break Ok(done);
        }
        match w.write(&pending[done..]) {
            Ok(0) => break Err((done, io::Error::from(io::ErrorKind::WriteZero))),
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => break Err((done, e)),
        }
    };
    pending.drain(..done);
    result
}

/// What recovery read from an ack file.
pub struct LoadedAcks {
    /// Offsets, sorted and deduplicated (not yet checked against records).
    pub offsets: Vec<u32>,
    /// Bytes of a torn trailing partial entry that were cut off.
    pub torn_bytes: u64,
}

/// Reads `acks.<id>` if it exists; cuts a torn trailing partial entry off the file so
/// that later appends stay aligned.
pub fn load(dir: &Path, id: SegmentId) -> io::Result<LoadedAcks> {
    let path = ack_path(dir, id);
    let mut file = match OpenOptions::new().read(true).write(true).open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Ok(LoadedAcks {
                offsets: Vec::new(),
                torn_bytes: 0,
            })
        }
        Err(e) => return Err(e),
    };
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)?;
    let whole = bytes.len() - bytes.len() % ACK_ENTRY_BYTES;
    let torn_bytes = (bytes.len() - whole) as u64;
    if torn_bytes > 0 {
        tracing::warn!(path = %path.display(), torn_bytes, "ack file has a torn trailing entry; cutting it off");
        changes::barrier();
        file.set_len(whole as u64)?;
        changes::set_len(&path, whole as u64);
    }
    let mut offsets: Vec<u32> = bytes[..whole]
        .chunks_exact(ACK_ENTRY_BYTES)
        .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    offsets.sort_unstable();
    offsets.dedup();
    Ok(LoadedAcks { offsets, torn_bytes })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A file that takes `room` more bytes, then fails with ENOSPC, as a full
    /// disk does after a short write.
    struct Filling {
        data: Vec<u8>,
        room: usize,
    }

    impl Write for Filling {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            if self.room == 0 {
                return Err(io::Error::from_raw_os_error(28));
            }
            let n = buf.len().min(self.room);
            self.data.extend_from_slice(&buf[..n]);
            self.room -= n;
            Ok(n)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_short_write_then_an_error_keeps_the_entries_aligned() {
        let mut f = Filling {
            data: Vec::new(),
            room: 6,
        };
        let mut pending: Vec<u8> = [100u32, 200, 300].iter().flat_map(|o| o.to_le_bytes()).collect();
        let (n, e) = write_out(&mut f, &mut pending).unwrap_err();
        assert_eq!((n, e.raw_os_error()), (6, Some(28)));
        // Space is back: the next flush continues where the file ends.
        f.room = usize::MAX;
        pending.extend_from_slice(&400u32.to_le_bytes());
        assert_eq!(write_out(&mut f, &mut pending).unwrap(), 10);
        assert!(pending.is_empty());
        let offsets: Vec<u32> = f
            .data
            .chunks_exact(ACK_ENTRY_BYTES)
            .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        assert_eq!(offsets, [100, 200, 300, 400]);
    }
}
