//! The queue interface: [`QueueStorage`], the one way any part of the core
//! reaches a queue's messages, whatever kind of queue keeps them.
//!
//! It is an enum with a variant per kind of message store, so the hot path
//! (append, take, ack) is dispatched statically; this file is the only one that
//! matches on the variant. A queue that never stored a message has an
//! unopened store (opened at the first append). Two kinds:
//!
//! - `Classic(LeveledStore)`: segments on disk, one store per priority level
//!   (`x-max-priority`), acks buffered in ack files, redelivery counts kept
//!   with the acks. Classic and quorum queues (`x-queue-type`) both use it: a
//!   quorum queue on one node is a durable queue that counts every redelivery
//!   (see `args::QueueType`).
//!
//! # What a queue kind provides
//!
//! Every operation of [`QueueStorage`], for positions of type
//! `ringmq_store::SegmentPosition` (the queue module keeps them: the
//! redelivered set, unacked deliveries on channels, held dead letters):
//!
//! | group | operations | what the core relies on |
//! |---|---|---|
//! | publish | `append`, `note_maybe_delivered`, `take_space_low` | a position per stored message; disk-full as `StoreError::DiskFull` |
//! | delivery | `next_ready`, `peek_ready`, `read`, `read_shared` | ready messages in delivery order (higher priority first); a taken message is in flight until settled |
//! | settle | `ack`, `requeue`, `remove_next_ready`, `purge` | done messages leave the ready and unacked counts; a requeued one is next again |
//! | redelivery | `delivery_count`, `bump_delivery_count`, `forget_delivery_count`, `delivered_before_open` | counts that survive a restart (the delivery limit) |
//! | durability | `take_sync_batches`, `sync_completed`, `sync_failed`, `sync_all_blocking`, `flush_acks` | the group commit's part: what a confirm waits for |
//! | views | `ready_count`, `unacked_count`, `ready_bytes`, `total_bytes`, `dir`, `for_each_ready` | counts for queue.declare-ok, limits, stats; the folder (the `paused` marker) |
//! | end | `close`, `delete` | a clean stop; the queue and its files gone |
//!
//! # Operations without a meaning for some kinds
//!
//! Facts about RabbitMQ's other queue kinds that the queue interface has to
//! accommodate (streams are here, `stream.rs`; replicated queues to come):
//!
//! - A stream (`x-queue-type: stream`) is an append-only log read from an offset
//!   per consumer: an ack does not remove a message (messages go by retention,
//!   `x-max-length-bytes` and `x-max-age`), so `ack`, `requeue`,
//!   `remove_next_ready` and the delivery counts do nothing to its log, and
//!   "ready"/"unacked" counts are not per queue but per consumer offset.
//!   RabbitMQ refuses `queue.purge` and `basic.get` on streams, has no priority
//!   levels, message TTL or dead-lettering for them.
//! - A replicated (quorum) queue settles as a classic one (acks remove, requeue,
//!   delivery counts), but every change is an entry of its replicated log: the
//!   sync batches are that log's commit, and `dir` is the local replica's.
//!
//! The positions, the message view (`ringmq_store::MessageView`) and the sync
//! batch (`ringmq_store::SyncBatch`) are the classic store's types; a kind that
//! cannot produce them needs them made kind-neutral first.

use std::io;
use std::path::PathBuf;

use ringmq_store::{
    AppendSeq, LastStop, LeveledStore, MessageRef, MessageView, SegmentPosition, SharedBytes, StoreConfig, StoreError,
    SyncBatch,
};

use crate::core::model::queue::stream::Stream;
use crate::core::model::queue::Queue;

/// A queue's messages, by kind of queue (see the module docs).
pub(in crate::core::model) enum QueueStorage {
    /// Classic and (single-node) quorum queues. Until the queue's first
    /// message the store is `LeveledStore::unopened()`: no `QueueStore`, no
    /// open file, no mapping (100,000 idle queues paid ~0.6 KiB each for
    /// theirs); the first append opens it ([`Queue::open_store`]). Inline (32
    /// bytes; its delivery counts are boxed): an enum variant for "unopened"
    /// and a boxed store cost each message ~65 instructions more (callgrind:
    /// a match and a load more on every call).
    Classic(LeveledStore),
    /// Streams (`x-queue-type: stream`, `stream`): one log, read by offset,
    /// never acked. Opened at declare (and at start); boxed, so classic
    /// queues pay no size for it.
    Stream(Box<Stream>),
}

