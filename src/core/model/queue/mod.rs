//! A queue: its message store, its consumers, and who owns it.
//!
//! Messages live in the store (segments on disk); the queue holds only positions
//! (in the store) and the consumer list. Consumer choice: highest priority group
//! first (RabbitMQ's `x-priority`), round-robin within a group, skipping consumers
//! that have no prefetch credit (the broker checks credit, the queue orders).
//!
//! A queue's fields are private to this module: the rest of the core reads them
//! through accessors ([`Queue::name`], [`Queue::settings`], [`Queue::stats`],
//! ...) and changes them through methods that say what they do
//! ([`Queue::ack_delivered`], [`Queue::set_paused`], [`Queue::apply_policies`],
//! the model's `touch_queue`, ...).
//!
//! Its messages are reached only through [`QueueStorage`] (`storage`), the
//! queue interface: an enum over the kinds of message store (today the classic
//! `LeveledStore`), where stream and replicated queues will be variants. The
//! rest of the core asks the queue (counts, sizes, folder, group commit, close,
//! delete), never the store.
//!
//! | module | what |
//! |---|---|
//! | `storage` | the queue interface: [`QueueStorage`], what a queue kind provides |
//! | [`append`] | storing a routed message in each queue it routes to |
//! | [`take`] | the one "take a message for delivery" (consumers, basic.get, the API's get) |
//! | [`limits`] | max-length (drop-head), the delivery limit, discarding a rejected delivery |
//! | [`ttl`] | message TTL at the head, queue expiry (`x-expires`) |
//! | [`dead_letter`], [`dead_letter_hold`] | dead-lettering; at-least-once originals held until their copies' commit |
//! | [`ack_flush`] | buffered acks written within a bounded time |
//! | [`args`], [`dedup`] | a queue's arguments and settings; the deduplication cache |
//! | [`stream`] | stream queues: the log's readers (one per consumer), retention |
//! | `counters`, `tuning` | what most queues never use, boxed only when used: message counters and rates; non-default settings, policies, the dedup cache |

pub(in crate::core) mod ack_flush;
pub(in crate::core) mod append;
pub mod args;
mod counters;
pub(in crate::core) mod dead_letter;
pub(in crate::core) mod dead_letter_hold;
pub mod dedup;
pub(in crate::core) mod limits;
mod storage;
pub(in crate::core::model) use storage::{QueueStorage, StoreHome};
mod remote;
pub mod stream;
pub(in crate::core) mod take;
pub(in crate::core) mod ttl;
mod tuning;

use ringmq_codec::ShortString;

use ringmq_codec::FieldTable;

use ringmq_store::{BodyCrc, MessageRef, SegmentPosition, StoreError};

use crate::core::model::queue::args::QueueSettings;

use crate::core::model::ids::{ConnId, QueueId};
use crate::core::model::policy::PolicySet;

/// One consumer as the queue sees it.
#[derive(Debug, Clone)]
pub struct ConsumerRef {
    pub conn: ConnId,
    pub channel: u16,
    pub tag: ShortString,
    pub no_ack: bool,
    pub exclusive: bool,
    pub priority: i32,
    /// A consumer on another shard (`remote`): deliveries it may still be
    /// sent before its shard grants more. Unused for this shard's consumers.
    pub permits: u32,
}

/// The marker of a paused durable queue, in its folder.
const PAUSED_FILE: &str = "paused";

