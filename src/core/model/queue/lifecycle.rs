//! Message lifetime: storing routed messages with length limits, TTL expiry at
//! the head, dead-lettering with `x-death`, delivery limits, queue expiry, and the
//! timers that drive them.
//!
//! Dead letters are queued and processed iteratively (never by recursion), a
//! bounded number per turn, so a chain of dead-letter exchanges cannot blow the
//! stack or stall the loop. Cycles are cut as RabbitMQ cuts them: a message that
//! would return to a queue it already died in, with no `rejected` death on the
//! way, is dropped.

use ringmq_codec::{short, ShortStr, ShortString};
use std::collections::{BTreeSet, VecDeque};
use std::sync::Arc;

use ringmq_codec::{BasicProperties, FieldTable, FieldValue, FieldValueRef, Table};
use ringmq_store::{MessageRef, SegmentPosition};

use crate::core::amqp::basic::PublishOutcome;
use crate::core::amqp::delivery::read_named;
use crate::core::broker::Broker;
use crate::core::model::ids::QueueId;
use crate::core::model::queue::args::{parse_expiration, DeadLetterStrategy, Overflow};
use crate::core::model::queue::Queue;

/// Dead letters processed per turn; the rest wait for the next one.
pub const DEAD_LETTERS_PER_TURN_MAX: usize = 10_000;
/// Expired messages removed from one queue per check, so a queue with millions
/// of expired messages does not stall the loop (the timer fires again at once).
pub const EXPIRED_PER_CHECK_MAX: usize = 10_000;

/// A message on its way into queues (publish or dead-lettering).
pub(crate) struct StoredMessage<'a> {
    pub exchange: ShortStr<'a>,
    pub routing_key: ShortStr<'a>,
    pub properties: &'a [u8],
    pub body: &'a [u8],
    pub persistent: bool,
    pub expiration_ms: Option<u64>,
    /// The `priority` property (0 when absent); used by priority queues.
    pub priority: u8,
}

/// Why a message died (the `reason` of its x-death entry).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeathReason {
    Rejected,
    Expired,
    MaxLen,
    DeliveryLimit,
}

impl DeathReason {
    pub fn as_str(self) -> &'static str {
        match self {
            DeathReason::Rejected => "rejected",
            DeathReason::Expired => "expired",
            DeathReason::MaxLen => "maxlen",
            DeathReason::DeliveryLimit => "delivery_limit",
        }
    }
}

/// A dead-lettered message waiting to be routed to its queue's DLX.
pub(crate) struct DeadLetter {
    vhost: Arc<str>,
    dlx: ShortString,
    /// The routing key it is stored with: the dead-letter routing key, else the
    /// one it was published with.
    routing_key: ShortString,
    /// The keys it routes by (the published one and CC, unless replaced).
    routing_keys: Vec<String>,
    properties: Vec<u8>,
    body: Vec<u8>,
    persistent: bool,
    /// At-least-once: the original, taken and not acked until this copy is
    /// durable (`dead_letter_hold`).
    hold: Option<(QueueId, SegmentPosition)>,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum TimerKind {
    /// The head message of a queue expires.
    Head,
    /// The queue itself expires (x-expires).
    QueueExpires,
    /// Held messages of a delayed exchange are due.
    Delayed(ShortString),
}

/// Timers handled per turn (`handle_timeout` or `run_pending`); the rest wait,
/// due, for the next turn, so a burst of deadlines cannot stall the loop.
pub const TIMERS_PER_TURN_MAX: usize = 1_024;

/// A timer's target.
type TimerEntry = (Arc<str>, QueueId, TimerKind);

/// The core's timers. A deadline in the future waits in `set`, ordered; one at
/// or before `now` goes to `due`, which is work for the current or next turn and
/// never a deadline again: the io layer sleeps until [`Timers::first`], which is
/// therefore always after the `now` it last passed in (issue 15: a TTL-0 head
/// re-armed at `now` made `handle_timeout` pop it again forever).
#[derive(Debug, Default)]
pub(crate) struct Timers {
    set: BTreeSet<(u64, Arc<str>, QueueId, TimerKind)>,
    due: VecDeque<TimerEntry>,
}

impl Timers {
    /// Arms a timer for `at_ms`; one at or before `now_ms` is due at once (run in
    /// this or the next turn, never re-armed for the same `now`).
    pub fn add(&mut self, at_ms: u64, now_ms: u64, vhost: &Arc<str>, q: QueueId, kind: TimerKind) {
        if at_ms <= now_ms {
            self.due.push_back((vhost.clone(), q, kind));
        } else {
            self.set.insert((at_ms, vhost.clone(), q, kind));
        }
    }

