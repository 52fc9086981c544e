//! The `delivered` file of a queue: whether the queue was closed cleanly, and
//! the highest position delivered before that close (see [`DeliveredMark`]).
//!
//! After an unclean stop the caller may know more than the file: a vhost's
//! `running` marker (see `running`) is durable from the open on, while this
//! file says "unclean" only once its first delivery's write reached the disk.
//! [`LastStop::Unclean`] makes every recovered message count as possibly
//! delivered whatever the file says.

use std::fs::{self, File};
use std::io;
use std::path::Path;
use std::sync::Arc;

use crate::{SegmentId, SegmentPosition};

/// What the caller knows of the last stop of the store it opens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LastStop {
    /// Clean as far as the caller knows: the `delivered` file decides.
    #[default]
    Clean,
    /// Unclean (the vhost's `running` marker was there): every recovered
    /// message may have been delivered, and is flagged redelivered.
    Unclean,
}

/// The `delivered` file: whether the queue was closed cleanly, and the highest
/// position delivered before that close, so that after a restart messages
/// delivered before (and never acked) are flagged redelivered, as RabbitMQ's
/// queue index does, without a write per delivery.
///
/// The first delivery after open marks the file unclean (one 20-byte write per
/// open, not per delivery); a clean close writes the mark and "clean". After a
/// crash the file still says unclean, so every recovered message may have been
/// delivered and is flagged (RabbitMQ 3.10 flags them all too; issue 15 defect
/// 2: with the mark written only by group commits, a message delivered on a
/// queue without persistent publishes came back unflagged after kill -9). A
/// queue that delivered nothing since its last clean close keeps its exact mark.
#[derive(Debug, Default)]
pub(crate) struct DeliveredMark {
    /// Positions up to it were (or may have been) delivered before this open.
    at_open: Option<SegmentPosition>,
    pub(crate) current: Option<SegmentPosition>,
    /// The file says unclean (written at the first delivery since open).
    unclean_written: bool,
    /// The file's clean mark is above every recovered message and was cut to
    /// them: it must be written cut before new messages can fall under it.
    stale: bool,
    /// The unclean state was written and not yet in a sync batch.
    unsynced: bool,
    /// A sync batch that may have held the file failed: the unclean state is written
    /// again before the next batch (see [`Self::sync_failed`]).
    rewrite: bool,
    file: Option<Arc<File>>,
}

const DELIVERED_FILE: &str = "delivered";
/// segment u32, offset u32, size u32, flags u32, crc32c of those 16 bytes.
const DELIVERED_BYTES: usize = 20;
/// The format before the clean flag: no flags word; read as a clean close.
const DELIVERED_BYTES_V1: usize = 16;
const DELIVERED_CLEAN: u32 = 1;

/// The mark of a file written at a clean close; None if it says unclean or
/// cannot be read.
fn read_mark(bytes: &[u8]) -> Option<SegmentPosition> {
    let word = |i: usize| u32::from_le_bytes([bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]]);
    let (flags, crc_at) = match bytes.len() {
        DELIVERED_BYTES => (word(12), 16),
        DELIVERED_BYTES_V1 => (DELIVERED_CLEAN, 12),
        _ => return None,
    };
    let clean = crc32c::crc32c(&bytes[..crc_at]) == word(crc_at) && flags & DELIVERED_CLEAN != 0;
    clean.then(|| SegmentPosition {
        segment: SegmentId(word(0)),
        offset: word(4),
        size: word(8),
    })
}

impl DeliveredMark {
    pub(crate) fn load(dir: &Path, next_segment: SegmentId, last_stop: LastStop) -> DeliveredMark {
        // Every recovered message is in a segment below `next_segment`. A mark is
        // never above that: ids restart at 1 when a queue reopens empty, and an
        // old mark must not cover the new messages.
        let all_recovered = SegmentPosition {
            segment: SegmentId(next_segment.0.saturating_sub(1)),
            offset: u32::MAX,
            size: u32::MAX,
        };
        let mut m = DeliveredMark::default();
        let file = fs::read(dir.join(DELIVERED_FILE)).ok().map(|bytes| read_mark(&bytes));
        let mark = match (file, last_stop) {
            // Never delivered anything (no file), as far as the caller knows.
            (None, LastStop::Clean) => return m,
            (Some(Some(pos)), _) if pos > all_recovered => {
                // Stale, whatever the caller knows: rewritten cut at open.
                m.stale = true;
                all_recovered
            }
            (Some(Some(pos)), LastStop::Clean) => pos,
            // A crash (or an unreadable file): any of them may have been
            // delivered. After an unclean stop even a file that says clean (or
            // none) may be older than deliveries whose first write was lost.
            _ => all_recovered,
        };
        m.at_open = Some(mark);
        m.current = Some(mark);
        m
    }

