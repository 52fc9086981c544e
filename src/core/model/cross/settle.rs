//! Deliveries of another shard's queue settled by the channel that holds
//! them (`docs/shards.md`, step 3): acks, requeues and discards go back to
//! the queue's owner by position, in the order the channel settled them.

use ringmq_store::SegmentPosition;

use ringmq_codec::ShortString;

use crate::core::model::ids::{ConnId, QueueId, VhostName};

/// How a delivery is settled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SettleHow {
    Ack,
    /// Written to a no-ack consumer (`consume`): done, not counted as an ack.
    Delivered,
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
    /// On a stream: the consumer whose reader they were sent from (on the
    /// owner), whose tracked offset an ack moves.
    pub reader: Option<Box<ReaderKey>>,
}

/// A stream consumer's reader: its connection, channel and tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReaderKey {
    pub conn: ConnId,
    pub channel: u16,
    pub tag: ShortString,
}

impl crate::core::model::Model {
    /// Deliveries of this shard's queue settled on another shard's channel:
    /// done as that channel's own settlement would be here.
    pub(crate) fn handle_settlement(&mut self, s: &Settlement) {
        let now_ms = self.now_ms;
        match s.how {
            SettleHow::Ack | SettleHow::Delivered => {
                let Some(q) = self.vhosts.get_mut(&s.vhost).and_then(|v| v.queues.get_mut(&s.queue)) else {
                    return; // deleted meanwhile: its messages went with it
                };
                for &pos in &s.positions {
                    if let Some(r) = &s.reader {
                        q.stream_acked(r.conn, r.channel, &r.tag, pos);
                    }
                    if s.how == SettleHow::Ack {
                        q.ack_delivered(pos);
                    } else {
                        q.ack_position(pos);
                    }
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
