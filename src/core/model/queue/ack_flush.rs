//! Getting acks, rejects and drops into the ack files within a bounded time.
//!
//! A queue's store buffers the offsets of done messages (acked, rejected without
//! requeue, dropped by a length limit or TTL) and writes them in one `write` per
//! 1,024 or per group commit, so the ack path makes no syscall per ack. But a
//! group commit only covers queues that got a persistent publish: on a quiet
//! queue the buffer stayed in memory without limit, and after kill -9 acked
//! messages came back (issue 15, defect 2). So every queue whose store got done
//! messages is listed here, and its buffer is written
//! - by a timer at most [`ACK_FLUSH_DELAY_MS`] after the first of them,
//! - by every group commit ([`Broker::poll_sync`] flushes all listed queues), and
//! - before dead-lettered copies are stored in another queue, so a crash can
//!   lose the copy's source ack only together with the copy.
//!
//! A plain `write`, no fsync: after kill -9 the page cache still holds it, which
//! is the crash this protects against. Against power loss the ack files are
//! synced by the next group commit of their queue; an ack lost with the power
//! means a redelivery, which at-least-once delivery allows.

use crate::core::model::ids::VhostName;

use crate::core::model::ids::QueueId;
use crate::core::model::queue::Queue;
use crate::core::model::Model;

/// How long an ack may sit in memory before it is written (a plain write).
pub const ACK_FLUSH_DELAY_MS: u64 = 100;

/// Queues with buffered acks, and when they must be written.
#[derive(Debug, Default)]
pub(crate) struct AckFlush {
    queues: Vec<(VhostName, QueueId)>,
    /// The timer: set with the first listed queue, always after the `now` it
    /// was set at; handled (and cleared) by the first `handle_timeout` at or
    /// after it.
    due_ms: Option<u64>,
}

impl AckFlush {
    /// Lists `q` if its store has done messages not yet written.
    pub fn note(&mut self, vhost: &VhostName, q: &mut Queue, now_ms: u64) {
        if !q.acks_unwritten || q.acks_listed {
            return;
        }
        q.acks_listed = true;
        self.queues.push((vhost.clone(), q.id));
        self.due_ms.get_or_insert(now_ms + ACK_FLUSH_DELAY_MS);
    }

    pub fn due_ms(&self) -> Option<u64> {
        self.due_ms
    }
}

impl Model {
    /// Writes the buffered acks of every listed queue (see the module docs).
    pub(crate) fn flush_acks(&mut self) {
        self.ack_flush.due_ms = None;
        for (vname, id) in std::mem::take(&mut self.ack_flush.queues) {
            let Some(q) = self.vhosts.get_mut(&vname).and_then(|v| v.queues.get_mut(&id)) else {
                continue;
            };
            q.acks_listed = false;
            q.acks_unwritten = false;
            if let Err(e) = q.storage.flush_acks() {
                tracing::error!(queue = %q.name, error = %e, "cannot write acks");
            }
        }
    }

    /// The ack timer, when `handle_timeout(now)` reaches it.
    pub(crate) fn flush_acks_if_due(&mut self, now_ms: u64) {
        if self.ack_flush.due_ms.is_some_and(|t| t <= now_ms) {
            self.flush_acks();
        }
    }

    /// Lists queue `id` if it has unwritten acks (after a call that may have
    /// made some).
    pub(crate) fn note_acks(&mut self, vhost: &VhostName, id: QueueId) {
        let now_ms = self.now_ms;
        if let Some(q) = self.vhosts.get_mut(vhost).and_then(|v| v.queues.get_mut(&id)) {
            self.ack_flush.note(vhost, q, now_ms);
        }
    }
}
