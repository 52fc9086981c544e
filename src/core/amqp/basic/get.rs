//! basic.get: one message taken as a consumer's delivery takes it
//! (`Queue::take_next`).

use ringmq_codec::ShortStr;

use ringmq_codec::{encode_content, encode_method, BasicGet, BasicGetEmpty, BasicGetOk, Method};

use crate::core::access::permissions::Access;
use crate::core::amqp::broker::Broker;
use crate::core::amqp::channel::Unacked;
use crate::core::amqp::connection::Connection;
use crate::core::amqp::delivery::delivery_properties;
use crate::core::amqp::dispatch::check_access;
use crate::core::amqp::error::MethodResult;
use crate::core::amqp::remote::Pending;
use crate::core::model::cross::AskWhat;
use crate::core::model::queue::take::TakenAt;

impl Broker {
    pub(crate) fn basic_get(&mut self, conn: &mut Connection, channel: u16, m: BasicGet<'_>) -> MethodResult {
        let (qid, qname) = self.resolve_queue(conn, channel, m.queue)?;
        check_access(conn, Access::Read, "queue", &qname)?;
        let vhost_name = conn.vhost.clone().expect("open");
        let q = &self.model.vhosts[&vhost_name].queues[&qid];
        if q.is_stream() {
            return Err(crate::core::amqp::stream::not_for_streams(
                "basic.get",
                &qname,
                &vhost_name,
            ));
        }
        let owner = q.owner();
        if owner != self.model.shards.me {
            // The message is the owner's to take (`amqp::remote`).
            let what = AskWhat::Get { no_ack: m.no_ack };
            let reply = Pending::Get {
                queue: qid,
                no_ack: m.no_ack,
            };
            self.ask_owner(conn, channel, &vhost_name, qid, owner, what, reply, false);
            return Ok(());
        }
        self.model.touch_queue(&vhost_name, qid);
        self.model.expire_head(&vhost_name, qid);
        let vhost = self.model.vhosts.get_mut(&vhost_name).expect("vhost");
        let q = vhost.queues.get_mut(&qid).expect("resolved queue");
        let ch = conn.channels.get_mut(&channel).expect("open channel");
        let (out, frame_max) = (&mut conn.out, conn.tuning.frame_max);
        let got = q.take_next(None, |m| {
            let tag = ch.take_delivery_tag();
            let properties = delivery_properties(m.view.properties, m.delivery_count);
            let ok = BasicGetOk {
                delivery_tag: tag,
                redelivered: m.redelivered,
                exchange: m.exchange,
                routing_key: m.routing_key,
                message_count: m.remaining,
            };
            encode_method(out, channel, &Method::BasicGetOk(ok));
            encode_content(out, channel, 60, &properties, m.view.body, frame_max);
            tag
        });
        let Some((TakenAt { pos, redelivered }, tag)) = got else {
            q.count_get_empty();
            encode_method(
                out,
                channel,
                &Method::BasicGetEmpty(BasicGetEmpty {
                    cluster_id: ShortStr::EMPTY,
                }),
            );
            return Ok(());
        };
        let timeout = q
            .settings()
            .consumer_timeout_ms
            .or(self.config.consumer_timeout_ms)
            .map(|t| (self.model.now_ms.saturating_add(t), t));
        q.count_get(m.no_ack, redelivered);
        crate::core::model::stats::count_get(&mut ch.stats.c, m.no_ack, redelivered);
        if m.no_ack {
            q.ack_position(pos);
        } else {
            ch.unacked.push(
                tag,
                Unacked {
                    queue: qid,
                    position: pos,
                    consumer: None,
                    timeout,
                },
            );
        }
        self.model.ack_flush.note(&vhost_name, q, self.model.now_ms);
        Ok(())
    }
}
