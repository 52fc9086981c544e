//! Direct reply-to (`amq.rabbitmq.reply-to`): RPC replies delivered straight to
//! the requesting channel, with no queue in between, as RabbitMQ does it.
//!
//! The requester consumes from the pseudo-queue `amq.rabbitmq.reply-to` in no-ack
//! mode, then publishes with `reply_to = amq.rabbitmq.reply-to`. The broker
//! rewrites that to `amq.rabbitmq.reply-to.<conn>.<channel>.<nonce>`; the responder
//! publishes to the default exchange with that routing key and the broker hands
//! the reply to the requester's consumer. The nonce is random per channel so a
//! third party cannot guess a live reply address.

use ringmq_codec::{ShortStr, ShortString};

use ringmq_codec::{encode_deliver, BasicProperties};

use crate::core::amqp::broker::{Broker, OUT_HIGH_WATER_BYTES};
use crate::core::amqp::connection::{ConnState, Connection};
use crate::core::amqp::dispatch::{chan, precondition};
use crate::core::amqp::error::Exception;
use crate::core::model::ids::ConnId;

pub const REPLY_TO_QUEUE: &str = "amq.rabbitmq.reply-to";
const REPLY_TO_PREFIX: &str = "amq.rabbitmq.reply-to.";

/// A reply consumer registered on a channel.
#[derive(Debug, Clone)]
pub struct ReplyConsumer {
    pub tag: ShortString,
    pub nonce: u64,
}

/// Whether a routing key on the default exchange is a direct reply address.
pub fn is_reply_address(exchange: &str, routing_key: &str) -> bool {
    exchange.is_empty() && routing_key.starts_with(REPLY_TO_PREFIX)
}

fn parse_address(routing_key: &str) -> Option<(ConnId, u16, u64)> {
    let rest = routing_key.strip_prefix(REPLY_TO_PREFIX)?;
    let mut parts = rest.split('.');
    let conn = parts.next()?.parse().ok()?;
    let channel = parts.next()?.parse().ok()?;
    let nonce = u64::from_str_radix(parts.next()?, 16).ok()?;
    parts.next().is_none().then_some((ConnId(conn), channel, nonce))
}

impl Broker {
    /// basic.consume on the pseudo-queue.
    pub(crate) fn consume_reply_to(
        &mut self,
        conn: &mut Connection,
        channel: u16,
        tag: ShortString,
        no_ack: bool,
    ) -> Result<(), Exception> {
        if !no_ack {
            return Err(precondition("reply consumer cannot acknowledge"));
        }
        let nonce = self.random_u64();
        let ch = chan(conn, channel);
        if ch.reply_consumer.is_some() {
            return Err(precondition("reply consumer already set"));
        }
        ch.reply_consumer = Some(ReplyConsumer { tag, nonce });
        Ok(())
    }

    /// If the message asks for a direct reply, returns its properties with
    /// `reply_to` rewritten to this channel's reply address.
    pub(crate) fn rewrite_reply_to(
        &mut self,
        conn: &mut Connection,
        channel: u16,
        props: &BasicProperties<'_>,
    ) -> Result<Option<Vec<u8>>, Exception> {
        if props.reply_to.map(ShortStr::as_str) != Some(REPLY_TO_QUEUE) {
            return Ok(None);
        }
        let conn_id = conn.id;
        let Some(rc) = chan(conn, channel).reply_consumer.as_ref() else {
            return Err(precondition("fast reply consumer does not exist"));
        };
        let address = format!("{REPLY_TO_PREFIX}{}.{}.{:x}", conn_id.0, channel, rc.nonce);
        let mut p = *props;
        // A prefix and three numbers: far below 255 bytes.
        p.reply_to = Some(ShortStr::new(&address).expect("a short prefix and three numbers"));
        let mut out = Vec::new();
        p.encode(&mut out);
        Ok(Some(out))
    }

    /// Delivers a reply straight to the requesting channel. Returns whether it was
    /// delivered (false: the requester is gone, the message is unroutable).
    pub(crate) fn deliver_reply(
        &mut self,
        conn: &mut Connection,
        routing_key: ShortStr<'_>,
        properties: &[u8],
        body: &[u8],
    ) -> Result<bool, Exception> {
        let Some((target, channel, nonce)) = parse_address(&routing_key) else {
            return Ok(false);
        };
        let deliver = |c: &mut Connection| -> bool {
            if c.state != ConnState::Open || c.out.len() >= OUT_HIGH_WATER_BYTES * 4 {
                return false;
            }
            let frame_max = c.tuning.frame_max;
            let Some(ch) = c.channels.get_mut(&channel) else {
                return false;
            };
            let Some(rc) = ch.reply_consumer.clone().filter(|rc| rc.nonce == nonce) else {
                return false;
            };
            let tag = ch.take_delivery_tag();
            encode_deliver(
                &mut c.out,
                channel,
                rc.tag.as_short(),
                tag,
                false,
                ShortStr::EMPTY,
                routing_key,
                properties,
                body,
                frame_max,
            );
            true
        };
        if target == conn.id {
            return Ok(deliver(conn));
        }
        let Some(c) = self.conns.get_mut(&target) else {
            return Ok(false);
        };
        let delivered = deliver(c);
        if delivered {
            self.mark_dirty_id(target);
        }
        Ok(delivered)
    }
}

/// Declaring the pseudo-queue passively succeeds, as in RabbitMQ.
pub(crate) fn is_reply_queue(name: &str) -> bool {
    name == REPLY_TO_QUEUE
}
