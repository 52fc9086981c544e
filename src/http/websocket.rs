//! AMQP over WebSocket (issue 19), as LavinMQ and the browser AMQP clients
//! speak it: on the API listeners (HTTP, HTTPS, the Unix socket; not the
//! metrics one) a GET with `Upgrade: websocket` that offers the subprotocol
//! `amqp` is upgraded, on any path (as LavinMQ; RabbitMQ's plugins use `/ws`).
//! Binary messages carry the AMQP byte stream in both directions: a message
//! may hold part of a frame or several, the stream is their concatenation.
//!
//! The stream is handed to the transport as a [`StreamConn`] (through
//! `crate::shard`: `http` does not name `io`), which serves it as the same core
//! session a TCP socket gets: the same handshake, login, vhost access, limits
//! and heartbeats. Between the two runs a pipe: this side moves the payloads
//! of binary messages into it and what the core wrote out of it as binary
//! messages, and owns the WebSocket's rules. RFC 6455 framing is
//! tungstenite's, strict: unmasked client frames, control frames over 125
//! bytes, fragmented control frames, unknown opcodes and reserved bits fail the
//! connection (close 1002); a text message closes it with 1003, a message or
//! frame over the size limit with 1009. Pings are answered, fragmented
//! messages reassembled, and the close handshake completed either way.