pub struct Queue {
    id: QueueId,
    name: ShortString,
    durable: bool,
    auto_delete: bool,
    /// The connection an exclusive queue belongs to; it dies with that connection.
    exclusive_owner: Option<ConnId>,
    arguments: FieldTable,
    /// Its messages, by kind of queue: the only way to them.
    storage: QueueStorage,
    /// Where its store opens (its vhost's folder and store config), shared
    /// by the vhost's queues.
    home: std::sync::Arc<StoreHome>,
    /// Which folder of this name the store is (`layout::queue_dir_gen`): a queue
    /// declared again after a delete is a new generation, recorded with its
    /// declare in the definitions log (0: the folder of older versions).
    store_gen: u32,
    /// Sorted by priority, highest first; rotated within a priority group.
    consumers: Vec<ConsumerRef>,
    /// Auto-delete queues are deleted when their last consumer goes, but only once
    /// they have had one (a fresh auto-delete queue with no consumer stays).
    had_consumer: bool,
    /// Positions that were delivered and requeued: the next delivery says
    /// redelivered. Bounded by the unacked limit per channel times channels.
    redelivered: crate::core::Set<SegmentPosition>,
    /// Effective settings (arguments combined with the policies, see
    /// `policy::effective`, set through [`Queue::apply_policies`]), the
    /// policies, the dedup cache (`x-message-deduplication`) and the body bytes
    /// of ready messages under a byte limit: none while all are defaults.
    tuning: tuning::Tuning,
    /// Some message carried an `expiration`: the head must be checked for TTL.
    may_expire: bool,
    /// Last declare, consume, cancel or get: for x-expires.
    last_used_ms: u64,
    /// Message counters (publish, deliver, get, ack, redeliver) and depth
    /// rates: none until the first count.
    counters: counters::QueueCounters,
    /// Paused through the management API (LavinMQ): no deliveries until resumed.
    paused: bool,
    /// The store has done messages (acked, discarded, dropped) whose offsets are
    /// buffered, not yet written; `acks_listed`: the broker knows (`ack_flush`).
    acks_unwritten: bool,
    acks_listed: bool,
    /// The shard whose thread holds the store, consumers and timers; every
    /// other shard holds a copy for routing, with no store and no files
    /// (`docs/shards.md`).
    owner: crate::core::model::meta::ShardId,
}

impl Queue {
    /// A queue over its opened store, with default settings until
    /// [`Queue::apply_policies`] makes them from its arguments and policies;
    /// `recovered`: opened at start from a store with messages, which may be
    /// paused and hold messages with a TTL (the head is checked once).
    #[allow(clippy::too_many_arguments)]
    pub(in crate::core::model) fn new(
        id: QueueId,
        name: ShortString,
        durable: bool,
        auto_delete: bool,
        exclusive_owner: Option<ConnId>,
        arguments: FieldTable,
        storage: QueueStorage,
        home: std::sync::Arc<StoreHome>,
        store_gen: u32,
        recovered: bool,
        owner: crate::core::model::meta::ShardId,
    ) -> Queue {
        let dedup = crate::core::model::queue::dedup::DedupCache::from_arguments(&arguments)
            .ok()
            .flatten();
        let mut q = Queue {
            id,
            name,
            durable,
            auto_delete,
            exclusive_owner,
            arguments,
            storage,
            home,
            consumers: Vec::new(),
            had_consumer: false,
            redelivered: Default::default(),
            tuning: Default::default(),
            may_expire: recovered,
            last_used_ms: 0,
            counters: Default::default(),
            paused: false,
            store_gen,
            acks_unwritten: false,
            acks_listed: false,
            owner,
        };
        q.tuning.set_dedup(dedup);
        q.paused = recovered && Queue::was_paused(&q.dir());
        q
    }

    pub fn id(&self) -> QueueId {
        self.id
    }

    pub fn name(&self) -> &ShortString {
        &self.name
    }

    pub fn is_durable(&self) -> bool {
        self.durable
    }

    /// The shard that owns the queue (its store, consumers and timers).
    pub fn owner(&self) -> crate::core::model::meta::ShardId {
        self.owner
    }

    pub fn is_auto_delete(&self) -> bool {
        self.auto_delete
    }

    /// The connection an exclusive queue belongs to.
    pub fn exclusive_owner(&self) -> Option<ConnId> {
        self.exclusive_owner
    }

    /// Exclusive to a connection other than `conn`: `conn` may not use it (405).
    pub fn is_exclusive_to_other(&self, conn: ConnId) -> bool {
        self.exclusive_owner.is_some_and(|o| o != conn)
    }

    /// The arguments it was declared with.
    pub fn arguments(&self) -> &FieldTable {
        &self.arguments
    }

    /// Which generation of its name's folder holds the store (see the field).
    pub fn store_gen(&self) -> u32 {
        self.store_gen
    }

    /// An auto-delete queue whose consumers have all gone (it had one): it must
    /// be deleted now.
    pub fn is_unused_auto_delete(&self) -> bool {
        self.auto_delete && self.had_consumer && self.consumers.is_empty()
    }

    /// The effective settings (arguments combined with the policies).
    #[inline]
    pub fn settings(&self) -> &QueueSettings {
        self.tuning.settings()
    }

    /// The policy that applies, if any.
    pub fn policy(&self) -> Option<&std::sync::Arc<crate::core::model::policy::Policy>> {
        self.tuning.policy()
    }

    /// The operator policy that applies, if any.
    pub fn operator_policy(&self) -> Option<&std::sync::Arc<crate::core::model::policy::Policy>> {
        self.tuning.operator_policy()
    }

