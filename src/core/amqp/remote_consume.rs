//! Consumers on another shard's queue (`model::cross::consume`).
//!
//! On the consumer's shard: basic.consume parks the connection and asks the
//! owner; once added, the consumer is on its channel as any other, with an
//! entry in this shard's copy of the queue (so the queue's delete, applied
//! from the metadata log, cancels it here as it would a local one). A
//! delivery that comes gets the channel's tag; the consumer's shard grants
//! it permits for what it has room for (`remote_permits`: its prefetch, its
//! channel's, [`REMOTE_WINDOW`], its connection's output).
//!
//! On the owner: the consumer is an entry in the queue's consumer list with a
//! connection id of another shard; the delivery loop sends it a message per
//! permit (`Broker::deliver_remote`).

use ringmq_codec::{encode_deliver_head, encode_method, BasicConsumeOk, Method, ReplyCode, ShortString};

use crate::core::amqp::broker::Broker;
use crate::core::amqp::channel::{ChannelConsumer, ChannelState, Unacked};
use crate::core::amqp::connection::Connection;
use crate::core::amqp::remote::Pending;
use crate::core::model::cross::delivers::{ConsumerAt, DeliverRef};
use crate::core::model::cross::packed::MsgParts;
use crate::core::model::cross::Delivers;
use crate::core::model::cross::{
    Answer, AskRef, AskWhat, ConsumeAsk, ConsumerKey, CrossMsg, SettleHow, Settlement, StreamConsume, Taken,
};
use crate::core::model::ids::{QueueId, VhostName};
use crate::core::model::meta::ShardId;
use crate::core::model::queue::ConsumerRef;

/// A basic.consume waiting for the owner's word.
#[derive(Debug)]
pub(crate) struct PendingConsume {
    pub queue: QueueId,
    pub queue_name: ShortString,
    pub owner: ShardId,
    pub tag: ShortString,
    pub no_ack: bool,
    pub exclusive: bool,
    pub priority: i32,
    pub prefetch: u16,
    pub no_wait: bool,
    /// On a stream: its reader, made on the owner.
    pub stream: Option<Box<StreamConsume>>,
}

impl Broker {
    /// basic.consume of another shard's queue: asked of its owner.
    pub(crate) fn consume_remote(&mut self, conn: &mut Connection, channel: u16, vhost: &VhostName, p: PendingConsume) {
        let what = AskWhat::Consume(Box::new(ConsumeAsk {
            tag: p.tag.clone(),
            no_ack: p.no_ack,
            exclusive: p.exclusive,
            priority: p.priority,
            // Granted once it is on its channel (`remote_permits`).
            permits: 0,
            stream: p.stream.clone(),
        }));
        let (queue, owner) = (p.queue, p.owner);
        // Parked even with no_wait: a refusal closes the channel, and what
        // the client sends next must not pass it.
        self.ask_owner(
            conn,
            channel,
            vhost,
            queue,
            owner,
            what,
            Pending::Consume(Box::new(p)),
            false,
        );
    }

    /// The owner's side of basic.consume.
    pub(crate) fn answer_consume(&mut self, vhost: &VhostName, id: QueueId, from: AskRef, c: &ConsumeAsk) -> Answer {
        let Some(q) = self.model.vhosts.get_mut(vhost).and_then(|v| v.queues.get_mut(&id)) else {
            return Answer::NotFound;
        };
        if q.has_exclusive_consumer() || (c.exclusive && q.consumer_count() > 0) {
            return Answer::Refused {
                code: ReplyCode::AccessRefused,
                text: format!("queue '{}' in vhost '{vhost}' in exclusive use", q.name()),
            };
        }
        q.add_consumer(ConsumerRef {
            conn: from.conn,
            channel: from.channel,
            tag: c.tag.clone(),
            no_ack: c.no_ack,
            exclusive: c.exclusive,
            priority: c.priority,
            permits: c.permits,
        });
        if let Some(s) = &c.stream {
            q.stream_attach(
                from.conn,
                from.channel,
                c.tag.clone(),
                s.start,
                s.filter.clone(),
                s.track,
            );
        }
        self.model.touch_queue(vhost, id);
        self.model.deliver_pending.push((vhost.clone(), id));
        Answer::Consumed
    }