/// Where and how the queues of a vhost open their stores: one per vhost,
/// shared by its unopened queues.
#[derive(Debug)]
pub(crate) struct StoreHome {
    pub(crate) vhost_dir: PathBuf,
    pub(crate) config: StoreConfig,
}

impl StoreHome {
    /// Where a queue's segments live: durable queues under the vhost (one folder
    /// per generation of the name), transient ones under `transient/`, which is
    /// wiped at start.
    pub(crate) fn queue_dir(&self, name: &str, durable: bool, gen: u32) -> PathBuf {
        if durable {
            ringmq_store::layout::queue_dir_gen(&self.vhost_dir, name, gen)
        } else {
            ringmq_store::layout::queue_dir(&self.vhost_dir.join("transient"), name)
        }
    }
}

impl QueueStorage {
    /// Stores a message (ready, at the tail of its priority level).
    #[inline]
    pub(super) fn append(
        &mut self,
        msg: MessageRef<'_>,
        priority: u8,
        body: ringmq_store::BodyCrc,
    ) -> Result<SegmentPosition, StoreError> {
        match self {
            QueueStorage::Classic(s) => s.append_with(msg, priority, body),
            // A stream keeps every message across a restart: always checked.
            QueueStorage::Stream(s) => s.append(msg).map(|at| at.pos),
        }
    }

    /// Flags a just-appended copy as maybe delivered before (a delayed message
    /// routed again after an unclean stop): its deliveries say redelivered.
    #[inline]
    pub(super) fn note_maybe_delivered(&mut self, pos: SegmentPosition) -> Result<(), StoreError> {
        match self {
            QueueStorage::Classic(s) => s.note_maybe_delivered(pos),
            QueueStorage::Stream(_) => Ok(()),
        }
    }

    /// Whether free space went low since the last call (the disk alarm).
    #[inline]
    pub(super) fn take_space_low(&mut self) -> bool {
        match self {
            QueueStorage::Classic(s) => s.take_space_low(),
            QueueStorage::Stream(s) => s.log.take_space_low(),
        }
    }

    /// Takes the next ready message and marks it in flight.
    #[inline]
    pub(super) fn next_ready(&mut self) -> Result<Option<SegmentPosition>, StoreError> {
        match self {
            QueueStorage::Classic(s) => s.next_ready(),
            QueueStorage::Stream(_) => Ok(None),
        }
    }

    /// The next ready message, without taking it.
    #[inline]
    pub(super) fn peek_ready(&mut self) -> Result<Option<SegmentPosition>, StoreError> {
        match self {
            QueueStorage::Classic(s) => s.peek_ready(),
            QueueStorage::Stream(_) => Ok(None),
        }
    }

    /// Discards the next ready message (expired, over a limit) as done.
    #[inline]
    pub(super) fn remove_next_ready(&mut self) -> Result<Option<SegmentPosition>, StoreError> {
        match self {
            QueueStorage::Classic(s) => s.remove_next_ready(),
            QueueStorage::Stream(_) => Ok(None),
        }
    }

