//! One MQTT connection's session: its state, the packet loop, closing,
//! keepalive and the will.

use std::collections::{BTreeMap, VecDeque};
use std::rc::Rc;

use mq::{DecodeError, Packet, Version};
use ringmq_mqtt_codec as mq;

use super::Settings;
use crate::core::amqp::broker::Broker;
use crate::core::amqp::output::Output;
use crate::core::model::ids::ConnId;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum State {
    /// Nothing but a CONNECT is accepted.
    AwaitingConnect,
    /// CONNECT accepted by the session's checks; CONNACK goes out when the
    /// broker opened the connection.
    Connecting,
    Open,
    /// The io layer writes what is left, then closes the socket.
    Closed,
}

/// The will of a connection, kept until it ends.
#[derive(Debug, Clone)]
pub(super) struct Will {
    pub routing_key: String,
    pub payload: Vec<u8>,
    pub qos: u8,
}

/// A delivery whose content has not all been read from the broker's output.
#[derive(Debug, Default)]
pub(super) struct Content {
    pub sub_qos: u8,
    pub delivery_tag: u64,
    pub redelivered: bool,
    pub topic: String,
    pub msg_qos: Option<u8>,
    pub body_size: Option<u64>,
    pub body: Vec<u8>,
}

/// An MQTT connection's session (see the module's docs for the calls).
pub struct Session {
    pub(super) settings: Rc<Settings>,
    pub(super) peer_is_loopback: bool,
    pub(super) state: State,
    pub(super) version: Version,
    pub(super) client_id: String,
    pub(super) vhost: String,
    pub(super) user: String,
    /// A clean session (its queues go with the connection), or a persistent one.
    pub(super) clean: bool,
    /// CONNACK's flag: a persistent session's queues were there.
    pub(super) session_present: bool,
    /// Published when the connection ends without DISCONNECT.
    pub(super) will: Option<Will>,
    pub(super) keepalive_ms: u64,
    pub(super) last_packet_ms: u64,
    /// MQTT bytes for the client.
    pub(super) out: Vec<u8>,
    /// AMQP frames for the broker not yet taken (it was parked: `remote`).
    pub(super) to_broker: Vec<u8>,
    /// The broker's AMQP output not yet read (an incomplete frame).
    pub(super) from_broker: Vec<u8>,
    pub(super) content: Option<Content>,
    /// Subscribed filters and the QoS granted.
    pub(super) subs: BTreeMap<String, u8>,
    /// Whether the subscription queue of QoS 0 / 1 was declared.
    pub(super) declared: [bool; 2],
    /// One entry per reply the broker owes on the main channel, in order;
    /// bytes (a SUBACK, an UNSUBACK) go out after it comes.
    pub(super) replies: VecDeque<Option<Vec<u8>>>,
    /// QoS 1 publishes waiting for their confirm: (sequence number, packet id).
    pub(super) unconfirmed: VecDeque<(u64, u16)>,
    pub(super) next_seq: u64,
    /// QoS 1 deliveries waiting for their PUBACK: packet id -> delivery tag.
    pub(super) inflight: crate::core::Map<u16, u64>,
    pub(super) next_packet_id: u16,
    /// The properties of a QoS 0 and of a QoS 1 publish.
    pub(super) properties: [Vec<u8>; 2],
    /// A CONNECT of this session closed another connection (see `take_took_over`).
    pub(super) took_over: bool,
}

impl Session {
    pub fn new(settings: Rc<Settings>, peer_is_loopback: bool, now_ms: u64) -> Session {
        Session {
            settings,
            peer_is_loopback,
            state: State::AwaitingConnect,
            version: Version::V3_1_1,
            client_id: String::new(),
            vhost: String::new(),
            user: String::new(),
            clean: true,
            session_present: false,
            will: None,
            keepalive_ms: 0,
            last_packet_ms: now_ms,
            out: Vec::new(),
            to_broker: Vec::new(),
            from_broker: Vec::new(),
            content: None,
            subs: BTreeMap::new(),
            declared: [false; 2],
            replies: VecDeque::new(),
            unconfirmed: VecDeque::new(),
            next_seq: 1,
            inflight: Default::default(),
            next_packet_id: 1,
            properties: [super::amqp::publish_properties(0), super::amqp::publish_properties(1)],
            took_over: false,
        }
    }

