//! The connection: a lean AMQP 0-9-1 client on plain tokio and our codec.
//!
//! One [`Connection`] is one TCP socket owned by one task; there is no background
//! reader, no channel objects, no per-message allocation. Setup methods are
//! request/response RPCs ([`Connection::rpc`]); the hot paths are explicit:
//! publishers append pre-encoded frames to [`Connection::wbuf`] and [`flush`] once
//! per batch, consumers [`fill`] the receive buffer and drain
//! [`Connection::next_event`] until it returns `None`, then flush their acks.
//!
//! [`flush`]: Connection::flush
//! [`fill`]: Connection::fill

use std::fmt;
use std::io;

use crate::content::{Capture, Content};
use crate::heartbeat::{Heartbeat, HeartbeatAction};
use crate::tls::Stream;
use ringmq_codec::frame::{FRAME_BODY, FRAME_HEADER, FRAME_HEARTBEAT, FRAME_METHOD};
use ringmq_codec::{
    encode_content, encode_method, short, split_frame, BasicProperties, BasicPublish, ChannelCloseOk,
    ConnectionCloseOk, ConnectionOpen, ConnectionStartOk, ConnectionTuneOk, DecodeError, FieldTable, FieldValue,
    Method, ShortStr, Table, PROTOCOL_HEADER,
};

mod methods;

/// The frame_max we ask for: RabbitMQ's default, and large enough that a 64 KiB
/// body is one frame.
pub const FRAME_MAX: u32 = 131_072;
/// Initial receive buffer; it grows only if a single frame is larger.
const RECV_BUF_BYTES: usize = 512 * 1024;

/// A name or key as a short string: one over 255 bytes is refused here, before
/// it could reach the encoder.
pub fn sh(s: &str) -> Result<ShortStr<'_>> {
    ShortStr::new(s).map_err(|e| ClientError::Protocol(e.text(&format!("'{s}'"))))
}

#[derive(Debug)]
pub enum ClientError {
    Io(io::Error),
    /// Nothing came from the peer for two heartbeat intervals.
    PeerDead {
        heartbeat_secs: u16,
    },
    /// The broker closed the connection (connection.close) or a channel.
    Closed {
        channel: u16,
        code: u16,
        text: String,
    },
    Protocol(String),
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientError::Io(e) => write!(f, "i/o: {e}"),
            ClientError::PeerDead { heartbeat_secs } => {
                write!(f, "missed heartbeats from the peer (heartbeat {heartbeat_secs} s)")
            }
            ClientError::Closed { channel: 0, code, text } => write!(f, "connection closed: {code} {text}"),
            ClientError::Closed { channel, code, text } => write!(f, "channel {channel} closed: {code} {text}"),
            ClientError::Protocol(s) => write!(f, "protocol: {s}"),
        }
    }
}

impl std::error::Error for ClientError {}

impl From<io::Error> for ClientError {
    fn from(e: io::Error) -> Self {
        ClientError::Io(e)
    }
}

pub type Result<T> = std::result::Result<T, ClientError>;

pub use crate::uri::Uri;

/// What `next_event` hands back: everything the hot paths care about, by value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// A complete basic.deliver or basic.get-ok (header and all body frames seen).
    /// `head` is the first 8 body bytes big-endian (0-padded): where the latency
    /// timestamp travels, so the body itself is never copied.
    Delivery {
        channel: u16,
        delivery_tag: u64,
        body_size: u64,
        head: u64,
        get: bool,
    },
    GetEmpty {
        channel: u16,
    },
    Ack {
        channel: u16,
        delivery_tag: u64,
        multiple: bool,
    },
    Nack {
        channel: u16,
        delivery_tag: u64,
        multiple: bool,
    },
    /// A basic.return with its content consumed.
    Returned {
        channel: u16,
    },
    Blocked,
    Unblocked,
    /// Any other method; its payload is available through [`Connection::last_payload`]
    /// until the next call.
    Method {
        channel: u16,
        class_id: u16,
        method_id: u16,
    },
}

