//! basic.qos, basic.consume, basic.cancel, and a consumer leaving its queue.

use ringmq_codec::ShortString;

use ringmq_codec::{
    encode_method, BasicCancel, BasicCancelOk, BasicConsume, BasicConsumeOk, BasicQos, BasicQosOk, Method, ReplyCode,
};

use crate::core::access::permissions::Access;
use crate::core::amqp::broker::Broker;
use crate::core::amqp::channel::{ChannelConsumer, CONSUMERS_PER_CHANNEL_MAX};
use crate::core::amqp::connection::Connection;
use crate::core::amqp::direct_reply::is_reply_queue;
use crate::core::amqp::dispatch::{chan, check_access, precondition};
use crate::core::amqp::error::{channel_error, connection_error, MethodResult};
use crate::core::amqp::remote_consume::PendingConsume;
use crate::core::model::ids::QueueId;
use crate::core::model::queue::ConsumerRef;

impl Broker {
    pub(crate) fn basic_qos(&mut self, conn: &mut Connection, channel: u16, m: BasicQos) -> MethodResult {
        if m.prefetch_size != 0 {
            return Err(connection_error(
                ReplyCode::NotImplemented,
                "prefetch_size!=0 (non-zero)",
            ));
        }
        let ch = chan(conn, channel);
        if m.global {
            ch.channel_prefetch = m.prefetch_count;
        } else {
            ch.consumer_prefetch = m.prefetch_count;
        }
        encode_method(&mut conn.out, channel, &Method::BasicQosOk(BasicQosOk));
        self.queue_deliveries_for_channel(conn, channel);
        self.regrant(conn, channel);
        Ok(())
    }

    pub(crate) fn basic_consume(&mut self, conn: &mut Connection, channel: u16, m: BasicConsume<'_>) -> MethodResult {
        let tag: ShortString = if m.consumer_tag.is_empty() {
            self.generated_name("amq.ctag-")
        } else {
            ShortString::from(m.consumer_tag)
        };
        if is_reply_queue(&m.queue) {
            self.consume_reply_to(conn, channel, tag.clone(), m.no_ack)?;
            if !m.no_wait {
                encode_method(
                    &mut conn.out,
                    channel,
                    &Method::BasicConsumeOk(BasicConsumeOk {
                        consumer_tag: tag.as_short(),
                    }),
                );
            }
            return Ok(());
        }
        let (qid, qname) = self.resolve_queue(conn, channel, m.queue)?;
        check_access(conn, Access::Read, "queue", &qname)?;
        let ch = chan(conn, channel);
        if ch.consumers.contains_key(&tag) {
            return Err(connection_error(
                ReplyCode::NotAllowed,
                format!("attempt to reuse consumer tag '{tag}'"),
            ));
        }
        if let Some(max) = self.config.max_consumers_per_channel {
            if ch.consumers.len() >= max.get() as usize {
                // LavinMQ's setting, LavinMQ's answer.
                return Err(channel_error(
                    ReplyCode::ResourceError,
                    format!("Max {max} consumers per channel reached"),
                ));
            }
        }
        if ch.consumers.len() >= CONSUMERS_PER_CHANNEL_MAX {
            return Err(channel_error(
                ReplyCode::ResourceError,
                format!("too many consumers on channel (max {CONSUMERS_PER_CHANNEL_MAX})"),
            ));
        }
        let priority = match m.arguments.get("x-priority") {
            None => 0,
            Some(v) => match v.as_i64() {
                Some(p) => p.clamp(i32::MIN as i64, i32::MAX as i64) as i32,
                None => {
                    return Err(precondition(format!(
                        "invalid arg 'x-priority' for consumer '{tag}': not an integer"
                    )))
                }
            },
        };
        let prefetch = ch.consumer_prefetch;
        let conn_id = conn.id;
        let me = self.model.shards.me;
        let now_ms = self.model.now_ms;
        let vhost = self.vhost_of(conn);
        let vname = vhost.name.clone();
        let q = vhost.queues.get_mut(&qid).expect("resolved queue");
        let owner = q.owner();
        let stream_start = if q.is_stream() {
            crate::core::amqp::stream::check_consume(m.no_ack, prefetch, &qname, &vname)?;
            let start = crate::core::model::queue::stream::StreamStart::parse(
                m.arguments.get("x-stream-offset").map(|v| v.to_owned_value()).as_ref(),
                now_ms,
                self.config.default_stream_offset.into(),
            )
            .map_err(precondition)?;
            let filter = crate::core::model::queue::stream::StreamFilter::parse(
                m.arguments.get("x-stream-filter").map(|v| v.to_owned_value()).as_ref(),
                m.arguments
                    .get("x-stream-match-unfiltered")
                    .map(|v| v.to_owned_value())
                    .as_ref(),
            )
            .map_err(precondition)?;
            let track = crate::core::model::queue::stream::tracks_offset(
                m.arguments.get("x-stream-offset").map(|v| v.to_owned_value()).as_ref(),
                m.arguments
                    .get("x-stream-automatic-offset-tracking")
                    .map(|v| v.to_owned_value())
                    .as_ref(),
            );
            Some((start, filter, track))
        } else {
            None
        };
        let vhost = self.vhost_of(conn);
        let q = vhost.queues.get_mut(&qid).expect("resolved queue");
        if owner != me {
            // The owner adds it, and decides an exclusive consumer's claim.
            let p = PendingConsume {
                queue: qid,
                queue_name: qname,
                owner,
                tag,
                no_ack: m.no_ack,
                exclusive: m.exclusive,
                priority,
                prefetch,
                no_wait: m.no_wait,
                stream: stream_start.map(|(start, filter, track)| {
                    Box::new(crate::core::model::cross::StreamConsume { start, filter, track })
                }),
            };
            self.consume_remote(conn, channel, &vname, p);
            return Ok(());
        }
        if q.has_exclusive_consumer() || (m.exclusive && q.consumer_count() > 0) {
            return Err(channel_error(
                ReplyCode::AccessRefused,
                format!("queue '{qname}' in vhost '{vname}' in exclusive use"),
            ));
        }
        q.add_consumer(ConsumerRef {
            conn: conn_id,
            channel,
            tag: tag.clone(),
            no_ack: m.no_ack,
            exclusive: m.exclusive,
            priority,
            permits: 0,
        });
        if let Some((start, filter, track)) = stream_start {
            q.stream_attach(conn_id, channel, tag.clone(), start, filter, track);
        }
        chan(conn, channel).consumers.insert(
            tag.clone(),
            ChannelConsumer {
                queue: qid,
                queue_name: qname,
                no_ack: m.no_ack,
                prefetch,
                unacked: 0,
                remote: None,
                permits_out: 0,
            },
        );
        if !m.no_wait {
            encode_method(
                &mut conn.out,
                channel,
                &Method::BasicConsumeOk(BasicConsumeOk {
                    consumer_tag: tag.as_short(),
                }),
            );
        }
        let vhost_name = conn.vhost.clone().expect("open");
        self.model.touch_queue(&vhost_name, qid);
        self.model.deliver_pending.push((vhost_name, qid));
        Ok(())
    }