    /// Writes the cut mark of a stale file (see `stale`), so that a crash
    /// before the next clean close does not read the old one again: a queue
    /// drained and closed cleanly reopens with segment ids from 1, and its old
    /// mark then covered the new messages, flagging never-delivered ones
    /// redelivered after kill -9 (found by the model test, `tests/model.rs`).
    pub(crate) fn rewrite_if_stale(&mut self, dir: &Path) -> io::Result<()> {
        if std::mem::take(&mut self.stale) {
            self.write(dir, true)?.sync_data()?;
        }
        Ok(())
    }

    pub(crate) fn covers(&self, pos: SegmentPosition) -> bool {
        self.at_open.is_some_and(|m| pos <= m)
    }

    /// Notes a delivery; the first since open marks the file unclean before the
    /// delivery can leave. A plain write is enough for kill -9 (the page cache
    /// survives the process); the next sync batch makes it durable.
    pub(crate) fn note(&mut self, dir: &Path, pos: SegmentPosition) -> io::Result<()> {
        if self.current.is_none_or(|c| pos > c) {
            self.current = Some(pos);
        }
        if !self.unclean_written {
            self.write(dir, false)?;
            self.unclean_written = true;
            self.unsynced = true;
        }
        Ok(())
    }

    /// Writes the mark with the clean flag; returns the file.
    pub(crate) fn write(&mut self, dir: &Path, clean: bool) -> io::Result<Arc<File>> {
        let pos = self.current.unwrap_or(SegmentPosition {
            segment: SegmentId(0),
            offset: 0,
            size: 0,
        });
        let mut buf = [0u8; DELIVERED_BYTES];
        buf[0..4].copy_from_slice(&pos.segment.0.to_le_bytes());
        buf[4..8].copy_from_slice(&pos.offset.to_le_bytes());
        buf[8..12].copy_from_slice(&pos.size.to_le_bytes());
        let flags = if clean { DELIVERED_CLEAN } else { 0 };
        buf[12..16].copy_from_slice(&flags.to_le_bytes());
        let crc = crc32c::crc32c(&buf[..16]);
        buf[16..20].copy_from_slice(&crc.to_le_bytes());
        if self.file.is_none() {
            let f = fs::OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(dir.join(DELIVERED_FILE))?;
            self.file = Some(Arc::new(f));
        }
        let f = self.file.as_ref().expect("opened above");
        // One 20-byte write at offset 0 stays within one sector: it lands whole or
        // not at all on any disk we run on, and the CRC catches anything else.
        std::os::unix::fs::FileExt::write_all_at(&**f, &buf, 0)?;
        crate::changes::wrote_bytes(&dir.join(DELIVERED_FILE), 0, &buf);
        Ok(Arc::clone(f))
    }

    /// Counts every position up to `pos` as possibly delivered, now and after
    /// the next open (it is noted as a delivery): for a message stored again
    /// that may have been delivered already (a delayed message routed again
    /// after a crash, see the core's `delayed`).
    pub(crate) fn note_maybe_delivered(&mut self, dir: &Path, pos: SegmentPosition) -> io::Result<()> {
        if self.at_open.is_none_or(|m| pos > m) {
            self.at_open = Some(pos);
        }
        self.note(dir, pos)
    }

    /// A sync batch failed. The file's unclean state may have been in it, and its page
    /// marked clean though not written (see `sync`): written again, the page is dirty
    /// and the next batch's fsync writes it for sure.
    pub(crate) fn sync_failed(&mut self) {
        self.rewrite = self.unclean_written;
    }

    /// Whether the unclean state waits to be written again (see [`Self::sync_failed`]).
    pub(crate) fn rewrite_pending(&self) -> bool {
        self.rewrite
    }

    /// Writes the unclean state again after a failed batch, for the next one.
    pub(crate) fn rewrite_after_failure(&mut self, dir: &Path) -> io::Result<()> {
        if self.rewrite {
            self.write(dir, false)?;
            self.rewrite = false;
            self.unsynced = true;
        }
        Ok(())
    }

    /// The file, once, if its unclean state still needs an fsync.
    pub(crate) fn take_for_sync(&mut self) -> Option<Arc<File>> {
        std::mem::take(&mut self.unsynced).then(|| self.file.clone()).flatten()
    }
}
