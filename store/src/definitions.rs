//! `definitions.amqp`: durable exchanges, queues and bindings as an append-only log.
//!
//! The broker appends encoded AMQP declare/delete/bind/unbind method frames; to this
//! module they are opaque payloads. Each is framed:
//!
//! ```text
//! 0  u32 LE  payload_len   (> 0)
//! 4  u32 LE  crc           CRC32C of bytes 0..4 and the payload
//! 8  payload
//! ```
//!
//! Appends are written at once (the page cache survives a kill -9) and made
//! durable by group commit: [`DefinitionsLog::take_sync`] hands the caller the file
//! to fdatasync off its loop, once for every record appended since the last one,
//! and the broker answers `declare-ok` only when that sync is done (as it confirms
//! publishes). [`DefinitionsLog::sync`] does it in place (clean shutdown, tools).
//! `open` returns the valid records and cuts a torn tail off, like segment
//! recovery. Deletes make earlier records dead; [`DefinitionsLog::compact`] rewrites
//! the live set (temp file, fsync, rename, fsync dir) when the caller decides enough
//! has piled up ([`DefinitionsLog::records_since_compaction`]); the caller counts
//! its live records only every so often ([`DefinitionsLog::live_check_due`]), so
//! that an append costs O(1) amortised, not a count of the live state.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use zerocopy::little_endian::U32;
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

use crate::changes;
use crate::meta::{sync_parent_dir, temp_path};

/// Largest payload: a declare with a big arguments table is a few KB; this is a bound
/// against reading garbage lengths, not a tuning knob.
pub const DEFINITION_RECORD_MAX_BYTES: u32 = 16 * 1024 * 1024;
/// Size of [`FrameHeader`].
pub const FRAME_HEADER_BYTES: usize = 8;

/// Header in front of each payload.
#[repr(C)]
#[derive(Debug, Clone, Copy, FromBytes, IntoBytes, Immutable, KnownLayout, Unaligned)]
pub struct FrameHeader {
    /// Payload length.
    pub payload_len: U32,
    /// CRC32C of `payload_len` and the payload.
    pub crc: U32,
}

const _: () = assert!(size_of::<FrameHeader>() == FRAME_HEADER_BYTES);

fn frame_crc(len_bytes: &[u8], payload: &[u8]) -> u32 {
    crc32c::crc32c_append(crc32c::crc32c(len_bytes), payload)
}

fn encode_frame(out: &mut Vec<u8>, payload: &[u8]) -> io::Result<()> {
    if payload.is_empty() || payload.len() > DEFINITION_RECORD_MAX_BYTES as usize {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "definition record must be 1..={DEFINITION_RECORD_MAX_BYTES} bytes, is {}",
                payload.len()
            ),
        ));
    }
    let len = U32::new(payload.len() as u32);
    let header = FrameHeader {
        payload_len: len,
        crc: U32::new(frame_crc(len.as_bytes(), payload)),
    };
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(payload);
    Ok(())
}

/// Splits `bytes` into valid payloads; returns them and the length of the valid prefix.
fn decode_frames(bytes: &[u8]) -> (Vec<Vec<u8>>, usize) {
    let mut out = Vec::new();
    let mut at = 0;
    while let Ok((h, rest)) = FrameHeader::ref_from_prefix(&bytes[at..]) {
        let len = h.payload_len.get();
        if len == 0 || len > DEFINITION_RECORD_MAX_BYTES {
            break;
        }
        let Some(payload) = rest.get(..len as usize) else { break };
        if frame_crc(h.payload_len.as_bytes(), payload) != h.crc.get() {
            break;
        }
        out.push(payload.to_vec());
        at += FRAME_HEADER_BYTES + len as usize;
    }
    (out, at)
}

/// The open definitions log of one vhost.
#[derive(Debug)]
pub struct DefinitionsLog {
    path: PathBuf,
    /// Shared with a sync in flight (see [`DefinitionsLog::take_sync`]).
    file: Arc<File>,
    /// Bytes of whole frames in the file: a failed write is cut back to it.
    len: u64,
    records: u64,
    since_compaction: u64,
    /// Appends since the caller last counted its live records, and how many may
    /// pass before it should count again (see [`DefinitionsLog::live_check_due`]).
    since_live_check: u64,
    live_check_every: u64,
    /// Records written since the last [`DefinitionsLog::take_sync`] or `sync`.
    unsynced: bool,
    buf: Vec<u8>,
}