    /// The earliest deadline still to come.
    pub fn first(&self) -> Option<u64> {
        self.set.first().map(|t| t.0)
    }

    /// Timers that are due and not yet handled.
    pub fn due_len(&self) -> usize {
        self.due.len()
    }

    /// Moves every timer whose deadline is at or before `now_ms` to the due list.
    fn take_due(&mut self, now_ms: u64) {
        while self.set.first().is_some_and(|t| t.0 <= now_ms) {
            let (_, v, q, k) = self.set.pop_first().expect("checked first");
            self.due.push_back((v, q, k));
        }
    }

    /// Up to [`TIMERS_PER_TURN_MAX`] due timers, oldest first; the ones handlers
    /// add back as due while these run wait for the next turn.
    fn pop_due_batch(&mut self) -> Vec<TimerEntry> {
        let n = self.due.len().min(TIMERS_PER_TURN_MAX);
        self.due.drain(..n).collect()
    }
}

/// The deadline of a message: publish time plus the smaller of the queue's and
/// the message's TTL. None when neither is set.
fn deadline(timestamp_ms: u64, props: &BasicProperties<'_>, queue_ttl_ms: Option<u64>) -> Option<(u64, u64)> {
    let msg_ttl = props.expiration.and_then(|e| parse_expiration(e.as_str()).ok());
    let ttl = match (msg_ttl, queue_ttl_ms) {
        (Some(a), Some(b)) => a.min(b),
        (a, b) => a.or(b)?,
    };
    Some((timestamp_ms.saturating_add(ttl), ttl))
}

impl Broker {
    /// Appends a routed message to each queue, applying length limits; records
    /// what the publisher must be told in `outcome`.
    pub(crate) fn store_routed(
        &mut self,
        vhost_name: &Arc<str>,
        queues: &[QueueId],
        msg: &StoredMessage<'_>,
        outcome: &mut PublishOutcome,
    ) {
        let mut disk_full = false;
        self.store_routed_to(vhost_name, queues, msg, outcome, &mut disk_full);
        if disk_full {
            // Blocks publishers now, before the disk is full; the disk task
            // clears it once there is room again.
            self.handle_disk_alarm(true);
        }
    }

