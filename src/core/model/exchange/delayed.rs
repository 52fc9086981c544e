//! The `x-delayed-message` exchange: messages with an `x-delay` header (ms) are
//! held on disk and routed by the exchange's bindings (of its `x-delayed-type`)
//! when due, in due order, surviving restarts for durable exchanges.
//!
//! The held messages live in a [`QueueStore`] of their own (one per delayed
//! exchange), taken "in flight" as soon as they are appended so the store's
//! FIFO order does not matter; a due-ordered index `(due, position)` says what
//! to route next. Memory is O(held messages) for the index, as RabbitMQ's
//! plugin keeps its index in memory too.
//!
//! Firing moves a message from this store to its target queues, two files
//! that cannot change together. The order (see [`Broker::fire_delayed`]): the
//! copies first, synced when they are persistent copies in durable queues,
//! then the ack here, synced. A crash can then lose nothing; between the two
//! (or when the page cache wrote the copy before its fsync) it can leave both,
//! and the message is routed again after the restart. That copy is flagged
//! redelivered ([`DelayedStore::pop_due`] says it may have been routed): after
//! an unclean stop (the vhost's `running` marker), every message that was due
//! before the broker started again may have been routed already. At-least-once,
//! never a silent duplicate. Before this order, the ack sat in the store's
//! in-memory buffer until close, so every message routed before a crash came
//! back and was routed again unflagged (sim `delayed_messages_and_power_loss`).

use crate::core::model::ids::VhostName;
use std::collections::BTreeSet;
use std::io;
use std::path::Path;

use ringmq_codec::{BasicProperties, FieldValueRef};
use ringmq_store::{
    AppendSeq, LastStop, MessageRef, MessageView, QueueStore, SegmentPosition, StoreConfig, StoreError, SyncBatch,
};

pub const DELAYED_TYPE: &str = "x-delayed-message";

pub struct DelayedStore {
    store: QueueStore,
    index: BTreeSet<(u64, SegmentPosition)>,
    /// After an unclean stop: messages due at or before this time (the broker's
    /// first `now` after the open, see [`Self::started`]; None before it) may
    /// have been routed before the stop.
    maybe_routed: Option<MaybeRouted>,
    /// The batch the running group commit took from this store (see
    /// [`Self::take_sync_batch`]): only that one is completed by it, so a job
    /// that finishes after its exchange was deleted and declared again does
    /// not complete a batch of the new store that it never took.
    in_commit: Option<AppendSeq>,
}

#[derive(Debug, Clone, Copy)]
enum MaybeRouted {
    /// Not started yet: every recovered message counts.
    All,
    DueUpTo(u64),
}

/// A due message taken by [`DelayedStore::pop_due`].
#[derive(Debug, Clone, Copy)]
pub struct Due {
    pub pos: SegmentPosition,
    /// It may have been routed before an unclean stop: its copies must be
    /// flagged redelivered.
    pub maybe_routed: bool,
}

/// The `x-delay` header in ms; None or a non-positive value means "route now".
pub fn delay_of(props: &BasicProperties<'_>) -> Option<u64> {
    let v = props.headers?.get("x-delay")?;
    let ms = match v {
        FieldValueRef::LongString(s) => std::str::from_utf8(s).ok()?.trim().parse::<i64>().ok()?,
        other => other.as_i64()?,
    };
    (ms > 0).then_some(ms as u64)
}

impl DelayedStore {
    /// Opens the store and rebuilds the due index from what it holds;
    /// `last_stop` is how its vhost was last stopped.
    pub fn open(dir: &Path, cfg: StoreConfig, last_stop: LastStop) -> io::Result<DelayedStore> {
        let (mut store, _) = QueueStore::open(dir, cfg)?;
        let mut index = BTreeSet::new();
        while let Some(pos) = store.next_ready().map_err(io::Error::other)? {
            let due = match store.read(pos) {
                Ok(v) => due_of(&v),
                Err(e) => {
                    tracing::warn!(error = %e, "unreadable delayed message dropped");
                    let _ = store.ack(pos);
                    continue;
                }
            };
            index.insert((due, pos));
        }
        let maybe_routed = (last_stop == LastStop::Unclean && !index.is_empty()).then_some(MaybeRouted::All);
        Ok(DelayedStore {
            store,
            index,
            maybe_routed,
            in_commit: None,
        })
    }