    /// Bytes arrived. Returns how many were used; the caller keeps the rest
    /// (an incomplete packet) and passes it again with more appended.
    pub fn handle_input(&mut self, b: &mut Broker, id: ConnId, input: &[u8], now_ms: u64) -> usize {
        if self.state == State::Closed {
            return input.len();
        }
        if !self.flush(b, id, now_ms) {
            return 0; // the broker is not taking this connection's input yet
        }
        let mut pos = 0;
        if self.state == State::AwaitingConnect && input.first().is_some_and(|&b| b != CONNECT_BYTE) {
            // Not MQTT (an HTTP request, AMQP's header): refused at its first
            // byte, not after the length that byte's neighbours make up.
            tracing::info!("MQTT connection closed: the first packet is not CONNECT");
            self.end(b, id);
            return input.len();
        }
        while pos < input.len() && self.state != State::Closed {
            let max = match self.state {
                State::AwaitingConnect => UNAUTHENTICATED.min(self.settings.max_packet_bytes),
                _ => self.settings.max_packet_bytes,
            };
            match mq::decode(&input[pos..], self.version, max) {
                Ok((packet, used)) => {
                    pos += used;
                    self.last_packet_ms = now_ms;
                    self.packet(b, id, packet, now_ms);
                }
                Err(DecodeError::Incomplete(_)) => break,
                Err(DecodeError::UnsupportedVersion(level)) if self.state == State::AwaitingConnect => {
                    tracing::info!(level, "MQTT connection refused: unsupported protocol level");
                    self.refuse(b, id, mq::reason::v3::UNACCEPTABLE_PROTOCOL_VERSION);
                    pos = input.len();
                }
                Err(e) => {
                    tracing::info!(client_id = %self.client_id, error = ?e, "MQTT connection closed: malformed packet");
                    self.close(b, id, now_ms);
                    pos = input.len();
                }
            }
        }
        self.flush(b, id, now_ms);
        self.pump(b, id, now_ms);
        pos
    }

    fn packet(&mut self, b: &mut Broker, id: ConnId, packet: Packet<'_>, now_ms: u64) {
        match (self.state, packet) {
            (State::AwaitingConnect, Packet::Connect(c)) => self.connect(b, id, &c, now_ms),
            (State::AwaitingConnect, p) => {
                tracing::info!(
                    packet = p.name(),
                    "MQTT connection closed: the first packet was not CONNECT"
                );
                self.close(b, id, now_ms);
            }
            (_, Packet::Publish(p)) => self.publish(b, id, &p, now_ms),
            (_, Packet::PubAck(a)) => self.puback(a.packet_id),
            // QoS 2 is granted and sent as QoS 1 (as RabbitMQ): these never apply.
            (_, Packet::PubRec(_) | Packet::PubRel(_) | Packet::PubComp(_)) => {}
            (_, Packet::Subscribe(s)) => self.subscribe(&s),
            (_, Packet::Unsubscribe(u)) => self.unsubscribe(&u),
            (_, Packet::PingReq) => mq::encode(&Packet::PingResp, self.version, &mut self.out),
            (_, Packet::Disconnect(_)) => {
                self.will = None;
                self.close(b, id, now_ms);
            }
            (_, p) => {
                tracing::info!(client_id = %self.client_id, packet = p.name(), "MQTT connection closed: a packet a client may not send here");
                self.close(b, id, now_ms);
            }
        }
    }

    /// Hands the AMQP frames made so far to the broker; false while it takes
    /// none of them (parked for another shard's answer).
    pub(super) fn flush(&mut self, b: &mut Broker, id: ConnId, now_ms: u64) -> bool {
        while !self.to_broker.is_empty() {
            let used = b.handle_input(id, &self.to_broker, now_ms);
            if used == 0 {
                return false;
            }
            self.to_broker.drain(..used);
        }
        true
    }

    /// Moves the output for the client to `buf` (which the io layer writes);
    /// false when the broker no longer knows the connection.
    pub fn take_output(&mut self, b: &mut Broker, id: ConnId, buf: &mut Output, now_ms: u64) -> bool {
        self.flush(b, id, now_ms);
        let known = self.pump(b, id, now_ms);
        buf.extend_from_slice(&self.out);
        self.out.clear();
        if self.out.capacity() > OUT_KEPT_BYTES {
            self.out = Vec::new();
        }
        known
    }