    /// The message at `pos`, checked.
    #[inline]
    pub(super) fn read(&self, pos: SegmentPosition) -> Result<MessageView<'_>, StoreError> {
        match self {
            QueueStorage::Classic(s) => s.read(pos),
            QueueStorage::Stream(s) => s.log.read(pos),
        }
    }

    /// The message at `pos`, its body shared rather than copied (large bodies).
    #[inline]
    pub(super) fn read_shared(&self, pos: SegmentPosition) -> Result<(MessageView<'_>, SharedBytes), StoreError> {
        match self {
            QueueStorage::Classic(s) => s.read_shared(pos),
            QueueStorage::Stream(s) => s.log.read_shared(pos),
        }
    }

    /// A delivered message is done (acked, or discarded without requeue).
    #[inline]
    pub(super) fn ack(&mut self, pos: SegmentPosition) -> Result<(), StoreError> {
        match self {
            QueueStorage::Classic(s) => s.ack(pos),
            QueueStorage::Stream(_) => Ok(()),
        }
    }

    /// A delivered message is ready again, ahead of newer ones.
    #[inline]
    pub(super) fn requeue(&mut self, pos: SegmentPosition) -> Result<(), StoreError> {
        match self {
            QueueStorage::Classic(s) => s.requeue(pos),
            QueueStorage::Stream(_) => Ok(()),
        }
    }

    /// Drops every ready message; returns how many.
    pub(super) fn purge(&mut self) -> Result<u64, StoreError> {
        match self {
            QueueStorage::Classic(s) => s.purge(),
            QueueStorage::Stream(_) => Ok(0),
        }
    }

    /// Earlier deliveries of `pos` (kept on disk with the acks).
    #[inline]
    pub(super) fn delivery_count(&self, pos: SegmentPosition) -> u32 {
        match self {
            QueueStorage::Classic(s) => s.delivery_count(pos),
            QueueStorage::Stream(_) => 0,
        }
    }

    /// Counts a redelivery of `pos`; returns the new count.
    #[inline]
    pub(super) fn bump_delivery_count(&mut self, pos: SegmentPosition) -> u32 {
        match self {
            QueueStorage::Classic(s) => s.bump_delivery_count(pos),
            QueueStorage::Stream(_) => 0,
        }
    }

    /// `pos` is settled: its delivery count goes.
    #[inline]
    pub(super) fn forget_delivery_count(&mut self, pos: SegmentPosition) {
        match self {
            QueueStorage::Classic(s) => s.forget_delivery_count(pos),
            QueueStorage::Stream(_) => {}
        }
    }

    /// Whether `pos` was (maybe) delivered before the store was opened.
    #[inline]
    pub(super) fn delivered_before_open(&self, pos: SegmentPosition) -> bool {
        match self {
            QueueStorage::Classic(s) => s.delivered_before_open(pos),
            QueueStorage::Stream(_) => false,
        }
    }

    #[inline]
    pub(super) fn ready_count(&self) -> u64 {
        match self {
            QueueStorage::Classic(s) => s.ready_count(),
            QueueStorage::Stream(_) => 0,
        }
    }

    #[inline]
    pub(super) fn unacked_count(&self) -> u64 {
        match self {
            QueueStorage::Classic(s) => s.unacked_count(),
            QueueStorage::Stream(_) => 0,
        }
    }

    pub(super) fn ready_bytes(&self) -> u64 {
        match self {
            QueueStorage::Classic(s) => s.ready_bytes(),
            QueueStorage::Stream(_) => 0,
        }
    }

    pub(super) fn total_bytes(&self) -> u64 {
        match self {
            QueueStorage::Classic(s) => s.total_bytes(),
            QueueStorage::Stream(s) => s.log.total_bytes(),
        }
    }

    pub(super) fn for_each_ready(&self, f: impl FnMut(SegmentPosition, &MessageView<'_>)) -> Result<(), StoreError> {
        match self {
            QueueStorage::Classic(s) => s.for_each_ready(f),
            QueueStorage::Stream(_) => Ok(()),
        }
    }

    pub(super) fn take_sync_batches(&mut self) -> io::Result<Vec<(usize, SyncBatch)>> {
        match self {
            QueueStorage::Classic(s) => s.take_sync_batches(),
            QueueStorage::Stream(s) => Ok(s.log.take_sync_batch()?.map(|b| (0, b)).into_iter().collect()),
        }
    }

    pub(super) fn sync_completed(&mut self, level: usize, seq: AppendSeq) {
        match self {
            QueueStorage::Classic(s) => s.sync_completed(level, seq),
            QueueStorage::Stream(s) => s.log.sync_completed(seq),
        }
    }

    pub(super) fn sync_failed(&mut self, level: usize, seq: AppendSeq) {
        match self {
            QueueStorage::Classic(s) => s.sync_failed(level, seq),
            QueueStorage::Stream(s) => s.log.sync_failed(seq),
        }
    }

    pub(super) fn sync_all_blocking(&mut self) -> io::Result<()> {
        match self {
            QueueStorage::Classic(s) => s.sync_all_blocking(),
            QueueStorage::Stream(s) => s.log.sync_all_blocking(),
        }
    }

    /// Writes the buffered offsets of done messages (see `ack_flush`).
    pub(super) fn flush_acks(&mut self) -> io::Result<()> {
        match self {
            QueueStorage::Classic(s) => s.flush_acks(),
            QueueStorage::Stream(_) => Ok(()),
        }
    }

    /// The stream, for a stream queue (see `stream`).
    #[inline]
    pub(super) fn stream(&self) -> Option<&Stream> {
        match self {
            QueueStorage::Classic(_) => None,
            QueueStorage::Stream(s) => Some(s),
        }
    }

    #[inline]
    pub(super) fn stream_mut(&mut self) -> Option<&mut Stream> {
        match self {
            QueueStorage::Classic(_) => None,
            QueueStorage::Stream(s) => Some(s),
        }
    }

    pub(super) fn close(self) -> io::Result<()> {
        match self {
            QueueStorage::Classic(s) => s.close(),
            QueueStorage::Stream(s) => s.log.close(),
        }
    }
}

