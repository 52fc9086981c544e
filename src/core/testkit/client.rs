//! The in-memory AMQP client: encodes what a client sends with `ringmq_codec`
//! and decodes what the broker's output says into [`Event`]s.
//!
//! It holds no broker and no socket: [`super::harness::Harness`] feeds its bytes
//! to `Broker::handle_input` and its output back through [`Client::receive`], so
//! any test of the core can speak AMQP through the io contract with it.

use std::collections::VecDeque;

use ringmq_codec::*;

/// Frame size the client announces (the core's tests use the same).
pub const FRAME_MAX: u32 = 131072;

/// What the broker told the client, one method (with its content) at a time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// basic.deliver (with a consumer tag) or basic.get-ok (without), with content.
    Delivery(Delivery),
    GetEmpty {
        channel: u16,
    },
    /// A publisher confirm: basic.ack (`ack`) or basic.nack.
    Confirm {
        channel: u16,
        tag: u64,
        multiple: bool,
        ack: bool,
    },
    TxCommitOk {
        channel: u16,
    },
    TxRollbackOk {
        channel: u16,
    },
    ChannelClose {
        channel: u16,
        code: u16,
        text: String,
    },
    ConnectionClose {
        code: u16,
        text: String,
    },
    Heartbeat,
    /// queue.declare-ok, queue.purge-ok or queue.delete-ok, with its counts
    /// (`consumers` only in a declare-ok).
    QueueOk {
        channel: u16,
        name: &'static str,
        messages: u32,
        consumers: u32,
    },
    /// Any other method, by name (declare-ok, consume-ok, ...).
    Other {
        channel: u16,
        name: &'static str,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub channel: u16,
    pub tag: u64,
    pub redelivered: bool,
    /// Some for basic.deliver, None for basic.get-ok.
    pub consumer_tag: Option<String>,
    pub routing_key: String,
    pub properties: Vec<u8>,
    pub body: Vec<u8>,
}

/// A delivery whose header and body frames have not all arrived.
struct Incoming {
    delivery: Delivery,
    body_size: Option<u64>,
}

/// One client connection's decoding state and received events.
pub struct Client {
    /// Bytes of an incomplete frame.
    partial: Vec<u8>,
    incoming: Option<Incoming>,
    events: VecDeque<Event>,
}

impl Client {
    pub fn new() -> Client {
        Client {
            partial: Vec::new(),
            incoming: None,
            events: VecDeque::new(),
        }
    }

    /// Decodes broker output; a malformed frame is a broker bug and panics.
    pub fn receive(&mut self, bytes: &[u8]) {
        self.partial.extend_from_slice(bytes);
        let buf = std::mem::take(&mut self.partial);
        let mut at = 0;
        while at < buf.len() {
            let (frame, used) = match decode_frame(&buf[at..], 0) {
                Ok(x) => x,
                Err(DecodeError::Incomplete(_)) => break,
                Err(e) => panic!("bad frame from the broker: {e}"),
            };
            at += used;
            self.frame(frame);
        }
        self.partial = buf[at..].to_vec();
    }

    fn frame(&mut self, frame: Frame<'_>) {
        match frame {
            Frame::Heartbeat => self.events.push_back(Event::Heartbeat),
            Frame::Header { header, .. } => {
                let inc = self.incoming.as_mut().expect("content header without a method");
                inc.delivery.properties = header.properties_raw.to_vec();
                inc.body_size = Some(header.body_size);
                self.finish_content();
            }
            Frame::Body { payload, .. } => {
                let inc = self.incoming.as_mut().expect("body without a method");
                inc.delivery.body.extend_from_slice(payload);
                self.finish_content();
            }
            Frame::Method { channel, method } => self.method(channel, method),
        }
    }

    fn finish_content(&mut self) {
        let inc = self.incoming.as_ref().expect("content");
        if inc.body_size == Some(inc.delivery.body.len() as u64) {
            let inc = self.incoming.take().expect("content");
            self.events.push_back(Event::Delivery(inc.delivery));
        }
    }

    fn method(&mut self, channel: u16, method: Method<'_>) {
        assert!(self.incoming.is_none(), "a method inside a delivery's content");
        let event = match method {
            Method::BasicDeliver(d) => {
                return self.start_content(Delivery {
                    channel,
                    tag: d.delivery_tag,
                    redelivered: d.redelivered,
                    consumer_tag: Some(d.consumer_tag.as_str().to_owned()),
                    routing_key: d.routing_key.as_str().to_owned(),
                    properties: Vec::new(),
                    body: Vec::new(),
                })
            }
            Method::BasicGetOk(g) => {
                return self.start_content(Delivery {
                    channel,
                    tag: g.delivery_tag,
                    redelivered: g.redelivered,
                    consumer_tag: None,
                    routing_key: g.routing_key.as_str().to_owned(),
                    properties: Vec::new(),
                    body: Vec::new(),
                })
            }
            Method::BasicGetEmpty(_) => Event::GetEmpty { channel },
            Method::BasicAck(a) => Event::Confirm {
                channel,
                tag: a.delivery_tag,
                multiple: a.multiple,
                ack: true,
            },
            Method::BasicNack(n) => Event::Confirm {
                channel,
                tag: n.delivery_tag,
                multiple: n.multiple,
                ack: false,
            },
            Method::TxCommitOk(_) => Event::TxCommitOk { channel },
            Method::TxRollbackOk(_) => Event::TxRollbackOk { channel },
            Method::ChannelClose(c) => Event::ChannelClose {
                channel,
                code: c.reply_code,
                text: c.reply_text.as_str().to_owned(),
            },
            Method::ConnectionClose(c) => Event::ConnectionClose {
                code: c.reply_code,
                text: c.reply_text.as_str().to_owned(),
            },
            Method::QueueDeclareOk(ok) => Event::QueueOk {
                channel,
                name: "queue.declare-ok",
                messages: ok.message_count,
                consumers: ok.consumer_count,
            },
            Method::QueuePurgeOk(ok) => Event::QueueOk {
                channel,
                name: "queue.purge-ok",
                messages: ok.message_count,
                consumers: 0,
            },
            Method::QueueDeleteOk(ok) => Event::QueueOk {
                channel,
                name: "queue.delete-ok",
                messages: ok.message_count,
                consumers: 0,
            },
            other => Event::Other {
                channel,
                name: other.name(),
            },
        };
        self.events.push_back(event);
    }