    /// The broker's first `now` after the open: it is after the stop, so a
    /// message due later cannot have been routed before it (a message held
    /// since is due later too: `now` plus a positive delay).
    pub fn started(&mut self, now_ms: u64) {
        if let Some(MaybeRouted::All) = self.maybe_routed {
            self.maybe_routed = Some(MaybeRouted::DueUpTo(now_ms));
        }
    }

    /// Holds a message until `timestamp_ms + delay`. Written, not synced: the
    /// caller has the group commit sync it before confirming.
    pub fn hold(&mut self, msg: MessageRef<'_>, delay_ms: u64) -> Result<(), StoreError> {
        let due = msg.timestamp_ms.saturating_add(delay_ms);
        self.store.append(msg)?;
        let pos = self.store.next_ready()?.expect("the message just appended is ready");
        self.index.insert((due, pos));
        Ok(())
    }

    /// Syncs the store now, blocking: the firing path's acks (see
    /// [`Broker::fire_delayed`]); held messages wait for the group commit.
    pub fn sync(&mut self) -> io::Result<()> {
        self.store.sync_all_blocking()
    }

    /// The files the group commit must sync for what was held since the last
    /// batch (None: nothing); report it with [`Self::commit_done`].
    pub fn take_sync_batch(&mut self) -> io::Result<Option<SyncBatch>> {
        let batch = self.store.take_sync_batch()?;
        if let Some(b) = &batch {
            debug_assert!(self.in_commit.is_none(), "one group commit at a time");
            self.in_commit = Some(b.seq());
        }
        Ok(batch)
    }

    /// The group commit that took the batch `seq` is done. A failed one is
    /// reported failed, as for a queue's store: the store goes on in a new
    /// segment (see `ringmq_store::sync`), and the broker nacks what waited.
    pub fn commit_done(&mut self, seq: AppendSeq, ok: bool) {
        if self.in_commit != Some(seq) {
            return;
        }
        self.in_commit = None;
        if ok {
            self.store.sync_completed(seq);
        } else {
            self.store.sync_failed(seq);
        }
    }

    /// Whether held messages or acks wait for a sync.
    pub fn needs_sync(&self) -> bool {
        self.store.needs_sync()
    }

    pub fn next_due(&self) -> Option<u64> {
        self.index.first().map(|(d, _)| *d)
    }

    pub fn len(&self) -> usize {
        self.index.len()
    }

    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// The next message that is due at `now_ms`.
    pub fn pop_due(&mut self, now_ms: u64) -> Option<Due> {
        let (due, _) = *self.index.first()?;
        if due > now_ms {
            return None;
        }
        let (_, pos) = self.index.pop_first()?;
        let maybe_routed = match self.maybe_routed {
            None => false,
            Some(MaybeRouted::All) => true,
            Some(MaybeRouted::DueUpTo(t)) => due <= t,
        };
        Some(Due { pos, maybe_routed })
    }

    pub fn read(&self, pos: SegmentPosition) -> Result<MessageView<'_>, StoreError> {
        self.store.read(pos)
    }

    /// The message was routed: it is done here (buffered: see
    /// [`Self::write_acks`] and [`Self::sync`]).
    pub fn release(&mut self, pos: SegmentPosition) {
        if let Err(e) = self.store.ack(pos) {
            tracing::error!(error = %e, "cannot release delayed message");
        }
    }

    /// Writes the buffered acks without syncing (enough for kill -9: the page
    /// cache outlives the process).
    pub fn write_acks(&mut self) -> io::Result<()> {
        self.store.flush_acks()
    }

    pub fn close(self) -> io::Result<()> {
        self.store.close()
    }

    pub fn delete(self) -> io::Result<()> {
        self.store.delete()
    }
}

