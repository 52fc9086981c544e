//! Methods on another shard's queue whose reply needs the queue's own state
//! (`model::cross::ask`): a declare's counts, a purge, a delete with its
//! conditions. The asking connection is parked: its next frames wait, not
//! read by the core, until the owner answers; then the reply goes out and
//! its input is taken up again (`Broker::take_resumed`). A client waits for
//! these replies anyway, and its later methods are handled after them, in
//! order, as on one shard.
//!
//! The checks that need only the routing data (404 on the copy, 403, 405 for
//! another connection's exclusive queue, 406 for inequivalent arguments) stay
//! on the asker; the owner checks what its state decides (in use, not empty).

use ringmq_codec::{
    encode_content, encode_method, BasicGetEmpty, BasicGetOk, Method, ProtocolError, QueueDeclare, QueueDeclareOk,
    QueueDeleteOk, QueuePurgeOk, ReplyCode, ShortStr, ShortString, Table,
};

use crate::core::amqp::broker::Broker;
use crate::core::amqp::channel::{ChannelState, Unacked};
use crate::core::amqp::connection::Connection;
use crate::core::amqp::dispatch::chan;
use crate::core::amqp::error::{attribute, Exception};
use crate::core::amqp::remote_consume::take_to_cross;
use crate::core::model::cross::settle::ReaderKey;
use crate::core::model::cross::{Answer, Ask, AskRef, AskWhat, CrossMsg, Got, Reply, SettleHow, Settlement};
use crate::core::model::ids::{ConnId, QueueId, VhostName};
use crate::core::model::meta::ShardId;

/// A connection waiting for another shard's answer.
#[derive(Debug)]
pub(crate) struct Parked {
    pub(crate) ask: AskRef,
    /// The reply to make of the answer.
    pub(crate) reply: Pending,
}

/// A non-passive queue.declare's flags and arguments, kept to declare the
/// queue anew if the owner deleted it before it answered.
#[derive(Debug)]
pub(crate) struct Redeclare {
    pub(crate) durable: bool,
    pub(crate) exclusive: bool,
    pub(crate) auto_delete: bool,
    /// The arguments' table, encoded.
    pub(crate) arguments: Vec<u8>,
}

/// The method waiting for its reply.
#[derive(Debug)]
pub(crate) enum Pending {
    /// queue.declare-ok of the queue of this name; `again`: a non-passive
    /// declare, made again if the queue went meanwhile.
    Declare {
        queue: ShortString,
        again: Option<Box<Redeclare>>,
    },
    Purge,
    Delete,
    /// basic.get-ok or get-empty, for a message of this queue.
    Get {
        queue: QueueId,
        no_ack: bool,
    },
    /// basic.consume-ok, and the consumer on its channel.
    Consume(Box<crate::core::amqp::remote_consume::PendingConsume>),
}

