//! Publisher confirms, transactions, and the group commit that confirms wait for.
//!
//! Group commit: publishes of persistent messages to durable queues mark those
//! queues dirty. The io layer asks [`Broker::poll_sync`] for a job whenever none is
//! running; the job carries every dirty queue's sync batch and the epoch it
//! covers. When the fsyncs are done, [`Broker::handle_sync_done`] completes the
//! epoch and releases every confirm that waited for it. One fsync round serves all
//! publishes that arrived while the previous one ran: never one fsync per message.
//!
//! Publishes to a durable delayed exchange mark its store dirty the same way
//! (`Commit::delayed_dirty` in `model::commit`): the job syncs it with the queues.
//!
//! The same commit syncs the definitions logs written since the last one (see
//! `definitions::log`): a connection whose durable declare, bind or delete
//! waits for it ([`Broker::definitions_written_by`]) has its output held from
//! that reply on ([`SyncState::hold_output`]) and released, in order, when the
//! commit is done.
//!
//! Confirms leave a channel strictly in publish order, batched with `multiple`
//! where consecutive acks allow it.

use crate::core::model::ids::VhostName;
use std::collections::BTreeSet;
use std::fs::File;
use std::sync::Arc;

use ringmq_codec::{
    encode_method, BasicAck, BasicNack, ConfirmSelectOk, Method, ProtocolError, ReplyCode, ShortString, TxCommitOk,
    TxRollbackOk, TxSelectOk,
};
use ringmq_store::SyncBatch;

use crate::core::amqp::broker::Broker;
use crate::core::amqp::channel::{PendingCommit, PendingConfirm, Tx, TxAck};
use crate::core::amqp::connection::Connection;
use crate::core::amqp::dispatch::{chan, precondition};
use crate::core::amqp::error::MethodResult;
use crate::core::amqp::output::Output;
use crate::core::definitions::{self, log::Written};
use crate::core::model::cross::SettleHow;
use crate::core::model::cross::{ConfirmRef, TX_COMMIT};
use crate::core::model::ids::{ConnId, QueueId, ADMIN_CONN};
use crate::core::model::route::PublishOutcome;

/// The session's side of the group commit: who waits for it.
#[derive(Debug, Default)]
pub struct SyncState {
    /// Connections with confirms waiting for a sync.
    pub waiting: BTreeSet<ConnId>,
    /// Connections whose output waits for a sync (see [`SyncState::hold_output`]).
    held: crate::core::Map<ConnId, HeldOutput>,
}

/// A connection's output split at the reply that waits for a sync: `ready` (what
/// was written before it) may leave now; the connection's own buffer, from the
/// reply on, leaves once the commit of `epoch` is done.
#[derive(Debug)]
struct HeldOutput {
    epoch: u64,
    ready: Output,
}

impl SyncState {
    /// Holds everything `conn` is sent from now on until the next commit is done
    /// (a commit running now may not cover what was just written). Called before
    /// the reply is written; what is already in its buffer may leave now.
    pub(crate) fn hold_output(&mut self, conn: &mut Connection, epoch: u64) {
        match self.held.get_mut(&conn.id) {
            Some(h) => h.epoch = epoch,
            None => {
                let ready = std::mem::take(&mut conn.out);
                self.held.insert(conn.id, HeldOutput { epoch, ready });
            }
        }
    }

    /// Whether `id` has output waiting for a commit.
    pub(crate) fn holds_output(&self, id: ConnId) -> bool {
        self.held.contains_key(&id)
    }

    /// The output of connection `id` that may leave now: its buffer `own`, or the
    /// part before the held reply.
    pub(crate) fn sendable<'a>(&'a mut self, id: ConnId, own: &'a mut Output) -> &'a mut Output {
        match self.held.get_mut(&id) {
            Some(h) => &mut h.ready,
            None => own,
        }
    }

    /// The connection is gone: nothing of its output will be sent.
    pub(crate) fn forget(&mut self, id: ConnId) {
        self.held.remove(&id);
    }
}

/// fsync work for the io layer: run every batch, then hand the job back.
pub struct SyncJob {
    pub epoch: u64,
    pub batches: Vec<SyncBatch>,
    /// Definitions logs with records written since the last job (fdatasync).
    definitions: Vec<Arc<File>>,
    /// The vhost of each of `definitions`.
    definition_vhosts: Vec<VhostName>,
    /// (vhost, queue, priority level, seq) of each queue's batch.
    queues: Vec<(VhostName, QueueId, usize, ringmq_store::AppendSeq)>,
    /// (vhost, delayed exchange, seq) of each delayed store's batch.
    delayed: Vec<(VhostName, ShortString, ringmq_store::AppendSeq)>,
    /// A store's batch could not be taken: what waits for this job is not synced.
    prepare_failed: bool,
}

