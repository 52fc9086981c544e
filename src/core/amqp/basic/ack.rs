//! basic.ack, basic.nack, basic.reject and basic.recover: settling deliveries
//! by tag.

use ringmq_codec::{encode_method, BasicRecoverOk, Method, ReplyCode};

use crate::core::amqp::channel::TxAck;
use crate::core::amqp::connection::Connection;
use crate::core::amqp::dispatch::{chan, precondition};
use crate::core::amqp::error::{connection_error, MethodResult};
use crate::core::broker::Broker;
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
        self.settle(conn, channel, tag, multiple, Settle::Ack)
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
        let how = if requeue { Settle::Requeue } else { Settle::Discard };
        self.settle(conn, channel, tag, multiple, how)
    }

    /// Ack, requeue or discard deliveries by tag.
    pub(crate) fn settle(
        &mut self,
        conn: &mut Connection,
        channel: u16,
        tag: u64,
        multiple: bool,
        how: Settle,
    ) -> MethodResult {
        let ch = chan(conn, channel);
        let Some(taken) = ch.take_unacked(tag, multiple) else {
            return Err(precondition(format!("unknown delivery tag {tag}")));
        };
        for (_, u) in &taken {
            ch.release_credit(u);
        }
        if how == Settle::Ack {
            ch.stats.c.ack += taken.len() as u64;
        }
        let vhost_name = conn.vhost.clone().expect("open");
        for (_, u) in taken {
            match how {
                Settle::Ack => {
                    let Some(q) = self
                        .vhosts
                        .get_mut(&vhost_name)
                        .and_then(|v| v.queues.get_mut(&u.queue))
                    else {
                        continue;
                    };
                    q.ack_position(u.position);
                    q.stats.c.ack += 1;
                    self.ack_flush.note(&vhost_name, q, self.now_ms);
                }
                Settle::Discard => self.discard_delivered(&vhost_name, u.queue, u.position, DeathReason::Rejected),
                Settle::Requeue => self.requeue_or_limit(&vhost_name, u.queue, u.position),
            }
            self.deliver_pending.push((vhost_name.clone(), u.queue));
        }
        Ok(())
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
        self.settle(conn, channel, 0, true, Settle::Requeue)?;
        if reply {
            encode_method(&mut conn.out, channel, &Method::BasicRecoverOk(BasicRecoverOk));
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Settle {
    Ack,
    Requeue,
    Discard,
}