use std::rc::Rc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use hyper::body::Incoming;
use hyper::header::{HeaderMap, HeaderValue, CONNECTION, UPGRADE};
use hyper::{Request, Response, StatusCode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::WebSocketStream;

use super::error::ApiError;
use crate::shard::{Shared, StreamConn, StreamVia};

/// The subprotocol a client must offer (`Sec-WebSocket-Protocol: amqp`).
pub const SUBPROTOCOL: &str = "amqp";
/// The API's `protocol` of these connections (RabbitMQ's Web STOMP and Web
/// MQTT name theirs so: "Web STOMP 1.2", "Web MQTT 3.1.1").
pub const PROTOCOL_NAME: &str = "Web AMQP 0-9-1";
/// The pipe between the WebSocket and the AMQP session buffers this much each
/// way; a side that is not read waits (backpressure, as a socket's buffers).
const PIPE_BYTES: usize = 64 << 10;
/// The most of the core's output sent as one binary message.
const OUT_MESSAGE_BYTES: usize = 64 << 10;
/// How long a closing side waits for the peer's close frame.
const CLOSE_WAIT: Duration = Duration::from_secs(2);
/// The largest message when `frame_max` is 0 (no limit in AMQP): tungstenite's default.
const MESSAGE_BYTES_UNLIMITED_FRAMES: usize = 64 << 20;
/// RFC 6455's GUID for `Sec-WebSocket-Accept`.
const ACCEPT_GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// Who is at the other end of an HTTP connection, and on which listener.
#[derive(Debug, Clone)]
pub(crate) struct Client {
    /// `203.0.113.7:50412` (or the Unix socket's name for the connection).
    pub peer: String,
    pub loopback: bool,
    /// The listener's port; None on the Unix socket.
    pub port: Option<u16>,
    /// On the HTTPS listener.
    pub tls: bool,
}

/// Whether a request asks to switch to WebSocket (`Upgrade: websocket` and
/// `Connection: upgrade`, case-insensitively).
pub(super) fn is_upgrade(headers: &HeaderMap) -> bool {
    let upgrade = headers.get_all(UPGRADE).iter().any(|v| has_token(v, "websocket"));
    upgrade && headers.get_all(CONNECTION).iter().any(|v| has_token(v, "upgrade"))
}

/// Whether a comma-separated header value has `token` (ASCII case-insensitive).
fn has_token(value: &HeaderValue, token: &str) -> bool {
    value
        .to_str()
        .is_ok_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
}

/// Answers an upgrade request: 101, and the AMQP session once hyper hands the
/// connection over; or why not (400, 405, 426).
pub(super) fn upgrade(
    shared: Rc<Shared>,
    mut client: Client,
    mut req: Request<Incoming>,
) -> Result<Response<Bytes>, ApiError> {
    let accept = check(&req)?;
    // A page from another site, in a browser on this host, is not this host:
    // without this any web page could log in as `guest` through its visitor's
    // browser (the default user's loopback rule).
    client.loopback &= origin_is_local(req.headers());
    let limit = message_limit(crate::core::mgmt::View::of(&shared.broker.borrow()).frame_max());
    let on_upgrade = hyper::upgrade::on(&mut req);
    tokio::task::spawn_local(async move {
        match on_upgrade.await {
            Ok(upgraded) => serve(shared, client, upgraded, limit).await,
            Err(e) => tracing::debug!(peer = %client.peer, error = %e, "WebSocket upgrade failed"),
        }
    });
    let mut resp = Response::new(Bytes::new());
    *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = resp.headers_mut();
    h.insert(UPGRADE, HeaderValue::from_static("websocket"));
    h.insert(CONNECTION, HeaderValue::from_static("Upgrade"));
    h.insert("sec-websocket-accept", accept);
    h.insert("sec-websocket-protocol", HeaderValue::from_static(SUBPROTOCOL));
    Ok(resp)
}

/// Whether the request's `Origin` (which browsers send, and other clients
/// usually not) is this host: none, or a page served from a loopback name or
/// address (`http://localhost:8080`, `http://127.0.0.1`, `http://[::1]:3000`).
fn origin_is_local(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(hyper::header::ORIGIN) else {
        return true;
    };
    let Some((_, authority)) = origin.to_str().ok().and_then(|o| o.split_once("://")) else {
        return false; // "null" (a sandboxed page, a file), or not an origin
    };
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => authority.split(':').next().unwrap_or(""),
    };
    let host = host.to_ascii_lowercase();
    host == "localhost"
        || host.ends_with(".localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.to_canonical().is_loopback())
}

/// The handshake's checks (RFC 6455 section 4.2.1); the `Sec-WebSocket-Accept` value.
fn check(req: &Request<Incoming>) -> Result<HeaderValue, ApiError> {
    let bad = |reason: &str| ApiError::bad_request(reason);
    if req.method() != hyper::Method::GET {
        return Err(ApiError::new(405, "method_not_allowed", "a WebSocket upgrade is a GET"));
    }
    let h = req.headers();
    if h.get("sec-websocket-version").and_then(|v| v.to_str().ok()) != Some("13") {
        return Err(ApiError::new(
            426,
            "upgrade_required",
            "WebSocket version 13 is the one spoken here (Sec-WebSocket-Version: 13)",
        ));
    }
    let key = h
        .get("sec-websocket-key")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .ok_or_else(|| bad("a WebSocket upgrade needs a Sec-WebSocket-Key"))?;
    use base64::Engine as _;
    let decoded = base64::engine::general_purpose::STANDARD.decode(key);
    if decoded.map_or(true, |k| k.len() != 16) {
        return Err(bad("Sec-WebSocket-Key is not 16 bytes in base64"));
    }
    let amqp = h
        .get_all("sec-websocket-protocol")
        .iter()
        .any(|v| v.to_str().is_ok_and(|v| v.split(',').any(|p| p.trim() == SUBPROTOCOL)));
    if !amqp {
        return Err(bad(
            "WebSocket upgrades here carry AMQP 0-9-1: offer the subprotocol amqp (Sec-WebSocket-Protocol: amqp)",
        ));
    }
    HeaderValue::from_str(&accept_key(key)).map_err(|_| bad("Sec-WebSocket-Key"))
}

/// `Sec-WebSocket-Accept` for a client's key: base64(SHA-1(key ++ GUID)).
fn accept_key(key: &str) -> String {
    use base64::Engine as _;
    use sha1::Digest as _;
    let digest = sha1::Sha1::new()
        .chain_update(key.as_bytes())
        .chain_update(ACCEPT_GUID.as_bytes())
        .finalize();
    base64::engine::general_purpose::STANDARD.encode(digest)
}

/// The largest message (and frame) a client may send: twice the broker's
/// `frame_max`, room for one frame of the largest size and the frames a
/// client sends with it (a publish's method and header). Over it the
/// connection closes with 1009.
fn message_limit(frame_max: u32) -> usize {
    match frame_max {
        0 => MESSAGE_BYTES_UNLIMITED_FRAMES,
        n => 2 * n as usize,
    }
}

/// Serves an upgraded connection: hands its AMQP stream to the transport and
/// moves bytes between the two until either ends.
async fn serve(shared: Rc<Shared>, client: Client, upgraded: hyper::upgrade::Upgraded, limit: usize) {
    let cfg = WebSocketConfig::default()
        .read_buffer_size(16 << 10)
        .write_buffer_size(0)
        .max_message_size(Some(limit))
        .max_frame_size(Some(limit))
        .accept_unmasked_frames(false);
    let io = hyper_util::rt::TokioIo::new(upgraded);
    let mut ws = WebSocketStream::from_raw_socket(io, Role::Server, Some(cfg)).await;
    let (ours, theirs) = tokio::io::duplex(PIPE_BYTES);
    let conn = StreamConn {
        stream: theirs,
        peer: client.peer.clone(),
        loopback: client.loopback,
        via: StreamVia {
            protocol: PROTOCOL_NAME,
            port: client.port,
            tls: client.tls,
        },
    };
    if !shared.adopt_stream(conn) {
        // max_connections (logged by the transport), or shutting down: "try again later".
        let reason = "no connection slot: max_connections reached, or the broker is stopping";
        let _ = ws.send(close(CloseCode::Again, reason)).await;
        let _ = tokio::time::timeout(CLOSE_WAIT, drain(&mut ws)).await;
        return;
    }
    pump(ws, ours, &client.peer).await;
}

/// How the moving of bytes ended.
enum End {
    /// The client sent a close frame.
    PeerClosed,
    /// The connection is gone (EOF, reset, an I/O error).
    Gone,
    /// The AMQP session is over (it closed its side of the pipe).
    AmqpDone,
    /// The client broke a rule: close with this code and reason.
    Failed(CloseCode, String),
}

type Ws = WebSocketStream<hyper_util::rt::TokioIo<hyper::upgrade::Upgraded>>;

/// Moves binary messages' payloads into the pipe and the pipe's bytes out as
/// binary messages; the two directions run independently, as a socket's do.
async fn pump(ws: Ws, pipe: tokio::io::DuplexStream, peer: &str) {
    let (mut pipe_rd, mut pipe_wr) = tokio::io::split(pipe);
    let (mut sink, mut stream) = ws.split();
    let end = {
        let inbound = async {
            while let Some(msg) = stream.next().await {
                match msg {
                    Ok(Message::Binary(b)) => {
                        if pipe_wr.write_all(&b).await.is_err() {
                            return End::AmqpDone;
                        }
                    }
                    Ok(Message::Text(_)) => {
                        return End::Failed(CloseCode::Unsupported, "AMQP goes in binary messages, not text".into())
                    }
                    Ok(Message::Close(_)) => return End::PeerClosed,
                    // Pings are answered by tungstenite (with the next read or write).
                    Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_)) => {}
                    Err(e) => return failure(e),
                }
            }
            End::Gone
        };
        tokio::select! {
            end = inbound => end,
            end = forward(&mut pipe_rd, &mut sink) => end,
        }
    };
    if let End::AmqpDone = end {
        // The session is gone: what it wrote last (a close-ok) goes out
        // before the close frame.
        let _ = tokio::time::timeout(CLOSE_WAIT, forward(&mut pipe_rd, &mut sink)).await;
    }
    // The AMQP session sees its peer go (EOF) from here on.
    drop((pipe_rd, pipe_wr));
    let mut ws = match sink.reunite(stream) {
        Ok(ws) => ws,
        Err(_) => return,
    };
    match end {
        // tungstenite queued the reply: flush it, then close the TCP connection
        // (the server closes first, RFC 6455 section 7.1.1).
        End::PeerClosed => {
            let _ = tokio::time::timeout(CLOSE_WAIT, async {
                let _ = ws.flush().await;
                drain(&mut ws).await;
            })
            .await;
        }
        End::Gone => {}
        End::AmqpDone => {
            let _ = ws.send(close(CloseCode::Normal, "")).await;
            let _ = tokio::time::timeout(CLOSE_WAIT, drain(&mut ws)).await;
        }
        End::Failed(code, reason) => {
            tracing::info!(%peer, code = u16::from(code), %reason, "WebSocket connection failed");
            let _ = ws.send(close(code, &reason)).await;
            let _ = tokio::time::timeout(CLOSE_WAIT, drain(&mut ws)).await;
        }
    }
}