    /// The timer: keepalive (closed after 1.5 x keepalive without a packet,
    /// as the spec says), and frames the broker did not take yet.
    pub fn handle_tick(&mut self, b: &mut Broker, id: ConnId, now_ms: u64) {
        if self.state == State::Closed {
            return;
        }
        self.flush(b, id, now_ms);
        if self.keepalive_ms > 0 && now_ms.saturating_sub(self.last_packet_ms) > self.keepalive_ms * 3 / 2 {
            tracing::info!(client_id = %self.client_id, keepalive_ms = self.keepalive_ms, "MQTT connection closed: keepalive timeout");
            self.close(b, id, now_ms);
        }
        self.pump(b, id, now_ms);
    }

    /// The socket is gone: the will goes out unless DISCONNECT came, then
    /// the broker releases what the connection held.
    pub fn handle_disconnect(&mut self, b: &mut Broker, id: ConnId, now_ms: u64) {
        if self.state == State::Open {
            self.publish_will(b, now_ms);
        }
        self.state = State::Closed;
        self.unregister(b, id);
        b.handle_disconnect(id);
    }

    /// A CONNECT of this session closed another connection with the same
    /// client id; true once: the io layer wakes the connections' tasks so that
    /// one sees it is closed.
    pub fn take_took_over(&mut self) -> bool {
        std::mem::take(&mut self.took_over)
    }

    /// Ends the session: the will (unless DISCONNECT cleared it), and the
    /// broker's connection marked closed, so the io layer writes what is left
    /// and closes the socket.
    pub(super) fn close(&mut self, b: &mut Broker, id: ConnId, now_ms: u64) {
        if self.state == State::Closed {
            return;
        }
        // What came before (a PUBLISH before DISCONNECT) is the broker's first.
        if self.state != State::AwaitingConnect {
            self.flush(b, id, now_ms);
        }
        if self.state == State::Open {
            self.publish_will(b, now_ms);
        }
        self.end(b, id);
    }

    /// Closed: nothing more goes to the broker, the client id is free, and
    /// the io layer closes the socket once the output is written.
    fn end(&mut self, b: &mut Broker, id: ConnId) {
        self.state = State::Closed;
        self.to_broker.clear();
        self.unregister(b, id);
        if let Some(conn) = b.conns.get_mut(&id) {
            conn.mark_closed();
        }
    }

    /// Answers CONNECT with the refusal `code`, then closes.
    pub(super) fn refuse(&mut self, b: &mut Broker, id: ConnId, code: u8) {
        let ack = mq::ConnAck {
            session_present: false,
            code,
            properties: Default::default(),
        };
        mq::encode(&Packet::ConnAck(ack), self.version.min(Version::V3_1_1), &mut self.out);
        self.will = None;
        self.end(b, id);
    }

    /// Publishes the will, as the client would have published it.
    fn publish_will(&mut self, b: &mut Broker, now_ms: u64) {
        let Some(will) = self.will.take() else { return };
        let ctx = crate::core::mgmt::commands::AdminCtx {
            user: &self.user,
            vhost: &self.vhost,
            now_ms,
        };
        let props = &self.properties[usize::from(will.qos)];
        match b.admin_publish(&ctx, &self.settings.exchange, &will.routing_key, props, &will.payload) {
            Ok(_) => tracing::debug!(client_id = %self.client_id, "MQTT will published"),
            Err(e) => tracing::info!(client_id = %self.client_id, error = ?e, "MQTT will not published"),
        }
    }

    /// Forgets the client id, if it is still this connection's.
    fn unregister(&self, b: &mut Broker, id: ConnId) {
        let key = (self.vhost.clone(), self.client_id.clone());
        if b.mqtt_clients.get(&key) == Some(&id) {
            b.mqtt_clients.remove(&key);
        }
    }
}

/// A CONNECT's first byte (type 1, flags 0).
const CONNECT_BYTE: u8 = 0x10;

/// See [`super::UNAUTHENTICATED_PACKET_BYTES_MAX`].
const UNAUTHENTICATED: usize = super::UNAUTHENTICATED_PACKET_BYTES_MAX;

/// Output buffer capacity kept between writes; a larger one (a burst of
/// deliveries) goes back to the allocator.
const OUT_KEPT_BYTES: usize = 64 * 1024;