impl SyncJob {
    /// Runs the fsyncs on the calling thread (the io layer calls this off the loop).
    pub fn run_blocking(&self) -> std::io::Result<()> {
        for b in &self.batches {
            b.run_blocking()?;
        }
        for f in &self.definitions {
            f.sync_data()?;
        }
        Ok(())
    }

    /// The definitions log files to fdatasync, beside the batches.
    pub fn definition_files(&self) -> &[Arc<File>] {
        &self.definitions
    }
}

impl Broker {
    /// A record of `vhost` was written by the method `conn` runs: the next group
    /// commit syncs the log, and everything `conn` is sent from now on (the
    /// method's reply first) waits for that commit, as a confirm does. With
    /// `--no-sync` (`config.sync` false) replies do not wait; the log is still
    /// synced by the next commit.
    pub(crate) fn definitions_written_by(&mut self, vhost: &str, written: Written, conn: &mut Connection) {
        if definitions::log::written(&mut self.model, vhost, written) {
            self.hold_reply_for_definitions(conn);
        }
    }

    /// Holds what `conn` is sent from now on (the reply to the method that wrote
    /// a record first) until the next group commit is done; for a record written
    /// on the connection's behalf by a shared path (`delete_queue`).
    pub(crate) fn hold_reply_for_definitions(&mut self, conn: &mut Connection) {
        // The management API's connection is not a client's: its callers sync
        // before they answer (`definitions::log::sync_now`).
        if self.model.commit.enabled() && conn.id != ADMIN_CONN {
            self.sync.hold_output(conn, self.model.commit.next_epoch());
        }
    }

    pub(crate) fn track_confirm(&mut self, conn: &mut Connection, channel: u16, outcome: PublishOutcome) {
        let epoch = if outcome.needs_sync {
            self.model.commit.epoch + 1
        } else {
            0
        };
        let ch = chan(conn, channel);
        if !ch.confirm {
            return;
        }
        let seq = ch.next_publish_seq;
        ch.next_publish_seq += 1;
        ch.pending_confirms.push_back(PendingConfirm {
            seq,
            epoch,
            nack: outcome.failed,
            remote: outcome.remote,
        });
        if outcome.remote > 0 {
            // Sent when the other shards' word comes (`Broker::handle_cross`).
        } else if epoch == 0 {
            // Sent when this input is handled, with the others made ready by it,
            // as RabbitMQ coalesces confirms ready in one turn (`flush_ready_confirms`).
            conn.confirms_ready = true;
        } else {
            self.sync.waiting.insert(conn.id);
        }
    }

    /// Another shard stored (or failed to store) a message this shard
    /// forwarded for the publisher's `confirm`: when it was the last word
    /// awaited, the confirm may go, in the channel's order.
    pub(crate) fn handle_stored(&mut self, confirm: ConfirmRef, failed: bool) {
        if confirm.conn == crate::core::model::queue::dead_letter_hold::DEAD_LETTERS {
            // A held dead letter's copy (at-least-once), not a publisher's.
            self.model.dead_letter_stored(confirm.seq, failed);
            return;
        }
        let Some(mut conn) = self.conns.remove(&confirm.conn) else {
            return; // the publisher is gone
        };
        let synced = self.model.commit.synced;
        let channel = conn
            .channels
            .get_mut(&confirm.channel)
            .filter(|c| c.serial == confirm.serial);
        if let Some(ch) = channel.filter(|_| confirm.seq & TX_COMMIT != 0) {
            // A transaction's publish: as on one shard, a store that failed
            // (a full queue) does not fail the commit.
            let no = confirm.seq & !TX_COMMIT;
            if let Some(c) = ch.commits.iter_mut().find(|c| c.no == no) {
                debug_assert!(c.remote > 0, "one word per shard forwarded to: {confirm:?}");
                c.remote = c.remote.saturating_sub(1);
            }
            flush_commits(&mut conn, confirm.channel, synced);
        } else if let Some(ch) = conn
            .channels
            .get_mut(&confirm.channel)
            .filter(|c| c.serial == confirm.serial)
        {
            let pending = &mut ch.pending_confirms;
            let at = pending.partition_point(|p| p.seq < confirm.seq);
            if let Some(p) = pending.get_mut(at).filter(|p| p.seq == confirm.seq) {
                debug_assert!(p.remote > 0, "one word per shard forwarded to: {confirm:?}");
                p.remote = p.remote.saturating_sub(1);
                p.nack |= failed;
            }
            flush_confirms(&mut conn, confirm.channel, synced);
        }
        if conn.has_output() {
            self.mark_dirty(&mut conn);
        }
        self.conns.insert(confirm.conn, conn);
    }