    /// When it was last declared, consumed from, cancelled from or got from
    /// (for x-expires; set by the model's `touch_queue`).
    pub fn last_used_ms(&self) -> u64 {
        self.last_used_ms
    }

    /// Paused through the management API: no deliveries until resumed.
    #[inline]
    pub fn is_paused(&self) -> bool {
        self.paused
    }

    /// Message counters and their rates.
    pub fn stats(&self) -> &crate::core::model::stats::ObjStats {
        self.counters.stats()
    }

    /// Rates of change of the ready and unacked counts.
    pub fn depth_rates(&self) -> &crate::core::model::stats::DepthRates {
        self.counters.depth_rates()
    }

    /// Counts a delivery to a consumer (the channel counts its own).
    #[inline]
    pub fn count_delivery(&mut self, no_ack: bool, redelivered: bool) {
        crate::core::model::stats::count_delivery(self.counters.count(), no_ack, redelivered);
    }

    /// Counts a message taken by basic.get or the API's get (the channel
    /// counts its own).
    pub fn count_get(&mut self, no_ack: bool, redelivered: bool) {
        crate::core::model::stats::count_get(self.counters.count(), no_ack, redelivered);
    }

    /// Counts a get that found the queue empty.
    pub fn count_get_empty(&mut self) {
        self.counters.count().get_empty += 1;
    }

    /// A delivered message is acked by its client: done, and counted.
    #[inline]
    pub fn ack_delivered(&mut self, pos: SegmentPosition) {
        self.ack_position(pos);
        self.counters.count().ack += 1;
    }

    /// One stats interval has passed: message rates and depth rates move on.
    pub fn tick_stats(&mut self, interval_ms: u64) {
        let (ready, unacked) = (self.ready_count(), self.unacked_count());
        self.counters.tick(ready, unacked, interval_ms);
    }

    pub fn consumers(&self) -> &[ConsumerRef] {
        &self.consumers
    }

    pub fn consumer_count(&self) -> u32 {
        self.consumers.len() as u32
    }

    pub fn message_count(&self) -> u32 {
        u32::try_from(self.storage.ready_count()).unwrap_or(u32::MAX)
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
        if let Some(s) = self.storage.stream_mut() {
            s.forget_readers(|c, ch, t| c == conn && ch == channel && t == tag);
        }
        Some(self.consumers.remove(at))
    }

    /// Removes every consumer of a channel (or of a whole connection when
    /// `channel` is None); returns how many.
    pub fn remove_consumers_of(&mut self, conn: ConnId, channel: Option<u16>) -> usize {
        let before = self.consumers.len();
        self.consumers
            .retain(|c| !(c.conn == conn && channel.is_none_or(|ch| ch == c.channel)));
        if let Some(s) = self.storage.stream_mut() {
            s.forget_readers(|c, ch, _| c == conn && channel.is_none_or(|x| x == ch));
        }
        before - self.consumers.len()
    }

    /// How many consumers, from the first in priority-then-rotation order,
    /// may get the next message: all, or with single active consumer only the
    /// first (the first registered of the highest priority; the next takes
    /// over when it goes).
    pub fn delivery_candidates(&self) -> usize {
        if self.settings().single_active_consumer {
            self.consumers.len().min(1)
        } else {
            self.consumers.len()
        }
    }

    /// Moves the consumer that just got a message to the end of its priority group.
    pub fn rotate_after_delivery(&mut self, index: usize) {
        if self.settings().single_active_consumer {
            return;
        }
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
        match self.storage.next_ready() {
            Ok(p) => {
                if let Some(pos) = p {
                    self.untrack_bytes(pos);
                }
                p
            }
            Err(e) => {
                tracing::error!(queue = %self.name, error = %e, "cannot read next message");
                None
            }
        }
    }

    /// Finds the policy and operator policy that apply to this queue and makes
    /// its effective settings from them and its arguments
    /// ([`crate::core::model::policy::effective`]); returns the settings it had
    /// before.
    pub(in crate::core::model) fn apply_policies(
        &mut self,
        policies: &PolicySet,
        operators: &PolicySet,
    ) -> QueueSettings {
        // The arguments' settings are parsed again rather than kept: this runs
        // when a queue is made and when a policy changes, and keeping them cost
        // every queue 136 bytes.
        let arg_settings = self.arg_settings();
        let kind = arg_settings.kind;
        let policy = policies.for_queue(&self.name, kind).cloned();
        let operator = operators.for_queue(&self.name, kind).cloned();
        let s = crate::core::model::policy::effective(
            &self.arguments,
            &arg_settings,
            policy.as_ref().map(|p| &p.queue),
            operator.as_ref().map(|p| &p.queue),
        );
        let old = self.settings().clone();
        self.set_settings(s, policy, operator);
        old
    }

