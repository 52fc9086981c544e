//! Consumers on another shard's queue (`docs/shards.md`, step 3): the
//! consumer lives on its connection's shard, and an entry for it in the
//! queue's consumer list on the owner; the owner sends it messages while it
//! has *permits*, which its shard grants (a window bounded by the
//! consumer's prefetch), and its shard gives each delivery the channel's tag
//! and settles it with the owner (`settle`).

use ringmq_codec::ShortString;

use crate::core::model::ids::{ConnId, QueueId, VhostName};

/// Deliveries a consumer on another shard may be sent before its shard
/// grants more: bounds what crosses for one consumer (and, with a prefetch,
/// is at most the prefetch, so the consumer's channel never holds more
/// unacked deliveries than it asked for).
pub const REMOTE_WINDOW: u32 = 64;

/// basic.consume asked of the queue's owner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumeAsk {
    pub tag: ShortString,
    pub no_ack: bool,
    pub exclusive: bool,
    pub priority: i32,
    /// The first grant of permits.
    pub permits: u32,
    /// On a stream: where its reader starts, what it filters, and whether
    /// the owner tracks its offset.
    pub stream: Option<Box<StreamConsume>>,
}

/// A stream consumer's reader, made on the stream's owner (its readers live
/// there: `amqp::stream`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamConsume {
    pub start: crate::core::model::queue::stream::StreamStart,
    pub filter: Option<crate::core::model::queue::stream::StreamFilter>,
    pub track: bool,
}

/// Which consumer, on which connection and channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerKey {
    pub vhost: VhostName,
    pub queue: QueueId,
    pub conn: ConnId,
    pub channel: u16,
    pub tag: ShortString,
}