    fn store_routed_to(
        &mut self,
        vhost_name: &Arc<str>,
        queues: &[QueueId],
        msg: &StoredMessage<'_>,
        outcome: &mut PublishOutcome,
        disk_full: &mut bool,
    ) {
        let now_ms = self.now_ms;
        let sync_enabled = self.config.sync;
        for id in queues {
            let Some(vhost) = self.vhosts.get_mut(vhost_name) else {
                return;
            };
            let Some(q) = vhost.queues.get_mut(id) else { continue };
            if let Some(d) = q.dedup.as_mut() {
                let headers = BasicProperties::decode(msg.properties).ok().and_then(|p| p.headers);
                if d.is_duplicate(headers, now_ms) {
                    continue;
                }
            }
            if q.settings.overflow != Overflow::DropHead && q.is_full_for(msg.body.len() as u64) {
                // reject-publish: the publisher hears basic.nack (with confirms).
                outcome.failed = true;
                if q.settings.overflow == Overflow::RejectPublishDlx {
                    let props = BasicProperties::decode(msg.properties).expect("validated");
                    if let Some(dl) = make_dead_letter(
                        vhost_name,
                        q,
                        &props,
                        msg.exchange,
                        msg.routing_key,
                        msg.body,
                        DeathReason::MaxLen,
                        now_ms,
                    ) {
                        self.dead_letters.push_back(dl);
                    }
                }
                continue;
            }
            let r = q.append(
                MessageRef {
                    timestamp_ms: now_ms,
                    exchange: msg.exchange.as_bytes(),
                    routing_key: msg.routing_key.as_bytes(),
                    properties: msg.properties,
                    body: msg.body,
                },
                msg.priority,
            );
            if let Err(e) = r {
                *disk_full |= matches!(e, ringmq_store::StoreError::DiskFull { .. });
                self.store_errors.note(&q.name, &e, now_ms);
                outcome.failed = true;
                continue;
            }
            // Space is checked where it is taken (segment creation and growth).
            *disk_full |= q.store.take_space_low();
            self.store_errors.cleared();
            q.stats.c.publish += 1;
            if msg.expiration_ms.is_some() {
                q.may_expire = true;
            }
            if msg.persistent && q.durable && sync_enabled {
                outcome.needs_sync = true;
                self.sync.mark_dirty(vhost_name, *id);
            }
            // Checked on the queue in hand: the common case costs no lookup.
            let q = if q.needs_drop_head() {
                self.enforce_length(vhost_name, *id);
                let Some(q) = self.vhosts.get_mut(vhost_name).and_then(|v| v.queues.get_mut(id)) else {
                    continue;
                };
                q
            } else {
                q
            };
            if q.may_expire || q.settings.message_ttl_ms.is_some() {
                self.expiry_pending.push((vhost_name.clone(), *id));
            }
            if q.consumer_count() > 0 {
                self.deliver_pending.push((vhost_name.clone(), *id));
            }
        }
    }

