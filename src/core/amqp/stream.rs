//! Stream queues over AMQP 0-9-1 (issue 20), as RabbitMQ 3.10 serves them:
//! what a stream refuses (basic.get, queue.purge, nack/reject, automatic
//! acks, a consumer without a prefetch), and delivery to its consumers, each
//! from its own offset, every delivery carrying its `x-stream-offset`.
//!
//! A stream's delivery is its own loop, not the classic one: every consumer
//! reads every message, so the question per consumer is "has it credit and
//! something it has not read", not "who gets the next ready message".

use ringmq_codec::{short, FieldValue, ReplyCode};

use crate::core::amqp::broker::OUT_HIGH_WATER_BYTES;
use crate::core::amqp::channel::Unacked;
use crate::core::amqp::connection::{ConnState, Connection};
use crate::core::amqp::delivery::{encode_taken, with_header, DeliverTo, DELIVERIES_PER_QUEUE_TURN_MAX};
use crate::core::amqp::error::{channel_error, connection_error, Exception};
use crate::core::amqp::output::ZERO_COPY_BODY_BYTES_MIN;
use crate::core::model::cross::delivers::ConsumerAt;
use crate::core::model::cross::packed::MsgParts;
use crate::core::model::cross::Cross;
use crate::core::model::ids::{ConnId, QueueId, VhostName};
use crate::core::model::meta::ShardId;
use crate::core::model::queue::Queue;

/// RabbitMQ's answer to a method streams do not have (540, closing the
/// connection): `basic.get not supported by stream queues queue 's' in vhost '/'`.
pub(crate) fn not_for_streams(what: &str, queue: &str, vhost: &str) -> Exception {
    connection_error(
        ReplyCode::NotImplemented,
        format!("{what} not supported by stream queues queue '{queue}' in vhost '{vhost}'"),
    )
}

/// What basic.consume on a stream must have (RabbitMQ 3.10's
/// rabbit_stream_queue:consume, in its order): manual acks, then a consumer
/// prefetch (`basic.qos` with global=false; a channel-wide one does not count).
pub(crate) fn check_consume(no_ack: bool, consumer_prefetch: u16, queue: &str, vhost: &str) -> Result<(), Exception> {
    if no_ack {
        return Err(not_for_streams("automatic acknowledgement", queue, vhost));
    }
    if consumer_prefetch == 0 {
        return Err(channel_error(
            ReplyCode::PreconditionFailed,
            format!("consumer prefetch count is not set for 'queue '{queue}' in vhost '{vhost}''"),
        ));
    }
    Ok(())
}

/// What the owner needs to send readers on other shards their messages.
pub(crate) struct Elsewhere<'a> {
    pub me: ShardId,
    pub vhost: &'a VhostName,
    pub cross: &'a mut Cross,
}

/// Delivers what a stream's consumers have credit for and not yet read, up to
/// the per-queue bound; true when it stopped at the bound (more to do).
pub(crate) fn deliver_stream(
    q: &mut Queue,
    qid: QueueId,
    conns: &mut crate::core::Map<ConnId, Box<Connection>>,
    dirty: &mut Vec<ConnId>,
    elsewhere: Elsewhere<'_>,
) -> bool {
    let mut budget = DELIVERIES_PER_QUEUE_TURN_MAX;
    if q.is_paused() {
        return false;
    }
    for idx in 0..q.consumers().len() {
        let c = q.consumer(idx).clone();
        let Some(conn) = conns.get_mut(&c.conn) else {
            if c.conn.shard() != elsewhere.me {
                budget -= deliver_elsewhere(q, idx, qid, elsewhere.vhost, elsewhere.cross, budget);
            }
            continue;
        };
        let frame_max = conn.tuning.frame_max;
        let mut sent_any = false;
        while budget > 0 && conn.state == ConnState::Open && conn.out.len() < OUT_HIGH_WATER_BYTES {
            let Some(ch) = conn.channels.get_mut(&c.channel) else {
                break;
            };
            if !q.stream_has_more(c.conn, c.channel, &c.tag) || !ch.count_delivery(&c.tag) {
                break;
            }
            let out = &mut conn.out;
            let sent = q.stream_take(c.conn, c.channel, &c.tag, ZERO_COPY_BODY_BYTES_MIN, |offset, m| {
                let tag = ch.take_delivery_tag();
                let properties = with_offset(m.view.properties, offset);
                let to = DeliverTo {
                    channel: c.channel,
                    consumer_tag: c.tag.as_short(),
                    delivery_tag: tag,
                    frame_max,
                };
                encode_taken(out, &to, false, &properties, m);
                tag
            });
            let Some((at, tag)) = sent else {
                ch.uncount_delivery(&c.tag);
                continue; // an unreadable message skipped (logged), or none
            };
            q.count_delivery(false, false);
            crate::core::model::stats::count_delivery(&mut ch.stats.c, false, false);
            // The channel holds it until the ack, which only gives the credit back.
            ch.unacked.push(
                tag,
                Unacked {
                    queue: qid,
                    position: at.pos,
                    consumer: Some(c.tag.clone()),
                    timeout: None,
                },
            );
            budget -= 1;
            sent_any = true;
        }
        if sent_any && !conn.dirty {
            conn.dirty = true;
            dirty.push(conn.id);
        }
    }
    budget == 0
}

/// A stream delivery's properties: the stored ones with the message's
/// `x-stream-offset` header.
fn with_offset(properties: &[u8], offset: u64) -> Vec<u8> {
    with_header(properties, short!("x-stream-offset"), FieldValue::I64(offset as i64))
}

/// Sends consumer `idx`, whose connection is on another shard, what it has
/// permits for (its shard grants them from its prefetch, `remote_permits`)
/// and not read yet, packed for its shard with each one's `x-stream-offset`
/// (`cross::delivers`); returns how many, at most `budget`. Its shard gives
/// them its channel's tags; its acks come back as settlements, which on a
/// stream move nothing but its credit.
fn deliver_elsewhere(
    q: &mut Queue,
    idx: usize,
    qid: QueueId,
    vhost: &VhostName,
    cross: &mut Cross,
    budget: usize,
) -> usize {
    let c = q.consumer(idx);
    let (conn, channel, tag) = (c.conn, c.channel, c.tag.clone());
    let to = ConsumerAt {
        vhost,
        queue: qid,
        conn,
        channel,
        tag: tag.as_short(),
    };
    let mut sent = 0;
    // A bound on tries too: a record that cannot be read is skipped (logged).
    for _ in 0..budget {
        if sent == budget || q.consumer(idx).permits == 0 || !q.stream_has_more(conn, channel, &tag) {
            break;
        }
        let delivers = cross.delivers_to(conn.shard());
        let taken = q.stream_take(conn, channel, &tag, usize::MAX, |offset, m| {
            delivers.pack(to.tag, &MsgParts::of(&m, &with_offset(m.view.properties, offset)))
        });
        let Some((at, packed)) = taken else { continue };
        delivers.push_packed(&to, packed, at.pos, false);
        q.spend_permit(idx);
        q.count_delivery(false, false);
        sent += 1;
    }
    sent
}

/// The broker's `default_stream_offset` as where a reader starts.
impl From<crate::core::config::DefaultStreamOffset> for crate::core::model::queue::stream::StreamStart {
    fn from(d: crate::core::config::DefaultStreamOffset) -> Self {
        use crate::core::config::DefaultStreamOffset as D;
        match d {
            D::Next => Self::Next,
            D::First => Self::First,
            D::Last => Self::Last,
        }
    }
}
