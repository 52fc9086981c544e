//! A hand-rolled AMQP client on `ringmq-codec`, for what real clients will not do:
//! read the exact server properties and tune values, send frames on channels that
//! were never opened, open channels past channel_max, send bad credentials without
//! client-side checks.

use std::net::SocketAddr;

use ringmq_codec::{
    decode_frame, encode_method, ChannelOpen, ConnectionCloseOk, ConnectionOpen, ConnectionStartOk, ConnectionTuneOk,
    DecodeError, FieldTable, FieldValue, Frame, Method, Table, PROTOCOL_HEADER,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use super::{within, Broker};

/// A frame read from the server, with what the tests look at copied out.
#[derive(Debug, Clone)]
pub struct Got {
    pub channel: u16,
    /// "connection.close", "basic.deliver", "header", "body", "heartbeat", ...
    pub name: &'static str,
    /// connection.start: server properties and mechanisms.
    pub start: Option<(FieldTable, String)>,
    /// connection.tune: channel_max, frame_max, heartbeat.
    pub tune: Option<(u16, u32, u16)>,
    /// connection.close / channel.close: code, text, class id, method id.
    pub close: Option<(u16, String, u16, u16)>,
    /// basic.ack / basic.nack from the server: delivery tag, multiple.
    pub ack: Option<(u64, bool)>,
    /// queue.declare-ok: message count, consumer count.
    pub declare_ok: Option<(u32, u32)>,
    /// basic.deliver: its delivery tag.
    pub deliver: Option<u64>,
    /// A content header: its `x-stream-offset` header, if any.
    pub stream_offset: Option<i64>,
    /// A content header: the body size.
    pub body_size: Option<u64>,
    /// A body frame: its bytes.
    pub body: Option<Vec<u8>>,
}

/// Any byte stream a raw connection can run over (a Unix socket, TLS).
pub trait RawIo: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> RawIo for T {}

enum Sock {
    Tcp(TcpStream),
    Other(Box<dyn RawIo>),
}

pub struct RawConn {
    sock: Sock,
    buf: Vec<u8>,
}

impl RawConn {
    pub async fn connect(addr: SocketAddr) -> RawConn {
        let sock = within("raw connect", TcpStream::connect(addr))
            .await
            .expect("raw connect");
        Self::from_tcp(sock)
    }

    /// Over a TCP stream the test connected itself (from a chosen address, say).
    pub fn from_tcp(sock: TcpStream) -> RawConn {
        sock.set_nodelay(true).expect("nodelay");
        RawConn {
            sock: Sock::Tcp(sock),
            buf: Vec::new(),
        }
    }

    /// Over any other stream: a Unix socket, a TLS session.
    pub fn over(stream: impl RawIo + 'static) -> RawConn {
        RawConn {
            sock: Sock::Other(Box::new(stream)),
            buf: Vec::new(),
        }
    }

    /// The socket itself, for byte-level checks (TCP connections only).
    pub fn socket(&mut self) -> &mut TcpStream {
        match &mut self.sock {
            Sock::Tcp(s) => s,
            Sock::Other(_) => panic!("not a TCP connection"),
        }
    }

    pub async fn send(&mut self, bytes: &[u8]) {
        let write = async {
            match &mut self.sock {
                Sock::Tcp(s) => s.write_all(bytes).await,
                Sock::Other(s) => s.write_all(bytes).await,
            }
        };
        within("raw write", write).await.expect("raw write");
    }

    pub async fn send_method(&mut self, channel: u16, method: &Method<'_>) {
        let mut out = Vec::new();
        encode_method(&mut out, channel, method);
        self.send(&out).await;
    }

    /// The next frame, or `None` when the server closed the socket.
    pub async fn recv(&mut self) -> Option<Got> {
        within("raw frame", self.recv_unbounded()).await
    }

    /// The next frame, or `None` when the server closed the socket, waiting
    /// as long as it takes (the caller bounds it).
    pub async fn recv_any(&mut self) -> Option<Got> {
        self.recv_unbounded().await
    }

    async fn recv_unbounded(&mut self) -> Option<Got> {
        loop {
            match decode_frame(&self.buf, 0) {
                Ok((frame, used)) => {
                    let got = describe(&frame);
                    self.buf.drain(..used);
                    return Some(got);
                }
                Err(DecodeError::Incomplete(_)) => {}
                Err(DecodeError::Malformed(e)) => panic!("server sent a malformed frame: {e:?}"),
            }
            let mut chunk = [0u8; 16384];
            let read = match &mut self.sock {
                Sock::Tcp(s) => s.read(&mut chunk).await,
                Sock::Other(s) => s.read(&mut chunk).await,
            };
            match read {
                Ok(0) | Err(_) => return None,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
            }
        }
    }

    /// The next frame that is not a heartbeat; panics on EOF.
    pub async fn expect_frame(&mut self) -> Got {
        loop {
            match self.recv().await {
                Some(g) if g.name == "heartbeat" => continue,
                Some(g) => return g,
                None => panic!("server closed the socket"),
            }
        }
    }

    /// Waits for the next method, which must be `name`.
    pub async fn expect(&mut self, name: &str) -> Got {
        let g = self.expect_frame().await;
        assert_eq!(g.name, name, "unexpected frame {g:?}");
        g
    }

    /// Expects connection.close, answers close-ok and expects the socket to close.
    /// Returns (code, text, class id, method id).
    pub async fn expect_connection_close(&mut self) -> (u16, String, u16, u16) {
        let g = self.expect_frame().await;
        let close = g
            .close
            .clone()
            .unwrap_or_else(|| panic!("expected connection.close, got {g:?}"));
        assert_eq!(g.name, "connection.close", "got {g:?}");
        assert_eq!(g.channel, 0, "connection.close on channel {}", g.channel);
        self.send_method(0, &Method::ConnectionCloseOk(ConnectionCloseOk)).await;
        self.expect_eof().await;
        close
    }

    /// Expects the server to close the socket (frames before that are skipped).
    pub async fn expect_eof(&mut self) {
        while self.recv().await.is_some() {}
    }

    /// Protocol header and connection.start; returns (server properties, mechanisms).
    pub async fn start(&mut self) -> (FieldTable, String) {
        self.send(&PROTOCOL_HEADER).await;
        let g = self.expect("connection.start").await;
        g.start.expect("start fields")
    }

    /// Sends start-ok with `mechanism` and `response`; client capabilities include
    /// authentication_failure_close.
    pub async fn start_ok(&mut self, mechanism: &str, response: &[u8]) {
        let mut caps = FieldTable::new();
        caps.insert(ringmq_codec::short!("authentication_failure_close"), true);
        caps.insert(ringmq_codec::short!("consumer_cancel_notify"), true);
        let mut props = FieldTable::new();
        props.insert(ringmq_codec::short!("product"), "ringmq raw test client");
        props.insert(ringmq_codec::short!("capabilities"), caps);
        let props = props.to_bytes();
        let m = Method::ConnectionStartOk(ConnectionStartOk {
            client_properties: Table::parse(&props).expect("table"),
            mechanism: ringmq_codec::ShortStr::new(mechanism).expect("short mechanism"),
            response,
            locale: ringmq_codec::short!("en_US"),
        });
        self.send_method(0, &m).await;
    }

    /// Full handshake with PLAIN; returns (server properties, tune values).
    pub async fn handshake(b: &Broker) -> (RawConn, FieldTable, (u16, u32, u16)) {
        let mut c = RawConn::connect(b.addr()).await;
        let (props, _) = c.start().await;
        c.start_ok("PLAIN", &plain(b.user(), b.pass())).await;
        let tune = c.tune_open().await;
        (c, props, tune)
    }

    /// A connection on the Unix socket at `path`, logged in as guest (a Unix
    /// socket's peer is local), vhost "/" and channel 1 open.
    pub async fn unix_guest(path: &std::path::Path) -> RawConn {
        let stream = within("unix connect", tokio::net::UnixStream::connect(path))
            .await
            .expect("unix connect");
        let mut c = RawConn::over(stream);
        c.start().await;
        c.start_ok("PLAIN", &plain("guest", "guest")).await;
        c.tune_open().await;
        c.open_channel(1).await;
        c
    }

    /// Expects tune, echoes it in tune-ok (heartbeat 0), opens vhost "/".
    pub async fn tune_open(&mut self) -> (u16, u32, u16) {
        let g = self.expect("connection.tune").await;
        let (channel_max, frame_max, heartbeat) = g.tune.expect("tune fields");
        let ok = Method::ConnectionTuneOk(ConnectionTuneOk {
            channel_max,
            frame_max,
            heartbeat: 0,
        });
        self.send_method(0, &ok).await;
        let open = Method::ConnectionOpen(ConnectionOpen {
            virtual_host: ringmq_codec::short!("/"),
            capabilities: ringmq_codec::ShortStr::EMPTY,
            insist: false,
        });
        self.send_method(0, &open).await;
        self.expect("connection.open-ok").await;
        (channel_max, frame_max, heartbeat)
    }

    /// basic.publish with an empty body and no properties: the method, header and
    /// body frames appended to `out`, so a test can send many in one write.
    pub fn encode_publish(out: &mut Vec<u8>, channel: u16, exchange: &str, routing_key: &str) {
        let m = Method::BasicPublish(ringmq_codec::BasicPublish {
            ticket: 0,
            exchange: ringmq_codec::ShortStr::new(exchange).expect("short exchange"),
            routing_key: ringmq_codec::ShortStr::new(routing_key).expect("short routing key"),
            mandatory: false,
            immediate: false,
        });
        encode_method(out, channel, &m);
        // Properties: flags 0, nothing else.
        ringmq_codec::encode_content(out, channel, 60, &[0, 0], b"", 131_072);
    }

    pub async fn open_channel(&mut self, id: u16) {
        self.send_method(
            id,
            &Method::ChannelOpen(ChannelOpen {
                out_of_band: ringmq_codec::ShortStr::EMPTY,
            }),
        )
        .await;
        let g = self.expect("channel.open-ok").await;
        assert_eq!(g.channel, id);
    }
}

/// The PLAIN response: `\0user\0pass`.
pub fn plain(user: &str, pass: &str) -> Vec<u8> {
    format!("\0{user}\0{pass}").into_bytes()
}

/// The AMQPLAIN response: a field table's entries without the length prefix.
pub fn amqplain(user: &str, pass: &str) -> Vec<u8> {
    // LOGIN must come first for some servers; encode by hand in that order.
    let mut out = Vec::new();
    for (k, v) in [("LOGIN", user), ("PASSWORD", pass)] {
        out.push(k.len() as u8);
        out.extend_from_slice(k.as_bytes());
        FieldValue::LongString(v.as_bytes().to_vec()).encode(&mut out);
    }
    out
}

pub fn describe(frame: &Frame<'_>) -> Got {
    let mut got = Got {
        channel: frame.channel(),
        name: "",
        start: None,
        tune: None,
        close: None,
        ack: None,
        declare_ok: None,
        deliver: None,
        stream_offset: None,
        body_size: None,
        body: None,
    };
    match frame {
        Frame::Method { method, .. } => {
            got.name = method.name();
            match method {
                Method::ConnectionStart(s) => {
                    got.start = Some((
                        s.server_properties.to_owned_table(),
                        String::from_utf8_lossy(s.mechanisms).into_owned(),
                    ))
                }
                Method::ConnectionTune(t) => got.tune = Some((t.channel_max, t.frame_max, t.heartbeat)),
                Method::ConnectionClose(c) => {
                    got.close = Some((c.reply_code, c.reply_text.to_string(), c.class_id, c.method_id))
                }
                Method::ChannelClose(c) => {
                    got.close = Some((c.reply_code, c.reply_text.to_string(), c.class_id, c.method_id))
                }
                Method::BasicAck(a) => got.ack = Some((a.delivery_tag, a.multiple)),
                Method::BasicNack(n) => got.ack = Some((n.delivery_tag, n.multiple)),
                Method::QueueDeclareOk(d) => got.declare_ok = Some((d.message_count, d.consumer_count)),
                Method::BasicDeliver(d) => got.deliver = Some(d.delivery_tag),
                _ => {}
            }
        }
        Frame::Header { header, .. } => {
            got.name = "header";
            got.body_size = Some(header.body_size);
            let props = ringmq_codec::BasicProperties::decode(header.properties_raw).ok();
            got.stream_offset = props
                .and_then(|p| p.headers)
                .and_then(|h| h.get("x-stream-offset"))
                .and_then(|v| v.as_i64());
        }
        Frame::Body { payload, .. } => {
            got.name = "body";
            got.body = Some(payload.to_vec());
        }
        Frame::Heartbeat => got.name = "heartbeat",
    }
    got
}
