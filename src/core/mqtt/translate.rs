//! What the broker answers the session's connection, read from its AMQP
//! output: connection.open-ok is CONNACK 0 (a close before it, a refusal);
//! the main channel's replies release SUBACKs and UNSUBACKs in order; the
//! confirm channel's basic.acks are PUBACKs; basic.deliver with its content
//! is a PUBLISH; a channel or connection closed by the broker ends the
//! session (as RabbitMQ's plugin closes an MQTT 3.1.1 connection on a
//! refused publish).

use mq::reason::v3;
use ringmq_codec::{split_frame, DecodeError, Frame, Method};
use ringmq_mqtt_codec as mq;

use super::amqp::{CH_CONFIRM, CH_MAIN, QOS_HEADER};
use super::session::{Content, Session, State};
use crate::core::amqp::broker::Broker;
use crate::core::model::ids::ConnId;

impl Session {
    /// Reads the broker's output for this connection into MQTT output;
    /// false when the broker no longer knows the connection.
    pub(super) fn pump(&mut self, b: &mut Broker, id: ConnId, now_ms: u64) -> bool {
        let mut buf = std::mem::take(&mut self.from_broker);
        let known = b.poll_output(id, &mut buf, now_ms);
        let mut at = 0;
        while at < buf.len() {
            let (raw, used) = match split_frame(&buf[at..], 0) {
                Ok(x) => x,
                Err(DecodeError::Incomplete(_)) => break,
                Err(DecodeError::Malformed(e)) => unreachable!("the broker's own frame: {e}"),
            };
            at += used;
            match raw.decode() {
                Ok(frame) => self.frame(b, id, frame, now_ms),
                Err(e) => unreachable!("the broker's own frame: {e}"),
            }
        }
        buf.drain(..at);
        self.from_broker = buf;
        known
    }

    fn frame(&mut self, b: &mut Broker, id: ConnId, frame: Frame<'_>, now_ms: u64) {
        match frame {
            Frame::Heartbeat => {}
            Frame::Method { channel, method } => self.method(b, id, channel, method, now_ms),
            Frame::Header { header, .. } => {
                if let Some(c) = &mut self.content {
                    c.body_size = Some(header.body_size);
                    let props = header.properties();
                    c.msg_qos = props.headers.and_then(|h| match h.get(QOS_HEADER) {
                        Some(v) => v.as_i64().map(|q| q.clamp(0, 1) as u8),
                        None => None,
                    });
                    self.finish_content(b, id, now_ms);
                }
            }
            Frame::Body { payload, .. } => {
                if let Some(c) = &mut self.content {
                    c.body.extend_from_slice(payload);
                    self.finish_content(b, id, now_ms);
                }
            }
        }
    }

    fn method(&mut self, b: &mut Broker, id: ConnId, channel: u16, method: Method<'_>, now_ms: u64) {
        match method {
            Method::ConnectionOpenOk(_) if self.state == State::Connecting => {
                self.state = State::Open;
                let ack = mq::ConnAck {
                    session_present: self.session_present,
                    code: v3::ACCEPTED,
                    properties: Default::default(),
                };
                mq::encode(&mq::Packet::ConnAck(ack), self.version, &mut self.out);
                tracing::info!(client_id = %self.client_id, user = %self.user, vhost = %self.vhost, "MQTT connection open");
            }
            Method::ConnectionClose(c) if self.state == State::Connecting => {
                tracing::info!(
                    code = c.reply_code,
                    text = c.reply_text.as_str(),
                    "MQTT connection refused by the broker"
                );
                let code = match c.reply_code {
                    ACCESS_REFUSED | NOT_ALLOWED => v3::NOT_AUTHORIZED,
                    _ => v3::SERVER_UNAVAILABLE,
                };
                self.refuse(b, id, code);
            }
            Method::ConnectionClose(c) => {
                tracing::info!(client_id = %self.client_id, code = c.reply_code, text = c.reply_text.as_str(), "MQTT connection closed by the broker");
                self.close(b, id, now_ms);
            }
            Method::ChannelClose(c) => {
                tracing::info!(client_id = %self.client_id, code = c.reply_code, text = c.reply_text.as_str(), "MQTT connection closed: the broker refused an operation");
                self.close(b, id, now_ms);
            }
            Method::BasicCancel(_) => {
                tracing::info!(client_id = %self.client_id, "MQTT connection closed: its subscription queue was deleted");
                self.close(b, id, now_ms);
            }
            Method::BasicAck(a) if channel == CH_CONFIRM => self.confirmed(a.delivery_tag, a.multiple, true),
            Method::BasicNack(n) if channel == CH_CONFIRM => self.confirmed(n.delivery_tag, n.multiple, false),
            Method::BasicDeliver(d) if channel == CH_MAIN => {
                self.content = Some(Content {
                    sub_qos: u8::from(d.consumer_tag.as_str() != super::amqp::consumer_tag(0).as_str()),
                    delivery_tag: d.delivery_tag,
                    redelivered: d.redelivered,
                    topic: mq::topic::from_amqp(d.routing_key.as_str()),
                    ..Default::default()
                });
            }
            Method::ChannelOpenOk(_)
            | Method::BasicQosOk(_)
            | Method::QueueDeclareOk(_)
            | Method::QueueBindOk(_)
            | Method::QueueUnbindOk(_)
            | Method::BasicConsumeOk(_)
                if channel == CH_MAIN =>
            {
                if let Some(Some(bytes)) = self.replies.pop_front() {
                    if self.state != State::Closed {
                        self.out.extend_from_slice(&bytes);
                    }
                }
            }
            // The handshake's start, tune; the confirm channel's open-ok and
            // select-ok; blocked / unblocked (the broker stops reading a
            // blocked publisher's socket itself).
            _ => {}
        }
    }

