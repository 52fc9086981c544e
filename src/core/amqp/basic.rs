//! basic.*: qos, consume, cancel, publish (with content assembly), get, ack,
//! nack, reject, recover.

use ringmq_codec::{short, ShortStr, ShortString};

use ringmq_codec::{
    encode_content, encode_method, BasicCancel, BasicCancelOk, BasicConsume, BasicConsumeOk, BasicGet, BasicGetEmpty,
    BasicGetOk, BasicProperties, BasicPublish, BasicQos, BasicQosOk, BasicRecoverOk, BasicReturn, ContentHeader,
    FieldTable, FieldValueRef, Method, ReplyCode, Table,
};

use crate::core::access::permissions::Access;
use crate::core::access::topic_permissions::TopicAccess;
use crate::core::amqp::channel::{
    ChannelConsumer, IncomingMessage, TxAck, TxPublish, Unacked, CONSUMERS_PER_CHANNEL_MAX,
};
use crate::core::amqp::connection::Connection;
use crate::core::amqp::delivery::delivery_properties;
use crate::core::amqp::direct_reply::{is_reply_address, is_reply_queue};
use crate::core::amqp::dispatch::{chan, check_access, precondition};
use crate::core::amqp::exchange::no_exchange;
use crate::core::broker::{channel_error, connection_error, Broker, Exception, MethodResult};
use crate::core::model::ids::QueueId;
use crate::core::model::queue::args::parse_expiration;
use crate::core::model::queue::take::TakenAt;
use crate::core::model::queue::ConsumerRef;
use crate::core::model::queue::{append::StoredMessage, dead_letter::DeathReason};

/// Routing keys a message may carry through CC and BCC headers, beyond its own.
pub const CC_KEYS_MAX: usize = 256;

