//! Typed errors of the store.
//!
//! Operating failures (disk, corrupt data) are `Err`s; a caller that passes a position
//! the store never handed out (or already acked) gets [`StoreError::NotInFlight`] so the
//! broker can turn it into the AMQP `PRECONDITION_FAILED` (406) it owes the client.

use std::io;

use crate::record::RecordError;
use crate::{SegmentId, SegmentPosition};

/// Everything the message store can fail with.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The file system failed; the store may be unusable (after a failed fsync it is).
    #[error("i/o error: {0}")]
    Io(#[from] io::Error),
    /// The message would not fit the configured per-record limit.
    #[error("message record of {record_bytes} bytes exceeds the limit of {max_bytes} bytes")]
    MessageTooLarge {
        /// Size the record would have on disk.
        record_bytes: u64,
        /// The configured limit ([`crate::StoreConfig::max_record_bytes`]).
        max_bytes: u64,
    },
    /// Exchange names and routing keys are AMQP short strings (at most 255 bytes).
    #[error("{field} is {len} bytes, over the AMQP short string limit of {max}", max = crate::record::SHORT_STR_MAX_BYTES)]
    ShortStrTooLong {
        /// Which field: "exchange" or "routing key".
        field: &'static str,
        /// Its length.
        len: usize,
    },
    /// The file system has no room for the record (ENOSPC while creating or
    /// growing a segment). Nothing was written; the same append can succeed once
    /// space is back.
    #[error("no space left on device for a record of {record_bytes} bytes")]
    DiskFull {
        /// Size of the record that did not fit.
        record_bytes: u32,
    },
    /// The position names a segment that does not exist (deleted or never written).
    #[error("segment {0} does not exist")]
    UnknownSegment(SegmentId),
    /// `ack`/`requeue` of a position that is not delivered-and-unacked.
    #[error("position {0:?} is not in flight")]
    NotInFlight(SegmentPosition),
    /// The bytes at a position are not a valid record (bit rot after recovery, or a
    /// position that does not point at a record boundary).
    #[error("record at {pos:?} is invalid: {reason}")]
    Corrupt {
        /// Where the caller asked to read.
        pos: SegmentPosition,
        /// What check failed.
        reason: RecordError,
    },
}
