//! One queue, read-only: depth and bytes, settings, policies, consumers, stats.

use ringmq_codec::FieldTable;

use crate::core::model::ids::ConnId;
use crate::core::model::queue::{ConsumerRef, Queue};
use crate::core::model::stats::ObjStats;

#[derive(Clone, Copy)]
pub struct QueueView<'a> {
    vhost: &'a str,
    q: &'a Queue,
}

impl<'a> QueueView<'a> {
    pub(super) fn new(vhost: &'a str, q: &'a Queue) -> Self {
        QueueView { vhost, q }
    }

    pub fn vhost(&self) -> &'a str {
        self.vhost
    }
    /// The shard that holds the queue's messages and consumers (another
    /// shard's copy shows its settings only).
    pub fn owner(&self) -> crate::core::model::meta::ShardId {
        self.q.owner()
    }
    pub fn name(&self) -> &'a str {
        self.q.name()
    }
    pub fn durable(&self) -> bool {
        self.q.is_durable()
    }
    pub fn auto_delete(&self) -> bool {
        self.q.is_auto_delete()
    }
    /// The connection an exclusive queue belongs to.
    pub fn exclusive_owner(&self) -> Option<ConnId> {
        self.q.exclusive_owner()
    }
    pub fn arguments(&self) -> &'a FieldTable {
        self.q.arguments()
    }
    /// `classic`, `quorum`, ...
    pub fn kind_name(&self) -> &'static str {
        self.q.settings().kind.name()
    }
    pub fn single_active_consumer(&self) -> bool {
        self.q.settings().single_active_consumer
    }
    pub fn paused(&self) -> bool {
        self.q.is_paused()
    }
    pub fn policy_name(&self) -> Option<&'a str> {
        self.q.policy().map(|p| p.name())
    }
    /// The definition of the (user) policy that applies.
    pub fn policy_definition(&self) -> Option<&'a serde_json::Map<String, serde_json::Value>> {
        self.q.policy().map(|p| &p.def.definition)
    }
    pub fn operator_policy_name(&self) -> Option<&'a str> {
        self.q.operator_policy().map(|p| p.name())
    }
    /// The policy and operator policy merged, as RabbitMQ's
    /// `effective_policy_definition`.
    pub fn effective_policy_definition(&self) -> serde_json::Map<String, serde_json::Value> {
        crate::core::policy::effective_definition(self.q.policy().map(|p| &**p), self.q.operator_policy().map(|p| &**p))
    }
    /// Ready messages; a stream's are all it holds (RabbitMQ shows a
    /// stream's messages as ready, none unacknowledged).
    pub fn ready(&self) -> u64 {
        match self.q.stream_info() {
            Some(s) => s.messages,
            None => self.q.ready_count(),
        }
    }
    /// A stream's offsets, segments and times; None for other kinds.
    pub fn stream(&self) -> Option<crate::core::model::queue::stream::StreamInfo> {
        self.q.stream_info()
    }
    pub fn unacked(&self) -> u64 {
        self.q.unacked_count()
    }
    /// Bytes of ready and unacknowledged messages.
    pub fn total_bytes(&self) -> u64 {
        self.q.total_bytes()
    }
    pub fn ready_bytes(&self) -> u64 {
        match self.q.stream_info() {
            Some(_) => self.q.total_bytes(),
            None => self.q.ready_bytes(),
        }
    }
    /// How fast the ready and unacknowledged counts change, per second.
    pub fn depth_rates(&self) -> (f32, f32) {
        (self.q.depth_rates().ready_rate, self.q.depth_rates().unacked_rate)
    }
    /// A stream's readers and the offsets they read next, those of
    /// consumers on other shards included (see `ConsumerView::stream_offset`).
    pub fn stream_reader_offsets(&self) -> impl Iterator<Item = (ConnId, u16, &'a str, u64)> + 'a {
        self.q.stream_reader_offsets()
    }
    pub fn consumer_count(&self) -> usize {
        self.q.consumers().len()
    }
    pub fn consumers(&self) -> impl Iterator<Item = ConsumerView<'a>> + 'a {
        let q = self.q;
        q.consumers().iter().map(move |c| ConsumerView { c, q })
    }
    /// Message counters (publish, deliver, get, ack, redeliver) and rates.
    pub fn stats(&self) -> &'a ObjStats {
        self.q.stats()
    }
}

/// One consumer of a queue.
#[derive(Clone, Copy)]
pub struct ConsumerView<'a> {
    c: &'a ConsumerRef,
    q: &'a Queue,
}

impl<'a> ConsumerView<'a> {
    pub fn tag(&self) -> &'a str {
        &self.c.tag
    }
    pub fn conn(&self) -> ConnId {
        self.c.conn
    }
    pub fn channel(&self) -> u16 {
        self.c.channel
    }
    pub fn no_ack(&self) -> bool {
        self.c.no_ack
    }
    pub fn exclusive(&self) -> bool {
        self.c.exclusive
    }
    pub fn priority(&self) -> i32 {
        self.c.priority
    }
    /// A consumer of a stream (its offset is kept by the stream's owner).
    pub fn of_stream(&self) -> bool {
        self.q.is_stream()
    }
    /// A stream consumer's offset: the one it reads next (see
    /// `Queue::stream_reader_offset`); None for other queues' consumers.
    pub fn stream_offset(&self) -> Option<u64> {
        self.q.stream_reader_offset(self.c.conn, self.c.channel, &self.c.tag)
    }
}
