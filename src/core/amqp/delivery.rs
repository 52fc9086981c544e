//! Moving messages from queues to consumers, and giving back what a closed
//! channel held.

use ringmq_codec::frame::encode_body;
use ringmq_codec::{encode_deliver_head, BasicProperties, FieldValue, Table};
use ringmq_codec::{short, ShortStr};

use crate::core::amqp::broker::{Broker, OUT_HIGH_WATER_BYTES};
use crate::core::amqp::channel::{ChannelState, Unacked};
use crate::core::amqp::connection::{ConnState, Connection};
use crate::core::amqp::output::{push_body_frames, Output, ZERO_COPY_BODY_BYTES_MIN};
use crate::core::model::queue::take::{Taken, TakenAt};

/// What one round of a queue's delivery loop did.
enum Step {
    Delivered,
    /// The head message had expired (dead-lettered or dropped): try again.
    Expired,
    NoCredit,
    /// The first consumer with credit is on another shard (`remote_consume`).
    Remote(usize),
}

/// Deliveries from one queue per turn before others get a go.
pub const DELIVERIES_PER_QUEUE_TURN_MAX: usize = 256;

impl Broker {
    /// Delivers ready messages of the queues marked pending to consumers with
    /// credit. A queue that hit the per-turn bound stays pending for the next turn.
    pub(crate) fn deliver(&mut self) {
        if self.model.deliver_pending.is_empty() {
            return;
        }
        let mut pending = std::mem::take(&mut self.model.deliver_pending);
        // Queue ids are unique across vhosts: compare ids only (comparing the
        // vhost names made memcmp 17% of the 1p1c profile).
        pending.sort_unstable_by_key(|e| e.1);
        pending.dedup_by_key(|e| e.1);
        let mut again = Vec::new();
        let me = self.model.shards.me;
        for (vname, qid) in pending.drain(..) {
            let Some(vhost) = self.model.vhosts.get_mut(&vname) else {
                continue;
            };
            let Some(q) = vhost.queues.get_mut(&qid).map(|q| &mut **q) else {
                continue;
            };
            if q.is_stream() {
                let elsewhere = crate::core::amqp::stream::Elsewhere {
                    me,
                    vhost: &vname,
                    cross: &mut self.model.cross,
                };
                if crate::core::amqp::stream::deliver_stream(q, qid, &mut self.conns, &mut self.dirty, elsewhere) {
                    again.push((vname.clone(), qid));
                }
                continue;
            }
            let conns = &mut self.conns;
            let mut budget = DELIVERIES_PER_QUEUE_TURN_MAX;
            while q.ready_count() > 0 && q.consumer_count() > 0 && !q.is_paused() {
                if budget == 0 {
                    again.push((vname.clone(), qid));
                    break;
                }
                // The first consumer in the queue's order (priority, then
                // rotation; only the first with single active consumer) whose
                // connection takes output and whose channel has credit gets the
                // next message: its connection, channel and consumer are each
                // looked up once, and the message is sent while they are in hand.
                let mut step = Step::NoCredit;
                for idx in 0..q.delivery_candidates() {
                    let c = q.consumer(idx);
                    let Some(conn) = conns.get_mut(&c.conn) else {
                        // Not this shard's connection: a consumer on another
                        // shard, which may be sent what it has permits for.
                        if c.permits > 0 && c.conn.shard() != me {
                            step = Step::Remote(idx);
                            break;
                        }
                        continue;
                    };
                    if conn.state != ConnState::Open || conn.out.len() >= OUT_HIGH_WATER_BYTES {
                        continue;
                    }
                    let Some(ch) = conn.channels.get_mut(&c.channel) else {
                        continue;
                    };
                    if !ch.count_delivery(&c.tag) {
                        continue;
                    }
                    let c = c.clone();
                    match crate::core::model::queue::ttl::expire_one(
                        &vname,
                        q,
                        self.model.now_ms,
                        &mut self.model.dead_letters,
                    ) {
                        crate::core::model::queue::ttl::HeadState::Expired => {
                            ch.uncount_delivery(&c.tag);
                            step = Step::Expired;
                            break;
                        }
                        crate::core::model::queue::ttl::HeadState::Due(t) => self.model.timers.add(
                            t,
                            self.model.now_ms,
                            &vname,
                            qid,
                            crate::core::model::timers::TimerKind::Head,
                        ),
                        crate::core::model::queue::ttl::HeadState::Live => {}
                    }
                    let frame_max = conn.tuning.frame_max;
                    let out = &mut conn.out;
                    let sent = q.take_next(Some(ZERO_COPY_BODY_BYTES_MIN), |m| {
                        let tag = ch.take_delivery_tag();
                        // How often the message was delivered before (`x-delivery-count`).
                        let properties = delivery_properties(m.view.properties, m.delivery_count);
                        let to = DeliverTo {
                            channel: c.channel,
                            consumer_tag: c.tag.as_short(),
                            delivery_tag: tag,
                            frame_max,
                        };
                        encode_taken(out, &to, m.redelivered, &properties, m);
                        tag
                    });
                    let Some((TakenAt { pos, redelivered }, tag)) = sent else {
                        ch.uncount_delivery(&c.tag);
                        if q.ready_count() > 0 {
                            // Ready messages but none could be taken: the store
                            // failed (logged). Try again later, not never.
                            let now = self.model.now_ms;
                            let at = crate::core::model::timers::take_retry_at(now);
                            let kind = crate::core::model::timers::TimerKind::TakeRetry;
                            self.model.timers.add(at, now, &vname, qid, kind);
                        }
                        break;
                    };
                    q.count_delivery(c.no_ack, redelivered);
                    crate::core::model::stats::count_delivery(&mut ch.stats.c, c.no_ack, redelivered);
                    if c.no_ack {
                        q.ack_position(pos);
                    } else {
                        ch.unacked.push(
                            tag,
                            Unacked {
                                queue: qid,
                                position: pos,
                                consumer: Some(c.tag),
                                timeout: q
                                    .settings()
                                    .consumer_timeout_ms
                                    .or(self.config.consumer_timeout_ms)
                                    .map(|t| (self.model.now_ms.saturating_add(t), t)),
                            },
                        );
                    }
                    if !conn.dirty {
                        conn.dirty = true;
                        self.dirty.push(conn.id);
                    }
                    q.rotate_after_delivery(idx);
                    step = Step::Delivered;
                    break;
                }
                if let Step::Remote(idx) = step {
                    let o = crate::core::amqp::remote_consume::RemoteOut {
                        now_ms: self.model.now_ms,
                        timers: &mut self.model.timers,
                        dead_letters: &mut self.model.dead_letters,
                        cross: &mut self.model.cross,
                    };
                    step = match crate::core::amqp::remote_consume::deliver_remote(q, idx, &vname, qid, o) {
                        crate::core::amqp::remote_consume::RemoteStep::Delivered => Step::Delivered,
                        crate::core::amqp::remote_consume::RemoteStep::Expired => Step::Expired,
                        crate::core::amqp::remote_consume::RemoteStep::Stopped => Step::NoCredit,
                    };
                }
                match step {
                    Step::Delivered => budget -= 1,
                    Step::Expired => continue,
                    Step::Remote(_) => unreachable!("delivered above"),
                    // No consumer with credit, or nothing readable left.
                    Step::NoCredit => break,
                }
            }
            self.model.ack_flush.note(&vname, q, self.model.now_ms);
        }
        self.model.deliver_pending.append(&mut again);
    }

