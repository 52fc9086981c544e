//! Deliveries of another shard's queue settled by the channel that holds
//! them (`docs/shards.md`, step 3): acks, requeues and discards go back to
//! the queue's owner by position, in the order the channel settled them.

use ringmq_store::SegmentPosition;

use crate::core::model::ids::{QueueId, VhostName};

/// How a delivery is settled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SettleHow {
    Ack,
    /// Back to the queue, ahead of newer messages, marked redelivered (a
    /// nack or reject with requeue, a recover, a channel's end).
    Requeue,
    /// Dead-lettered as rejected, or dropped (a nack or reject without requeue).
    Discard,
}

/// Deliveries of one queue settled alike.
#[derive(Debug, Clone, PartialEq)]
pub struct Settlement {
    pub vhost: VhostName,
    pub queue: QueueId,
    pub how: SettleHow,
    pub positions: Vec<SegmentPosition>,
}

impl crate::core::model::Model {
    /// Deliveries of this shard's queue settled on another shard's channel:
    /// done as that channel's own settlement would be here.
    pub(crate) fn handle_settlement(&mut self, s: &Settlement) {
        let now_ms = self.now_ms;
        match s.how {
            SettleHow::Ack => {
                let Some(q) = self.vhosts.get_mut(&s.vhost).and_then(|v| v.queues.get_mut(&s.queue)) else {
                    return; // deleted meanwhile: its messages went with it
                };
                for &pos in &s.positions {
                    q.ack_delivered(pos);
                }
                self.ack_flush.note(&s.vhost, q, now_ms);
            }
            SettleHow::Requeue => {
                for &pos in &s.positions {
                    self.requeue_or_limit(&s.vhost, s.queue, pos);
                }
            }
            SettleHow::Discard => {
                for &pos in &s.positions {
                    self.discard_delivered(
                        &s.vhost,
                        s.queue,
                        pos,
                        crate::core::model::queue::dead_letter::DeathReason::Rejected,
                    );
                }
            }
        }
        self.deliver_pending.push((s.vhost.clone(), s.queue));
    }
}
