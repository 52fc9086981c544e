//! At-least-once dead-lettering (`x-dead-letter-strategy: at-least-once` on a
//! quorum queue with `x-overflow: reject-publish`, as RabbitMQ requires).
//!
//! At-most-once (the default) removes the dead message from its queue at once and
//! publishes its copy afterwards: a crash in between loses it. At-least-once keeps
//! the original, taken but not acked, until the copy is on disk in every queue it
//! was routed to: the group commit that covers the copy's appends releases it
//! (`handle_sync_done`). A crash before that brings the original back (flagged
//! redelivered) and it dies again: a duplicate, never a loss. A failed fsync puts
//! the originals back as ready, for the same reason.
//!
//! With shards, a copy routed to another shard's queue crosses with a confirm
//! reference ([`DEAD_LETTERS`]); the original waits for that shard's word
//! (`Stored`, sent after its own group commit) as well as for this shard's
//! commit, and goes back as ready if either failed.
//!
//! Not yet as RabbitMQ: a copy that routes nowhere (no exchange, no binding) is
//! dropped as at-most-once would (RabbitMQ keeps it in the source and retries).

use crate::core::model::ids::VhostName;

use ringmq_store::SegmentPosition;

use crate::core::model::ids::QueueId;
use crate::core::model::Model;

/// The connection id of the confirm reference a held dead letter's copies
/// carry to other shards: their `Stored` words come back to the hold, not to
/// a connection (no connection has this id: shard numbers stop well below).
pub(crate) const DEAD_LETTERS: crate::core::model::ids::ConnId = crate::core::model::ids::ConnId(u64::MAX);

/// An original waiting for its dead letter's group commit.
#[derive(Debug)]
struct Held {
    vhost: VhostName,
    queue: QueueId,
    pos: SegmentPosition,
    /// The sync epoch that makes the copy durable (0 once it has).
    epoch: u64,
    /// Its number, which other shards' words name.
    id: u64,
    /// Other shards whose word is still to come.
    remote: u32,
    /// A copy failed somewhere: the original goes back.
    failed: bool,
}

/// Bounded by what the queues hold: each entry is a message taken from a queue
/// and not acked, released at the next group commit.
#[derive(Debug, Default)]
pub(crate) struct HeldDeadLetters {
    held: Vec<Held>,
    next_id: u64,
}

impl HeldDeadLetters {
    pub(crate) fn is_empty(&self) -> bool {
        self.held.is_empty()
    }

    /// The number the next held original gets (for its copies' confirm
    /// reference, set before they are routed).
    pub(crate) fn next_id(&self) -> u64 {
        self.next_id
    }
}

impl Model {
    /// The copy of the message at `pos` in `queue` is stored; `epoch` is the group
    /// commit it waits for (0: nothing to wait for, e.g. a transient copy).
    /// `remote`: other shards the copy went to, whose words are awaited.
    pub(crate) fn hold_dead_letter_source(
        &mut self,
        vhost: &VhostName,
        queue: QueueId,
        pos: SegmentPosition,
        epoch: u64,
        remote: u32,
    ) {
        if epoch == 0 && remote == 0 {
            self.ack_dead_source(vhost, queue, pos);
            return;
        }
        let id = self.held_dead_letters.next_id;
        self.held_dead_letters.next_id += 1;
        self.held_dead_letters.held.push(Held {
            vhost: vhost.clone(),
            queue,
            pos,
            epoch,
            id,
            remote,
            failed: false,
        });
    }

    /// Another shard stored (or failed to store) a copy of held original `id`.
    pub(crate) fn dead_letter_stored(&mut self, id: u64, failed: bool) {
        let Some(h) = self.held_dead_letters.held.iter_mut().find(|h| h.id == id) else {
            return;
        };
        h.remote = h.remote.saturating_sub(1);
        h.failed |= failed;
        self.release_done_dead_letters();
    }

    /// A group commit finished: originals whose copies it made durable are acked
    /// (`ok`), or, if it failed, put back as ready to die again.
    pub(crate) fn release_dead_letter_sources(&mut self, epoch: u64, ok: bool) {
        if self.held_dead_letters.is_empty() {
            return;
        }
        for h in &mut self.held_dead_letters.held {
            if h.epoch <= epoch {
                h.epoch = 0;
                h.failed |= !ok;
            }
        }
        self.release_done_dead_letters();
    }

    /// Originals whose copies are durable here and stored everywhere else.
    fn release_done_dead_letters(&mut self) {
        let held = std::mem::take(&mut self.held_dead_letters.held);
        let (done, waiting): (Vec<Held>, Vec<Held>) = held.into_iter().partition(|h| h.epoch == 0 && h.remote == 0);
        self.held_dead_letters.held = waiting;
        for h in done {
            if !h.failed {
                self.ack_dead_source(&h.vhost, h.queue, h.pos);
            } else if let Some(q) = self.vhosts.get_mut(&h.vhost).and_then(|v| v.queues.get_mut(&h.queue)) {
                q.requeue_position(h.pos);
                self.deliver_pending.push((h.vhost, h.queue));
            }
        }
    }

    fn ack_dead_source(&mut self, vhost: &VhostName, queue: QueueId, pos: SegmentPosition) {
        // The queue may have gone meanwhile, and its messages with it.
        if let Some(q) = self.vhosts.get_mut(vhost).and_then(|v| v.queues.get_mut(&queue)) {
            q.ack_position(pos);
            self.ack_flush.note(vhost, q, self.now_ms);
        }
    }
}