    /// Marks the queues of a channel's consumers for delivery (new credit).
    pub(crate) fn queue_deliveries_for_channel(&mut self, conn: &Connection, channel: u16) {
        let Some(vhost) = conn.vhost.clone() else { return };
        if let Some(ch) = conn.channels.get(&channel) {
            for c in ch.consumers.values() {
                self.model.deliver_pending.push((vhost.clone(), c.queue));
            }
        }
    }

    /// A channel ends (closed by either side, or its connection is gone): its
    /// unacked messages go back to their queues, ahead of newer ones, marked
    /// redelivered; its consumers leave their queues.
    pub(crate) fn release_channel(&mut self, conn: &mut Connection, channel: u16) {
        let Some(vhost_name) = conn.vhost.clone() else { return };
        let Some(ch) = conn.channels.get_mut(&channel) else {
            return;
        };
        if ch.state == ChannelState::Closing {
            return;
        }
        ch.incoming = None;
        ch.tx = None;
        // A closed channel gets no more confirms or commit-ok (RabbitMQ's neither):
        // what was ready went out before the close (`close_channel`).
        ch.pending_confirms.clear();
        ch.commits.clear();
        let unacked = std::mem::take(&mut ch.unacked);
        let consumers: Vec<_> = ch.consumers.drain().collect();
        let mut unacked: Vec<_> = unacked.into_entries().collect();
        self.settle_remote(
            &vhost_name,
            (conn.id, channel),
            &mut unacked,
            crate::core::model::cross::SettleHow::Requeue,
        );
        for (_, u) in unacked {
            self.model.requeue_or_limit(&vhost_name, u.queue, u.position);
            self.model.deliver_pending.push((vhost_name.clone(), u.queue));
        }
        for (tag, c) in consumers {
            self.detach_consumer(conn, channel, &tag, c.queue);
        }
    }
}

