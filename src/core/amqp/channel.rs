//! Per-channel state: content assembly, consumers, unacked deliveries, prefetch,
//! confirms and transactions.
//!
//! `Channel`'s fields are the AMQP session's (`pub(in crate::core::amqp)`, a
//! wall in `tests/walls.rs`): the management API's channel view and the fuzz
//! targets' checks read them through the accessors below; only `amqp/`
//! changes them. The helper types (`ChannelConsumer`, `Unacked`,
//! `IncomingMessage`, `Tx`, `TxPublish`, `TxAck`, `PendingConfirm`) are plain
//! data with public fields: nothing outside `amqp/` uses them.

use ringmq_codec::{ShortBuf, ShortString};
use std::collections::VecDeque;

use ringmq_store::SegmentPosition;

use crate::core::model::ids::{Name, QueueId};

/// Limits per channel, each a named bound (STYLE.md: a limit on everything).
pub const CONSUMERS_PER_CHANNEL_MAX: usize = 65_536;
/// Unacked deliveries a channel may hold when the client set no prefetch; past it
/// the broker stops delivering to that channel until acks come back, so a client
/// that never acks cannot make the broker track unbounded state.
pub const UNACKED_PER_CHANNEL_MAX: usize = 1 << 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChannelState {
    Open,
    /// We sent channel.close and wait for close-ok; everything else is dropped.
    Closing,
}

/// A message being received: publish method seen, header and body pending.
#[derive(Debug, Default)]
pub struct IncomingMessage {
    pub exchange: ShortBuf,
    pub routing_key: ShortBuf,
    pub mandatory: bool,
    /// Set once the content header arrived.
    pub header_seen: bool,
    pub body_size: u64,
    pub properties: Vec<u8>,
    pub body: Vec<u8>,
}

#[derive(Debug)]
pub struct ChannelConsumer {
    pub queue: QueueId,
    pub queue_name: ShortString,
    pub no_ack: bool,
    /// Per-consumer prefetch (basic.qos global=false at consume time); 0 = none.
    pub prefetch: u16,
    pub unacked: u32,
    /// The owner of the queue when it is another shard (`remote_consume`).
    pub remote: Option<crate::core::model::meta::ShardId>,
    /// A remote consumer's permits granted to the owner and not used yet
    /// (`remote_permits`).
    pub permits_out: u32,
}

/// A delivery waiting for ack.
#[derive(Debug, Clone)]
pub struct Unacked {
    pub queue: QueueId,
    pub position: SegmentPosition,
    /// None for basic.get deliveries.
    pub consumer: Option<ShortString>,
    /// Consumer timeout: (deadline, timeout) when one applies to this delivery.
    pub timeout: Option<(u64, u64)>,
}

/// How many of a channel's oldest deliveries each tick checks for a timeout:
/// tags are in delivery order, so the oldest come first; a bound keeps the tick
/// O(1) however many messages are unacked.
pub const TIMEOUT_CHECKS_PER_TICK: usize = 16;

impl Channel {
    /// The queue of each delivery waiting for an ack, in tag order (the fuzz
    /// targets' checks).
    pub fn unacked_queues(&self) -> impl Iterator<Item = QueueId> + '_ {
        self.unacked.values().map(|u| u.queue)
    }

    /// The first unacked delivery past its consumer-timeout deadline.
    pub fn timed_out(&self, now_ms: u64) -> Option<u64> {
        self.unacked
            .values()
            .take(TIMEOUT_CHECKS_PER_TICK)
            .find_map(|u| u.timeout.filter(|(deadline, _)| now_ms >= *deadline).map(|(_, t)| t))
    }
}

/// A message buffered by a transaction until commit.
#[derive(Debug)]
pub struct TxPublish {
    pub exchange: ShortString,
    pub routing_key: ShortString,
    pub mandatory: bool,
    pub properties: Vec<u8>,
    pub body: Vec<u8>,
}

#[derive(Debug, Clone, Copy)]
pub enum TxAck {
    Ack { tag: u64, multiple: bool },
    Nack { tag: u64, multiple: bool, requeue: bool },
}

#[derive(Debug, Default)]
pub struct Tx {
    pub publishes: Vec<TxPublish>,
    pub acks: Vec<TxAck>,
}

/// A publish waiting to be confirmed: it may go out once the group commit has
/// reached `epoch` (0 = nothing to wait for).
#[derive(Debug, Clone, Copy)]
pub struct PendingConfirm {
    pub seq: u64,
    pub epoch: u64,
    pub nack: bool,
    /// Shards whose word that they stored the message is still awaited
    /// (`model::cross`).
    pub remote: u16,
}

/// A tx.commit whose commit-ok waits.
#[derive(Debug, Clone, Copy)]
pub struct PendingCommit {
    /// The channel's count of commits when it was made.
    pub no: u64,
    /// The group commit its appends need (0: none).
    pub epoch: u64,
    /// Other shards whose word that they stored its publishes is awaited.
    pub remote: u32,
}

