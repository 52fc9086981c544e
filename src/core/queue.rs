//! A queue: its message store, its consumers, and who owns it.
//!
//! Messages live in the store (segments on disk); the queue holds only positions
//! (in the store) and the consumer list. Consumer choice: highest priority group
//! first (RabbitMQ's `x-priority`), round-robin within a group, skipping consumers
//! that have no prefetch credit (the broker checks credit, the queue orders).

use std::sync::Arc;

use ringmq_codec::FieldTable;
use std::collections::HashSet;

use ringmq_store::{QueueStore, SegmentPosition};

use super::ids::{ConnId, QueueId};

/// One consumer as the queue sees it.
#[derive(Debug, Clone)]
pub struct ConsumerRef {
    pub conn: ConnId,
    pub channel: u16,
    pub tag: Arc<str>,
    pub no_ack: bool,
    pub exclusive: bool,
    pub priority: i32,
}

pub struct Queue {
    pub id: QueueId,
    pub name: Arc<str>,
    pub durable: bool,
    pub auto_delete: bool,
    /// The connection an exclusive queue belongs to; it dies with that connection.
    pub exclusive_owner: Option<ConnId>,
    pub arguments: FieldTable,
    pub store: QueueStore,
    /// Sorted by priority, highest first; rotated within a priority group.
    consumers: Vec<ConsumerRef>,
    /// Auto-delete queues are deleted when their last consumer goes, but only once
    /// they have had one (a fresh auto-delete queue with no consumer stays).
    pub had_consumer: bool,
    /// Positions that were delivered and requeued: the next delivery says
    /// redelivered. Bounded by the unacked limit per channel times channels.
    redelivered: HashSet<SegmentPosition>,
}

impl Queue {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        id: QueueId,
        name: Arc<str>,
        durable: bool,
        auto_delete: bool,
        exclusive_owner: Option<ConnId>,
        arguments: FieldTable,
        store: QueueStore,
    ) -> Queue {
        Queue {
            id,
            name,
            durable,
            auto_delete,
            exclusive_owner,
            arguments,
            store,
            consumers: Vec::new(),
            had_consumer: false,
            redelivered: HashSet::new(),
        }
    }

    pub fn consumers(&self) -> &[ConsumerRef] {
        &self.consumers
    }

    pub fn consumer_count(&self) -> u32 {
        self.consumers.len() as u32
    }

    pub fn message_count(&self) -> u32 {
        u32::try_from(self.store.ready_count()).unwrap_or(u32::MAX)
    }

    /// Whether some consumer holds this queue exclusively.
    pub fn has_exclusive_consumer(&self) -> bool {
        self.consumers.iter().any(|c| c.exclusive)
    }

    pub fn add_consumer(&mut self, c: ConsumerRef) {
        // Insert after the last consumer with the same or higher priority, so new
        // consumers join the end of their group's rotation.
        let at = self
            .consumers
            .iter()
            .position(|x| x.priority < c.priority)
            .unwrap_or(self.consumers.len());
        self.consumers.insert(at, c);
        self.had_consumer = true;
    }

    /// Removes a consumer; returns it if it was there.
    pub fn remove_consumer(&mut self, conn: ConnId, channel: u16, tag: &str) -> Option<ConsumerRef> {
        let at = self
            .consumers
            .iter()
            .position(|c| c.conn == conn && c.channel == channel && &*c.tag == tag)?;
        Some(self.consumers.remove(at))
    }

    /// Removes every consumer of a channel (or of a whole connection when
    /// `channel` is None); returns how many.
    pub fn remove_consumers_of(&mut self, conn: ConnId, channel: Option<u16>) -> usize {
        let before = self.consumers.len();
        self.consumers
            .retain(|c| !(c.conn == conn && channel.is_none_or(|ch| ch == c.channel)));
        before - self.consumers.len()
    }

    /// Index of the consumer that should get the next message: the first, in
    /// priority-then-rotation order, for which `has_credit` says yes.
    pub fn pick_consumer(&self, has_credit: impl FnMut(&ConsumerRef) -> bool) -> Option<usize> {
        self.consumers.iter().position(has_credit)
    }

    /// Moves the consumer that just got a message to the end of its priority group.
    pub fn rotate_after_delivery(&mut self, index: usize) {
        let prio = self.consumers[index].priority;
        let group_end = self.consumers[index..]
            .iter()
            .position(|c| c.priority != prio)
            .map_or(self.consumers.len(), |p| index + p);
        self.consumers[index..group_end].rotate_left(1);
    }

    pub fn consumer(&self, index: usize) -> &ConsumerRef {
        &self.consumers[index]
    }

    /// Takes the next ready message and marks it in flight.
    pub fn next_ready(&mut self) -> Option<SegmentPosition> {
        match self.store.next_ready() {
            Ok(p) => p,
            Err(e) => {
                tracing::error!(queue = %self.name, error = %e, "cannot read next message");
                None
            }
        }
    }

    /// Whether this position was delivered before (requeued since).
    pub fn take_redelivered(&mut self, pos: SegmentPosition) -> bool {
        self.redelivered.remove(&pos) | self.store.delivered_before_open(pos)
    }

    /// The message is done (acked, or discarded by nack/reject without requeue).
    pub fn ack_position(&mut self, pos: SegmentPosition) {
        if let Err(e) = self.store.ack(pos) {
            // Not in flight means a bookkeeping bug in the broker; an io error
            // means the ack file could not be written (the message may return
            // after a restart, which at-least-once delivery allows).
            tracing::error!(queue = %self.name, error = %e, "ack failed");
            debug_assert!(
                !matches!(e, ringmq_store::StoreError::NotInFlight(_)),
                "ack of a position not in flight"
            );
        }
    }

    /// Back to ready, ahead of newer messages, flagged redelivered.
    pub fn requeue_position(&mut self, pos: SegmentPosition) {
        match self.store.requeue(pos) {
            Ok(()) => {
                self.redelivered.insert(pos);
            }
            Err(e) => {
                tracing::error!(queue = %self.name, error = %e, "requeue failed");
                debug_assert!(false, "requeue of a position not in flight");
            }
        }
    }
}