/// Sends what the AMQP session writes as binary messages until it ends
/// (`AmqpDone`) or the connection fails (`Gone`).
async fn forward(
    pipe: &mut tokio::io::ReadHalf<tokio::io::DuplexStream>,
    sink: &mut futures_util::stream::SplitSink<Ws, Message>,
) -> End {
    let mut buf = vec![0u8; OUT_MESSAGE_BYTES];
    loop {
        let n = match pipe.read(&mut buf).await {
            Ok(0) | Err(_) => return End::AmqpDone,
            Ok(n) => n,
        };
        let msg = Message::Binary(Bytes::copy_from_slice(&buf[..n]));
        if sink.send(msg).await.is_err() {
            return End::Gone;
        }
    }
}

/// The close code and reason for a broken rule; `Gone` when the connection
/// just went away.
fn failure(e: WsError) -> End {
    use tokio_tungstenite::tungstenite::error::ProtocolError;
    match e {
        WsError::ConnectionClosed | WsError::AlreadyClosed | WsError::Io(_) => End::Gone,
        WsError::Protocol(ProtocolError::ResetWithoutClosingHandshake) => End::Gone,
        WsError::Capacity(c) => End::Failed(CloseCode::Size, c.to_string()),
        WsError::Utf8(_) => End::Failed(CloseCode::Invalid, "a text message that is not UTF-8".into()),
        other => End::Failed(CloseCode::Protocol, other.to_string()),
    }
}