#[derive(Debug)]
pub struct Channel {
    pub(in crate::core::amqp) id: u16,
    pub(in crate::core::amqp) state: ChannelState,
    pub(in crate::core::amqp) incoming: Option<IncomingMessage>,
    /// Reused allocation for the next incoming message.
    pub(in crate::core::amqp) spare: IncomingMessage,
    pub(in crate::core::amqp) consumers: crate::core::NameMap<ShortString, ChannelConsumer>,
    pub(in crate::core::amqp) unacked: crate::core::amqp::unacked::UnackedLog,
    next_delivery_tag: u64,
    /// basic.qos global=false: applies to consumers created afterwards.
    pub(in crate::core::amqp) consumer_prefetch: u16,
    /// basic.qos global=true: shared by all consumers of the channel.
    pub(in crate::core::amqp) channel_prefetch: u16,
    pub(in crate::core::amqp) flow_active: bool,
    pub(in crate::core::amqp) confirm: bool,
    pub(in crate::core::amqp) next_publish_seq: u64,
    pub(in crate::core::amqp) pending_confirms: VecDeque<PendingConfirm>,
    /// Which of the connection's channel opens this is (`channels_opened`).
    pub(in crate::core::amqp) serial: u32,
    pub(in crate::core::amqp) tx: Option<Tx>,
    /// A tx.commit whose persistent messages wait for this group-commit epoch:
    /// its commit-ok goes out once it is on disk (issue 15, defect 11).
    /// tx.commits not answered yet, oldest first: a client may send the next
    /// before the last commit-ok, and the answers go in order, each once its
    /// commit is on disk.
    pub(in crate::core::amqp) commits: VecDeque<PendingCommit>,
    /// tx.commits made on the channel: the number of the last, which other
    /// shards' words name (`model::cross::TX_COMMIT`).
    pub(in crate::core::amqp) commits_made: u64,
    /// The queue last declared on this channel: an empty queue name in later
    /// methods means this one (AMQP's "current queue" rule, which RabbitMQ keeps).
    pub(in crate::core::amqp) last_queue: Option<ShortString>,
    /// The direct reply-to consumer of this channel, if any.
    pub(in crate::core::amqp) reply_consumer: Option<crate::core::amqp::direct_reply::ReplyConsumer>,
    /// Message counters (publish, deliver, ack, confirm, ...).
    pub(in crate::core::amqp) stats: crate::core::model::stats::ObjStats,
}

impl Channel {
    /// Nothing on it names its connection on this shard: no consumer, no
    /// delivery unacked, no confirm or commit-ok awaited, no message half
    /// received (what a connection's hand-off to another shard needs).
    pub(in crate::core::amqp) fn is_quiet(&self) -> bool {
        self.state == ChannelState::Open
            && self.incoming.is_none()
            && self.consumers.is_empty()
            && self.unacked.is_empty()
            && self.pending_confirms.is_empty()
            && self.commits.is_empty()
            && self.reply_consumer.is_none()
            && self
                .tx
                .as_ref()
                .is_none_or(|t| t.publishes.is_empty() && t.acks.is_empty())
    }

    pub fn new(id: u16) -> Channel {
        Channel {
            id,
            state: ChannelState::Open,
            incoming: None,
            spare: IncomingMessage::default(),
            consumers: Default::default(),
            unacked: Default::default(),
            next_delivery_tag: 1,
            consumer_prefetch: 0,
            channel_prefetch: 0,
            flow_active: true,
            confirm: false,
            next_publish_seq: 1,
            pending_confirms: VecDeque::new(),
            serial: 0,
            tx: None,
            commits: VecDeque::new(),
            commits_made: 0,
            last_queue: None,
            reply_consumer: None,
            stats: Default::default(),
        }
    }

    /// Whether a delivery to this consumer is allowed now by prefetch and flow,
    /// and if so, counts it against the consumer's prefetch (a delivery follows
    /// at once; [`Self::uncount_delivery`] takes it back if none does). One
    /// consumer lookup for both. Inlined into the classic delivery loop: with
    /// the stream's loop as a second caller the compiler made it a call (28
    /// instructions a message, benches/callgrind.sh).
    #[inline(always)]
    pub fn count_delivery(&mut self, consumer_tag: &str) -> bool {
        if !self.flow_active || self.state != ChannelState::Open {
            return false;
        }
        // Rare (basic.qos global): only then the consumers are looked over.
        let promised = if self.channel_prefetch != 0 {
            self.promised_remote()
        } else {
            0
        };
        let Some(c) = self.consumers.get_mut(&Name(consumer_tag)) else {
            return false;
        };
        if c.no_ack {
            return true;
        }
        if c.prefetch != 0 && c.unacked >= c.prefetch as u32 {
            return false;
        }
        let unacked = self.unacked.len();
        if self.channel_prefetch != 0 && unacked + promised >= self.channel_prefetch as usize
            || unacked >= UNACKED_PER_CHANNEL_MAX
        {
            return false;
        }
        c.unacked += 1;
        true
    }

    /// Deliveries promised to the owners of other shards' queues consumed in
    /// ack mode here (permits granted, not used: `remote_permits`), which a
    /// channel-wide prefetch counts as made. Looked at only under one.
    pub fn promised_remote(&self) -> usize {
        (self.consumers.values())
            .filter(|c| c.remote.is_some() && !c.no_ack)
            .map(|c| c.permits_out as usize)
            .sum()
    }