    fn start_content(&mut self, delivery: Delivery) {
        self.incoming = Some(Incoming {
            delivery,
            body_size: None,
        });
    }

    /// Every event received so far.
    pub fn take_events(&mut self) -> Vec<Event> {
        self.events.drain(..).collect()
    }
}

// ---- encoding: what a client sends -------------------------------------------

/// One method frame.
pub fn method(channel: u16, m: Method<'_>) -> Vec<u8> {
    let mut out = Vec::new();
    encode_method(&mut out, channel, &m);
    out
}

/// Protocol header, start-ok (guest/guest), tune-ok with `heartbeat_secs`,
/// connection.open on "/".
pub fn handshake(heartbeat_secs: u16) -> Vec<u8> {
    handshake_as("guest", "guest", "/", heartbeat_secs)
}

/// [`handshake`] as `user` with `password`, opening `vhost`.
pub fn handshake_as(user: &str, password: &str, vhost: &str, heartbeat_secs: u16) -> Vec<u8> {
    let response = format!("\0{user}\0{password}");
    let mut out = PROTOCOL_HEADER.to_vec();
    let mut m = |ch, m: Method<'_>| encode_method(&mut out, ch, &m);
    m(
        0,
        Method::ConnectionStartOk(ConnectionStartOk {
            client_properties: Table::EMPTY,
            mechanism: short!("PLAIN"),
            response: response.as_bytes(),
            locale: short!("en_US"),
        }),
    );
    m(
        0,
        Method::ConnectionTuneOk(ConnectionTuneOk {
            channel_max: 16,
            frame_max: FRAME_MAX,
            heartbeat: heartbeat_secs,
        }),
    );
    m(
        0,
        Method::ConnectionOpen(ConnectionOpen {
            virtual_host: ShortStr::new(vhost).expect("a short vhost name"),
            capabilities: short!(""),
            insist: false,
        }),
    );
    out
}

pub fn channel_open(channel: u16) -> Vec<u8> {
    method(
        channel,
        Method::ChannelOpen(ChannelOpen {
            out_of_band: short!(""),
        }),
    )
}

/// A short string for a test name (names here are short by construction).
pub fn name(s: &str) -> ShortStr<'_> {
    ShortStr::new(s).expect("a short name")
}

/// queue.declare, durable, with `arguments` (a FieldTable's bytes, may be empty).
pub fn queue_declare(channel: u16, queue: &str, arguments: &[u8]) -> Vec<u8> {
    let arguments = if arguments.is_empty() {
        Table::EMPTY
    } else {
        Table::parse(arguments).expect("own table")
    };
    method(
        channel,
        Method::QueueDeclare(QueueDeclare {
            arguments,
            ..queue_decl(queue, true)
        }),
    )
}

/// A plain queue.declare of `queue` (not exclusive, not auto-delete, no
/// arguments); change fields with struct update syntax.
pub fn queue_decl(queue: &str, durable: bool) -> QueueDeclare<'_> {
    QueueDeclare {
        ticket: 0,
        queue: name(queue),
        passive: false,
        durable,
        exclusive: false,
        auto_delete: false,
        no_wait: false,
        arguments: Table::EMPTY,
    }
}

/// basic.publish with its content (one body frame: bodies here are small).
pub fn publish(channel: u16, exchange: &str, routing_key: &str, props: &BasicProperties<'_>, body: &[u8]) -> Vec<u8> {
    let mut out = method(
        channel,
        Method::BasicPublish(BasicPublish {
            ticket: 0,
            exchange: name(exchange),
            routing_key: name(routing_key),
            mandatory: false,
            immediate: false,
        }),
    );
    let mut raw = Vec::new();
    props.encode(&mut raw);
    encode_content(&mut out, channel, 60, &raw, body, FRAME_MAX);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_a_delivery_split_anywhere() {
        let mut out = method(
            1,
            Method::BasicDeliver(BasicDeliver {
                consumer_tag: short!("c"),
                delivery_tag: 7,
                redelivered: true,
                exchange: short!(""),
                routing_key: short!("q"),
            }),
        );
        encode_content(&mut out, 1, 60, &[0, 0], b"hello", FRAME_MAX);
        encode_heartbeat(&mut out);
        for cut in 0..out.len() {
            let mut c = Client::new();
            c.receive(&out[..cut]);
            c.receive(&out[cut..]);
            let events = c.take_events();
            assert_eq!(events.len(), 2, "cut at {cut}: {events:?}");
            let Event::Delivery(d) = &events[0] else {
                panic!("{events:?}")
            };
            assert_eq!((d.tag, d.redelivered, d.body.as_slice()), (7, true, &b"hello"[..]));
            assert_eq!(d.consumer_tag.as_deref(), Some("c"));
            assert_eq!(events[1], Event::Heartbeat);
        }
    }
}
