//! What a connected client sends: PUBLISH (QoS 0 on the main channel, QoS 1
//! on the confirm channel, QoS 2 downgraded to 1 as RabbitMQ does),
//! SUBSCRIBE and UNSUBSCRIBE (bindings of the session's queues), and PUBACK
//! (the ack of a QoS 1 delivery).

use ringmq_codec::ShortStr;
use ringmq_mqtt_codec as mq;

use super::amqp::{self, CH_CONFIRM, CH_MAIN};
use super::connect::queue_name;
use super::session::Session;
use crate::core::amqp::broker::Broker;
use crate::core::model::ids::ConnId;

/// SUBACK's code for a filter that was not subscribed.
const SUBACK_FAILURE: u8 = 0x80;

impl Session {
    pub(super) fn publish(&mut self, b: &mut Broker, id: ConnId, p: &mq::Publish<'_>, now_ms: u64) {
        let key = mq::topic::to_amqp(p.topic);
        let (Ok(exchange), Ok(routing_key)) = (ShortStr::new(&self.settings.exchange), ShortStr::new(&key)) else {
            tracing::info!(client_id = %self.client_id, "MQTT connection closed: a topic over 255 bytes");
            return self.close(b, id, now_ms);
        };
        // The retain flag: retained messages are step 3 of docs/mqtt.md; the
        // message is published as any other.
        let frame_max = b.config.frame_max;
        match p.packet_id {
            Some(packet_id) => {
                let props = &self.properties[1];
                amqp::publish(
                    &mut self.to_broker,
                    CH_CONFIRM,
                    exchange,
                    routing_key,
                    props,
                    p.payload,
                    frame_max,
                );
                self.unconfirmed.push_back((self.next_seq, packet_id));
                self.next_seq += 1;
            }
            None => {
                let props = &self.properties[0];
                amqp::publish(
                    &mut self.to_broker,
                    CH_MAIN,
                    exchange,
                    routing_key,
                    props,
                    p.payload,
                    frame_max,
                );
            }
        }
    }

    pub(super) fn puback(&mut self, packet_id: u16) {
        // An unknown id (acked twice, or never sent) is ignored, as RabbitMQ does.
        if let Some(tag) = self.inflight.remove(&packet_id) {
            amqp::ack(&mut self.to_broker, tag);
        }
    }

    pub(super) fn subscribe(&mut self, s: &mq::Subscribe<'_>) {
        let mut codes = Vec::new();
        for (filter, options) in s.filters {
            let qos = (options.qos as u8).min(1);
            let key = mq::topic::to_amqp(filter);
            let Ok(routing_key) = ShortStr::new(&key) else {
                codes.push(SUBACK_FAILURE);
                continue;
            };
            self.ensure_queue(qos);
            match self.subs.insert(filter.to_owned(), qos) {
                Some(before) if before != qos => self.bind(false, before, routing_key),
                Some(_) => {}
                // A persistent session's filter may be bound to the other
                // queue since an earlier connection (unbinding is idempotent).
                None if !self.clean && self.declared[usize::from(1 - qos)] => self.bind(false, 1 - qos, routing_key),
                None => {}
            }
            self.bind(true, qos, routing_key);
            codes.push(qos);
        }
        let ack = mq::SubAck {
            packet_id: s.packet_id,
            properties: Default::default(),
            codes: &codes,
        };
        let mut bytes = Vec::new();
        mq::encode(&mq::Packet::SubAck(ack), self.version, &mut bytes);
        self.after_replies(bytes);
    }

    pub(super) fn unsubscribe(&mut self, u: &mq::Unsubscribe<'_>) {
        for filter in u.filters {
            let key = mq::topic::to_amqp(filter);
            let Ok(routing_key) = ShortStr::new(&key) else { continue };
            match self.subs.remove(filter) {
                Some(qos) => self.bind(false, qos, routing_key),
                // Subscribed by an earlier connection of a persistent session.
                None if !self.clean => {
                    for qos in [0u8, 1] {
                        if self.declared[usize::from(qos)] {
                            self.bind(false, qos, routing_key);
                        }
                    }
                }
                None => {}
            }
        }
        let ack = mq::SubAck {
            packet_id: u.packet_id,
            properties: Default::default(),
            codes: &[],
        };
        let mut bytes = Vec::new();
        mq::encode(&mq::Packet::UnsubAck(ack), self.version, &mut bytes);
        self.after_replies(bytes);
    }

    /// The subscription queue of `qos`, declared and consumed once.
    pub(super) fn ensure_queue(&mut self, qos: u8) {
        if std::mem::replace(&mut self.declared[usize::from(qos)], true) {
            return;
        }
        let name = queue_name(&self.client_id, qos);
        let queue = ShortStr::new(&name).expect("client ids are bounded (CLIENT_ID_BYTES_MAX)");
        amqp::declare_and_consume(&mut self.to_broker, queue, qos, !self.clean);
        self.replies.extend([None, None]);
    }

    fn bind(&mut self, bind: bool, qos: u8, routing_key: ShortStr<'_>) {
        let name = queue_name(&self.client_id, qos);
        let queue = ShortStr::new(&name).expect("client ids are bounded (CLIENT_ID_BYTES_MAX)");
        let exchange = ShortStr::new(&self.settings.exchange).expect("checked when the settings were read");
        amqp::binding(&mut self.to_broker, bind, queue, exchange, routing_key);
        self.replies.push_back(None);
    }

    /// `bytes` go out after the replies the broker owes now (at once if none).
    fn after_replies(&mut self, bytes: Vec<u8>) {
        match self.replies.back_mut() {
            Some(last) => last.get_or_insert_with(Vec::new).extend_from_slice(&bytes),
            None => self.out.extend_from_slice(&bytes),
        }
    }
}