    /// A sync job if any durable data waits for one and none is running.
    pub fn poll_sync(&mut self) -> Option<SyncJob> {
        let idle = self.model.commit.nothing_dirty() && self.sync.held.is_empty();
        if self.model.commit.running.is_some() || idle {
            return None;
        }
        // Every buffered ack is written before the fsyncs: none may trail a
        // dead-lettered copy made durable by this commit (see `ack_flush`).
        self.model.flush_acks();
        self.model.commit.epoch += 1;
        let epoch = self.model.commit.epoch;
        let mut batches = Vec::new();
        let mut queues = Vec::new();
        let mut prepare_failed = false;
        for (qid, vname) in std::mem::take(&mut self.model.commit.dirty) {
            let Some(q) = self.model.vhosts.get_mut(&vname).and_then(|v| v.queues.get_mut(&qid)) else {
                continue;
            };
            match q.take_sync_batches() {
                Ok(level_batches) => {
                    for (level, b) in level_batches {
                        queues.push((vname.clone(), qid, level, b.seq()));
                        batches.push(b);
                    }
                }
                Err(e) => {
                    tracing::error!(queue = %q.name(), error = %e, "cannot prepare sync; nacking waiting publishes");
                    prepare_failed = true;
                }
            }
        }
        let mut delayed = Vec::new();
        for (vname, exchange) in std::mem::take(&mut self.model.commit.delayed) {
            let x = self
                .model
                .vhosts
                .get_mut(&vname)
                .and_then(|v| v.exchanges.get_mut(&*exchange));
            let Some(store) = x.and_then(|x| x.delayed.as_mut()) else {
                continue;
            };
            match store.take_sync_batch() {
                Ok(Some(b)) => {
                    delayed.push((vname, exchange, b.seq()));
                    batches.push(b);
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::error!(%exchange, error = %e, "cannot prepare sync; nacking waiting publishes");
                    prepare_failed = true;
                }
            }
        }
        // Held replies whose records an in-place sync covered already
        // (`definitions::log::sync_now`) are released by this job, with no file of theirs.
        let mut definitions = Vec::new();
        let mut definition_vhosts = Vec::new();
        for vname in std::mem::take(&mut self.model.commit.definitions) {
            if let Some(f) = self
                .model
                .vhosts
                .get_mut(&vname)
                .and_then(|v| v.definitions.take_sync())
            {
                definitions.push(f);
                definition_vhosts.push(vname);
            }
        }
        // Logs whose rewrite after a failed sync failed too: again, before
        // this commit's replies are released.
        for vname in std::mem::take(&mut self.model.commit.definitions_rewrite) {
            self.rewrite_definitions(&vname);
        }
        self.model.commit.running = Some(epoch);
        Some(SyncJob {
            epoch,
            batches,
            definitions,
            definition_vhosts,
            queues,
            delayed,
            prepare_failed,
        })
    }