    /// The asker's side: the consumer is added (or refused).
    pub(crate) fn reply_consume(&mut self, conn: &mut Connection, channel: u16, p: PendingConsume) -> bool {
        let vhost = conn.vhost.clone().expect("open");
        let open = conn
            .channels
            .get(&channel)
            .is_some_and(|c| c.state == ChannelState::Open);
        if !open {
            // The channel went while the owner added it: take it back.
            self.cancel_remote(&vhost, p.queue, p.owner, conn.id, channel, p.tag);
            return true;
        }
        if let Some(q) = self
            .model
            .vhosts
            .get_mut(&vhost)
            .and_then(|v| v.queues.get_mut(&p.queue))
        {
            // In this shard's copy too: the queue's delete cancels it here.
            q.add_consumer(ConsumerRef {
                conn: conn.id,
                channel,
                tag: p.tag.clone(),
                no_ack: p.no_ack,
                exclusive: p.exclusive,
                priority: p.priority,
                permits: 0,
            });
        }
        let ch = conn.channels.get_mut(&channel).expect("open");
        ch.consumers.insert(
            p.tag.clone(),
            ChannelConsumer {
                queue: p.queue,
                queue_name: p.queue_name,
                no_ack: p.no_ack,
                prefetch: p.prefetch,
                unacked: 0,
                remote: Some(p.owner),
                permits_out: 0,
            },
        );
        if !p.no_wait {
            let ok = BasicConsumeOk {
                consumer_tag: p.tag.as_short(),
            };
            encode_method(&mut conn.out, channel, &Method::BasicConsumeOk(ok));
        }
        self.regrant(conn, channel);
        true
    }

    /// A consumer of another shard's queue leaves: its copy entry here, its
    /// entry on the owner (which decides an auto-delete queue's end).
    pub(crate) fn cancel_remote(
        &mut self,
        vhost: &VhostName,
        queue: QueueId,
        owner: ShardId,
        conn: crate::core::model::ids::ConnId,
        channel: u16,
        tag: ShortString,
    ) {
        if let Some(q) = self.model.vhosts.get_mut(vhost).and_then(|v| v.queues.get_mut(&queue)) {
            q.remove_consumer(conn, channel, &tag);
        }
        let key = ConsumerKey {
            vhost: vhost.clone(),
            queue,
            conn,
            channel,
            tag,
        };
        self.model.cross.send(owner, CrossMsg::Cancel(Box::new(key)));
    }

    /// The owner's side of a cancel.
    pub(crate) fn handle_cancel(&mut self, k: &ConsumerKey) {
        self.leave_queue(&k.vhost, k.queue, k.conn, k.channel, &k.tag);
    }

    /// The owner's side of a grant.
    pub(crate) fn handle_grant(&mut self, k: &ConsumerKey, permits: u32) {
        let Some(q) = self
            .model
            .vhosts
            .get_mut(&k.vhost)
            .and_then(|v| v.queues.get_mut(&k.queue))
        else {
            return;
        };
        if q.grant(k.conn, k.channel, &k.tag, permits) {
            self.model.deliver_pending.push((k.vhost.clone(), k.queue));
        }
    }