#[derive(Debug, Clone, Copy)]
struct Pending {
    channel: u16,
    delivery_tag: u64,
    body_size: u64,
    got: u64,
    head: [u8; 8],
    kind: PendingKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PendingKind {
    Deliver,
    Get,
    Return,
}

/// Options for queue.declare.
#[derive(Debug, Clone, Copy, Default)]
pub struct QueueOptions<'a> {
    pub durable: bool,
    pub exclusive: bool,
    pub auto_delete: bool,
    pub passive: bool,
    /// Encoded field-table entries (see `FieldTable::to_bytes`).
    pub arguments: &'a [u8],
}

/// Options for exchange.declare beyond name and type.
#[derive(Debug, Clone, Copy, Default)]
pub struct ExchangeOptions<'a> {
    pub durable: bool,
    pub auto_delete: bool,
    pub internal: bool,
    pub passive: bool,
    /// Encoded field-table entries (see `FieldTable::to_bytes`).
    pub arguments: &'a [u8],
}

/// How [`Connection::connect_with`] sets up a connection.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    /// The heartbeat we ask for; 0 turns heartbeats off whatever the broker
    /// proposes (a load generator that stalls should be seen stalling, not
    /// disconnected). Otherwise the lower of ours and the broker's, as
    /// RabbitMQ's clients negotiate it.
    pub heartbeat_secs: u16,
    /// The `product` client property (the broker's connection list shows it).
    pub product: String,
    /// The `connection_name` client property, if any.
    pub connection_name: Option<String>,
    /// How the URI's user proves who it is.
    pub login: Login,
}

/// How a connection logs in (the SASL mechanism of connection.start-ok).
#[derive(Clone, Default, PartialEq, Eq)]
pub enum Login {
    /// PLAIN with the URI's user and password.
    #[default]
    Plain,
    /// ringmq's own links (shovels, federation) logging in to the broker that
    /// runs them, over loopback, as the URI's user: the proof is the secret
    /// that broker made at its start (mechanism `RINGMQ-INTERNAL`), not the
    /// user's password. No other broker accepts it.
    BrokerInternal { secret: String },
}

impl fmt::Debug for Login {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The secret is never logged.
        match self {
            Login::Plain => f.write_str("Plain"),
            Login::BrokerInternal { .. } => f.write_str("BrokerInternal"),
        }
    }
}

/// The SASL mechanism name of [`Login::BrokerInternal`].
pub const BROKER_INTERNAL_MECHANISM: &str = "RINGMQ-INTERNAL";

impl Default for ConnectOptions {
    fn default() -> Self {
        ConnectOptions {
            heartbeat_secs: 0,
            product: "ringmqperf".into(),
            connection_name: None,
            login: Login::Plain,
        }
    }
}

pub struct Connection {
    /// Plain TCP, or TLS over it for `amqps://`.
    io: Stream,
    /// Negotiated heartbeats, when on: what we read and write moves its clocks.
    heartbeat: Option<Heartbeat>,
    /// Deliveries' exchange, routing key, properties and body, when asked for
    /// ([`Connection::keep_content`]); the load generator's hot path skips them.
    capture: Option<Capture>,
    rbuf: Vec<u8>,
    rstart: usize,
    rend: usize,
    /// Frames to send at the next [`Connection::flush`].
    pub wbuf: Vec<u8>,
    pub frame_max: u32,
    next_channel: u16,
    /// The most channels negotiated (tune-ok's `channel_max`).
    channel_max: u16,
    pending: Option<Pending>,
    last_payload: (usize, usize),
    /// The `cluster_name` server property of connection.start (RabbitMQ's
    /// and ringmq's; federation records it in `x-received-from`).
    server_cluster_name: Option<String>,
}

impl fmt::Debug for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connection")
            .field("frame_max", &self.frame_max)
            .finish()
    }
}

