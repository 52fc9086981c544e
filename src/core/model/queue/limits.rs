//! Length limits (`x-max-length`, `x-max-length-bytes`, drop-head) and the
//! delivery limit: what dies when a queue is too long or a message was delivered
//! too often, and the discard of a rejected delivery.

use crate::core::model::ids::VhostName;
use ringmq_codec::ShortString;

use ringmq_store::SegmentPosition;

use crate::core::model::ids::QueueId;
use crate::core::model::queue::args::DeadLetterStrategy;
use crate::core::model::queue::dead_letter::{dead_letter_at, DeathReason};
use crate::core::model::Model;

impl Model {
    /// drop-head: removes (dead-letters) head messages while the queue is over
    /// its max-length or max-length-bytes. Run after every way messages become
    /// ready (publish, requeue) and when a policy lowers a limit, as RabbitMQ
    /// does (`maybe_drop_head` after publish and requeue).
    pub(crate) fn enforce_length(&mut self, vhost_name: &VhostName, id: QueueId) {
        loop {
            let over = self
                .vhosts
                .get(vhost_name)
                .and_then(|v| v.queues.get(&id))
                .is_some_and(|q| q.needs_drop_head());
            if !over {
                return;
            }
            self.drop_head(vhost_name, id, DeathReason::MaxLen);
        }
    }

    /// drop-head once for every queue, in (vhost, name) order, when the broker
    /// starts. Unacked messages at a kill -9 come back ready, and only ready
    /// ones count against max-length, so a queue can open over its limit (the
    /// model test found 4 messages in an `x-max-length: 2` queue); RabbitMQ
    /// 3.10 trims and dead-letters then too (`init_max_length` when a queue
    /// starts).
    pub(crate) fn enforce_lengths_at_start(&mut self) {
        let mut over: Vec<(VhostName, ShortString, QueueId)> = self
            .vhosts
            .iter()
            .flat_map(|(v, vh)| {
                vh.queues
                    .values()
                    .filter(|q| q.needs_drop_head())
                    .map(move |q| (v.clone(), q.name.clone(), q.id))
            })
            .collect();
        over.sort();
        for (v, _, id) in over {
            self.enforce_length(&v, id);
        }
    }

    /// Removes the head of the ready messages, dead-lettering it if the queue
    /// has a dead-letter exchange.
    pub(crate) fn drop_head(&mut self, vhost_name: &VhostName, id: QueueId, reason: DeathReason) {
        let now_ms = self.now_ms;
        let Some(q) = self.vhosts.get_mut(vhost_name).and_then(|v| v.queues.get_mut(&id)) else {
            return;
        };
        let Some(pos) = q.peek_head() else { return };
        let dl = q
            .settings()
            .dead_letter_exchange
            .is_some()
            .then(|| dead_letter_at(vhost_name, q, pos, reason, now_ms))
            .flatten();
        q.remove_head();
        self.ack_flush.note(vhost_name, q, now_ms);
        if let Some(dl) = dl {
            self.dead_letters.push_back(dl);
        }
    }

    /// A delivered message is discarded (nack/reject without requeue, or past its
    /// delivery limit): dead-letter it if the queue has a DLX, then ack it.
    pub(crate) fn discard_delivered(
        &mut self,
        vhost_name: &VhostName,
        id: QueueId,
        pos: SegmentPosition,
        reason: DeathReason,
    ) {
        let now_ms = self.now_ms;
        let Some(q) = self.vhosts.get_mut(vhost_name).and_then(|v| v.queues.get_mut(&id)) else {
            return;
        };
        if q.settings().dead_letter_exchange.is_some() {
            if let Some(mut dl) = dead_letter_at(vhost_name, q, pos, reason, now_ms) {
                if q.settings().dead_lettering() == DeadLetterStrategy::AtLeastOnce {
                    // Acked when the copy is durable (`dead_letter_hold`).
                    dl.hold_original(id, pos);
                    self.dead_letters.push_back(dl);
                    return;
                }
                self.dead_letters.push_back(dl);
            }
        }
        q.ack_position(pos);
        self.ack_flush.note(vhost_name, q, now_ms);
    }

    /// Requeues a delivered message, unless it has reached the queue's delivery
    /// limit, in which case it dies with reason `delivery_limit`.
    pub(crate) fn requeue_or_limit(&mut self, vhost_name: &VhostName, id: QueueId, pos: SegmentPosition) {
        let Some(q) = self.vhosts.get_mut(vhost_name).and_then(|v| v.queues.get_mut(&id)) else {
            return;
        };
        if q.counts_deliveries() {
            let count = q.bump_delivery_count(pos);
            if q.settings()
                .delivery_limit
                .is_some_and(|limit| u64::from(count) > limit)
            {
                q.forget_delivery_count(pos);
                self.discard_delivered(vhost_name, id, pos, DeathReason::DeliveryLimit);
                return;
            }
        }
        q.requeue_position(pos);
        // A bumped delivery count is written with the acks.
        self.ack_flush.note(vhost_name, q, self.now_ms);
        if q.needs_drop_head() {
            self.enforce_length(vhost_name, id);
        }
    }
}
