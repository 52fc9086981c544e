//! Dead-lettering: a message that dies (rejected, expired, over a length or
//! delivery limit) is copied with an `x-death` entry to its queue's dead-letter
//! exchange.
//!
//! Dead letters are queued and processed iteratively (never by recursion), a
//! bounded number per turn, so a chain of dead-letter exchanges cannot blow the
//! stack or stall the loop. Cycles are cut as RabbitMQ cuts them: a message that
//! would return to a queue it already died in, with no `rejected` death on the
//! way, is dropped.

use crate::core::model::ids::VhostName;
use ringmq_codec::{short, ShortStr, ShortString};
use std::collections::VecDeque;

use ringmq_codec::{BasicProperties, FieldTable, FieldValue, FieldValueRef, Table};
use ringmq_store::SegmentPosition;

use crate::core::model::cross::ConfirmRef;
use crate::core::model::ids::QueueId;
use crate::core::model::queue::append::StoredMessage;
use crate::core::model::queue::dead_letter_hold::DEAD_LETTERS;
use crate::core::model::queue::take::read_named;
use crate::core::model::queue::Queue;
use crate::core::model::route::PublishOutcome;
use crate::core::model::Model;

/// Dead letters processed per turn; the rest wait for the next one.
pub const DEAD_LETTERS_PER_TURN_MAX: usize = 10_000;

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
    vhost: VhostName,
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

impl DeadLetter {
    /// At-least-once: keeps the original (taken, not acked) until this copy is
    /// durable or dropped (`dead_letter_hold`).
    pub(in crate::core) fn hold_original(&mut self, queue: QueueId, pos: SegmentPosition) {
        self.hold = Some((queue, pos));
    }
}

impl Model {
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
                maybe_delivered: false,
            };
            let mut outcome = PublishOutcome::default();
            let vname = dl.vhost.clone();
            let routed = !queues.is_empty();
            if dl.hold.is_some() {
                // Copies to other shards' queues carry the hold's reference:
                // their words release the original (`dead_letter_hold`).
                self.cross.origin = Some(ConfirmRef {
                    conn: DEAD_LETTERS,
                    channel: 0,
                    serial: 0,
                    seq: self.held_dead_letters.next_id(),
                });
            }
            self.store_routed(&vname, &queues, &msg, &mut outcome);
            self.cross.origin = None;
            queues.clear();
            self.route_scratch = queues;
            if !routed {
                self.drop_unroutable_dead_letter(&dl);
            } else if let Some((id, pos)) = dl.hold {
                // The epoch these appends belong to, as a confirm would wait for.
                let epoch = if outcome.needs_sync { self.commit.epoch + 1 } else { 0 };
                self.hold_dead_letter_source(&vname, id, pos, epoch, u32::from(outcome.remote));
            }
        }
    }

    /// A dead letter that routes nowhere is gone (RabbitMQ's at-most-once; see
    /// `dead_letter_hold` for at-least-once's difference): its held original too.
    fn drop_unroutable_dead_letter(&mut self, dl: &DeadLetter) {
        if let Some((id, pos)) = dl.hold {
            self.hold_dead_letter_source(&dl.vhost, id, pos, 0, 0);
        }
    }
}

/// A dead letter's x-death entries, newest first (the death that made it is
/// the first): (queue, whether the reason was "rejected").
struct Deaths<'a>(Vec<(Option<&'a str>, bool)>);

impl<'a> Deaths<'a> {
    pub(in crate::core) fn of(props: &BasicProperties<'a>) -> Deaths<'a> {
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
pub(in crate::core) fn dead_letter_at(
    vhost: &VhostName,
    q: &Queue,
    pos: SegmentPosition,
    reason: DeathReason,
    now_ms: u64,
) -> Option<DeadLetter> {
    let read = read_named(q.storage.read(pos));
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
pub(in crate::core) fn make_dead_letter(
    vhost: &VhostName,
    q: &Queue,
    props: &BasicProperties<'_>,
    exchange: ShortStr<'_>,
    routing_key: ShortStr<'_>,
    body: &[u8],
    reason: DeathReason,
    now_ms: u64,
) -> Option<DeadLetter> {
    let dlx = q.settings().dead_letter_exchange.clone()?;
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
    let (routing_key, routing_keys) = match &q.settings().dead_letter_routing_key {
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