/// What happened to one published message.
#[derive(Debug, Default, Clone, Copy)]
pub struct PublishOutcome {
    pub routed: bool,
    /// Some queue needs a group commit before this message may be confirmed.
    pub needs_sync: bool,
    /// Storing failed somewhere: confirm with basic.nack.
    pub failed: bool,
}

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
        let vhost = self.vhost_of(conn);
        let vname = vhost.name.clone();
        let q = vhost.queues.get_mut(&qid).expect("resolved queue");
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
        });
        chan(conn, channel).consumers.insert(
            tag.clone(),
            ChannelConsumer {
                queue: qid,
                queue_name: qname,
                no_ack: m.no_ack,
                prefetch,
                unacked: 0,
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
        self.touch_queue(&vhost_name, qid);
        self.deliver_pending.push((vhost_name, qid));
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
        let Some(vhost) = self.vhosts.get_mut(&vhost_name) else {
            return;
        };
        let Some(q) = vhost.queues.get_mut(&queue) else { return };
        q.remove_consumer(conn.id, channel, tag);
        if q.auto_delete && q.had_consumer && q.consumer_count() == 0 {
            self.delete_queue(&vhost_name, queue);
        }
    }

    pub(crate) fn basic_publish(&mut self, conn: &mut Connection, channel: u16, m: BasicPublish<'_>) -> MethodResult {
        if m.immediate {
            return Err(connection_error(ReplyCode::NotImplemented, "immediate=true"));
        }
        if !conn.has_published {
            conn.has_published = true;
            self.tell_blocked_on_publish(conn);
        }
        let ch = chan(conn, channel);
        let mut msg = std::mem::take(&mut ch.spare);
        msg.exchange.set(m.exchange);
        msg.routing_key.set(m.routing_key);
        msg.mandatory = m.mandatory;
        msg.header_seen = false;
        msg.body_size = 0;
        msg.properties.clear();
        msg.body.clear();
        ch.incoming = Some(msg);
        Ok(())
    }

    pub(crate) fn handle_content_header(
        &mut self,
        conn: &mut Connection,
        channel: u16,
        header: ContentHeader<'_>,
    ) -> MethodResult {
        let max = self.config.max_message_bytes;
        let ch = chan(conn, channel);
        let Some(msg) = ch.incoming.as_mut().filter(|m| !m.header_seen) else {
            return Err(connection_error(
                ReplyCode::UnexpectedFrame,
                "expected method frame, got non method frame instead",
            ));
        };
        if header.class_id != 60 {
            return Err(connection_error(
                ReplyCode::FrameError,
                format!("content header for class {} with a basic.publish", header.class_id),
            ));
        }
        if header.body_size > max {
            ch.incoming = None;
            return Err(precondition(format!(
                "message size {} is larger than configured max size {max}",
                header.body_size
            )));
        }
        msg.header_seen = true;
        msg.body_size = header.body_size;
        msg.properties.extend_from_slice(header.properties_raw);
        if header.body_size == 0 {
            return self.complete_publish(conn, channel, None);
        }
        Ok(())
    }

    pub(crate) fn handle_content_body(&mut self, conn: &mut Connection, channel: u16, payload: &[u8]) -> MethodResult {
        let ch = chan(conn, channel);
        let Some(msg) = ch.incoming.as_mut().filter(|m| m.header_seen) else {
            return Err(connection_error(
                ReplyCode::UnexpectedFrame,
                "expected content header for class 60, got non content header frame instead",
            ));
        };
        if msg.body.len() as u64 + payload.len() as u64 > msg.body_size {
            return Err(connection_error(
                ReplyCode::FrameError,
                "content body exceeds the size given in the content header",
            ));
        }
        if msg.body.is_empty() && payload.len() as u64 == msg.body_size {
            // The whole body is in this frame: store it straight from the receive
            // buffer, the one copy DESIGN.md allows (no staging in the channel).
            return self.complete_publish(conn, channel, Some(payload));
        }
        if msg.body.is_empty() {
            // One allocation for the whole body, bounded by max_message_bytes above.
            msg.body.reserve(msg.body_size as usize);
        }
        msg.body.extend_from_slice(payload);
        if msg.body.len() as u64 == msg.body_size {
            return self.complete_publish(conn, channel, None);
        }
        Ok(())
    }

    /// A message is complete: publish it (or buffer it in a transaction) and
    /// account for its confirm.
    /// `body` is the body when it arrived in one frame (borrowed from the
    /// receive buffer); otherwise it was assembled in the channel's buffer.
    fn complete_publish(&mut self, conn: &mut Connection, channel: u16, body: Option<&[u8]>) -> MethodResult {
        let ch = chan(conn, channel);
        ch.stats.c.publish += 1;
        let msg = ch.incoming.take().expect("incoming message");
        let body = body.unwrap_or(&msg.body);
        if let Some(tx) = ch.tx.as_mut() {
            tx.publishes.push(TxPublish {
                exchange: msg.exchange.as_short().into(),
                routing_key: msg.routing_key.as_short().into(),
                mandatory: msg.mandatory,
                properties: msg.properties.clone(),
                body: body.to_vec(),
            });
            ch.spare = msg;
            return Ok(());
        }
        let result = self.publish(
            conn,
            channel,
            msg.exchange.as_short(),
            msg.routing_key.as_short(),
            msg.mandatory,
            &msg.properties,
            body,
        );
        let ch = chan(conn, channel);
        ch.spare = IncomingMessage {
            body: Vec::new(),
            ..msg
        };
        let outcome = result?;
        self.track_confirm(conn, channel, outcome);
        Ok(())
    }

    /// Routes and stores one message. Shared by publish, tx.commit (and later
    /// dead-lettering): one routing path for all.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn publish(
        &mut self,
        conn: &mut Connection,
        channel: u16,
        exchange: ShortStr<'_>,
        routing_key: ShortStr<'_>,
        mandatory: bool,
        properties: &[u8],
        body: &[u8],
    ) -> Result<PublishOutcome, Exception> {
        if conn.publish_allowed.as_deref() != Some(exchange.as_str()) {
            check_access(conn, Access::Write, "exchange", exchange.as_str())?;
            conn.publish_allowed = Some(exchange.to_string());
        }
        let vhost_name = conn.vhost.clone().expect("open");
        let vhost = self.vhosts.get_mut(&vhost_name).expect("vhost");
        match vhost.exchanges.get(exchange.as_str()) {
            None => return Err(no_exchange(exchange.as_str(), &vhost_name)),
            Some(x) if x.internal => {
                return Err(channel_error(
                    ReplyCode::AccessRefused,
                    format!("cannot publish to internal exchange '{exchange}' in vhost '{vhost_name}'"),
                ))
            }
            Some(_) => {}
        }
        self.check_topic_access(conn, exchange.as_str(), routing_key.as_str(), TopicAccess::Write)?;
        let props = BasicProperties::decode(properties).expect("validated at the content header");
        if let Some(claimed) = props.user_id {
            // RabbitMQ validates user_id against the login unless the user may
            // impersonate others.
            let user = conn.user.as_deref().unwrap_or("");
            let impersonator = self.users.get(user).is_some_and(|u| u.has_tag("impersonator"));
            if claimed != user && !impersonator {
                return Err(precondition(format!(
                    "user_id property set to '{claimed}' but authenticated user was '{user}'"
                )));
            }
        }
        let rewritten = self.rewrite_reply_to(conn, channel, &props)?;
        let (props, properties) = match &rewritten {
            Some(p) => (BasicProperties::decode(p).expect("own encoding"), &p[..]),
            None => (props, properties),
        };
        if is_reply_address(&exchange, &routing_key) {
            let delivered = self.deliver_reply(conn, routing_key, properties, body)?;
            if !delivered && mandatory {
                send_return(conn, channel, exchange, routing_key, properties, body);
            }
            return Ok(PublishOutcome {
                routed: delivered,
                ..Default::default()
            });
        }
        if let Some(delay) = crate::core::model::exchange::delayed::delay_of(&props) {
            if let Some(outcome) = self.hold_delayed(&vhost_name, exchange, routing_key, properties, body, delay) {
                return Ok(outcome);
            }
        }
        let now_ms = self.now_ms;
        let vhost = self.vhosts.get_mut(&vhost_name).expect("vhost");
        if let Some(d) = vhost
            .exchanges
            .get_mut(exchange.as_str())
            .and_then(|x| x.dedup.as_mut())
        {
            if d.is_duplicate(props.headers, now_ms) {
                // A duplicate is dropped and still confirmed, as LavinMQ does.
                return Ok(PublishOutcome {
                    routed: true,
                    ..Default::default()
                });
            }
        }
        let persistent = props.is_persistent();
        // CC/BCC are rare: only then build a key list; the common case routes one
        // key without allocating.
        let single = [routing_key.as_str()];
        let mut cc_keys: Vec<&str> = Vec::new();
        let mut has_bcc = false;
        if let Some(h) = props
            .headers
            .filter(|h| h.get("CC").is_some() || h.get("BCC").is_some())
        {
            cc_keys.push(routing_key.as_str());
            collect_cc(&h, "CC", &mut cc_keys);
            has_bcc = collect_cc(&h, "BCC", &mut cc_keys);
        }
        let keys: &[&str] = if cc_keys.len() > 1 { &cc_keys } else { &single };
        let mut queues = std::mem::take(&mut self.route_scratch);
        vhost.route(exchange.as_str(), keys, &props, &mut queues);
        // BCC keys route but must not be seen by consumers: strip the header.
        let stripped;
        let properties = if has_bcc {
            stripped = strip_header(&props, "BCC");
            &stripped[..]
        } else {
            properties
        };
        let mut outcome = PublishOutcome {
            routed: !queues.is_empty(),
            ..Default::default()
        };
        let expiration = match props.expiration.map(|e| parse_expiration(&e)) {
            Some(Err(e)) => {
                queues.clear();
                self.route_scratch = queues;
                return Err(precondition(e));
            }
            Some(Ok(ms)) => Some(ms),
            None => None,
        };
        let msg = StoredMessage {
            exchange,
            routing_key,
            properties,
            body,
            persistent,
            expiration_ms: expiration,
            priority: props.priority.unwrap_or(0),
        };
        self.store_routed(&vhost_name, &queues, &msg, &mut outcome);
        queues.clear();
        self.route_scratch = queues;
        if !outcome.routed {
            // Rare path: the channel lookup for the counter costs nothing on routed messages.
            let c = &mut chan(conn, channel).stats.c;
            if mandatory {
                c.return_unroutable += 1;
            } else {
                c.drop_unroutable += 1;
            }
        }
        if !outcome.routed && mandatory {
            send_return(conn, channel, exchange, routing_key, properties, body);
        }
        Ok(outcome)
    }

    pub(crate) fn basic_get(&mut self, conn: &mut Connection, channel: u16, m: BasicGet<'_>) -> MethodResult {
        let (qid, qname) = self.resolve_queue(conn, channel, m.queue)?;
        check_access(conn, Access::Read, "queue", &qname)?;
        let vhost_name = conn.vhost.clone().expect("open");
        self.touch_queue(&vhost_name, qid);
        self.expire_head(&vhost_name, qid);
        let vhost = self.vhosts.get_mut(&vhost_name).expect("vhost");
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
            q.stats.c.get_empty += 1;
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
            .settings
            .consumer_timeout_ms
            .or(self.config.consumer_timeout_ms)
            .map(|t| (self.now_ms.saturating_add(t), t));
        for c in [&mut q.stats.c, &mut ch.stats.c] {
            *(if m.no_ack { &mut c.get_no_ack } else { &mut c.get }) += 1;
            c.redeliver += u64::from(redelivered);
        }
        if m.no_ack {
            q.ack_position(pos);
        } else {
            ch.unacked.insert(
                tag,
                Unacked {
                    queue: qid,
                    position: pos,
                    consumer: None,
                    timeout,
                },
            );
        }
        self.ack_flush.note(&vhost_name, q, self.now_ms);
        Ok(())
    }

    pub(crate) fn basic_ack(&mut self, conn: &mut Connection, channel: u16, tag: u64, multiple: bool) -> MethodResult {
        let ch = chan(conn, channel);
        if let Some(tx) = ch.tx.as_mut() {
            // Validate now (RabbitMQ fails the ack at once), apply at commit.
            if !multiple && !ch.unacked.contains_key(&tag) || multiple && tag != 0 && !ch.unacked.contains_key(&tag) {
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
            if !multiple && !ch.unacked.contains_key(&tag) || multiple && tag != 0 && !ch.unacked.contains_key(&tag) {
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

/// basic.return 312 NO_ROUTE with the message, for an unroutable mandatory publish.
fn send_return(
    conn: &mut Connection,
    channel: u16,
    exchange: ShortStr<'_>,
    routing_key: ShortStr<'_>,
    properties: &[u8],
    body: &[u8],
) {
    let ret = BasicReturn {
        reply_code: ReplyCode::NoRoute.code(),
        reply_text: short!("NO_ROUTE"),
        exchange,
        routing_key,
    };
    encode_method(&mut conn.out, channel, &Method::BasicReturn(ret));
    encode_content(&mut conn.out, channel, 60, properties, body, conn.tuning.frame_max);
}

/// Adds the long strings of a CC/BCC array header to `keys`; returns whether the
/// header was present.
fn collect_cc<'a>(headers: &Table<'a>, name: &str, keys: &mut Vec<&'a str>) -> bool {
    match headers.get(name) {
        Some(FieldValueRef::Array(a)) => {
            for v in a.iter().take(CC_KEYS_MAX) {
                if let FieldValueRef::LongString(s) = v {
                    if let Ok(s) = std::str::from_utf8(s) {
                        keys.push(s);
                    }
                }
            }
            true
        }
        Some(_) => true,
        None => false,
    }
}

/// Re-encodes properties without one header.
fn strip_header(props: &BasicProperties<'_>, name: &str) -> Vec<u8> {
    let mut headers: FieldTable = props.headers.map(|h| h.to_owned_table()).unwrap_or_default();
    headers.0.remove(name);
    let bytes = headers.to_bytes();
    let mut p = *props;
    p.headers = Some(Table::parse(&bytes).expect("own table"));
    let mut out = Vec::new();
    p.encode(&mut out);
    out
}
