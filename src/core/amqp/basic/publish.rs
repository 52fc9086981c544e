//! basic.publish and its content (header and body frames, assembled when split):
//! the AMQP checks (access, user-id, reply-to, mandatory) around the model's
//! one routing path (`model::route`).

use ringmq_codec::{short, ShortStr};

use ringmq_codec::{
    encode_content, encode_method, BasicProperties, BasicPublish, BasicReturn, ContentHeader, Method, ReplyCode,
};

use crate::core::access::permissions::Access;
use crate::core::access::topic_permissions::TopicAccess;
use crate::core::amqp::broker::Broker;
use crate::core::amqp::channel::{IncomingMessage, TxPublish};
use crate::core::amqp::connection::Connection;
use crate::core::amqp::direct_reply::is_reply_address;
use crate::core::amqp::dispatch::{chan, check_access, precondition};
use crate::core::amqp::error::{channel_error, connection_error, Exception, MethodResult};
use crate::core::amqp::exchange::no_exchange;

use crate::core::model::cross::{ConfirmRef, TX_COMMIT};
use crate::core::model::ids::Name;
use crate::core::model::route::{PublishOutcome, RouteError};

impl Broker {
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

    /// One AMQP publish (basic.publish or a committed one of tx.commit): the
    /// access, user-id, reply-to and mandatory checks around the model's one
    /// routing path, `route_and_store`.
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
        if !conn
            .publish_allowed
            .as_deref()
            .is_some_and(|a| short::names_eq(a, exchange.as_str()))
        {
            check_access(conn, Access::Write, "exchange", exchange.as_str())?;
            conn.publish_allowed = Some(exchange.to_string());
        }
        let vhost_name = conn.vhost.clone().expect("open");
        let vhost = self.model.vhosts.get_mut(&vhost_name).expect("vhost");
        match vhost.exchanges.get(&Name(exchange.as_str())) {
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
        if self.model.shards.count > 1 {
            // What other shards store of it, they confirm (`model::cross`).
            let conn_id = conn.id;
            let ch = chan(conn, channel);
            // In a transaction (publishes are routed at tx.commit only), the
            // commit-ok waits for the word.
            let seq = if ch.confirm {
                Some(ch.next_publish_seq)
            } else {
                ch.tx.is_some().then_some(TX_COMMIT | ch.commits_made)
            };
            self.model.cross.origin = seq.map(|seq| ConfirmRef {
                conn: conn_id,
                channel,
                serial: ch.serial,
                seq,
            });
        }
        let routed = self
            .model
            .route_and_store(&vhost_name, exchange, routing_key, &props, properties, body);
        self.model.cross.origin = None;
        let outcome = match routed {
            Ok(outcome) => outcome,
            Err(RouteError::BadExpiration(e)) => return Err(precondition(e)),
        };
        if outcome.forwarded {
            conn.forwards = true; // only ever set with more than one shard
        }
        if conn.movable {
            conn.lean(outcome.forwarded_to);
        }
        if !outcome.routed {
            // Rare path: the channel lookup for the counter costs nothing on routed messages.
            let c = &mut chan(conn, channel).stats.c;
            if mandatory {
                c.return_unroutable += 1;
            } else {
                c.drop_unroutable += 1;
            }
            if mandatory {
                // Returned as a queue would have stored it: without BCC.
                let stripped = crate::core::model::route::without_bcc(&props);
                let properties = stripped.as_deref().unwrap_or(properties);
                send_return(conn, channel, exchange, routing_key, properties, body);
            }
        }
        Ok(outcome)
    }
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