impl Broker {
    /// Asks the owner of `queue` (another shard) `what`; unless `no_wait`,
    /// `conn` is parked until the answer, which makes the reply `reply`.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn ask_owner(
        &mut self,
        conn: &mut Connection,
        channel: u16,
        vhost: &VhostName,
        queue: QueueId,
        owner: ShardId,
        what: AskWhat,
        reply: Pending,
        no_wait: bool,
    ) {
        debug_assert_ne!(owner, self.model.shards.me, "asks go to other shards");
        let from = (!no_wait).then(|| AskRef {
            conn: conn.id,
            channel,
            serial: chan(conn, channel).serial,
        });
        if let Some(ask) = from {
            debug_assert!(conn.parked.is_none(), "a parked connection handles no method");
            conn.parked = Some(Parked { ask, reply });
        }
        self.model.cross.send(
            owner,
            CrossMsg::Ask(Box::new(Ask {
                vhost: vhost.clone(),
                queue,
                what,
                from,
            })),
        );
    }

    /// The owner's side: answers `ask` from shard `from` on its own state.
    pub(crate) fn handle_ask(&mut self, from: ShardId, ask: &Ask) {
        let durable = self
            .model
            .vhosts
            .get(&ask.vhost)
            .and_then(|v| v.queues.get(&ask.queue))
            .is_some_and(|q| q.is_durable());
        let answer = self.answer_ask(ask);
        let Some(to) = ask.from else { return };
        // A durable queue's delete-ok waits for its record's sync, as a
        // delete on the asker's own shard does.
        let after_sync = durable && matches!(answer, Answer::Deleted { .. }) && self.model.commit.enabled();
        let msg = CrossMsg::Reply(Box::new(Reply { to, answer }));
        if after_sync {
            let epoch = self.model.commit.next_epoch();
            self.model.cross.reply_after_sync(epoch, from, msg);
        } else {
            self.model.cross.send(from, msg);
        }
    }

    fn answer_ask(&mut self, ask: &Ask) -> Answer {
        match &ask.what {
            AskWhat::Get { no_ack } => return self.answer_get(&ask.vhost, ask.queue, *no_ack),
            AskWhat::Consume(c) => {
                let Some(from) = ask.from else {
                    return Answer::NotFound; // a consume always waits
                };
                return self.answer_consume(&ask.vhost, ask.queue, from, c);
            }
            _ => {}
        }
        let vhost = &ask.vhost;
        let Some(q) = self
            .model
            .vhosts
            .get_mut(vhost)
            .and_then(|v| v.queues.get_mut(&ask.queue))
        else {
            return Answer::NotFound;
        };
        debug_assert_eq!(q.owner(), self.model.shards.me, "asked the owner");
        match &ask.what {
            AskWhat::Counts => {
                // As the owner answers its own connections (it answered a
                // stream's ready count, 0: through another shard a passive
                // declare found every stream empty).
                let (messages, consumers) = (q.declare_ok_count(), q.consumer_count());
                self.model.touch_queue(vhost, ask.queue);
                Answer::Counts { messages, consumers }
            }
            AskWhat::Purge => match q.purge() {
                Ok(n) => {
                    self.model.note_acks(vhost, ask.queue);
                    Answer::Purged {
                        messages: u32::try_from(n).unwrap_or(u32::MAX),
                    }
                }
                Err(e) => Answer::Refused {
                    code: ReplyCode::InternalError,
                    text: format!("purge failed: {e}"),
                },
            },
            AskWhat::Get { .. } | AskWhat::Consume(_) => unreachable!("answered above"),
            &AskWhat::Delete { if_unused, if_empty } => {
                let name = q.name().clone();
                if if_unused && q.consumer_count() > 0 {
                    return Answer::Refused {
                        code: ReplyCode::PreconditionFailed,
                        text: format!("queue '{name}' in vhost '{vhost}' in use"),
                    };
                }
                if if_empty && q.message_count() > 0 {
                    return Answer::Refused {
                        code: ReplyCode::PreconditionFailed,
                        text: format!("queue '{name}' in vhost '{vhost}' not empty"),
                    };
                }
                let messages = q.message_count();
                self.delete_queue(vhost, ask.queue);
                Answer::Deleted { messages }
            }
        }
    }

    /// basic.get on the owner: the message goes to the asker, counted and
    /// (with `no_ack`) acked here as a local get would be.
    fn answer_get(&mut self, vhost: &VhostName, id: QueueId, no_ack: bool) -> Answer {
        self.model.touch_queue(vhost, id);
        self.model.expire_head(vhost, id);
        let now_ms = self.model.now_ms;
        let Some(q) = self.model.vhosts.get_mut(vhost).and_then(|v| v.queues.get_mut(&id)) else {
            return Answer::NotFound;
        };
        let Some(msg) = take_to_cross(q) else {
            q.count_get_empty();
            return Answer::Empty;
        };
        q.count_get(no_ack, msg.redelivered);
        if no_ack {
            q.ack_position(msg.position);
        }
        let got = Got {
            vhost: vhost.clone(),
            queue: id,
            acked: no_ack,
            msg,
        };
        self.model.ack_flush.note(vhost, q, now_ms);
        Answer::Got(Box::new(got))
    }

    /// The asker's side: the answer for a parked connection; its reply goes
    /// out and its input is taken up again. A message got for a connection
    /// or channel that went meanwhile goes back to its queue.
    pub(crate) fn handle_reply(&mut self, from: ShardId, reply: &Reply) {
        let to = reply.to;
        let Some(mut conn) = self.conns.remove(&to.conn) else {
            self.return_got(from, &reply.answer);
            return;
        };
        match conn.parked.take() {
            Some(p) if p.ask == to => {
                if !self.reply_parked(&mut conn, to.channel, p.reply, &reply.answer) {
                    self.return_got(from, &reply.answer);
                }
                self.resumed.push(to.conn);
            }
            other => {
                conn.parked = other;
                self.return_got(from, &reply.answer);
            }
        }
        if conn.has_output() {
            self.mark_dirty(&mut conn);
        }
        self.conns.insert(to.conn, conn);
    }

    /// A message got for a receiver that is gone: back to its queue (a
    /// `no_ack` get's was acked already: RabbitMQ loses it too).
    fn return_got(&mut self, owner: ShardId, answer: &Answer) {
        let Answer::Got(got) = answer else { return };
        if got.acked {
            return;
        }
        let s = Settlement {
            vhost: got.vhost.clone(),
            queue: got.queue,
            how: SettleHow::Requeue,
            positions: vec![got.msg.position],
            reader: None,
        };
        self.model.cross.send(owner, CrossMsg::Settle(Box::new(s)));
    }

    /// Sends the settlements of other shards' queues among `taken` to their
    /// owners, one per run of a queue's deliveries, and removes them: what
    /// is left is this shard's. Nothing to do with one shard.
    pub(crate) fn settle_remote(
        &mut self,
        vhost: &VhostName,
        (conn, channel): (ConnId, u16),
        taken: &mut Vec<(u64, Unacked)>,
        how: SettleHow,
    ) {
        if self.model.shards.count == 1 {
            return;
        }
        let me = self.model.shards.me;
        let Some(v) = self.model.vhosts.get(vhost) else { return };
        let mut sent: Vec<(ShardId, Settlement)> = Vec::new();
        taken.retain(|(_, u)| {
            // A queue deleted meanwhile is nobody's: its messages went with it.
            let Some(q) = v.queues.get(&u.queue).filter(|q| q.owner() != me) else {
                return true;
            };
            let owner = q.owner();
            // A stream's reader is on its owner: the ack moves its tracked
            // offset there.
            let reader = (q.is_stream().then_some(u.consumer.as_ref()).flatten()).map(|tag| ReaderKey {
                conn,
                channel,
                tag: tag.clone(),
            });
            match sent.last_mut() {
                Some((_, s)) if s.queue == u.queue && s.reader.as_deref() == reader.as_ref() => {
                    s.positions.push(u.position)
                }
                _ => sent.push((
                    owner,
                    Settlement {
                        vhost: vhost.clone(),
                        queue: u.queue,
                        how,
                        positions: vec![u.position],
                        reader: reader.map(Box::new),
                    },
                )),
            }
            false
        });
        for (owner, s) in sent {
            self.model.cross.send(owner, CrossMsg::Settle(Box::new(s)));
        }
    }

    /// Makes the reply; false when a message got cannot be taken (its
    /// channel went meanwhile).
    fn reply_parked(&mut self, conn: &mut Connection, channel: u16, pending: Pending, answer: &Answer) -> bool {
        let cause = match &pending {
            Pending::Declare { .. } => (50, 10),
            Pending::Purge => (50, 30),
            Pending::Delete => (50, 40),
            Pending::Get { .. } => (60, 70),
            Pending::Consume(_) => (60, 20),
        };
        let pending = match (pending, answer) {
            (Pending::Consume(p), Answer::Consumed) => return self.reply_consume(conn, channel, *p),
            (pending, _) => pending,
        };
        if let Pending::Get { queue, no_ack } = pending {
            match answer {
                Answer::Got(got) => return self.reply_got(conn, channel, queue, no_ack, got),
                Answer::Empty => {
                    let empty = BasicGetEmpty {
                        cluster_id: ShortStr::EMPTY,
                    };
                    encode_method(&mut conn.out, channel, &Method::BasicGetEmpty(empty));
                    return true;
                }
                _ => {}
            }
        }
        if let (Pending::Declare { queue, again: Some(r) }, Answer::NotFound) = (&pending, answer) {
            // Deleted between this shard's look and the owner's: declared
            // anew, as a declare after the delete would be.
            let open = conn
                .channels
                .get(&channel)
                .is_some_and(|c| c.state == ChannelState::Open);
            let Ok(arguments) = Table::parse(&r.arguments) else {
                return true; // our own encoding
            };
            let m = QueueDeclare {
                ticket: 0,
                queue: queue.as_short(),
                passive: false,
                durable: r.durable,
                exclusive: r.exclusive,
                auto_delete: r.auto_delete,
                no_wait: false,
                arguments,
            };
            if open {
                if let Err(e) = self.in_meta_section(|b| b.queue_declare(conn, channel, m)) {
                    let e = match e {
                        Exception::Channel(e) | Exception::Connection(e) => e,
                    };
                    self.close_channel(conn, channel, attribute(e, cause));
                }
            }
            return true;
        }
        let method = match (&pending, answer) {
            (Pending::Declare { queue, .. }, Answer::Counts { messages, consumers }) => {
                Method::QueueDeclareOk(QueueDeclareOk {
                    queue: queue.as_short(),
                    message_count: *messages,
                    consumer_count: *consumers,
                })
            }
            (Pending::Purge, Answer::Purged { messages }) => Method::QueuePurgeOk(QueuePurgeOk {
                message_count: *messages,
            }),
            (Pending::Delete, Answer::Deleted { messages }) => Method::QueueDeleteOk(QueueDeleteOk {
                message_count: *messages,
            }),
            // Deleting a queue that went meanwhile succeeds with a zero
            // count, as deleting a missing queue does.
            (Pending::Delete, Answer::NotFound) => Method::QueueDeleteOk(QueueDeleteOk { message_count: 0 }),
            (_, Answer::Refused { code, text }) => {
                let e = ProtocolError::new(*code, text.clone());
                self.close_channel(conn, channel, attribute(e, cause));
                return true;
            }
            (pending, _) => {
                // The queue went between the asker's look and the owner's: as
                // a 404 from the asker's own copy would have said.
                let vhost = conn.vhost.as_deref().unwrap_or_default();
                let text = match pending {
                    Pending::Declare { queue, .. } => format!("no queue '{queue}' in vhost '{vhost}'"),
                    _ => format!("the queue in vhost '{vhost}' was deleted"),
                };
                let e = ProtocolError::new(ReplyCode::NotFound, text);
                self.close_channel(conn, channel, attribute(e, cause));
                return true;
            }
        };
        encode_method(&mut conn.out, channel, &method);
        true
    }

    /// basic.get-ok of a message another shard took: this channel's tag,
    /// its unacked entry (settled with the owner, `settle`), its counts.
    fn reply_got(&mut self, conn: &mut Connection, channel: u16, queue: QueueId, no_ack: bool, got: &Got) -> bool {
        let frame_max = conn.tuning.frame_max;
        let Some(ch) = conn
            .channels
            .get_mut(&channel)
            .filter(|c| c.state == ChannelState::Open)
        else {
            return false;
        };
        let tag = ch.take_delivery_tag();
        let ok = BasicGetOk {
            delivery_tag: tag,
            redelivered: got.msg.redelivered,
            exchange: got.msg.exchange.as_short(),
            routing_key: got.msg.routing_key.as_short(),
            message_count: got.msg.remaining,
        };
        encode_method(&mut conn.out, channel, &Method::BasicGetOk(ok));
        encode_content(
            &mut conn.out,
            channel,
            60,
            &got.msg.properties,
            &got.msg.body,
            frame_max,
        );
        crate::core::model::stats::count_get(&mut ch.stats.c, no_ack, got.msg.redelivered);
        if !no_ack {
            let vhost = conn.vhost.as_ref().expect("open");
            let timeout = self
                .model
                .vhosts
                .get(vhost)
                .and_then(|v| v.queues.get(&queue))
                .and_then(|q| q.settings().consumer_timeout_ms)
                .or(self.config.consumer_timeout_ms)
                .map(|t| (self.model.now_ms.saturating_add(t), t));
            ch.unacked.push(
                tag,
                Unacked {
                    queue,
                    position: got.msg.position,
                    consumer: None,
                    timeout,
                },
            );
        }
        true
    }
}