    pub(crate) fn basic_cancel(&mut self, conn: &mut Connection, channel: u16, m: BasicCancel<'_>) -> MethodResult {
        let ch = chan(conn, channel);
        if ch.reply_consumer.as_ref().is_some_and(|rc| *rc.tag == m.consumer_tag) {
            ch.reply_consumer = None;
        }
        let removed = ch.consumers.remove(m.consumer_tag.as_str());
        if let Some(c) = removed {
            self.detach_consumer(conn, channel, &m.consumer_tag, c.queue);
        }
        // Cancelling an unknown tag is not an error (the spec: "no effect").
        if !m.no_wait {
            let ok = BasicCancelOk {
                consumer_tag: m.consumer_tag,
            };
            encode_method(&mut conn.out, channel, &Method::BasicCancelOk(ok));
        }
        Ok(())
    }

    /// Removes a consumer from its queue; an auto-delete queue that had consumers
    /// and now has none is deleted.
    pub(crate) fn detach_consumer(&mut self, conn: &Connection, channel: u16, tag: &str, queue: QueueId) {
        let vhost_name = conn.vhost.clone().expect("open");
        let Some(vhost) = self.model.vhosts.get_mut(&vhost_name) else {
            return;
        };
        let Some(q) = vhost.queues.get_mut(&queue) else { return };
        let owner = q.owner();
        if owner != self.model.shards.me {
            // The owner's list has it, and decides an auto-delete queue's end.
            let tag = ShortString::from(ringmq_codec::ShortStr::truncate(tag));
            self.cancel_remote(&vhost_name, queue, owner, conn.id, channel, tag);
            return;
        }
        self.leave_queue(&vhost_name, queue, conn.id, channel, tag);
    }

    /// On the queue's owner: the consumer leaves the queue's list; an
    /// auto-delete queue that had consumers and now has none is deleted,
    /// another starts its x-expires lease from here. (Its own shard's
    /// consumer, or one of another shard's, `remote_consume`.)
    pub(crate) fn leave_queue(
        &mut self,
        vhost_name: &crate::core::model::ids::VhostName,
        queue: QueueId,
        conn: crate::core::model::ids::ConnId,
        channel: u16,
        tag: &str,
    ) {
        let Some(q) = self
            .model
            .vhosts
            .get_mut(vhost_name)
            .and_then(|v| v.queues.get_mut(&queue))
        else {
            return;
        };
        q.remove_consumer(conn, channel, tag);
        if q.is_unused_auto_delete() {
            self.delete_queue(vhost_name, queue);
        } else {
            // The queue was in use until now: x-expires counts from here.
            self.model.touch_queue(vhost_name, queue);
        }
    }
}