    /// The settings from the arguments alone, without policies. The arguments
    /// were checked when the queue was declared; one that a log of another
    /// version holds and this one refuses counts as absent (as at recovery,
    /// which logged it).
    fn arg_settings(&self) -> QueueSettings {
        crate::core::model::queue::args::parse(&self.arguments, &self.name, "").unwrap_or_default()
    }

    /// Replaces the effective settings. When a byte limit switches on, the body
    /// bytes of the ready messages are counted once (they are tracked only while
    /// a byte limit is set).
    fn set_settings(
        &mut self,
        s: QueueSettings,
        policy: Option<std::sync::Arc<crate::core::model::policy::Policy>>,
        operator: Option<std::sync::Arc<crate::core::model::policy::Policy>>,
    ) {
        let was_tracking = self.tracks_bytes();
        if s.max_length_bytes.is_none() {
            self.tuning.set_ready_body_bytes(0);
        }
        if let Some(stream) = self.storage.stream_mut() {
            stream.set_retention(&s);
        }
        self.tuning.set_settings(s, policy, operator);
        if self.tracks_bytes() && !was_tracking {
            self.recount_body_bytes();
        }
    }

    /// Counts the body bytes of the ready messages: O(ready), at open and when a
    /// byte limit switches on.
    fn recount_body_bytes(&mut self) {
        let mut n = 0u64;
        if let Err(e) = self.storage.for_each_ready(|_, v| n += v.body.len() as u64) {
            tracing::error!(queue = %self.name, error = %e, "cannot count ready bytes");
        }
        self.tuning.set_ready_body_bytes(n);
    }

    #[inline]
    fn tracks_bytes(&self) -> bool {
        self.settings().max_length_bytes.is_some()
    }

    fn body_len(&self, pos: SegmentPosition) -> u64 {
        self.storage.read(pos).map_or(0, |v| v.body.len() as u64)
    }

    #[inline]
    fn untrack_bytes(&mut self, pos: SegmentPosition) {
        if self.tracks_bytes() {
            let n = self.body_len(pos);
            let left = self.tuning.ready_body_bytes().saturating_sub(n);
            self.tuning.set_ready_body_bytes(left);
        }
    }

    /// Appends a message (ready, at the tail). Inlined into the publish path
    /// (with the stream arm it stopped being: ~30 instructions a message).
    /// Unless `persistent` (delivery mode 2) in a durable queue, no recovery keeps
    /// it: its record's CRC leaves the body out (`ringmq_store::record`).
    #[inline(always)]
    pub fn append(&mut self, msg: MessageRef<'_>, prio: u8, persistent: bool) -> Result<SegmentPosition, StoreError> {
        let n = msg.body.len() as u64;
        if !self.is_store_open() {
            self.open_store()?;
        }
        let pos = self
            .storage
            .append(msg, prio, BodyCrc::when_kept(persistent && self.durable))?;
        if self.tracks_bytes() {
            self.tuning.set_ready_body_bytes(self.tuning.ready_body_bytes() + n);
        }
        Ok(pos)
    }

    /// The next ready message, without taking it.
    pub fn peek_head(&mut self) -> Option<SegmentPosition> {
        self.storage.peek_ready().ok().flatten()
    }

    /// Discards the head of the ready messages (expired, or over a length limit).
    pub fn remove_head(&mut self) {
        if let Some(pos) = self.peek_head() {
            self.untrack_bytes(pos);
        }
        self.acks_unwritten = true;
        if let Err(e) = self.storage.remove_next_ready() {
            tracing::error!(queue = %self.name, error = %e, "cannot drop head message");
        }
    }

    /// Drops every ready message; returns how many.
    pub fn purge(&mut self) -> Result<u64, StoreError> {
        self.acks_unwritten = true;
        let n = self.storage.purge()?;
        self.tuning.set_ready_body_bytes(0);
        Ok(n)
    }

    /// Whether one more message of `body_bytes` would break a length limit
    /// (for reject-publish).
    pub fn is_full_for(&self, body_bytes: u64) -> bool {
        let s = self.settings();
        s.max_length.is_some_and(|m| self.storage.ready_count() >= m)
            || s.max_length_bytes
                .is_some_and(|m| self.tuning.ready_body_bytes() + body_bytes > m)
    }