impl DefinitionsLog {
    /// Opens (creating if needed) the log and returns it with its valid records, in
    /// order. A torn or corrupt tail is cut off and logged.
    pub fn open(path: &Path) -> io::Result<(Self, Vec<Vec<u8>>)> {
        let created = !path.exists();
        let mut file = OpenOptions::new().read(true).append(true).create(true).open(path)?;
        if created {
            sync_parent_dir(path)?;
            changes::set_len(path, 0);
        }
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)?;
        let (records, valid) = decode_frames(&bytes);
        if valid < bytes.len() {
            tracing::warn!(
                path = %path.display(), kept = records.len(), bytes_dropped = bytes.len() - valid,
                "definitions log has a torn or corrupt tail; dropping it"
            );
            file.set_len(valid as u64)?;
            file.sync_all()?;
            changes::set_len(path, valid as u64);
        }
        let n = records.len() as u64;
        let log = Self {
            path: path.to_path_buf(),
            file: Arc::new(file),
            len: valid as u64,
            records: n,
            since_compaction: n,
            since_live_check: 0,
            live_check_every: 0,
            unsynced: false,
            buf: Vec::new(),
        };
        Ok((log, records))
    }

    /// Appends one record: written to the file (it survives a kill -9 of the
    /// process), durable against power loss once a sync taken after it has run
    /// ([`Self::take_sync`], [`Self::sync`]). A failed write is cut off again, so
    /// later records never follow a torn one.
    pub fn append(&mut self, payload: &[u8]) -> io::Result<()> {
        self.buf.clear();
        encode_frame(&mut self.buf, payload)?;
        if let Err(e) = (&*self.file).write_all(&self.buf) {
            // The frame may be partly written: cut it, or reopening would stop at
            // it and drop every record after.
            if let Err(cut) = self.file.set_len(self.len) {
                tracing::error!(path = %self.path.display(), error = %cut, "cannot cut a failed definitions append");
            }
            return Err(e);
        }
        // With its bytes: the shards share the log, so another's compaction may
        // replace the file before this thread's recorder would read them back.
        changes::wrote_bytes(&self.path, self.len, &self.buf);
        self.len += self.buf.len() as u64;
        self.records += 1;
        self.since_compaction += 1;
        self.since_live_check += 1;
        self.unsynced = true;
        Ok(())
    }

    /// The file to fdatasync for every record appended since the last call, or
    /// None when there is none. The caller runs the sync (off its loop) and treats
    /// those records as durable when it has.
    pub fn take_sync(&mut self) -> Option<Arc<File>> {
        std::mem::take(&mut self.unsynced).then(|| self.file.clone())
    }

    /// The file records are appended to now, to fdatasync for records this
    /// caller appended, whoever took [`Self::take_sync`] last: the shards of a
    /// broker share one log (behind a lock) and each syncs what it wrote.
    pub fn file(&self) -> Arc<File> {
        self.file.clone()
    }

    /// Makes every appended record durable now (clean shutdown, tools, tests).
    pub fn sync(&mut self) -> io::Result<()> {
        if let Some(f) = self.take_sync() {
            f.sync_data()?;
        }
        Ok(())
    }

    /// Whether the caller should count its live records now and report them with
    /// [`Self::live_checked`]: after as many appends as there were live records at
    /// the last count (at least `min`), so counting costs O(1) per append
    /// amortised. A compaction that is due waits at most that long.
    pub fn live_check_due(&self) -> bool {
        self.since_live_check >= self.live_check_every
    }

    /// The caller counted `live` records; the next count is due after
    /// `max(live, min)` more appends.
    pub fn live_checked(&mut self, live: u64, min: u64) {
        self.since_live_check = 0;
        self.live_check_every = live.max(min);
    }

    /// Records in the file.
    pub fn record_count(&self) -> u64 {
        self.records
    }

    /// Records appended since the last compaction (since open, all records in the file
    /// count, as the log does not know which of them are live). Compare with the live
    /// count to decide when to compact.
    pub fn records_since_compaction(&self) -> u64 {
        self.since_compaction
    }

    /// Replaces the log with `live` records: temp file, fsync, rename, fsync dir. A crash
    /// at any point leaves the old or the new log, whole.
    pub fn compact<I, R>(&mut self, live: I) -> io::Result<()>
    where
        I: IntoIterator<Item = R>,
        R: AsRef<[u8]>,
    {
        let tmp = temp_path(&self.path);
        let mut out = Vec::new();
        let mut n = 0u64;
        for rec in live {
            encode_frame(&mut out, rec.as_ref())?;
            n += 1;
        }
        let mut f = OpenOptions::new().write(true).create(true).truncate(true).open(&tmp)?;
        f.write_all(&out)?;
        f.sync_all()?;
        drop(f);
        changes::barrier();
        fs::rename(&tmp, &self.path)?;
        changes::replaced(&self.path, &out);
        sync_parent_dir(&self.path)?;
        // Every live record is durable in the new file; a sync in flight keeps
        // the old one open, harmlessly.
        self.file = Arc::new(OpenOptions::new().append(true).open(&self.path)?);
        self.len = out.len() as u64;
        self.records = n;
        self.since_compaction = 0;
        self.unsynced = false;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn append_reopen_compact_and_torn_tails() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("definitions.amqp");
        let (mut log, recs) = DefinitionsLog::open(&path).unwrap();
        assert!(recs.is_empty());
        for i in 0..5u8 {
            log.append(&vec![i; 10 + i as usize]).unwrap();
        }
        assert!(log.append(&[]).is_err());
        drop(log);
        let full = fs::read(&path).unwrap();
        // Every truncation and every bit flip keeps exactly the frames before the damage.
        let ends: Vec<usize> = (0..5)
            .scan(0, |at, i| {
                *at += FRAME_HEADER_BYTES + 10 + i;
                Some(*at)
            })
            .collect();
        for cut in 0..full.len() {
            fs::write(&path, &full[..cut]).unwrap();
            let (_, recs) = DefinitionsLog::open(&path).unwrap();
            assert_eq!(recs.len(), ends.iter().filter(|&&e| e <= cut).count(), "cut at {cut}");
        }
        for bit in 0..full.len() * 8 {
            let mut c = full.clone();
            c[bit / 8] ^= 1 << (bit % 8);
            fs::write(&path, &c).unwrap();
            let (_, recs) = DefinitionsLog::open(&path).unwrap();
            assert_eq!(recs.len(), ends.iter().filter(|&&e| e <= bit / 8).count(), "bit {bit}");
        }
        fs::write(&path, &full).unwrap();
        let (mut log, recs) = DefinitionsLog::open(&path).unwrap();
        assert_eq!(recs.len(), 5);
        assert_eq!(log.records_since_compaction(), 5);
        log.compact([&recs[1], &recs[3]]).unwrap();
        assert_eq!(log.records_since_compaction(), 0);
        log.append(b"after").unwrap();
        drop(log);
        let (log, recs) = DefinitionsLog::open(&path).unwrap();
        assert_eq!(recs, vec![vec![1u8; 11], vec![3u8; 13], b"after".to_vec()]);
        assert_eq!(log.record_count(), 3);
    }

    #[test]
    fn one_sync_covers_every_append_before_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("definitions.amqp");
        let (mut log, _) = DefinitionsLog::open(&path).unwrap();
        assert!(log.take_sync().is_none(), "nothing appended");
        for i in 1..=3u8 {
            log.append(&[i]).unwrap();
        }
        let f = log.take_sync().expect("three appends, one sync");
        assert!(log.take_sync().is_none(), "taken once");
        f.sync_data().unwrap();
        log.append(b"x").unwrap();
        log.compact([b"x"]).unwrap();
        assert!(log.take_sync().is_none(), "compaction syncs what it writes");
        log.append(b"y").unwrap();
        log.sync().unwrap();
        assert!(log.take_sync().is_none());
        drop(log);
        let (_, recs) = DefinitionsLog::open(&path).unwrap();
        assert_eq!(recs, vec![b"x".to_vec(), b"y".to_vec()]);
    }

    #[test]
    fn live_checks_come_after_as_many_appends_as_there_were_live_records() {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, _) = DefinitionsLog::open(&dir.path().join("d")).unwrap();
        assert!(log.live_check_due(), "due at open");
        log.live_checked(3, 2);
        for _ in 0..2 {
            log.append(b"r").unwrap();
            assert!(!log.live_check_due());
        }
        log.append(b"r").unwrap();
        assert!(log.live_check_due());
        log.live_checked(0, 2);
        log.append(b"r").unwrap();
        assert!(!log.live_check_due(), "at least `min` appends apart");
        log.append(b"r").unwrap();
        assert!(log.live_check_due());
    }
}