fn due_of(v: &MessageView<'_>) -> u64 {
    let delay = BasicProperties::decode(v.properties)
        .ok()
        .and_then(|p| delay_of(&p))
        .unwrap_or(0);
    v.timestamp_ms.saturating_add(delay)
}

/// Why a declared exchange type is refused (RabbitMQ's texts).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExchangeTypeError {
    /// `x-delayed-message` without a known `x-delayed-type` (RabbitMQ: 406).
    #[error("Invalid argument, 'x-delayed-type' must be an existing exchange type")]
    BadDelayedType,
    /// No such exchange type (RabbitMQ: 503, closing the connection).
    #[error("unknown exchange type '{0}'")]
    Unknown(String),
}

/// Resolves a declared exchange type: `(routing kind, delayed?)`.
pub fn resolve_type(
    type_name: &str,
    arguments: &ringmq_codec::FieldTable,
) -> Result<(crate::core::model::exchange::ExchangeKind, bool), ExchangeTypeError> {
    if type_name == DELAYED_TYPE {
        let kind = arguments
            .get("x-delayed-type")
            .and_then(|v| v.as_str())
            .and_then(crate::core::model::exchange::ExchangeKind::parse);
        return kind.map(|k| (k, true)).ok_or(ExchangeTypeError::BadDelayedType);
    }
    crate::core::model::exchange::ExchangeKind::parse(type_name)
        .map(|k| (k, false))
        .ok_or_else(|| ExchangeTypeError::Unknown(type_name.to_owned()))
}

use ringmq_codec::{ShortStr, ShortString};

use crate::core::model::ids::QueueId;
use crate::core::model::queue::append::StoredMessage;
use crate::core::model::queue::args::parse_expiration;
use crate::core::model::queue::dead_letter::DEAD_LETTERS_PER_TURN_MAX;
use crate::core::model::queue::take::read_named;
use crate::core::model::route::PublishOutcome;
use crate::core::model::timers::TimerKind;
use crate::core::model::Model;

// Holding and firing, on the broker.
impl Model {
    /// Holds a message published to a delayed exchange; None if the exchange is
    /// not a delayed one (route as usual).
    pub(crate) fn hold_delayed(
        &mut self,
        vhost_name: &VhostName,
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
        if let Some(owner) = x.delayed_owner {
            let outcome = self.forward_delayed(owner, vhost_name, exchange, routing_key, properties, body, delay_ms);
            return Some(outcome);
        }
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
        if x.durable && self.commit.enabled() {
            // Synced off the loop by the group commit, which the confirm (or
            // commit-ok) waits for; a failed commit nacks it, as for queues.
            outcome.needs_sync = true;
            self.commit.delayed_dirty(vhost_name, &name);
        }
        if let Some(due) = store.next_due() {
            self.timers
                .add(due, now_ms, vhost_name, QueueId(0), TimerKind::Delayed(name));
        }
        Some(outcome)
    }

