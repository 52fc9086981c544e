//! What the next group commit covers, and how far commits have come.
//!
//! Publishes of persistent messages to durable queues mark the queues dirty,
//! durable delayed exchanges their stores, declares their vhost's definitions
//! log. The next group commit (`Broker::poll_sync`, run by the io layer off the
//! loop) takes every dirty file in one job of epoch `epoch + 1`; when it is done,
//! `synced` is that epoch and whatever waited for it (confirms, a tx.commit-ok,
//! held replies, at-least-once dead letters' originals) is released.
//!
//! Protocol-neutral: the model marks what is dirty; who waits (AMQP channels'
//! confirms, replies held for the commit) is the session's (`amqp::confirm`).

use crate::core::model::ids::VhostName;
use ringmq_codec::ShortString;
use std::collections::BTreeSet;

use crate::core::model::ids::QueueId;

/// The group commit's state: the epochs and the dirty sets.
#[derive(Debug, Default)]
pub(crate) struct Commit {
    /// false = `--no-sync`: nothing waits for an fsync (the files are still
    /// synced by the next commit).
    enabled: bool,
    /// The epoch new durable appends belong to is `epoch + 1`; the last job's is `epoch`.
    pub(crate) epoch: u64,
    /// The last epoch known to be on disk.
    pub(crate) synced: u64,
    /// A job is running (its epoch).
    pub(crate) running: Option<u64>,
    /// Queues with appends waiting for a sync, with their vhost.
    pub(crate) dirty: crate::core::Map<QueueId, VhostName>,
    /// Vhosts whose definitions log has records waiting for a sync.
    pub(crate) definitions: BTreeSet<VhostName>,
    /// Delayed exchanges (vhost, exchange) whose store holds messages waiting
    /// for a sync.
    pub(crate) delayed: BTreeSet<(VhostName, ShortString)>,
    /// See [`Commit::inline_sync_failed`]: the epoch up to which the next job
    /// to finish fails what waits.
    pub(crate) failed_inline: Option<u64>,
    /// Vhosts whose definitions log failed a sync and could not be rewritten
    /// yet (`definitions::log::rewrite`).
    pub(crate) definitions_rewrite: BTreeSet<VhostName>,
}

impl Commit {
    pub(crate) fn new(enabled: bool) -> Commit {
        Commit {
            enabled,
            ..Default::default()
        }
    }

    /// Whether durable data waits for an fsync before it is confirmed (false
    /// with `--no-sync`).
    pub(crate) fn enabled(&self) -> bool {
        self.enabled
    }

    /// The epoch of the commit that will cover what is written now.
    pub(crate) fn next_epoch(&self) -> u64 {
        self.epoch + 1
    }

    /// Whether no file waits for a commit, and no inline sync failed since the
    /// last one (the next job reports that failure).
    pub(crate) fn nothing_dirty(&self) -> bool {
        self.dirty.is_empty() && self.delayed.is_empty() && self.definitions.is_empty() && self.failed_inline.is_none()
    }

    /// A store the group commit also syncs was synced inline (firing delayed
    /// messages) and that failed: what waits for a commit now may be in its
    /// failed files, so the next job to finish fails it, as a failed fsync of
    /// its own would (see `Broker::handle_sync_done`).
    pub(crate) fn inline_sync_failed(&mut self) {
        self.failed_inline = Some(self.epoch + 1);
    }

    pub(crate) fn mark_dirty(&mut self, vhost: &VhostName, q: QueueId) {
        self.dirty.entry(q).or_insert_with(|| vhost.clone());
    }

    /// The definitions log of `vhost` has records for the next commit.
    pub(crate) fn definitions_dirty(&mut self, vhost: &VhostName) {
        if !self.definitions.contains(vhost) {
            self.definitions.insert(vhost.clone());
        }
    }

    /// The store of the delayed exchange `exchange` of `vhost` has held
    /// messages for the next commit.
    pub(crate) fn delayed_dirty(&mut self, vhost: &VhostName, exchange: &ShortString) {
        let key = (vhost.clone(), exchange.clone());
        if !self.delayed.contains(&key) {
            self.delayed.insert(key);
        }
    }

    pub(crate) fn take_definitions_dirty(&mut self) -> BTreeSet<VhostName> {
        std::mem::take(&mut self.definitions)
    }
}