    /// Publisher confirms up to `tag`: PUBACKs for acks; a nack gets none
    /// (the client publishes again, as after a lost PUBACK).
    fn confirmed(&mut self, tag: u64, multiple: bool, ack: bool) {
        if multiple {
            while let Some(&(seq, packet_id)) = self.unconfirmed.front() {
                if seq > tag {
                    break;
                }
                self.unconfirmed.pop_front();
                self.puback_out(packet_id, ack);
            }
        } else if let Some(i) = self.unconfirmed.iter().position(|&(seq, _)| seq == tag) {
            let (_, packet_id) = self.unconfirmed.remove(i).expect("found");
            self.puback_out(packet_id, ack);
        }
    }

    fn puback_out(&mut self, packet_id: u16, ack: bool) {
        if ack {
            mq::encode(
                &mq::Packet::PubAck(mq::Ack::new(packet_id)),
                self.version,
                &mut self.out,
            );
        } else {
            tracing::warn!(client_id = %self.client_id, packet_id, "MQTT publish not stored (nack): no PUBACK");
        }
    }

    /// A delivery whose content is all here goes out as a PUBLISH: QoS 1 when
    /// both the subscription and the message's publisher said 1 (a message
    /// from AMQP without the header: the subscription's), with a packet id
    /// for its delivery tag; QoS 0 otherwise, acked at once.
    fn finish_content(&mut self, _b: &mut Broker, _id: ConnId, _now_ms: u64) {
        let done = self
            .content
            .as_ref()
            .is_some_and(|c| c.body_size == Some(c.body.len() as u64));
        if !done {
            return;
        }
        let c = self.content.take().expect("checked above");
        let qos = c.sub_qos.min(c.msg_qos.unwrap_or(c.sub_qos));
        let packet_id = if qos == 1 {
            let pid = self.next_free_packet_id();
            self.inflight.insert(pid, c.delivery_tag);
            Some(pid)
        } else {
            if c.sub_qos == 1 {
                super::amqp::ack(&mut self.to_broker, c.delivery_tag);
            }
            None
        };
        if self.state == State::Closed {
            return;
        }
        let p = mq::Publish {
            dup: c.redelivered && qos == 1,
            qos: if qos == 1 {
                mq::QoS::AtLeastOnce
            } else {
                mq::QoS::AtMostOnce
            },
            retain: false,
            topic: &c.topic,
            packet_id,
            properties: Default::default(),
            payload: &c.body,
        };
        mq::encode_publish(&mut self.out, self.version, &p);
    }

    /// A packet id not in flight (at most `PREFETCH` are).
    fn next_free_packet_id(&mut self) -> u16 {
        loop {
            let pid = self.next_packet_id;
            self.next_packet_id = self.next_packet_id.checked_add(1).unwrap_or(1);
            if !self.inflight.contains_key(&pid) {
                return pid;
            }
        }
    }
}

/// AMQP's 403 and 530: the vhost refused the user (CONNACK 5).
const ACCESS_REFUSED: u16 = 403;
const NOT_ALLOWED: u16 = 530;