impl Connection {
    /// Connects and runs the handshake (PLAIN, no heartbeats: a load generator
    /// that stalls should be seen stalling, not disconnected).
    pub async fn connect(uri: &Uri) -> Result<Connection> {
        Self::connect_with(uri, &ConnectOptions::default()).await
    }

    /// Connects and runs the handshake (PLAIN) with `opts`, within the URI's
    /// `connection_timeout` if it has one.
    pub async fn connect_with(uri: &Uri, opts: &ConnectOptions) -> Result<Connection> {
        let Some(ms) = uri.options.connection_timeout_ms else {
            return Self::connect_now(uri, opts).await;
        };
        match tokio::time::timeout(std::time::Duration::from_millis(ms), Self::connect_now(uri, opts)).await {
            Ok(r) => r,
            Err(_) => Err(ClientError::Io(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("not connected within connection_timeout ({ms} ms)"),
            ))),
        }
    }

    async fn connect_now(uri: &Uri, opts: &ConnectOptions) -> Result<Connection> {
        let o = &uri.options;
        let tls = match &uri.tls {
            None => None,
            Some(trust) => {
                Some(crate::tls::cached_config(trust, o.client_cert.as_ref(), o.sni).map_err(ClientError::Protocol)?)
            }
        };
        let io = Stream::connect(&uri.host, uri.port, tls.as_ref(), o.server_name.as_deref()).await?;
        let mut c = Connection {
            io,
            heartbeat: None,
            capture: None,
            rbuf: vec![0; RECV_BUF_BYTES],
            rstart: 0,
            rend: 0,
            wbuf: Vec::with_capacity(256 * 1024),
            frame_max: FRAME_MAX,
            next_channel: 1,
            channel_max: 0,
            pending: None,
            last_payload: (0, 0),
            server_cluster_name: None,
        };
        c.wbuf.extend_from_slice(&PROTOCOL_HEADER);
        c.flush().await?;
        let start = c.expect_method(0, 10, 10).await?;
        if let Ok(Method::ConnectionStart(st)) = Method::decode(&start) {
            c.server_cluster_name = st
                .server_properties
                .to_owned_table()
                .get("cluster_name")
                .and_then(|v| v.as_str())
                .map(str::to_owned);
        }
        let mut props = FieldTable::new();
        props.insert(
            short!("product"),
            FieldValue::LongString(opts.product.clone().into_bytes()),
        );
        if let Some(name) = &opts.connection_name {
            props.insert(
                short!("connection_name"),
                FieldValue::LongString(name.clone().into_bytes()),
            );
        }
        let mut caps = FieldTable::new();
        for cap in [
            "publisher_confirms",
            "basic.nack",
            "consumer_cancel_notify",
            "connection.blocked",
            // A refused login is told with connection.close 403 (and why)
            // rather than a closed socket.
            "authentication_failure_close",
        ] {
            caps.insert(sh(cap)?, true);
        }
        props.insert(short!("capabilities"), FieldValue::Table(caps));
        let props_bytes = props.to_bytes();
        // PLAIN's response is authzid NUL user NUL password (RFC 4616); the
        // internal mechanism's the same with the broker's secret as the proof.
        let (mechanism, proof) = match &opts.login {
            Login::Plain => (short!("PLAIN"), uri.password.as_str()),
            Login::BrokerInternal { secret } => (sh(BROKER_INTERNAL_MECHANISM)?, secret.as_str()),
        };
        let mut response = Vec::new();
        response.push(0);
        response.extend_from_slice(uri.user.as_bytes());
        response.push(0);
        response.extend_from_slice(proof.as_bytes());
        let start_ok = Method::ConnectionStartOk(ConnectionStartOk {
            client_properties: Table::parse(&props_bytes).map_err(|e| ClientError::Protocol(e.to_string()))?,
            mechanism,
            response: &response,
            locale: short!("en_US"),
        });
        encode_method(&mut c.wbuf, 0, &start_ok);
        c.flush().await?;
        let tune = c.expect_method(0, 10, 30).await?;
        let Ok(Method::ConnectionTune(t)) = Method::decode(&tune) else {
            return Err(ClientError::Protocol("bad connection.tune".into()));
        };
        let frame_max = if t.frame_max == 0 {
            FRAME_MAX
        } else {
            t.frame_max.min(FRAME_MAX)
        };
        c.frame_max = frame_max;
        let channel_max = if t.channel_max == 0 { 2047 } else { t.channel_max };
        let channel_max = uri
            .options
            .channel_max
            .filter(|&n| n > 0)
            .map_or(channel_max, |n| n.min(channel_max));
        c.channel_max = channel_max;
        let heartbeat = match (uri.options.heartbeat_secs.unwrap_or(opts.heartbeat_secs), t.heartbeat) {
            (0, _) => 0,
            (ours, 0) => ours,
            (ours, theirs) => ours.min(theirs),
        };
        encode_method(
            &mut c.wbuf,
            0,
            &Method::ConnectionTuneOk(ConnectionTuneOk {
                channel_max,
                frame_max,
                heartbeat,
            }),
        );
        if heartbeat > 0 {
            c.heartbeat = Some(Heartbeat::new(heartbeat, std::time::Instant::now()));
        }
        let open = Method::ConnectionOpen(ConnectionOpen {
            virtual_host: sh(&uri.vhost)?,
            capabilities: short!(""),
            insist: false,
        });
        c.rpc(0, &open, (10, 41)).await?;
        Ok(c)
    }

    /// The payload of the last [`Event::Method`], valid until the next read.
    pub fn last_payload(&self) -> &[u8] {
        &self.rbuf[self.last_payload.0..self.last_payload.1]
    }

    /// Writes everything queued in `wbuf` and clears it.
    pub async fn flush(&mut self) -> Result<()> {
        if !self.wbuf.is_empty() {
            self.io.write_all(&self.wbuf).await?;
            self.wbuf.clear();
            if let Some(hb) = &mut self.heartbeat {
                hb.handle_sent(std::time::Instant::now());
            }
        }
        Ok(())
    }

    /// Reads at least one more byte into the receive buffer. Cancel-safe: a
    /// read that did not finish took nothing.
    pub async fn fill(&mut self) -> Result<()> {
        self.make_room();
        let n = self.io.read(&mut self.rbuf[self.rend..]).await?;
        if n == 0 {
            return Err(ClientError::Io(io::ErrorKind::UnexpectedEof.into()));
        }
        self.rend += n;
        if let Some(hb) = &mut self.heartbeat {
            hb.handle_received(std::time::Instant::now());
        }
        Ok(())
    }

    /// The negotiated heartbeat, 0 when off.
    /// The server's `cluster_name` property, when it sent one.
    pub fn server_cluster_name(&self) -> Option<&str> {
        self.server_cluster_name.as_deref()
    }

    pub fn heartbeat_secs(&self) -> u16 {
        self.heartbeat.as_ref().map_or(0, Heartbeat::interval_secs)
    }

    /// When [`Connection::poll_heartbeat`] has something to do next; None
    /// when heartbeats are off.
    pub fn heartbeat_deadline(&self) -> Option<std::time::Instant> {
        self.heartbeat.as_ref().map(Heartbeat::poll_timeout)
    }

    /// Queues a heartbeat frame if one is due (the caller flushes), or fails
    /// with [`ClientError::PeerDead`] when nothing came for two intervals.
    pub fn poll_heartbeat(&mut self, now: std::time::Instant) -> Result<()> {
        let Some(hb) = &mut self.heartbeat else {
            return Ok(());
        };
        match hb.poll(now) {
            HeartbeatAction::Idle => Ok(()),
            HeartbeatAction::Send => {
                self.wbuf
                    .extend_from_slice(&[FRAME_HEARTBEAT, 0, 0, 0, 0, 0, 0, ringmq_codec::frame::FRAME_END]);
                Ok(())
            }
            HeartbeatAction::PeerDead => Err(ClientError::PeerDead {
                heartbeat_secs: hb.interval_secs(),
            }),
        }
    }

    /// Waits for the next event, reading as needed, sending heartbeats and
    /// watching the peer's while it waits (what a link that may sit idle for
    /// hours uses; the load generator's loops call `fill`/`next_event`).
    ///
    /// Cancel-safe while it waits, not while it writes a heartbeat: a caller
    /// that drops it (a `select!` on two connections) must not flush the
    /// connection afterwards. The shovel's loop waits on `fill` instead.
    pub async fn next(&mut self) -> Result<Event> {
        loop {
            if let Some(e) = self.next_event()? {
                return Ok(e);
            }
            let Some(deadline) = self.heartbeat_deadline() else {
                self.fill().await?;
                continue;
            };
            tokio::select! {
                r = self.fill() => r?,
                _ = tokio::time::sleep_until(deadline.into()) => {
                    self.poll_heartbeat(std::time::Instant::now())?;
                    self.flush().await?;
                }
            }
        }
    }

    /// From now on, keep each delivery's exchange, routing key, properties and
    /// body for [`Connection::take_content`] (a shovel forwards them; the load
    /// generator does not pay for the copy).
    pub fn keep_content(&mut self) {
        self.capture.get_or_insert_with(Capture::default);
    }

    /// The content of the last [`Event::Delivery`] (or `Returned`), if
    /// [`Connection::keep_content`] is on.
    pub fn take_content(&mut self) -> Option<Content> {
        self.capture.as_mut().and_then(Capture::take)
    }

    /// Queues a basic.publish with raw (encoded) properties and `body`.
    pub fn push_publish_raw(
        &mut self,
        ch: u16,
        exchange: &str,
        routing_key: &str,
        properties_raw: &[u8],
        body: &[u8],
    ) -> Result<()> {
        let m = Method::BasicPublish(BasicPublish {
            ticket: 0,
            exchange: sh(exchange)?,
            routing_key: sh(routing_key)?,
            mandatory: false,
            immediate: false,
        });
        encode_method(&mut self.wbuf, ch, &m);
        encode_content(&mut self.wbuf, ch, 60, properties_raw, body, self.frame_max);
        Ok(())
    }

    /// Reads what the socket has without waiting; false if it had nothing.
    pub fn try_fill(&mut self) -> Result<bool> {
        self.make_room();
        match self.io.try_read(&mut self.rbuf[self.rend..]) {
            Ok(0) => Err(ClientError::Io(io::ErrorKind::UnexpectedEof.into())),
            Ok(n) => {
                self.rend += n;
                Ok(true)
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    fn make_room(&mut self) {
        if self.rstart == self.rend {
            self.rstart = 0;
            self.rend = 0;
        } else if self.rend == self.rbuf.len() || self.rstart > self.rbuf.len() / 2 {
            self.rbuf.copy_within(self.rstart..self.rend, 0);
            self.rend -= self.rstart;
            self.rstart = 0;
        }
        if self.rend == self.rbuf.len() {
            // One frame larger than the buffer: grow (rare, setup-time sized).
            let len = self.rbuf.len() * 2;
            self.rbuf.resize(len, 0);
        }
    }

    /// Waits for the next event, reading as needed.
    pub async fn recv(&mut self) -> Result<Event> {
        loop {
            if let Some(e) = self.next_event()? {
                return Ok(e);
            }
            self.fill().await?;
        }
    }

    /// Decodes the next event from bytes already received; `None` means read more.
    pub fn next_event(&mut self) -> Result<Option<Event>> {
        loop {
            let (frame_type, channel, start, end, used) = match split_frame(&self.rbuf[self.rstart..self.rend], 0) {
                Ok((raw, used)) => {
                    let start = self.rstart + 7;
                    (raw.frame_type, raw.channel, start, start + raw.payload.len(), used)
                }
                Err(DecodeError::Incomplete(_)) => return Ok(None),
                Err(DecodeError::Malformed(e)) => return Err(ClientError::Protocol(e.to_string())),
            };
            self.rstart += used;
            let ev = match frame_type {
                FRAME_METHOD => self.on_method(channel, start, end)?,
                FRAME_HEADER => self.on_header(channel, start, end)?,
                FRAME_BODY => self.on_body(channel, start, end)?,
                FRAME_HEARTBEAT => None,
                t => return Err(ClientError::Protocol(format!("unknown frame type {t}"))),
            };
            if ev.is_some() {
                return Ok(ev);
            }
        }
    }

    fn on_method(&mut self, channel: u16, start: usize, end: usize) -> Result<Option<Event>> {
        let p = &self.rbuf[start..end];
        if p.len() < 4 {
            return Err(ClientError::Protocol("short method frame".into()));
        }
        let class_id = u16::from_be_bytes([p[0], p[1]]);
        let method_id = u16::from_be_bytes([p[2], p[3]]);
        let u64_at = |at: usize| -> Result<u64> {
            p.get(at..at + 8)
                .map(|b| u64::from_be_bytes(b.try_into().expect("8 bytes")))
                .ok_or_else(|| ClientError::Protocol("short method arguments".into()))
        };
        // The hot methods are parsed by hand: fixed offsets, no UTF-8 checks.
        let pending = |delivery_tag, kind| Pending {
            channel,
            delivery_tag,
            body_size: u64::MAX,
            got: 0,
            head: [0; 8],
            kind,
        };
        let ev = match (class_id, method_id) {
            (60, 60) => {
                let tag_len = *p.get(4).unwrap_or(&0) as usize;
                self.pending = Some(pending(u64_at(5 + tag_len)?, PendingKind::Deliver));
                if let Some(c) = &mut self.capture {
                    c.handle_method(p)?;
                }
                None
            }
            (60, 71) => {
                self.pending = Some(pending(u64_at(4)?, PendingKind::Get));
                if let Some(c) = &mut self.capture {
                    c.handle_method(p)?;
                }
                None
            }
            (60, 50) => {
                self.pending = Some(pending(0, PendingKind::Return));
                if let Some(c) = &mut self.capture {
                    c.handle_method(p)?;
                }
                None
            }
            (60, 72) => Some(Event::GetEmpty { channel }),
            (60, 80) | (60, 120) => {
                let delivery_tag = u64_at(4)?;
                let multiple = p.get(12).is_some_and(|b| b & 1 != 0);
                Some(if method_id == 80 {
                    Event::Ack {
                        channel,
                        delivery_tag,
                        multiple,
                    }
                } else {
                    Event::Nack {
                        channel,
                        delivery_tag,
                        multiple,
                    }
                })
            }
            (10, 60) => Some(Event::Blocked),
            (10, 61) => Some(Event::Unblocked),
            (10, 50) | (20, 40) => {
                let (code, text) = match Method::decode(p) {
                    Ok(Method::ConnectionClose(c)) => (c.reply_code, c.reply_text.to_string()),
                    Ok(Method::ChannelClose(c)) => (c.reply_code, c.reply_text.to_string()),
                    _ => (0, String::new()),
                };
                let ok = if class_id == 10 {
                    Method::ConnectionCloseOk(ConnectionCloseOk)
                } else {
                    Method::ChannelCloseOk(ChannelCloseOk)
                };
                encode_method(&mut self.wbuf, channel, &ok);
                // Best effort: the peer is closing anyway.
                let _ = self.io.try_write(&self.wbuf);
                self.wbuf.clear();
                return Err(ClientError::Closed { channel, code, text });
            }
            _ => {
                self.last_payload = (start, end);
                Some(Event::Method {
                    channel,
                    class_id,
                    method_id,
                })
            }
        };
        Ok(ev)
    }

    fn on_header(&mut self, channel: u16, start: usize, end: usize) -> Result<Option<Event>> {
        let p = &self.rbuf[start..end];
        let Some(pend) = self
            .pending
            .as_mut()
            .filter(|x| x.channel == channel && x.body_size == u64::MAX)
        else {
            return Err(ClientError::Protocol("content header without a method".into()));
        };
        if p.len() < 12 {
            return Err(ClientError::Protocol("short content header".into()));
        }
        pend.body_size = u64::from_be_bytes(p[4..12].try_into().expect("8 bytes"));
        if let Some(c) = &mut self.capture {
            c.handle_header(&p[12..], pend.body_size)?;
        }
        Ok(self.complete_if_done())
    }

    fn on_body(&mut self, channel: u16, start: usize, end: usize) -> Result<Option<Event>> {
        let p = &self.rbuf[start..end];
        let Some(pend) = self
            .pending
            .as_mut()
            .filter(|x| x.channel == channel && x.body_size != u64::MAX)
        else {
            return Err(ClientError::Protocol("body frame without a header".into()));
        };
        if pend.got < 8 {
            let at = pend.got as usize;
            let n = (8 - at).min(p.len());
            pend.head[at..at + n].copy_from_slice(&p[..n]);
        }
        pend.got += p.len() as u64;
        if let Some(c) = &mut self.capture {
            c.handle_body(p);
        }
        Ok(self.complete_if_done())
    }

    fn complete_if_done(&mut self) -> Option<Event> {
        let pend = self.pending?;
        if pend.got < pend.body_size {
            return None;
        }
        self.pending = None;
        Some(match pend.kind {
            PendingKind::Return => Event::Returned { channel: pend.channel },
            PendingKind::Get | PendingKind::Deliver => Event::Delivery {
                channel: pend.channel,
                delivery_tag: pend.delivery_tag,
                body_size: pend.body_size,
                head: u64::from_be_bytes(pend.head),
                get: pend.kind == PendingKind::Get,
            },
        })
    }
}

/// A publish (method, header and body frames) encoded once and copied per
/// message: the publisher's hot path is one `extend_from_slice`.
#[derive(Debug, Clone)]
pub struct PublishTemplate {
    pub bytes: Vec<u8>,
    /// Where the first 8 body bytes are, if the body has room for a timestamp.
    pub stamp_at: Option<usize>,
}

impl PublishTemplate {
    pub fn new(
        channel: u16,
        exchange: ShortStr<'_>,
        routing_key: ShortStr<'_>,
        properties: &BasicProperties<'_>,
        body: &[u8],
        frame_max: u32,
    ) -> PublishTemplate {
        let mut bytes = Vec::new();
        let m = Method::BasicPublish(BasicPublish {
            ticket: 0,
            exchange,
            routing_key,
            mandatory: false,
            immediate: false,
        });
        encode_method(&mut bytes, channel, &m);
        let mut props = Vec::new();
        properties.encode(&mut props);
        encode_content(&mut bytes, channel, 60, &props, body, frame_max);
        let stamp_at = (body.len() >= 8).then(|| {
            // The first body frame's payload starts 7 bytes after its header begins.
            bytes.len() - body_frames_len(body.len(), frame_max) + 7
        });
        PublishTemplate { bytes, stamp_at }
    }
}

fn body_frames_len(body: usize, frame_max: u32) -> usize {
    let chunk = frame_max as usize - 8;
    let frames = body.div_ceil(chunk);
    body + frames * 8
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn template_stamp_points_at_body() {
        let body = [0xAAu8; 16];
        let t = PublishTemplate::new(
            1,
            short!(""),
            short!("q"),
            &BasicProperties::default(),
            &body,
            FRAME_MAX,
        );
        let at = t.stamp_at.unwrap();
        assert_eq!(&t.bytes[at..at + 16], &body);
        assert_eq!(t.bytes[at - 7], FRAME_BODY);
        let small = PublishTemplate::new(
            1,
            short!(""),
            short!("q"),
            &BasicProperties::default(),
            &[1, 2],
            FRAME_MAX,
        );
        assert_eq!(small.stamp_at, None);
    }
}