    /// drop-head is on and the queue is over a length limit: its head must go.
    pub fn needs_drop_head(&self) -> bool {
        self.settings().overflow == crate::core::model::queue::args::Overflow::DropHead
            && self.is_over_limit()
            && self.message_count() > 0
    }

    /// Whether the queue is over a length limit now (for drop-head).
    pub fn is_over_limit(&self) -> bool {
        let s = self.settings();
        s.max_length.is_some_and(|m| self.storage.ready_count() > m)
            || s.max_length_bytes.is_some_and(|m| self.tuning.ready_body_bytes() > m)
    }

    /// Counts a redelivery of `pos`; returns the new count.
    /// Kept by the store, on disk, so the limit holds across restarts (issue
    /// 15, defect 12); written with the acks (hence `acks_unwritten`).
    pub fn bump_delivery_count(&mut self, pos: SegmentPosition) -> u32 {
        self.acks_unwritten = true;
        self.storage.bump_delivery_count(pos)
    }

    /// LavinMQ's pause: kept across restarts for a durable queue by a `paused`
    /// file in its folder, as LavinMQ keeps it (written and synced before the
    /// answer, so a paused queue never wakes up delivering after a crash).
    pub fn set_paused(&mut self, paused: bool) -> std::io::Result<()> {
        if self.durable && paused != self.paused {
            let dir = self.dir();
            let marker = dir.join(PAUSED_FILE);
            if paused {
                std::fs::File::create(&marker)?.sync_all()?;
                ringmq_store::changes::replaced(&marker, b"");
            } else {
                match ringmq_store::changes::remove_file(&marker) {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
                    _ => {}
                }
            }
            std::fs::File::open(&dir)?.sync_all()?;
        }
        self.paused = paused;
        Ok(())
    }

    /// Whether a recovered durable queue was paused when the broker stopped.
    fn was_paused(dir: &std::path::Path) -> bool {
        dir.join(PAUSED_FILE).exists()
    }

    /// Whether redeliveries are counted (and shown as `x-delivery-count`): on
    /// quorum queues always, as RabbitMQ's; elsewhere only with a delivery limit.
    pub fn counts_deliveries(&self) -> bool {
        self.settings().delivery_limit.is_some()
            || self.settings().kind == crate::core::model::queue::args::QueueType::Quorum
    }

    /// The `x-delivery-count` a delivery of `pos` carries: earlier deliveries, on
    /// every delivery of a quorum queue (0 the first time, as RabbitMQ 3.10), and
    /// on redeliveries only where a delivery limit counts them otherwise.
    pub fn delivery_count_header(&self, pos: SegmentPosition) -> Option<u32> {
        if !self.counts_deliveries() {
            return None;
        }
        let count = self.storage.delivery_count(pos);
        (count > 0 || self.settings().kind == crate::core::model::queue::args::QueueType::Quorum).then_some(count)
    }

    pub fn forget_delivery_count(&mut self, pos: SegmentPosition) {
        self.storage.forget_delivery_count(pos);
    }

    /// Whether this position was delivered before (requeued since).
    pub fn take_redelivered(&mut self, pos: SegmentPosition) -> bool {
        self.redelivered.remove(&pos) | self.storage.delivered_before_open(pos)
    }

    /// The message is done (acked, or discarded by nack/reject without requeue).
    pub fn ack_position(&mut self, pos: SegmentPosition) {
        self.storage.forget_delivery_count(pos);
        self.acks_unwritten = true;
        if let Err(e) = self.storage.ack(pos) {
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
        if self.is_stream() {
            return; // a stream's message never left it
        }
        match self.storage.requeue(pos) {
            Ok(()) => {
                if self.tracks_bytes() {
                    let n = self.tuning.ready_body_bytes() + self.body_len(pos);
                    self.tuning.set_ready_body_bytes(n);
                }
                self.redelivered.insert(pos);
            }
            Err(e) => {
                tracing::error!(queue = %self.name, error = %e, "requeue failed");
                debug_assert!(false, "requeue of a position not in flight");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    /// 100,000 idle queues cost what a queue costs inline, 100,000 times
    /// (issue 18: ~608 bytes before the store, settings and counters moved out;
    /// README's memory notes). A field added here pays that; box it if rare.
    #[test]
    fn a_queue_stays_small() {
        let size = std::mem::size_of::<super::Queue>();
        assert!(size <= 208, "Queue is {size} bytes");
    }
}