    /// drop-head: removes (dead-letters) head messages while the queue is over
    /// its max-length or max-length-bytes. Run after every way messages become
    /// ready (publish, requeue) and when a policy lowers a limit, as RabbitMQ
    /// does (`maybe_drop_head` after publish and requeue).
    pub(crate) fn enforce_length(&mut self, vhost_name: &Arc<str>, id: QueueId) {
        loop {
            let over = self
                .vhosts
                .get(vhost_name)
                .and_then(|v| v.queues.get(&id))
                .is_some_and(Queue::needs_drop_head);
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
        let mut over: Vec<(Arc<str>, ShortString, QueueId)> = self
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
    pub(crate) fn drop_head(&mut self, vhost_name: &Arc<str>, id: QueueId, reason: DeathReason) {
        let now_ms = self.now_ms;
        let Some(q) = self.vhosts.get_mut(vhost_name).and_then(|v| v.queues.get_mut(&id)) else {
            return;
        };
        let Some(pos) = q.peek_head() else { return };
        let dl = q
            .settings
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
        vhost_name: &Arc<str>,
        id: QueueId,
        pos: SegmentPosition,
        reason: DeathReason,
    ) {
        let now_ms = self.now_ms;
        let Some(q) = self.vhosts.get_mut(vhost_name).and_then(|v| v.queues.get_mut(&id)) else {
            return;
        };
        if q.settings.dead_letter_exchange.is_some() {
            if let Some(mut dl) = dead_letter_at(vhost_name, q, pos, reason, now_ms) {
                if q.settings.dead_lettering() == DeadLetterStrategy::AtLeastOnce {
                    // Acked when the copy is durable (`dead_letter_hold`).
                    dl.hold = Some((id, pos));
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
    pub(crate) fn requeue_or_limit(&mut self, vhost_name: &Arc<str>, id: QueueId, pos: SegmentPosition) {
        let Some(q) = self.vhosts.get_mut(vhost_name).and_then(|v| v.queues.get_mut(&id)) else {
            return;
        };
        if q.counts_deliveries() {
            let count = q.bump_delivery_count(pos);
            if q.settings.delivery_limit.is_some_and(|limit| u64::from(count) > limit) {
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

    /// Expires messages at the head of a queue and arms the timer for the next
    /// one: every caller (publish, get, the timer itself, the API's get) needs both.
    pub(crate) fn expire_head(&mut self, vhost_name: &Arc<str>, id: QueueId) {
        if let Some(due) = self.head_expiry(vhost_name, id) {
            self.timers.add(due, self.now_ms, vhost_name, id, TimerKind::Head);
        }
    }

    /// Expires messages at the head of a queue; returns when the next one is due
    /// (`now` when the per-check bound was hit: the rest go in a later turn).
    fn head_expiry(&mut self, vhost_name: &Arc<str>, id: QueueId) -> Option<u64> {
        let now_ms = self.now_ms;
        for _ in 0..EXPIRED_PER_CHECK_MAX {
            let q = self.vhosts.get_mut(vhost_name)?.queues.get_mut(&id)?;
            match expire_one(vhost_name, q, now_ms, &mut self.dead_letters) {
                HeadState::Expired => {
                    self.ack_flush.note(vhost_name, q, now_ms);
                    continue;
                }
                HeadState::Due(t) => return Some(t),
                HeadState::Live => return None,
            }
        }
        Some(now_ms)
    }

    /// Runs expiry for queues that got new messages or lost their head, and sets
    /// their timers.
    pub(crate) fn run_expiry_checks(&mut self) {
        if self.expiry_pending.is_empty() {
            return;
        }
        let mut pending = std::mem::take(&mut self.expiry_pending);
        // Queue ids are unique across vhosts: compare ids only (comparing the
        // vhost names made memcmp 17% of the 1p1c profile).
        pending.sort_unstable_by_key(|e| e.1);
        pending.dedup_by_key(|e| e.1);
        for (vname, id) in pending {
            self.expire_head(&vname, id);
        }
    }

    /// Routes queued dead letters to their exchanges (bounded per turn).
    pub(crate) fn process_dead_letters(&mut self) {
        if !self.dead_letters.is_empty() {
            // The sources' acks reach their files before the copies are stored.
            self.flush_acks();
        }
        for _ in 0..DEAD_LETTERS_PER_TURN_MAX {
            let Some(dl) = self.dead_letters.pop_front() else {
                return;
            };
            let Some(vhost) = self.vhosts.get_mut(&dl.vhost) else {
                continue;
            };
            if !vhost.exchanges.contains_key(dl.dlx.as_str()) {
                // RabbitMQ drops dead letters whose exchange does not exist.
                self.drop_unroutable_dead_letter(&dl);
                continue;
            }
            let keys: Vec<&str> = dl.routing_keys.iter().map(String::as_str).collect();
            let props = BasicProperties::decode(&dl.properties).expect("own encoding");
            let mut queues = std::mem::take(&mut self.route_scratch);
            vhost.route(&dl.dlx, &keys, &props, &mut queues);
            let deaths = Deaths::of(&props);
            queues.retain(|id| vhost.queues.get(id).is_some_and(|q| !deaths.is_cycle(&q.name)));
            let msg = StoredMessage {
                exchange: dl.dlx.as_short(),
                routing_key: dl.routing_key.as_short(),
                properties: &dl.properties,
                body: &dl.body,
                persistent: dl.persistent,
                expiration_ms: None,
                priority: props.priority.unwrap_or(0),
            };
            let mut outcome = PublishOutcome::default();
            let vname = dl.vhost.clone();
            let routed = !queues.is_empty();
            self.store_routed(&vname, &queues, &msg, &mut outcome);
            queues.clear();
            self.route_scratch = queues;
            if !routed {
                self.drop_unroutable_dead_letter(&dl);
            } else if let Some((id, pos)) = dl.hold {
                // The epoch these appends belong to, as a confirm would wait for.
                let epoch = if outcome.needs_sync { self.sync.epoch + 1 } else { 0 };
                self.hold_dead_letter_source(&vname, id, pos, epoch);
            }
        }
    }

    /// A dead letter that routes nowhere is gone (RabbitMQ's at-most-once; see
    /// `dead_letter_hold` for at-least-once's difference): its held original too.
    fn drop_unroutable_dead_letter(&mut self, dl: &DeadLetter) {
        if let Some((id, pos)) = dl.hold {
            self.hold_dead_letter_source(&dl.vhost, id, pos, 0);
        }
    }

    /// Holds a message published to a delayed exchange; None if the exchange is
    /// not a delayed one (route as usual).
    pub(crate) fn hold_delayed(
        &mut self,
        vhost_name: &Arc<str>,
        exchange: ShortStr<'_>,
        routing_key: ShortStr<'_>,
        properties: &[u8],
        body: &[u8],
        delay_ms: u64,
    ) -> Option<PublishOutcome> {
        let now_ms = self.now_ms;
        let vhost = self.vhosts.get_mut(vhost_name)?;
        let name = vhost.exchanges.get_key_value(exchange.as_str())?.0.clone();
        let x = vhost.exchanges.get_mut(exchange.as_str())?;
        let store = x.delayed.as_mut()?;
        let msg = MessageRef {
            timestamp_ms: now_ms,
            exchange: exchange.as_bytes(),
            routing_key: routing_key.as_bytes(),
            properties,
            body,
        };
        let mut outcome = PublishOutcome {
            routed: true,
            ..Default::default()
        };
        if let Err(e) = store.hold(msg, delay_ms) {
            tracing::error!(%exchange, error = %e, "cannot hold delayed message");
            outcome.failed = true;
            return Some(outcome);
        }
        if x.durable && self.config.sync {
            if let Err(e) = store.sync() {
                tracing::error!(%exchange, error = %e, "cannot sync delayed message");
                outcome.failed = true;
            }
        }
        if let Some(due) = store.next_due() {
            self.timers
                .add(due, now_ms, vhost_name, QueueId(0), TimerKind::Delayed(name));
        }
        Some(outcome)
    }

    /// Routes the due messages of a delayed exchange.
    fn fire_delayed(&mut self, vhost_name: &Arc<str>, exchange: &ShortString) {
        let now_ms = self.now_ms;
        for _ in 0..DEAD_LETTERS_PER_TURN_MAX {
            let Some(vhost) = self.vhosts.get_mut(vhost_name) else {
                return;
            };
            let Some(store) = vhost.exchanges.get_mut(&**exchange).and_then(|x| x.delayed.as_mut()) else {
                return;
            };
            let Some(pos) = store.pop_due(now_ms) else {
                if let Some(due) = store.next_due() {
                    self.timers.add(
                        due,
                        now_ms,
                        vhost_name,
                        QueueId(0),
                        TimerKind::Delayed(exchange.clone()),
                    );
                }
                return;
            };
            let read = read_named(store.read(pos));
            let (view, (_, routing_key)) = match read {
                Ok(r) => r,
                Err(e) => {
                    tracing::error!(%exchange, error = %e, "unreadable delayed message dropped");
                    store.release(pos);
                    continue;
                }
            };
            let properties = view.properties.to_vec();
            let body = view.body.to_vec();
            let routing_key = ShortString::from(routing_key);
            store.release(pos);
            let props = BasicProperties::decode(&properties).unwrap_or_default();
            let mut queues = std::mem::take(&mut self.route_scratch);
            vhost.route(exchange, &[routing_key.as_str()], &props, &mut queues);
            let msg = StoredMessage {
                exchange: exchange.as_short(),
                routing_key: routing_key.as_short(),
                properties: &properties,
                body: &body,
                persistent: props.is_persistent(),
                expiration_ms: props.expiration.and_then(|e| parse_expiration(e.as_str()).ok()),
                priority: props.priority.unwrap_or(0),
            };
            let mut outcome = PublishOutcome::default();
            self.store_routed(vhost_name, &queues, &msg, &mut outcome);
            queues.clear();
            self.route_scratch = queues;
        }
        // More are due: the rest in a later turn.
        self.timers.add(
            now_ms,
            now_ms,
            vhost_name,
            QueueId(0),
            TimerKind::Delayed(exchange.clone()),
        );
    }

    /// When the next timer is due (ms since the epoch), for the io layer's sleep.
    /// After `handle_timeout(now)` this is always after `now`; timers that are
    /// due but not yet handled (the per-turn bound) are pending work instead
    /// ([`Broker::has_pending_work`]).
    pub fn poll_timeout(&self) -> Option<u64> {
        match (self.timers.first(), self.ack_flush.due_ms()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Fires the timers due at `now_ms` (at most [`TIMERS_PER_TURN_MAX`] of them;
    /// the rest are pending work for the next turns), then the work they made.
    /// Returns how many fired, for the io layer's stall report.
    pub fn handle_timeout(&mut self, now_ms: u64) -> usize {
        self.now_ms = now_ms;
        self.flush_acks_if_due(now_ms);
        self.timers.take_due(now_ms);
        let fired = self.timers.due_len().min(TIMERS_PER_TURN_MAX);
        self.run_pending();
        debug_assert!(
            self.poll_timeout().is_none_or(|t| t > now_ms),
            "a timer was armed at or before now ({now_ms})"
        );
        fired
    }

    /// Runs one batch of due timers (part of every turn's pending work).
    pub(crate) fn fire_due_timers(&mut self) {
        if self.timers.due_len() == 0 {
            return;
        }
        for (vname, id, kind) in self.timers.pop_due_batch() {
            match kind {
                TimerKind::Head => self.expire_head(&vname, id),
                TimerKind::QueueExpires => self.check_queue_expiry(&vname, id),
                TimerKind::Delayed(x) => self.fire_delayed(&vname, &x),
            }
        }
    }

    /// x-expires: delete the queue if it was unused for the period.
    fn check_queue_expiry(&mut self, vname: &Arc<str>, id: QueueId) {
        let now_ms = self.now_ms;
        let Some(q) = self.vhosts.get(vname).and_then(|v| v.queues.get(&id)) else {
            return;
        };
        let Some(expires) = q.settings.expires_ms else { return };
        let due = q.last_used_ms.saturating_add(expires);
        if q.consumer_count() == 0 && now_ms >= due {
            tracing::info!(queue = %q.name, "queue expired (x-expires)");
            self.delete_queue(vname, id);
        } else {
            self.timers
                .add(due.max(now_ms + 1), now_ms, vname, id, TimerKind::QueueExpires);
        }
    }

    /// Arms the x-expires timer of a queue that was just used.
    pub(crate) fn touch_queue(&mut self, vname: &Arc<str>, id: QueueId) {
        let now_ms = self.now_ms;
        let Some(q) = self.vhosts.get_mut(vname).and_then(|v| v.queues.get_mut(&id)) else {
            return;
        };
        q.last_used_ms = now_ms;
        if let Some(expires) = q.settings.expires_ms {
            self.timers.add(
                now_ms.saturating_add(expires),
                now_ms,
                vname,
                id,
                TimerKind::QueueExpires,
            );
        }
    }
}

/// What the head of a queue is, TTL-wise.
pub(crate) enum HeadState {
    /// It had expired and was removed (dead-lettered if the queue has a DLX).
    Expired,
    /// It expires at this time.
    Due(u64),
    /// No head, or no TTL applies to it.
    Live,
}

/// Checks the head of `q` and removes it if expired. Takes the dead-letter queue
/// rather than the broker, so the delivery loop can call it while it holds a
/// queue and the connections.
pub(crate) fn expire_one(
    vhost: &Arc<str>,
    q: &mut Queue,
    now_ms: u64,
    dead_letters: &mut DeadLetterQueue,
) -> HeadState {
    if !(q.may_expire || q.settings.message_ttl_ms.is_some()) {
        return HeadState::Live;
    }
    let Some(pos) = q.peek_head() else {
        return HeadState::Live;
    };
    let Ok(view) = q.store.read(pos) else {
        return HeadState::Live;
    };
    let props = BasicProperties::decode(view.properties).unwrap_or_default();
    let Some((due, ttl)) = deadline(view.timestamp_ms, &props, q.settings.message_ttl_ms) else {
        return HeadState::Live;
    };
    // TTL 0 means "deliver now or never": a message published and offered in the
    // same millisecond still goes out, as in RabbitMQ, so it expires from the next
    // millisecond on. The time returned is the first `now` at which the message
    // counts as expired, never `now` itself, so a timer armed for it always lies
    // ahead (issue 15: `Due(now)` for a TTL-0 head re-armed the timer at `now`).
    let expires_at = if ttl == 0 { due.saturating_add(1) } else { due };
    if now_ms < expires_at {
        return HeadState::Due(expires_at);
    }
    if q.settings.dead_letter_exchange.is_some() {
        if let Some(mut dl) = dead_letter_at(vhost, q, pos, DeathReason::Expired, now_ms) {
            if q.settings.dead_lettering() == DeadLetterStrategy::AtLeastOnce {
                // Taken, not acked, until the copy is durable (`dead_letter_hold`).
                q.next_ready();
                dl.hold = Some((q.id, pos));
                dead_letters.push_back(dl);
                return HeadState::Expired;
            }
            dead_letters.push_back(dl);
        }
    }
    q.remove_head();
    HeadState::Expired
}

/// A dead letter's x-death entries, newest first (the death that made it is
/// the first): (queue, whether the reason was "rejected").
struct Deaths<'a>(Vec<(Option<&'a str>, bool)>);

impl<'a> Deaths<'a> {
    fn of(props: &BasicProperties<'a>) -> Deaths<'a> {
        let Some(FieldValueRef::Array(a)) = props.headers.and_then(|h| h.get("x-death")) else {
            return Deaths(Vec::new());
        };
        let entry = |e: FieldValueRef<'a>| {
            let FieldValueRef::Table(t) = e else { return None };
            let queue = t.get("queue").and_then(|v| v.as_str());
            Some((queue, t.get("reason").and_then(|v| v.as_str()) == Some("rejected")))
        };
        Deaths(a.iter().filter_map(entry).collect())
    }

    /// RabbitMQ's cycle rule (`rabbit_dead_letter:is_cycle`): the message died
    /// in `queue` before, and no death since then (that one and the newest
    /// included) was a rejection; such a copy is dropped. A rejection further
    /// back does not count: with "any rejection in x-death" two rejected
    /// messages in an `x-max-length: 1` queue that dead-letters to itself
    /// pushed each other out forever, 60,000 dead letters a second until the
    /// queue was drained (found by the model test, tests/model.rs).
    fn is_cycle(&self, queue: &str) -> bool {
        match self.0.iter().position(|(q, _)| *q == Some(queue)) {
            None => false,
            Some(i) => self.0[..=i].iter().all(|(_, rejected)| !rejected),
        }
    }
}

/// Reads the message at `pos` and builds its dead letter.
fn dead_letter_at(
    vhost: &Arc<str>,
    q: &Queue,
    pos: SegmentPosition,
    reason: DeathReason,
    now_ms: u64,
) -> Option<DeadLetter> {
    let read = read_named(q.store.read(pos));
    let (view, (exchange, rk)) = match read {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(queue = %q.name, error = %e, "unreadable message not dead-lettered");
            return None;
        }
    };
    let props = BasicProperties::decode(view.properties).ok()?;
    make_dead_letter(vhost, q, &props, exchange, rk, view.body, reason, now_ms)
}

/// Builds the dead letter of a message that dies in `q`: x-death updated as
/// RabbitMQ writes it, `expiration` removed (kept as `original-expiration`).
#[allow(clippy::too_many_arguments)]
fn make_dead_letter(
    vhost: &Arc<str>,
    q: &Queue,
    props: &BasicProperties<'_>,
    exchange: ShortStr<'_>,
    routing_key: ShortStr<'_>,
    body: &[u8],
    reason: DeathReason,
    now_ms: u64,
) -> Option<DeadLetter> {
    let dlx = q.settings.dead_letter_exchange.clone()?;
    let mut headers: FieldTable = props.headers.map(|h| h.to_owned_table()).unwrap_or_default();
    // The routing keys the message was published with: its own and CC (BCC was
    // stripped at publish).
    let mut original_keys = vec![routing_key.to_string()];
    if let Some(FieldValue::Array(cc)) = headers.get("CC") {
        original_keys.extend(cc.iter().filter_map(|v| v.as_str().map(str::to_owned)));
    }
    let mut deaths = match headers.0.remove("x-death") {
        Some(FieldValue::Array(a)) => a,
        _ => Vec::new(),
    };
    let same = |v: &FieldValue| {
        let FieldValue::Table(t) = v else { return false };
        t.get("queue").and_then(|x| x.as_str()) == Some(&*q.name)
            && t.get("reason").and_then(|x| x.as_str()) == Some(reason.as_str())
    };
    if let Some(i) = deaths.iter().position(same) {
        let mut entry = deaths.remove(i);
        if let FieldValue::Table(t) = &mut entry {
            let n = t.get("count").and_then(|c| c.as_i64()).unwrap_or(0);
            t.insert(short!("count"), FieldValue::I64(n + 1));
            t.insert(short!("time"), FieldValue::Timestamp(now_ms / 1000));
        }
        deaths.insert(0, entry);
    } else {
        let mut entry = FieldTable::new();
        entry.insert(short!("count"), FieldValue::I64(1));
        entry.insert(short!("reason"), reason.as_str());
        entry.insert(short!("queue"), &*q.name);
        entry.insert(short!("time"), FieldValue::Timestamp(now_ms / 1000));
        entry.insert(short!("exchange"), exchange);
        entry.insert(
            short!("routing-keys"),
            FieldValue::Array(original_keys.iter().map(|k| FieldValue::from(k.as_str())).collect()),
        );
        if let Some(exp) = props.expiration {
            entry.insert(short!("original-expiration"), exp);
        }
        deaths.insert(0, FieldValue::Table(entry));
    }
    headers.insert(short!("x-death"), FieldValue::Array(deaths));
    if headers.get("x-first-death-reason").is_none() {
        headers.insert(short!("x-first-death-reason"), reason.as_str());
        headers.insert(short!("x-first-death-queue"), &*q.name);
        headers.insert(short!("x-first-death-exchange"), exchange);
    }
    let header_bytes = headers.to_bytes();
    let mut p = *props;
    p.headers = Some(Table::parse(&header_bytes).expect("own table"));
    p.expiration = None;
    let mut properties = Vec::new();
    p.encode(&mut properties);
    let (routing_key, routing_keys) = match &q.settings.dead_letter_routing_key {
        Some(k) => (k.clone(), vec![k.to_string()]),
        None => (routing_key.into(), original_keys),
    };
    Some(DeadLetter {
        vhost: vhost.clone(),
        dlx,
        routing_key,
        routing_keys,
        properties,
        body: body.to_vec(),
        persistent: props.is_persistent(),
        hold: None,
    })
}

pub(crate) type DeadLetterQueue = VecDeque<DeadLetter>;

/// Store errors on publish, logged once with a count instead of once per message:
/// a full disk gave 60-125 k ERROR lines a second (issue 15, defect 4).
#[derive(Debug, Default)]
pub(crate) struct RepeatedErrors {
    /// Errors since the last line logged.
    suppressed: u64,
    /// When the last line was logged; `None` while appends succeed.
    logged_ms: Option<u64>,
}

/// At most one line per this long while store errors repeat.
const REPEATED_ERRORS_LOG_MS: u64 = 10_000;

impl RepeatedErrors {
    /// One more error: logged if none was in the last [`REPEATED_ERRORS_LOG_MS`],
    /// else counted for the next line.
    pub(crate) fn note(&mut self, queue: &str, e: &ringmq_store::StoreError, now_ms: u64) {
        match self.logged_ms {
            Some(t) if now_ms.saturating_sub(t) < REPEATED_ERRORS_LOG_MS => self.suppressed += 1,
            _ => {
                tracing::error!(
                    queue,
                    error = %e,
                    not_logged_before = self.suppressed,
                    "could not store message (repeats are counted, one line per 10 s)"
                );
                self.suppressed = 0;
                self.logged_ms = Some(now_ms);
            }
        }
    }

    /// An append succeeded: if errors were being counted, say how many and stop.
    pub(crate) fn cleared(&mut self) {
        if self.logged_ms.take().is_some() {
            tracing::info!(
                not_logged = self.suppressed,
                "storing messages works again (after the errors above)"
            );
            self.suppressed = 0;
        }
    }
}
