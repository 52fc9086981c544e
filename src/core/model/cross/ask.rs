//! Questions whose answer another shard holds (`docs/shards.md`, step 3): a
//! method on a queue this shard has only a copy of, whose reply needs the
//! queue's own state (its counts, its messages). The asking connection is
//! *parked* until the answer comes (`amqp::remote`): its next frames wait,
//! so its replies keep their order, as on one shard.

use ringmq_codec::ReplyCode;

use crate::core::model::ids::{ConnId, QueueId, VhostName};

/// Who waits for an answer: a connection's channel, by the channel's serial
/// (an answer for a channel that closed is not taken by the next channel of
/// the number).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AskRef {
    pub conn: ConnId,
    pub channel: u16,
    pub serial: u32,
}

/// What is asked of a queue's owner.
#[derive(Debug, Clone, PartialEq)]
pub struct Ask {
    pub vhost: VhostName,
    pub queue: QueueId,
    pub what: AskWhat,
    /// Who waits (None: a `no_wait` method, nobody waits; it is still done,
    /// in order with the channel's other requests to the owner).
    pub from: Option<AskRef>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AskWhat {
    /// A declare of an existing queue (passive or not): its counts, and a
    /// use of the queue for `x-expires`.
    Counts,
    /// `queue.purge`.
    Purge,
    /// `queue.delete` with its conditions: the owner checks them on its own
    /// state and deletes (the delete goes through the metadata log).
    Delete { if_unused: bool, if_empty: bool },
    /// `basic.get`: the next ready message, taken for the asker's channel
    /// (acked at once with `no_ack`, else it waits for the channel's
    /// settlement, `settle`).
    Get { no_ack: bool },
    /// `basic.consume`: the owner adds the consumer to its queue.
    Consume(Box<super::ConsumeAsk>),
}

/// The owner's answer.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    Counts {
        messages: u32,
        consumers: u32,
    },
    Purged {
        messages: u32,
    },
    /// Deleted (and, for a durable queue, the delete's record synced).
    Deleted {
        messages: u32,
    },
    /// The consumer was added.
    Consumed,
    /// A message for basic.get-ok.
    Got(Box<Got>),
    /// Nothing ready: basic.get-empty.
    Empty,
    /// The queue is not on its owner (deleted since the asker looked).
    NotFound,
    /// Refused: the channel is closed with this code and text.
    Refused {
        code: ReplyCode,
        text: String,
    },
}

/// A message taken from its queue for another shard's channel.
#[derive(Debug, Clone, PartialEq)]
pub struct Got {
    pub vhost: VhostName,
    pub queue: QueueId,
    /// Acked by the owner as it was taken (`no_ack`).
    pub acked: bool,
    pub msg: super::Taken,
}

/// An answer on its way back to `to`.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    pub to: AskRef,
    pub answer: Answer,
}
