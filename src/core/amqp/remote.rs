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
    encode_method, Method, ProtocolError, QueueDeclareOk, QueueDeleteOk, QueuePurgeOk, ReplyCode, ShortString,
};

use crate::core::amqp::broker::Broker;
use crate::core::amqp::connection::Connection;
use crate::core::amqp::dispatch::chan;
use crate::core::amqp::error::attribute;
use crate::core::model::cross::{Answer, Ask, AskRef, AskWhat, CrossMsg, Reply};
use crate::core::model::ids::{QueueId, VhostName};
use crate::core::model::meta::ShardId;

/// A connection waiting for another shard's answer.
#[derive(Debug)]
pub(crate) struct Parked {
    pub(crate) ask: AskRef,
    /// The reply to make of the answer.
    pub(crate) reply: Pending,
}

/// The method waiting for its reply.
#[derive(Debug)]
pub(crate) enum Pending {
    /// queue.declare-ok of the queue of this name.
    Declare {
        queue: ShortString,
    },
    Purge,
    Delete,
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
        match ask.what {
            AskWhat::Counts => {
                let (messages, consumers) = (q.message_count(), q.consumer_count());
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
            AskWhat::Delete { if_unused, if_empty } => {
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

    /// The asker's side: the answer for a parked connection; its reply goes
    /// out and its input is taken up again.
    pub(crate) fn handle_reply(&mut self, reply: &Reply) {
        let to = reply.to;
        let Some(mut conn) = self.conns.remove(&to.conn) else {
            return; // the connection is gone
        };
        match conn.parked.take() {
            Some(p) if p.ask == to => {
                self.reply_parked(&mut conn, to.channel, p.reply, &reply.answer);
                self.resumed.push(to.conn);
            }
            other => conn.parked = other,
        }
        if conn.has_output() {
            self.mark_dirty(&mut conn);
        }
        self.conns.insert(to.conn, conn);
    }

    fn reply_parked(&mut self, conn: &mut Connection, channel: u16, pending: Pending, answer: &Answer) {
        let cause = match &pending {
            Pending::Declare { .. } => (50, 10),
            Pending::Purge => (50, 30),
            Pending::Delete => (50, 40),
        };
        let method = match (&pending, answer) {
            (Pending::Declare { queue }, Answer::Counts { messages, consumers }) => {
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
                return;
            }
            (pending, _) => {
                // The queue went between the asker's look and the owner's: as
                // a 404 from the asker's own copy would have said.
                let vhost = conn.vhost.as_deref().unwrap_or_default();
                let text = match pending {
                    Pending::Declare { queue } => format!("no queue '{queue}' in vhost '{vhost}'"),
                    Pending::Purge | Pending::Delete => format!("the queue in vhost '{vhost}' was deleted"),
                };
                let e = ProtocolError::new(ReplyCode::NotFound, text);
                self.close_channel(conn, channel, attribute(e, cause));
                return;
            }
        };
        encode_method(&mut conn.out, channel, &method);
    }
}