    /// The fsyncs of a job finished. On error nothing is confirmed as durable:
    /// the waiting publishes are nacked, which is what a publisher must be told
    /// when the broker cannot promise the data is safe. After a failed fsync that
    /// is every publish waiting, for this job or the next: those that came while
    /// it ran are in the same files, and after a failed fsync the next one of a
    /// file reports success for pages whose write-back failed (see
    /// `ringmq_store::sync`). The stores are told, and go on in new files. After
    /// a batch that could not be prepared, it is what waits for this job.
    pub fn handle_sync_done(&mut self, job: SyncJob, result: std::io::Result<()>) {
        self.model.commit.running = None;
        let synced = result.is_ok();
        if let Err(e) = &result {
            tracing::error!(error = %e, "group commit fsync failed; nacking waiting publishes");
        }
        let failed_through = match (synced, job.prepare_failed) {
            (false, _) => Some(self.model.commit.epoch + 1),
            (true, true) => Some(job.epoch),
            (true, false) => None,
        };
        let failed_through = failed_through.max(self.model.commit.failed_inline.take());
        let ok = failed_through.is_none();
        for (vname, qid, level, seq) in &job.queues {
            if let Some(q) = self.model.vhosts.get_mut(vname).and_then(|v| v.queues.get_mut(qid)) {
                if synced {
                    q.sync_completed(*level, *seq);
                } else {
                    q.sync_failed(*level, *seq);
                }
            }
        }
        if ok {
            self.model.commit.synced = job.epoch;
        }
        if !synced {
            for vname in &job.definition_vhosts {
                self.rewrite_definitions(vname);
            }
        }
        for (vname, exchange, seq) in &job.delayed {
            let x = self
                .model
                .vhosts
                .get_mut(vname)
                .and_then(|v| v.exchanges.get_mut(&**exchange));
            if let Some(store) = x.and_then(|x| x.delayed.as_mut()) {
                store.commit_done(*seq, synced);
            }
        }
        self.model.cross.commit_done(self.model.commit.synced, failed_through);
        self.model
            .release_dead_letter_sources(failed_through.unwrap_or(job.epoch), ok);
        self.release_held_output(job.epoch);
        let waiting = std::mem::take(&mut self.sync.waiting);
        for id in waiting {
            let Some(mut conn) = self.conns.remove(&id) else {
                continue;
            };
            let channels: Vec<u16> = conn.channels.keys().copied().collect();
            let mut still = false;
            for ch in channels {
                if let Some(failed) = failed_through {
                    let c = chan(&mut conn, ch);
                    for p in c.pending_confirms.iter_mut().filter(|p| p.epoch <= failed) {
                        p.nack = true;
                        p.epoch = 0;
                    }
                }
                flush_confirms(&mut conn, ch, self.model.commit.synced);
                still |= chan(&mut conn, ch).pending_confirms.iter().any(|p| p.epoch > 0);
                let c = chan(&mut conn, ch);
                // (Epoch 0: a commit with nothing to sync here.)
                if c.commits
                    .iter()
                    .any(|p| p.epoch > 0 && failed_through.is_some_and(|f| p.epoch <= f))
                {
                    c.commits.clear();
                    let e = ProtocolError::new(ReplyCode::InternalError, "tx.commit failed: cannot sync to disk");
                    self.close_channel(&mut conn, ch, e);
                    continue;
                }
                flush_commits(&mut conn, ch, self.model.commit.synced);
                // Commits left wait for a later sync, or for other shards' word
                // (`handle_stored`, which finishes those).
                still |= chan(&mut conn, ch)
                    .commits
                    .iter()
                    .any(|p| p.epoch > self.model.commit.synced);
            }
            if still {
                self.sync.waiting.insert(id);
            }
            if !conn.out.is_empty() {
                self.mark_dirty(&mut conn);
            }
            self.conns.insert(id, conn);
        }
    }

    /// Rewrites a vhost's definitions log after a failed sync from this
    /// shard's copy, in a metadata section: the copy then has every shard's
    /// ops, and no other shard appends meanwhile (`model::vhost_files`).
    fn rewrite_definitions(&mut self, vname: &VhostName) {
        self.in_meta_section(|b| definitions::log::rewrite(&mut b.model, vname));
    }

    /// Sends the output held for commits up to `epoch`, in order. After a failed
    /// sync too (logged above): a durable declare's reply was sent after a failed
    /// write before group commit as well, and the client's next step tells it.
    fn release_held_output(&mut self, epoch: u64) {
        let done: Vec<ConnId> = (self.sync.held.iter())
            .filter(|(_, h)| h.epoch <= epoch)
            .map(|(&id, _)| id)
            .collect();
        for id in done {
            let Some(h) = self.sync.held.remove(&id) else { continue };
            let Some(mut conn) = self.conns.remove(&id) else {
                continue;
            };
            let mut out = h.ready;
            out.append(std::mem::take(&mut conn.out));
            conn.out = out;
            if !conn.out.is_empty() {
                self.mark_dirty(&mut conn);
            }
            self.conns.insert(id, conn);
        }
    }

    pub(crate) fn confirm_select(&mut self, conn: &mut Connection, channel: u16, no_wait: bool) -> MethodResult {
        let ch = chan(conn, channel);
        if ch.tx.is_some() {
            return Err(precondition("cannot switch from tx to confirm mode"));
        }
        ch.confirm = true;
        if !no_wait {
            encode_method(&mut conn.out, channel, &Method::ConfirmSelectOk(ConfirmSelectOk));
        }
        Ok(())
    }

    pub(crate) fn tx_select(&mut self, conn: &mut Connection, channel: u16) -> MethodResult {
        let ch = chan(conn, channel);
        if ch.confirm {
            return Err(precondition("cannot switch from confirm to tx mode"));
        }
        if ch.tx.is_none() {
            ch.tx = Some(Tx::default());
        }
        encode_method(&mut conn.out, channel, &Method::TxSelectOk(TxSelectOk));
        Ok(())
    }