/// A close message. Its reason is cut to what a control frame holds (125
/// bytes with the code), at a character boundary.
fn close(code: CloseCode, reason: &str) -> Message {
    let mut end = reason.len().min(123);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    Message::Close(Some(CloseFrame {
        code,
        reason: reason[..end].to_owned().into(),
    }))
}

/// Reads (and drops) what the client still sends until its close frame is in
/// (or the connection ends): closing with unread bytes would reset the
/// connection and lose our close frame.
async fn drain(ws: &mut Ws) {
    while let Some(Ok(msg)) = ws.next().await {
        if let Message::Close(_) = msg {
            let _ = ws.flush().await;
            break;
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn accept_key_of_the_rfc_example() {
        // RFC 6455 section 1.3.
        assert_eq!(
            super::accept_key("dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    #[test]
    fn origins_of_this_host() {
        let local = |origin: Option<&str>| {
            let mut h = super::HeaderMap::new();
            if let Some(o) = origin {
                h.insert(hyper::header::ORIGIN, o.parse().unwrap());
            }
            super::origin_is_local(&h)
        };
        assert!(local(None));
        for o in [
            "http://localhost:8080",
            "https://LOCALHOST",
            "http://127.0.0.1",
            "http://127.1.2.3:80",
            "http://[::1]:3000",
            "http://app.localhost",
        ] {
            assert!(local(Some(o)), "{o}");
        }
        for o in [
            "https://example.com",
            "http://localhost.example.com",
            "http://[2001:db8::1]",
            "null",
            "http://10.0.0.1:15672",
        ] {
            assert!(!local(Some(o)), "{o}");
        }
    }

    #[test]
    fn close_reasons_fit_a_control_frame() {
        let long = "é".repeat(100);
        let super::Message::Close(Some(f)) = super::close(super::CloseCode::Protocol, &long) else {
            panic!("a close message");
        };
        assert!(f.reason.len() <= 123);
    }
}