    /// Routes the due messages of a delayed exchange, at most
    /// [`DEAD_LETTERS_PER_TURN_MAX`] per turn, then settles them here (see
    /// [`Self::settle_fired`] and the module doc for the order).
    pub(in crate::core) fn fire_delayed(&mut self, vhost_name: &VhostName, exchange: &ShortString) {
        let now_ms = self.now_ms;
        let mut fired = Fired::default();
        let mut more = true;
        for _ in 0..DEAD_LETTERS_PER_TURN_MAX {
            let Some(vhost) = self.vhosts.get_mut(vhost_name) else {
                return;
            };
            let Some(store) = vhost.exchanges.get_mut(&**exchange).and_then(|x| x.delayed.as_mut()) else {
                return;
            };
            let Some(due) = store.pop_due(now_ms) else {
                if let Some(next) = store.next_due() {
                    self.timers.add(
                        next,
                        now_ms,
                        vhost_name,
                        QueueId(0),
                        TimerKind::Delayed(exchange.clone()),
                    );
                }
                more = false;
                break;
            };
            let read = read_named(store.read(due.pos));
            let (view, (_, routing_key)) = match read {
                Ok(r) => r,
                Err(e) => {
                    tracing::error!(%exchange, error = %e, "unreadable delayed message dropped");
                    fired.positions.push(due.pos);
                    continue;
                }
            };
            let properties = view.properties.to_vec();
            let body = view.body.to_vec();
            let routing_key = ShortString::from(routing_key);
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
                maybe_delivered: due.maybe_routed,
            };
            let mut outcome = PublishOutcome::default();
            self.store_routed(vhost_name, &queues, &msg, &mut outcome);
            if outcome.needs_sync {
                fired.durable_copies.extend(queues.iter().copied());
            }
            fired.positions.push(due.pos);
            queues.clear();
            self.route_scratch = queues;
        }
        self.settle_fired(vhost_name, exchange, fired);
        if more {
            // More are due: the rest in a later turn.
            self.timers.add(
                now_ms,
                now_ms,
                vhost_name,
                QueueId(0),
                TimerKind::Delayed(exchange.clone()),
            );
        }
    }

    /// The messages of one turn were routed: their copies are made durable
    /// first, then their acks here. Both syncs are inline, on the loop, once per
    /// turn (not per message): the ack must not be durable before the copies,
    /// and the group commit could only order them across two commits, leaving
    /// a copy on disk with its original still held for up to two commit rounds
    /// (a duplicate window of that length at every crash, where this one is
    /// two fsyncs long). Delayed routing is rare next to publishing and bounded
    /// per turn (a delayed publish is synced by the group commit instead).
    fn settle_fired(&mut self, vhost_name: &VhostName, exchange: &ShortString, fired: Fired) {
        if fired.positions.is_empty() {
            return;
        }
        let sync = self.commit.enabled();
        let Some(vhost) = self.vhosts.get_mut(vhost_name) else {
            return;
        };
        let mut copies_synced = true;
        if sync {
            let mut ids = fired.durable_copies;
            ids.sort_unstable();
            ids.dedup();
            for id in ids {
                let Some(q) = vhost.queues.get_mut(&id) else { continue };
                if let Err(e) = q.sync_all_blocking() {
                    // The copies are in their queues as any message whose fsync
                    // failed (its publisher gets a nack): routing it again would
                    // be a certain duplicate now, not a possible one after a crash.
                    // The sync covered publishes waiting for the group commit too.
                    tracing::error!(queue = %q.name(), error = %e, "cannot sync delayed messages' copies");
                    copies_synced = false;
                    self.commit.inline_sync_failed();
                }
            }
        }
        let Some(x) = vhost.exchanges.get_mut(&**exchange) else {
            return;
        };
        let durable = x.durable;
        let Some(store) = x.delayed.as_mut() else { return };
        for pos in fired.positions {
            store.release(pos);
        }
        // A transient exchange's store does not outlive the process: a plain
        // write is enough, as for copies that are not durable anyway.
        let synced = sync && durable && copies_synced;
        let r = if synced { store.sync() } else { store.write_acks() };
        if let Err(e) = r {
            tracing::error!(%exchange, error = %e, "cannot write delayed messages' acks");
            if synced {
                // Held messages waiting for the group commit were in that sync.
                self.commit.inline_sync_failed();
            }
        }
    }
}

/// What one turn of [`Broker::fire_delayed`] routed.
#[derive(Default)]
struct Fired {
    /// Taken from the delayed store, to be acked there.
    positions: Vec<SegmentPosition>,
    /// Queues that got persistent copies to sync (durable, with sync on);
    /// may repeat (a Vec keeps the simulation's order deterministic).
    durable_copies: Vec<QueueId>,
}