/// Where a delivery goes: its channel, consumer and delivery tag, and the
/// connection's frame size.
pub(crate) struct DeliverTo<'a> {
    pub channel: u16,
    pub consumer_tag: ShortStr<'a>,
    pub delivery_tag: u64,
    pub frame_max: u32,
}

/// Encodes a taken message as a basic.deliver with `properties` (the stored
/// ones, or those with a header added): method and header frames, then the
/// body, a large one sent from the segment mapping rather than copied (see
/// `output`): only the frames around it are encoded here. Every delivery of a
/// stored message (classic queues' and streams') is encoded here.
// The message moved in, and inlined: taken by reference, the closure that
// `take_next` calls built it in memory, +60 instructions a message
// (benches/callgrind.sh).
#[inline(always)]
pub(crate) fn encode_taken(out: &mut Output, to: &DeliverTo<'_>, redelivered: bool, properties: &[u8], m: Taken<'_>) {
    encode_deliver_head(
        out,
        to.channel,
        to.consumer_tag,
        to.delivery_tag,
        redelivered,
        m.exchange,
        m.routing_key,
        properties,
        m.view.body.len() as u64,
    );
    match m.shared {
        Some(body) => push_body_frames(out, to.channel, &body, to.frame_max),
        None => encode_body(out, to.channel, m.view.body, to.frame_max),
    }
}

/// The properties a delivery carries: as stored, or with `x-delivery-count`
/// (see `Queue::delivery_count_header`).
pub(crate) fn delivery_properties(stored: &[u8], delivery_count: Option<u32>) -> std::borrow::Cow<'_, [u8]> {
    let Some(delivery_count) = delivery_count else {
        return std::borrow::Cow::Borrowed(stored);
    };
    std::borrow::Cow::Owned(with_header(
        stored,
        short!("x-delivery-count"),
        FieldValue::I64(delivery_count as i64),
    ))
}

/// Re-encodes raw properties with one header set (rare paths only: it allocates).
pub(crate) fn with_header(properties: &[u8], name: ShortStr<'_>, value: FieldValue) -> Vec<u8> {
    let Ok(props) = BasicProperties::decode(properties) else {
        return properties.to_vec();
    };
    let mut headers = props.headers.map(|h| h.to_owned_table()).unwrap_or_default();
    headers.insert(name, value);
    let bytes = headers.to_bytes();
    let mut p = props;
    p.headers = Some(Table::parse(&bytes).expect("own table"));
    let mut out = Vec::new();
    p.encode(&mut out);
    out
}