    pub(crate) fn tx_commit(&mut self, conn: &mut Connection, channel: u16) -> MethodResult {
        let ch = chan(conn, channel);
        let Some(tx) = ch.tx.replace(Tx::default()) else {
            return Err(precondition("channel is not transactional"));
        };
        ch.commits_made += 1;
        let no = ch.commits_made;
        let mut needs_sync = false;
        let mut remote = 0u32;
        for p in &tx.publishes {
            let outcome = self.publish(
                conn,
                channel,
                p.exchange.as_short(),
                p.routing_key.as_short(),
                p.mandatory,
                &p.properties,
                &p.body,
            )?;
            needs_sync |= outcome.needs_sync;
            remote += u32::from(outcome.remote);
        }
        for a in tx.acks {
            match a {
                TxAck::Ack { tag, multiple } => self.settle(conn, channel, tag, multiple, SettleHow::Ack)?,
                TxAck::Nack { tag, multiple, requeue } => {
                    let how = if requeue {
                        SettleHow::Requeue
                    } else {
                        SettleHow::Discard
                    };
                    self.settle(conn, channel, tag, multiple, how)?
                }
            }
        }
        // Committed means on disk, as a confirm does: commit-ok waits for the
        // group commit that covers these appends (see `handle_sync_done`), for
        // the other shards that stored some (`handle_stored`), and for the
        // commits before it on the channel.
        let epoch = if needs_sync { self.model.commit.epoch + 1 } else { 0 };
        chan(conn, channel)
            .commits
            .push_back(PendingCommit { no, epoch, remote });
        if needs_sync {
            self.sync.waiting.insert(conn.id);
        }
        flush_commits(conn, channel, self.model.commit.synced);
        Ok(())
    }

    pub(crate) fn tx_rollback(&mut self, conn: &mut Connection, channel: u16) -> MethodResult {
        let ch = chan(conn, channel);
        if ch.tx.is_none() {
            return Err(precondition("channel is not transactional"));
        }
        ch.tx = Some(Tx::default());
        encode_method(&mut conn.out, channel, &Method::TxRollbackOk(TxRollbackOk));
        Ok(())
    }
}

/// Sends the confirms made ready while one input was handled, on every channel
/// of the connection, each channel's run of acks as one `multiple` ack.
pub(crate) fn flush_ready_confirms(conn: &mut Connection, synced_epoch: u64) {
    if !std::mem::take(&mut conn.confirms_ready) {
        return;
    }
    let channels: Vec<u16> = (conn.channels.iter())
        .filter(|(_, ch)| !ch.pending_confirms.is_empty())
        .map(|(&n, _)| n)
        .collect();
    for channel in channels {
        flush_confirms(conn, channel, synced_epoch);
    }
}

/// Sends the confirms at the head of the channel's queue that may go now, in
/// order, coalescing runs of acks into one `multiple` ack.
pub(crate) fn flush_confirms(conn: &mut Connection, channel: u16, synced_epoch: u64) {
    let Some(ch) = conn.channels.get_mut(&channel) else {
        return;
    };
    let mut run_end: Option<u64> = None;
    let mut run_len = 0u64;
    while let Some(p) = ch.pending_confirms.front().copied() {
        if p.epoch > synced_epoch || p.remote > 0 {
            break;
        }
        ch.pending_confirms.pop_front();
        if p.nack {
            if let Some(end) = run_end.take() {
                send_ack(&mut conn.out, channel, end, run_len > 1);
                run_len = 0;
            }
            let nack = BasicNack {
                delivery_tag: p.seq,
                multiple: false,
                requeue: false,
            };
            encode_method(&mut conn.out, channel, &Method::BasicNack(nack));
        } else {
            run_end = Some(p.seq);
            run_len += 1;
            ch.stats.c.confirm += 1;
        }
    }
    if let Some(end) = run_end {
        send_ack(&mut conn.out, channel, end, run_len > 1);
    }
}

/// Sends the commit-oks at the head of the channel's commits that may go
/// now, in order.
pub(crate) fn flush_commits(conn: &mut Connection, channel: u16, synced_epoch: u64) {
    let Some(ch) = conn.channels.get_mut(&channel) else {
        return;
    };
    while ch
        .commits
        .front()
        .is_some_and(|c| c.epoch <= synced_epoch && c.remote == 0)
    {
        ch.commits.pop_front();
        encode_method(&mut conn.out, channel, &Method::TxCommitOk(TxCommitOk));
    }
}

fn send_ack(out: &mut Vec<u8>, channel: u16, tag: u64, multiple: bool) {
    let ack = BasicAck {
        delivery_tag: tag,
        multiple,
    };
    encode_method(out, channel, &Method::BasicAck(ack));
}
