//! ringmq-store: the disk layer. "Disk is the queue": messages live in segment files,
//! memory holds positions, the page cache does the caching.
//!
//! # Modules
//!
//! | module          | what                                                               |
//! |-----------------|--------------------------------------------------------------------|
//! | [`record`]      | the on-disk record and segment header layout (the one definition)  |
//! | `segment`       | segment files, preallocation, mmap (the only `unsafe` in the crate) |
//! | `ackfile`       | `acks.N` files: offsets of done records                            |
//! | [`queue`]       | [`QueueStore`]: append, deliver, ack, requeue, purge               |
//! | `delivered`     | a queue's `delivered` file: what was delivered before a restart    |
//! | [`recovery`]    | rebuilding a queue on open; [`RecoveryReport`]                     |
//! | `resync`        | finding the intact records past a damaged one                      |
//! | `aside`         | copies of unreadable bytes (`msgs.N.corrupt.OFFSET`)               |
//! | [`sync`]        | sans-IO group commit: [`SyncBatch`]                                |
//! | [`definitions`] | [`DefinitionsLog`]: `definitions.amqp`, CRC-framed append-only log |
//! | [`meta`]        | atomic JSON files (users, vhosts, policies, ...)                   |
//! | [`running`]     | a vhost's `running` marker: was the last stop clean?               |
//! | [`layout`]      | data directory layout: SHA-1 named vhost and queue folders         |
//!
//! # On-disk format
//!
//! ```text
//! <data dir>/
//!   <sha1(vhost)>/            one per vhost; `.vhost` holds the real name
//!     definitions.amqp        [u32 len][u32 crc32c][payload] ... (see definitions)
//!     running                 empty; there while the vhost is open (see running)
//!     <sha1(queue)>/          one per queue; `.queue` holds the real name
//!       msgs.0000000001       segment: 8-byte header, records (see record), zero tail
//!       acks.0000000001       u32 LE offsets of acked/discarded records in msgs.1
//!       spare.0000000001      msgs.1 once fully acked, kept for reuse at a rollover (<= 2)
//!       msgs.0000000001.corrupt.0000004096   unreadable bytes found at offset 4096 of msgs.1
//!   users.json, ...           written with meta::write_json_atomic
//! ```
//!
//! A segment is 8 MiB by default ([`StoreConfig::segment_bytes`]); a record larger than
//! that gets a segment of its own. Segments are preallocated (fallocate), written
//! through a shared writable mapping, and truncated to their data on rollover and clean
//! close; after a crash the zero tail reads as "end of data". A fully acked segment is
//! recycled as a later one instead of being deleted (its page-cache pages are reused;
//! see `record` for how its stale records are told apart). Every record carries a
//! CRC32C; recovery skips a record that fails to the next intact one, keeping every
//! intact record, and copies the unreadable bytes aside (see [`recovery`]).
//!
//! # Using a `QueueStore`
//!
//! ```text
//! open -> (store, report)
//! publish:  pos = append(MessageRef{..})            body copied once, into the mmap
//!           seq = append_seq()                      confirm once synced_seq() >= seq
//! commit:   batch = take_sync_batch()               any time, e.g. once per loop turn
//!           batch.run_blocking() / io_uring fsync   then sync_completed(batch.seq())
//!           ... or, if that failed:                 lost = sync_failed(batch.seq()):
//!                                                   never confirm a seq <= lost (see sync)
//! deliver:  pos = next_ready(); view = read(pos)    view borrows the mapping
//!           ack(pos) | requeue(pos)                 requeued come back first, in order
//! expire:   peek_ready() / remove_next_ready()      drop the head without delivering
//! purge(), close(), delete()
//! ```
//!
//! # Measured (2 shared cores, ext4 on virtio, warm page cache; noisy)
//!
//! - `cargo run -p ringmq-store --release --example rss -- 100000000`: 100 M x 16 B
//!   messages (4.9 GB, 585 segments) appended at 2.19 M msgs/s with a group commit every
//!   64 Ki appends; VmRSS 10.4 MB, VmHWM 10.4 MB; reopen (all CRCs checked) in 4.1 s.
//! - `cargo run -p ringmq-store --release --example recover -- 1024 1024`: open of a
//!   1 GiB queue of 1 KiB messages with a quarter acked: 0.39 s.
//! - `cargo bench --bench store`: see the report of the issue that added it.
//!
//! The store never reads the clock (timestamps come in with the message), never spawns
//! threads, and only syncs when asked to: the caller owns time and I/O scheduling.

