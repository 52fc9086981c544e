//! basic.ack, basic.nack, basic.reject and basic.recover: settling deliveries
//! by tag.

use crate::core::model::ids::{ConnId, VhostName};
use ringmq_codec::{encode_method, BasicRecoverOk, Method, ReplyCode};

use crate::core::amqp::broker::Broker;
use crate::core::amqp::channel::{TxAck, Unacked};
use crate::core::amqp::connection::Connection;
use crate::core::amqp::dispatch::{chan, precondition};
use crate::core::amqp::error::{connection_error, MethodResult};
use crate::core::model::cross::SettleHow;
use crate::core::model::queue::dead_letter::DeathReason;

impl Broker {
    pub(crate) fn basic_ack(&mut self, conn: &mut Connection, channel: u16, tag: u64, multiple: bool) -> MethodResult {
        let ch = chan(conn, channel);
        if let Some(tx) = ch.tx.as_mut() {
            // Validate now (RabbitMQ fails the ack at once), apply at commit.
            if !multiple && !ch.unacked.contains_key(tag) || multiple && tag != 0 && !ch.unacked.contains_key(tag) {
                return Err(precondition(format!("unknown delivery tag {tag}")));
            }
            tx.acks.push(TxAck::Ack { tag, multiple });
            return Ok(());
        }
        self.settle(conn, channel, tag, multiple, SettleHow::Ack)
    }

    pub(crate) fn basic_nack(
        &mut self,
        conn: &mut Connection,
        channel: u16,
        tag: u64,
        multiple: bool,
        requeue: bool,
    ) -> MethodResult {
        let ch = chan(conn, channel);
        if let Some(tx) = ch.tx.as_mut() {
            if !multiple && !ch.unacked.contains_key(tag) || multiple && tag != 0 && !ch.unacked.contains_key(tag) {
                return Err(precondition(format!("unknown delivery tag {tag}")));
            }
            tx.acks.push(TxAck::Nack { tag, multiple, requeue });
            return Ok(());
        }
        let how = if requeue {
            SettleHow::Requeue
        } else {
            SettleHow::Discard
        };
        self.settle(conn, channel, tag, multiple, how)
    }

    /// Ack, requeue or discard deliveries by tag.
    pub(crate) fn settle(
        &mut self,
        conn: &mut Connection,
        channel: u16,
        tag: u64,
        multiple: bool,
        how: SettleHow,
    ) -> MethodResult {
        let ch = chan(conn, channel);
        let Some(mut taken) = ch.take_unacked(tag, multiple) else {
            return Err(precondition(format!("unknown delivery tag {tag}")));
        };
        ch.release_credit(&taken);
        if how == SettleHow::Ack {
            ch.stats.c.ack += taken.len() as u64;
        }
        let vhost_name = conn.vhost.clone().expect("open");
        if how != SettleHow::Ack {
            if let Some(q) = self.stream_among(&vhost_name, &taken) {
                return Err(crate::core::amqp::stream::not_for_streams(
                    "basic.nack and basic.reject",
                    &q,
                    &vhost_name,
                ));
            }
        }
        self.settle_remote(&vhost_name, (conn.id, channel), &mut taken, how);
        match how {
            SettleHow::Ack | SettleHow::Delivered => self.ack_taken(&vhost_name, (conn.id, channel), &taken),
            SettleHow::Discard => {
                for (_, u) in taken {
                    self.model
                        .discard_delivered(&vhost_name, u.queue, u.position, DeathReason::Rejected);
                    self.model.deliver_pending.push((vhost_name.clone(), u.queue));
                }
            }
            SettleHow::Requeue => {
                for (_, u) in taken {
                    self.model.requeue_or_limit(&vhost_name, u.queue, u.position);
                    self.model.deliver_pending.push((vhost_name.clone(), u.queue));
                }
            }
        }
        // Room for more on the channel's consumers of other shards' queues.
        self.regrant(conn, channel);
        Ok(())
    }

    /// The name of a stream some of the deliveries came from: a stream keeps
    /// every message, so they cannot be requeued or discarded (RabbitMQ 3.10).
    fn stream_among(&self, vhost_name: &VhostName, taken: &[(u64, Unacked)]) -> Option<String> {
        let vhost = self.model.vhosts.get(vhost_name)?;
        taken.iter().find_map(|(_, u)| {
            let q = vhost.queues.get(&u.queue)?;
            q.is_stream().then(|| q.name().to_string())
        })
    }

    /// Acks taken deliveries: a `multiple` ack names many, mostly of one queue,
    /// so each run of one queue's deliveries costs one queue lookup, one ack
    /// flush listing and one delivery wake-up, not one per message.
    /// A stream's acks move its tracking consumers' offsets (`channel`: whose
    /// acks they are).
    fn ack_taken(&mut self, vhost_name: &VhostName, channel: (ConnId, u16), taken: &[(u64, Unacked)]) {
        let now_ms = self.model.now_ms;
        let Some(vhost) = self.model.vhosts.get_mut(vhost_name) else {
            return;
        };
        for run in taken.chunk_by(|a, b| a.1.queue == b.1.queue) {
            let id = run[0].1.queue;
            let Some(q) = vhost.queues.get_mut(&id).map(|q| &mut **q) else {
                continue;
            };
            if q.is_stream() {
                for (_, u) in run.iter().filter(|(_, u)| u.consumer.is_some()) {
                    let tag = u.consumer.as_deref().expect("filtered");
                    q.stream_acked(channel.0, channel.1, tag, u.position);
                }
            }
            for (_, u) in run {
                q.ack_delivered(u.position);
            }
            self.model.ack_flush.note(vhost_name, q, now_ms);
            self.model.deliver_pending.push((vhost_name.clone(), id));
        }
    }

    pub(crate) fn basic_recover(
        &mut self,
        conn: &mut Connection,
        channel: u16,
        requeue: bool,
        reply: bool,
    ) -> MethodResult {
        if !requeue {
            return Err(connection_error(ReplyCode::NotImplemented, "requeue=false"));
        }
        self.settle(conn, channel, 0, true, SettleHow::Requeue)?;
        if reply {
            encode_method(&mut conn.out, channel, &Method::BasicRecoverOk(BasicRecoverOk));
        }
        Ok(())
    }
}