    /// Deliveries from the owner of a queue: each to its consumer on this
    /// shard, or back when the consumer is gone.
    pub(crate) fn handle_delivers(&mut self, from: ShardId, delivers: &Delivers) {
        // Consecutive deliveries nearly always go to one connection: it is
        // taken out of the map once for them.
        let mut held: Option<Box<Connection>> = None;
        for d in delivers.iter() {
            if held.as_ref().is_some_and(|c| c.id != d.to.conn) {
                self.put_back(held.take());
            }
            if held.is_none() {
                held = self.conns.remove(&d.to.conn);
            }
            let delivered = match held.as_mut() {
                Some(conn) => self.deliver_here(conn, &d),
                None => false,
            };
            if !delivered {
                self.return_delivery(from, &d);
            }
        }
        self.put_back(held);
    }

    /// A connection taken out for deliveries goes back, marked for output.
    fn put_back(&mut self, conn: Option<Box<Connection>>) {
        let Some(mut conn) = conn else { return };
        if conn.has_output() {
            self.mark_dirty(&mut conn);
        }
        self.conns.insert(conn.id, conn);
    }

    fn deliver_here(&mut self, conn: &mut Connection, d: &DeliverRef<'_>) -> bool {
        let k = &d.to;
        let frame_max = conn.tuning.frame_max;
        let Some(ch) = conn
            .channels
            .get_mut(&k.channel)
            .filter(|c| c.state == ChannelState::Open)
        else {
            return false;
        };
        let Some((tag_key, c)) = ch
            .consumers
            .get_key_value_mut(&crate::core::model::ids::Name(k.tag.as_str()))
        else {
            return false;
        };
        let tag_key = tag_key.clone();
        let no_ack = c.no_ack;
        // The permit is used: the delivery counts against the prefetch now.
        c.permits_out = c.permits_out.saturating_sub(1);
        if !no_ack {
            c.unacked += 1;
        }
        let tag = ch.take_delivery_tag();
        let out = &mut conn.out;
        encode_deliver_head(
            out,
            k.channel,
            k.tag,
            tag,
            d.redelivered,
            d.msg.exchange,
            d.msg.routing_key,
            d.msg.properties,
            d.msg.body.len() as u64,
        );
        ringmq_codec::frame::encode_body(out, k.channel, d.msg.body, frame_max);
        crate::core::model::stats::count_delivery(&mut ch.stats.c, no_ack, d.redelivered);
        if !no_ack {
            let timeout = self
                .model
                .vhosts
                .get(k.vhost)
                .and_then(|v| v.queues.get(&k.queue))
                .and_then(|q| q.settings().consumer_timeout_ms)
                .or(self.config.consumer_timeout_ms)
                .map(|t| (self.model.now_ms.saturating_add(t), t));
            ch.unacked.push(
                tag,
                Unacked {
                    queue: k.queue,
                    position: d.position,
                    consumer: Some(tag_key),
                    timeout,
                },
            );
        }
        if no_ack {
            let s = Settlement {
                vhost: k.vhost.clone(),
                queue: k.queue,
                how: SettleHow::Delivered,
                positions: vec![d.position],
                reader: None,
            };
            self.send_to_owner(k.vhost, k.queue, CrossMsg::Settle(Box::new(s)));
        }
        self.regrant(conn, k.channel);
        true
    }

    /// A grant or a `Delivered` settlement to the queue's owner, merged with
    /// one like it on its way (`Cross::send_merged`).
    fn send_to_owner(&mut self, vhost: &VhostName, queue: QueueId, msg: CrossMsg) {
        let owner = self
            .model
            .vhosts
            .get(vhost)
            .and_then(|v| v.queues.get(&queue))
            .map(|q| q.owner());
        if let Some(owner) = owner {
            self.model.cross.send_merged(owner, msg);
        }
    }

    pub(crate) fn send_grant(&mut self, k: &ConsumerKey, permits: u32) {
        let msg = CrossMsg::Grant {
            consumer: Box::new(k.clone()),
            permits,
        };
        self.send_to_owner(&k.vhost, k.queue, msg);
    }