/// What the rest of the core asks of a queue's messages, without knowing how
/// the queue keeps them: counts and sizes (views, stats, limits), its folder,
/// its part in the group commit, and its end (close or delete).
impl Queue {
    /// Messages ready for delivery.
    #[inline]
    pub fn ready_count(&self) -> u64 {
        self.storage.ready_count()
    }

    /// Messages delivered and not yet acked.
    #[inline]
    pub fn unacked_count(&self) -> u64 {
        self.storage.unacked_count()
    }

    /// Body bytes of the ready messages.
    pub fn ready_bytes(&self) -> u64 {
        self.storage.ready_bytes()
    }

    /// Bytes the queue's files take on disk.
    pub fn total_bytes(&self) -> u64 {
        self.storage.total_bytes()
    }

    /// The queue's folder (a transient queue's is made when its store opens).
    pub fn dir(&self) -> PathBuf {
        match &self.storage {
            QueueStorage::Classic(s) if s.is_open() => s.dir().to_path_buf(),
            QueueStorage::Classic(_) => self.home.queue_dir(&self.name, self.durable, self.store_gen),
            QueueStorage::Stream(s) => s.log.dir().to_path_buf(),
        }
    }

    /// Whether the queue's store is open (it stored a message since it was
    /// declared or recovered).
    #[inline]
    pub fn is_store_open(&self) -> bool {
        match &self.storage {
            QueueStorage::Classic(s) => s.is_open(),
            QueueStorage::Stream(_) => true,
        }
    }

    /// Opens the store of an unopened queue, for its first message: a
    /// transient queue's folder is made now; a durable one's was made at
    /// declare (recovery finds it), and holds no store files, so nothing is
    /// recovered. A store that is open stays as it is.
    #[cold]
    pub(super) fn open_store(&mut self) -> Result<(), StoreError> {
        if self.is_store_open() {
            return Ok(());
        }
        let home = &self.home;
        let dir = home.queue_dir(&self.name, self.durable, self.store_gen);
        if !self.durable {
            let parent = dir.parent().expect("queue dir has a parent");
            ringmq_store::layout::create_transient_dir(parent, &self.name)?;
        }
        let levels = self.arg_settings().max_priority.unwrap_or(0);
        let (store, _) = LeveledStore::open_recovering(&dir, home.config, levels, &|_| true, LastStop::Clean)?;
        self.storage = QueueStorage::Classic(store);
        Ok(())
    }

    /// Every ready message in delivery order, read-only (invariant checks).
    pub fn for_each_ready(&self, f: impl FnMut(SegmentPosition, &MessageView<'_>)) -> Result<(), StoreError> {
        self.storage.for_each_ready(f)
    }

    /// The files the next group commit must sync, per priority level (see
    /// `ringmq_store::sync`); nothing is taken on an error.
    pub(crate) fn take_sync_batches(&mut self) -> io::Result<Vec<(usize, SyncBatch)>> {
        self.storage.take_sync_batches()
    }

    /// The commit that took batch `seq` of `level` is done.
    pub(crate) fn sync_completed(&mut self, level: usize, seq: AppendSeq) {
        self.storage.sync_completed(level, seq);
    }

    /// The commit that took batch `seq` of `level` failed: the store goes on in
    /// new files (see `ringmq_store::sync`).
    pub(crate) fn sync_failed(&mut self, level: usize, seq: AppendSeq) {
        self.storage.sync_failed(level, seq);
    }

    /// Syncs everything appended, now (delayed messages' copies, outside the
    /// group commit).
    pub(crate) fn sync_all_blocking(&mut self) -> io::Result<()> {
        self.storage.sync_all_blocking()
    }

    /// Clean close: everything synced.
    pub(crate) fn close(self) -> io::Result<()> {
        self.storage.close()
    }

    /// The queue is gone: its folder and everything in it.
    /// `local`: the queue is this shard's; a copy of another shard's queue
    /// has no files here to remove.
    pub(crate) fn delete(self, local: bool) -> io::Result<()> {
        match self.storage {
            QueueStorage::Classic(_) | QueueStorage::Stream(_) if !local => Ok(()),
            QueueStorage::Stream(s) => s.log.delete(),
            QueueStorage::Classic(s) if s.is_open() => s.delete(),
            QueueStorage::Classic(_) => {
                match ringmq_store::changes::remove_dir_all(&self.home.queue_dir(
                    &self.name,
                    self.durable,
                    self.store_gen,
                )) {
                    Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
                    _ => Ok(()),
                }
            }
        }
    }
}