    /// Takes back [`Self::count_delivery`] when no delivery followed.
    pub fn uncount_delivery(&mut self, consumer_tag: &str) {
        if let Some(c) = self.consumers.get_mut(&Name(consumer_tag)).filter(|c| !c.no_ack) {
            c.unacked = c.unacked.saturating_sub(1);
        }
    }

    pub fn take_delivery_tag(&mut self) -> u64 {
        let t = self.next_delivery_tag;
        self.next_delivery_tag += 1;
        t
    }

    /// Removes and returns the unacked deliveries an ack/nack names: one tag, or
    /// every tag up to it with `multiple` (tag 0 with multiple = all). `None` when
    /// the tag is not outstanding (406 for the caller): RabbitMQ's collect_acks
    /// requires the named tag itself to be unacked, with or without `multiple`.
    pub fn take_unacked(&mut self, tag: u64, multiple: bool) -> Option<Vec<(u64, Unacked)>> {
        if multiple {
            let upto = if tag == 0 { u64::MAX } else { tag };
            if tag != 0 && !self.unacked.contains_key(tag) {
                return None;
            }
            let mut taken = Vec::new();
            self.unacked.take_upto(upto, &mut taken);
            Some(taken)
        } else {
            let u = self.unacked.remove(tag)?;
            Some(vec![(tag, u)])
        }
    }

    /// Accounts removed deliveries against their consumers' prefetch: one
    /// lookup per run of one consumer's deliveries (a `multiple` ack).
    pub fn release_credit(&mut self, taken: &[(u64, Unacked)]) {
        for run in taken.chunk_by(|a, b| a.1.consumer == b.1.consumer) {
            if let Some(tag) = &run[0].1.consumer {
                if let Some(c) = self.consumers.get_mut(&Name(tag)) {
                    c.unacked = c.unacked.saturating_sub(run.len() as u32);
                }
            }
        }
    }
}

/// Read access for the rest of the core (the management API's channel view,
/// the fuzz targets' checks): the fields themselves are the AMQP session's.
impl Channel {
    #[inline]
    pub fn number(&self) -> u16 {
        self.id
    }
    /// Open (not closing).
    #[inline]
    pub fn is_open(&self) -> bool {
        self.state == ChannelState::Open
    }
    /// channel.flow: false when the client paused deliveries.
    #[inline]
    pub fn flow_active(&self) -> bool {
        self.flow_active
    }
    #[inline]
    pub fn consumer_count(&self) -> usize {
        self.consumers.len()
    }
    /// The prefetch of one consumer's consume (`0`: none), if it is on this channel.
    #[inline]
    pub fn consumer_prefetch_of(&self, tag: &str) -> Option<u16> {
        self.consumers.get(&Name(tag)).map(|c| c.prefetch)
    }
    /// The prefetches of this channel's consumers, summed.
    pub fn consumer_prefetch_sum(&self) -> usize {
        self.consumers.values().map(|c| usize::from(c.prefetch)).sum()
    }
    /// basic.qos global=false: the prefetch new consumers get.
    #[inline]
    pub fn consumer_prefetch(&self) -> u16 {
        self.consumer_prefetch
    }
    /// basic.qos global=true: the channel's limit.
    #[inline]
    pub fn channel_prefetch(&self) -> u16 {
        self.channel_prefetch
    }
    /// Deliveries waiting for an ack.
    #[inline]
    pub fn unacked_count(&self) -> usize {
        self.unacked.len()
    }
    /// Whether the delivery `tag` waits for an ack.
    #[inline]
    pub fn is_unacked(&self, tag: u64) -> bool {
        self.unacked.contains_key(tag)
    }
    /// Publishes waiting for a confirm.
    #[inline]
    pub fn unconfirmed_count(&self) -> usize {
        self.pending_confirms.len()
    }
    /// Publishes and acks in the open transaction.
    pub fn uncommitted(&self) -> (usize, usize) {
        self.tx.as_ref().map_or((0, 0), |t| (t.publishes.len(), t.acks.len()))
    }
    /// confirm.select was sent.
    #[inline]
    pub fn confirm_mode(&self) -> bool {
        self.confirm
    }
    /// tx.select was sent.
    #[inline]
    pub fn is_transactional(&self) -> bool {
        self.tx.is_some()
    }
    /// Message counters (publish, deliver, ack, confirm, ...).
    #[inline]
    pub fn stats(&self) -> &crate::core::model::stats::ObjStats {
        &self.stats
    }
}

impl crate::core::amqp::broker::Broker {
    /// Removes a channel from its connection, keeping its counts.
    pub(crate) fn drop_channel(&mut self, conn: &mut crate::core::amqp::connection::Connection, channel: u16) {
        if let Some(ch) = conn.channels.remove(&channel) {
            self.node_stats
                .churn
                .bump(crate::core::model::stats::Churn::CHANNEL_CLOSED);
            self.retire_channel_stats(conn.vhost.as_ref(), &ch.stats);
        }
    }
}