    /// A delivery nobody here takes goes back to its queue (unless the owner
    /// acked it as it took it, for a no-ack consumer).
    fn return_delivery(&mut self, owner: ShardId, d: &DeliverRef<'_>) {
        let s = Settlement {
            vhost: d.to.vhost.clone(),
            queue: d.to.queue,
            how: SettleHow::Requeue,
            positions: vec![d.position],
            reader: None,
        };
        self.model.cross.send(owner, CrossMsg::Settle(Box::new(s)));
    }
}

/// What one delivery to a consumer on another shard did.
pub(crate) enum RemoteStep {
    Delivered,
    /// The head message had expired: try again.
    Expired,
    /// Nothing could be taken.
    Stopped,
}

/// The model's parts a delivery to another shard uses, borrowed beside the
/// queue.
pub(crate) struct RemoteOut<'a> {
    pub now_ms: u64,
    pub timers: &'a mut crate::core::model::timers::Timers,
    pub dead_letters: &'a mut crate::core::model::queue::dead_letter::DeadLetterQueue,
    pub cross: &'a mut crate::core::model::cross::Cross,
}

/// The owner's delivery loop for consumer `idx` of `q`, on another shard,
/// which has a permit: the next message goes to it, taken as a local
/// delivery would be (expiry first; acked at once for a no-ack consumer).
pub(crate) fn deliver_remote(
    q: &mut crate::core::model::queue::Queue,
    idx: usize,
    vname: &VhostName,
    qid: QueueId,
    o: RemoteOut<'_>,
) -> RemoteStep {
    use crate::core::model::queue::ttl::{expire_one, HeadState};
    use crate::core::model::timers::TimerKind;
    match expire_one(vname, q, o.now_ms, o.dead_letters) {
        HeadState::Expired => return RemoteStep::Expired,
        HeadState::Due(t) => o.timers.add(t, o.now_ms, vname, qid, TimerKind::Head),
        HeadState::Live => {}
    }
    let c = q.consumer(idx);
    let (conn, channel, tag, no_ack) = (c.conn, c.channel, c.tag.clone(), c.no_ack);
    let to = ConsumerAt {
        vhost: vname,
        queue: qid,
        conn,
        channel,
        tag: tag.as_short(),
    };
    // Packed into the batch for the consumer's shard straight from the
    // segment (`cross::delivers`): no copy of its own.
    let delivers = o.cross.delivers_to(conn.shard());
    let taken = q.take_next(None, |m| {
        let properties = crate::core::amqp::delivery::delivery_properties(m.view.properties, m.delivery_count);
        delivers.pack(to.tag, &MsgParts::of(&m, &properties))
    });
    let Some((at, packed)) = taken else {
        if q.ready_count() > 0 {
            // As for a local consumer: the store failed (logged); try later.
            let at = crate::core::model::timers::take_retry_at(o.now_ms);
            o.timers.add(at, o.now_ms, vname, qid, TimerKind::TakeRetry);
        }
        return RemoteStep::Stopped;
    };
    delivers.push_packed(&to, packed, at.pos, at.redelivered);
    q.count_delivery(no_ack, at.redelivered);
    q.spend_permit(idx);
    q.rotate_after_delivery(idx);
    RemoteStep::Delivered
}

/// Takes the next ready message of `q` for a receiver on another shard,
/// copied out of its segment with its properties as delivered.
pub(crate) fn take_to_cross(q: &mut crate::core::model::queue::Queue) -> Option<Taken> {
    let taken = q.take_next(None, |m| {
        (
            ShortString::from(m.exchange),
            ShortString::from(m.routing_key),
            crate::core::amqp::delivery::delivery_properties(m.view.properties, m.delivery_count).into_owned(),
            m.view.body.to_vec(),
            m.remaining,
        )
    });
    let (at, (exchange, routing_key, properties, body, remaining)) = taken?;
    Some(Taken {
        position: at.pos,
        exchange,
        routing_key,
        properties,
        body,
        redelivered: at.redelivered,
        remaining,
    })
}