// `unsafe` is refused by the compiler everywhere but the mmap layer.
#![deny(unsafe_code)]

pub mod ackfile;
mod aside;
pub mod changes;
mod counts;
mod crc;
pub mod definitions;
mod delivered;
pub mod error;
pub mod layout;
pub mod levels;
pub mod meta;
pub mod queue;
pub mod record;
pub mod recovery;
mod resync;
pub mod running;
pub mod stream;
pub mod stream_filter;
pub mod stream_offsets;
// The mmap layer: each `unsafe` block has a `// SAFETY:` comment.
#[allow(unsafe_code)]
mod segment;
pub mod sync;

use std::io;

pub use definitions::DefinitionsLog;
pub use delivered::LastStop;
pub use error::StoreError;
pub use levels::LeveledStore;
pub use queue::QueueStore;
pub use record::{BodyCrc, MessageRef, MessageView};
pub use recovery::{RecoveryReport, SegmentDamage};
pub use segment::SharedBytes;
pub use stream::{SegmentIndex, StreamPosition, StreamStore};
pub use stream_filter::{FilterKey, FilterQuery, FilterValueOf, SegmentFilter};
pub use sync::{AppendSeq, SyncBatch};

/// Default segment size: 8 MiB, as LavinMQ.
pub const DEFAULT_SEGMENT_BYTES: u32 = 8 * 1024 * 1024;
/// Smallest configurable segment (tests use tiny segments to exercise rollover).
pub const MIN_SEGMENT_BYTES: u32 = 64;
/// Largest segment: offsets are u32; 2 GiB keeps `offset + size` far from overflow.
pub const MAX_SEGMENT_BYTES: u32 = 1 << 31;
/// Default per-record limit: 128 MiB, RabbitMQ's default `max_message_size`.
pub const DEFAULT_MAX_RECORD_BYTES: u32 = 128 * 1024 * 1024;

/// Identifies a segment file of a queue (`msgs.NNNNNNNNNN`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct SegmentId(pub u32);

impl std::fmt::Display for SegmentId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:010}", self.0)
    }
}

/// Where a message is: 12 bytes, Copy. Ordered by (segment, offset), which is append
/// order, so an ordered set of positions is original order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SegmentPosition {
    /// The segment file.
    pub segment: SegmentId,
    /// Byte offset of the record in it.
    pub offset: u32,
    /// Record size on disk (header included).
    pub size: u32,
}

const _: () = assert!(size_of::<SegmentPosition>() == 12);

/// Settings of a queue store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreConfig {
    /// Size of a new segment file.
    pub segment_bytes: u32,
    /// Largest record accepted by `append` (header + names + properties + body).
    pub max_record_bytes: u32,
    /// The free-disk floor: when taking space for a segment (creating or growing
    /// one) leaves less than this free on its file system, the store says so
    /// ([`QueueStore::take_space_low`]) so the caller can block publishers before
    /// the disk is full. 0: never.
    pub free_disk_min_bytes: u64,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            segment_bytes: DEFAULT_SEGMENT_BYTES,
            max_record_bytes: DEFAULT_MAX_RECORD_BYTES,
            free_disk_min_bytes: 0,
        }
    }
}

impl StoreConfig {
    fn validate(&self) -> io::Result<()> {
        if !(MIN_SEGMENT_BYTES..=MAX_SEGMENT_BYTES).contains(&self.segment_bytes) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("segment_bytes must be in {MIN_SEGMENT_BYTES}..={MAX_SEGMENT_BYTES}"),
            ));
        }
        Ok(())
    }
}
