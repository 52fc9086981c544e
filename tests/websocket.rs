//! AMQP over WebSocket (issue 19): on the HTTP port, an upgrade with the
//! subprotocol `amqp` carries AMQP 0-9-1 in binary messages, the same session
//! as over TCP.
//!
//! Real clients speak through it: lapin connects to a bridge in the test that
//! carries each of its TCP connections over one WebSocket (tokio-tungstenite,
//! binary messages both ways), as a browser client's socket would. Malformed
//! WebSocket traffic is written by hand on a raw socket after the upgrade.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;

use common::raw::{plain, RawConn};
use common::*;
use futures_util::{SinkExt, StreamExt};
use lapin::{Connection, ConnectionProperties};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

// ------------------------------------------------------------------ the bridge

type Ws = tokio_tungstenite::WebSocketStream<TcpStream>;

/// A WebSocket to the broker's HTTP port at `path`, offering `protocols`.
async fn ws_connect(http_port: u16, path: &str, protocols: Option<&str>) -> Result<Ws, String> {
    ws_connect_from(http_port, path, protocols, None).await
}

/// [`ws_connect`] as a browser page from `origin` would.
async fn ws_connect_from(
    http_port: u16,
    path: &str,
    protocols: Option<&str>,
    origin: Option<&str>,
) -> Result<Ws, String> {
    let tcp = TcpStream::connect(("127.0.0.1", http_port))
        .await
        .map_err(|e| e.to_string())?;
    ws_over(tcp, &format!("ws://127.0.0.1:{http_port}{path}"), protocols, origin).await
}

/// The WebSocket handshake over `io` (TCP, or TLS for `wss://`).
async fn ws_over<S>(
    io: S,
    url: &str,
    protocols: Option<&str>,
    origin: Option<&str>,
) -> Result<tokio_tungstenite::WebSocketStream<S>, String>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let mut req = url.into_client_request().expect("request");
    if let Some(p) = protocols {
        req.headers_mut()
            .insert("sec-websocket-protocol", p.parse().expect("header"));
    }
    if let Some(o) = origin {
        req.headers_mut().insert("origin", o.parse().expect("header"));
    }
    let (ws, resp) = tokio_tungstenite::client_async(req, io)
        .await
        .map_err(|e| e.to_string())?;
    let chosen = resp
        .headers()
        .get("sec-websocket-protocol")
        .map(|v| v.to_str().unwrap());
    assert_eq!(chosen, Some("amqp"), "the subprotocol chosen");
    Ok(ws)
}

/// Where a bridge takes its connections: the HTTP port, or HTTPS with a client
/// configuration that trusts its certificate.
#[derive(Clone)]
enum Target {
    /// The HTTP port, and the `Origin` a browser page would send.
    Http(u16, Option<&'static str>),
    Https(SocketAddr, Arc<rustls::ClientConfig>),
}

/// A local TCP address whose connections are each carried to the broker over
/// a WebSocket of their own: what a client writes goes as binary messages of
/// whatever size its writes have, and the broker's messages come back as bytes.
async fn bridge(b: &Broker) -> SocketAddr {
    bridge_to(Target::Http(b.http_port(), None)).await
}

async fn bridge_to(target: Target) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let target = target.clone();
            tokio::spawn(async move {
                match target {
                    Target::Http(port, origin) => {
                        let ws = ws_connect_from(port, "/ws", Some("amqp"), origin)
                            .await
                            .expect("WebSocket");
                        carry(tcp, ws).await
                    }
                    Target::Https(addr, config) => {
                        let sock = TcpStream::connect(addr).await.expect("connect");
                        let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
                        let tls = tokio_rustls::TlsConnector::from(config)
                            .connect(name, sock)
                            .await
                            .expect("TLS");
                        let url = format!("wss://localhost:{}/", addr.port());
                        let ws = ws_over(tls, &url, Some("amqp"), None).await.expect("WebSocket");
                        carry(tcp, ws).await
                    }
                }
            });
        }
    });
    addr
}

async fn carry<S>(tcp: TcpStream, ws: tokio_tungstenite::WebSocketStream<S>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let (mut sink, mut stream) = ws.split();
    let (mut rd, mut wr) = tcp.into_split();
    let up = async move {
        let mut buf = vec![0u8; 16 << 10];
        loop {
            match rd.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    let msg = Message::Binary(buf[..n].to_vec().into());
                    if sink.send(msg).await.is_err() {
                        return;
                    }
                }
            }
        }
        let _ = sink.close().await;
    };
    let down = async move {
        while let Some(Ok(msg)) = stream.next().await {
            let done = match msg {
                Message::Binary(b) => wr.write_all(&b).await.is_err(),
                Message::Close(_) => true,
                _ => false,
            };
            if done {
                break;
            }
        }
        let _ = wr.shutdown().await;
    };
    tokio::join!(up, down);
}

fn uri_via(addr: SocketAddr, user: &str, pass: &str) -> String {
    format!("amqp://{user}:{pass}@{addr}/%2f")
}

async fn lapin_via(addr: SocketAddr, b: &Broker) -> Connection {
    within(
        "lapin connect over WebSocket",
        Connection::connect(&uri_via(addr, b.user(), b.pass()), ConnectionProperties::default()),
    )
    .await
    .expect("lapin connect over WebSocket")
}

/// Open, declare (durable), publish (persistent) with confirms, consume, ack,
/// close: over WebSocket.
async fn round_trip(addr: SocketAddr, b: &Broker) {
    let conn = lapin_via(addr, b).await;
    let ch = confirm_channel(&conn).await;
    let q = unique("ws");
    within(
        "queue.declare",
        ch.queue_declare(
            q.as_str().into(),
            QueueDeclareOptions {
                durable: true,
                ..Default::default()
            },
            FieldTable::default(),
        ),
    )
    .await
    .expect("queue.declare");
    // Bodies of several frames (frame_max 128 KiB) and of none.
    let bodies: Vec<Vec<u8>> = vec![b"hello".to_vec(), vec![7u8; 300_000], Vec::new()];
    for body in &bodies {
        let confirm = within(
            "basic.publish",
            ch.basic_publish(
                "".into(),
                q.as_str().into(),
                BasicPublishOptions::default(),
                body,
                // Persistent to a durable queue: confirmed after the group commit.
                BasicProperties::default().with_delivery_mode(2),
            ),
        )
        .await
        .expect("basic.publish");
        let confirmation = within("publisher confirm", confirm).await.expect("confirm");
        assert!(confirmation.is_ack(), "{confirmation:?}");
    }
    let mut consumer = within(
        "basic.consume",
        ch.basic_consume(
            q.as_str().into(),
            "c".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        ),
    )
    .await
    .expect("basic.consume");
    for body in &bodies {
        let d = next(&mut consumer).await;
        assert_eq!(d.data.len(), body.len());
        assert_eq!(&d.data, body);
        within("basic.ack", d.ack(BasicAckOptions::default()))
            .await
            .expect("basic.ack");
    }
    within("connection.close", conn.close(200, "bye".into()))
        .await
        .expect("connection.close");
}

#[test]
fn lapin_speaks_amqp_over_websocket() {
    let b = Broker::new();
    if b.skip_external("lapin_speaks_amqp_over_websocket") {
        return;
    }
    run(async {
        let addr = bridge(&b).await;
        round_trip(addr, &b).await;

        // The API shows the connection as what it is, on the HTTP port.
        let conn = lapin_via(addr, &b).await;
        let api = http::Api::new(b.http_url(), b.user(), b.pass());
        let http_port = b.http_port();
        let found = tokio::task::spawn_blocking(move || {
            let list = api.ok("/api/connections");
            list.as_array().expect("a list").clone()
        })
        .await
        .expect("api");
        assert_eq!(found.len(), 1, "{found:?}");
        let c = &found[0];
        assert_eq!(c["protocol"], "Web AMQP 0-9-1", "{c}");
        assert_eq!(c["port"], http_port, "{c}");
        assert_eq!(c["ssl"], false, "{c}");
        assert_eq!(c["peer_host"], "127.0.0.1", "{c}");
        assert_eq!(c["user"], "guest", "{c}");
        let name = c["name"].as_str().expect("name");
        assert!(name.ends_with(&format!(":{http_port}")), "{name}");
        within("connection.close", conn.close(200, "bye".into()))
            .await
            .expect("connection.close");
    });
}

#[test]
fn the_epoll_backend_serves_websocket_too() {
    let b = Broker::with_args(&["--io=epoll"]);
    if b.skip_external("the_epoll_backend_serves_websocket_too") {
        return;
    }
    run(async {
        let addr = bridge(&b).await;
        round_trip(addr, &b).await;
    });
}

#[test]
fn wss_on_the_https_listener() {
    let pki = common::tls::pki(common::tls::KeyKind::EcdsaP256);
    let (cert, key) = (pki.cert_path.to_str().unwrap(), pki.key_path.to_str().unwrap());
    let b = Broker::with_args(&["--https-port", "0", "--cert", cert, "--key", key]);
    if b.skip_external("wss_on_the_https_listener") {
        return;
    }
    let https = listener_addr(&b, "HTTPS API listener started");
    let mut config = (*common::tls::client_config(&pki.ca_der, rustls::DEFAULT_VERSIONS)).clone();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    run(async {
        let addr = bridge_to(Target::Https(https, Arc::new(config))).await;
        round_trip(addr, &b).await;
        let conn = lapin_via(addr, &b).await;
        let api = http::Api::new(b.http_url(), b.user(), b.pass());
        let found = tokio::task::spawn_blocking(move || api.ok("/api/connections"))
            .await
            .expect("api");
        let c = &found[0];
        assert_eq!(c["protocol"], "Web AMQP 0-9-1", "{c}");
        assert_eq!(c["port"], https.port(), "{c}");
        assert_eq!(c["ssl"], true, "{c}");
        within("connection.close", conn.close(200, "bye".into()))
            .await
            .expect("connection.close");
    });
}

#[test]
fn pages_from_other_sites_are_not_loopback() {
    let b = Broker::new();
    if b.skip_external("pages_from_other_sites_are_not_loopback") {
        return;
    }
    let api = http::Api::new(b.http_url(), b.user(), b.pass());
    api.add_user("ws-user", "ws-pass", "", true);
    run(async {
        // A browser on this host showing another site's page: guest (loopback
        // only) is refused, as from another host.
        let evil = bridge_to(Target::Http(b.http_port(), Some("https://evil.example"))).await;
        let r = within(
            "lapin connect",
            Connection::connect(&uri_via(evil, "guest", "guest"), ConnectionProperties::default()),
        )
        .await;
        match r {
            Ok(_) => panic!("guest logged in from another site's page"),
            Err(e) => {
                let (code, text) = amqp_error(&e);
                assert_eq!(code, 403, "{text}");
            }
        }
        // Other users log in from any page.
        let conn = within(
            "lapin connect",
            Connection::connect(&uri_via(evil, "ws-user", "ws-pass"), ConnectionProperties::default()),
        )
        .await
        .expect("ws-user logs in");
        within("close", conn.close(200, "bye".into())).await.expect("close");
        // A page served from this host is this host.
        let local = bridge_to(Target::Http(b.http_port(), Some("http://localhost:8080"))).await;
        round_trip(local, &b).await;
    });
}

/// The address from the broker's `what ... addr=` log line.
fn listener_addr(b: &Broker, what: &str) -> SocketAddr {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let log = std::fs::read_to_string(b.log_path()).unwrap_or_default();
        if let Some(line) = log.lines().rev().find(|l| l.contains(what)) {
            let at = line.find("addr=").expect("addr= in the listener line") + 5;
            let addr = line[at..].split_whitespace().next().unwrap();
            return addr.parse().unwrap_or_else(|e| panic!("{addr}: {e}"));
        }
        assert!(std::time::Instant::now() < deadline, "no {what:?} in the log:\n{log}");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

#[test]
fn wrong_credentials_get_the_amqp_refusal() {
    let b = Broker::new();
    if b.skip_external("wrong_credentials_get_the_amqp_refusal") {
        return;
    }
    run(async {
        let addr = bridge(&b).await;
        let r = within(
            "lapin connect",
            Connection::connect(
                &uri_via(addr, b.user(), "not-the-password"),
                ConnectionProperties::default(),
            ),
        )
        .await;
        match r {
            Ok(_) => panic!("login with a wrong password succeeded"),
            Err(e) => {
                let (code, text) = amqp_error(&e);
                assert_eq!(code, 403);
                assert!(text.starts_with("ACCESS_REFUSED - Login was refused"), "{text:?}");
            }
        }
        // On the wire: connection.close 403, as over TCP.
        let mut raw = RawConn::connect(addr).await;
        raw.start().await;
        raw.start_ok("PLAIN", &plain(b.user(), "nope")).await;
        let (code, text, _, _) = raw.expect_connection_close().await;
        assert_eq!(code, 403, "{text}");
        // The tuning is the core's, as over TCP; channel_max holds.
        let mut raw = RawConn::connect(addr).await;
        raw.start().await;
        raw.start_ok("PLAIN", &plain(b.user(), b.pass())).await;
        let tune = raw.tune_open().await;
        let (_tcp, _, tcp_tune) = RawConn::handshake(&b).await;
        assert_eq!(tune, tcp_tune, "channel_max, frame_max, heartbeat as over TCP");
        raw.open_channel(1).await;
    });
}

// ------------------------------------------------------ the handshake, by hand

const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

/// Sends an upgrade request with `extra` header lines; the response's head
/// (lowercased) and the socket.
async fn upgrade_request(b: &Broker, extra: &str) -> (String, TcpStream) {
    let mut s = TcpStream::connect(("127.0.0.1", b.http_port())).await.expect("connect");
    let req = format!(
        "GET /ws HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {KEY}\r\n{extra}\r\n"
    );
    s.write_all(req.as_bytes()).await.expect("write");
    let mut head = Vec::new();
    within("the response's head", async {
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            let n = s.read(&mut byte).await.expect("read");
            assert!(
                n == 1,
                "EOF in the response's head: {:?}",
                String::from_utf8_lossy(&head)
            );
            head.push(byte[0]);
        }
    })
    .await;
    (String::from_utf8_lossy(&head).to_lowercase(), s)
}

/// A socket past a successful upgrade.
async fn upgraded(b: &Broker) -> TcpStream {
    let (head, s) = upgrade_request(b, "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: mqtt, amqp\r\n").await;
    assert!(head.starts_with("http/1.1 101"), "{head}");
    assert!(head.contains("sec-websocket-protocol: amqp\r\n"), "{head}");
    // RFC 6455 section 1.3's example key and its answer.
    assert!(
        head.contains("sec-websocket-accept: s3pplmbitxaq9kygzzhzrbk+xoo=\r\n"),
        "{head}"
    );
    s
}

#[test]
fn upgrades_without_the_amqp_subprotocol_are_refused() {
    let b = Broker::new();
    if b.skip_external("upgrades_without_the_amqp_subprotocol_are_refused") {
        return;
    }
    run(async {
        for extra in [
            "Sec-WebSocket-Version: 13\r\n",
            "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: mqtt\r\n",
        ] {
            let (head, mut s) = upgrade_request(&b, extra).await;
            assert!(head.starts_with("http/1.1 400"), "{head}");
            let mut body = vec![0u8; 512];
            let n = within("the body", s.read(&mut body)).await.expect("read");
            let body = String::from_utf8_lossy(&body[..n]);
            assert!(body.contains("subprotocol amqp"), "{body}");
        }
        // Another version than 13: 426 naming the one spoken.
        let (head, _) = upgrade_request(&b, "Sec-WebSocket-Version: 8\r\nSec-WebSocket-Protocol: amqp\r\n").await;
        assert!(head.starts_with("http/1.1 426"), "{head}");
        // A client library sees the refusal too.
        let Err(e) = ws_connect(b.http_port(), "/", None).await else {
            panic!("an upgrade without the subprotocol was accepted");
        };
        assert!(e.contains("400"), "{e}");
        // The API is still the API.
        let api = http::Api::new(b.http_url(), b.user(), b.pass());
        let status = tokio::task::spawn_blocking(move || api.get("/api/overview").status)
            .await
            .expect("api");
        assert_eq!(status, 200);
    });
}

/// A masked client frame: `first` is FIN and the opcode.
fn masked(first: u8, payload: &[u8]) -> Vec<u8> {
    let mask = [0x37, 0xfa, 0x21, 0x3d];
    let mut f = vec![first];
    match payload.len() {
        n if n < 126 => f.push(0x80 | n as u8),
        n if n < 65536 => {
            f.push(0x80 | 126);
            f.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            f.push(0x80 | 127);
            f.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    f.extend_from_slice(&mask);
    f.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    f
}

/// The next frame from the server (unmasked): its first byte and payload.
async fn read_frame(s: &mut TcpStream) -> (u8, Vec<u8>) {
    within("a WebSocket frame", async {
        let mut head = [0u8; 2];
        s.read_exact(&mut head).await.expect("frame head");
        assert_eq!(head[1] & 0x80, 0, "server frames are not masked");
        let len = match head[1] & 0x7f {
            126 => s.read_u16().await.expect("length") as usize,
            127 => s.read_u64().await.expect("length") as usize,
            n => n as usize,
        };
        let mut payload = vec![0u8; len];
        s.read_exact(&mut payload).await.expect("payload");
        (head[0], payload)
    })
    .await
}

/// Expects the server's close frame with `code`, answers it, and expects the
/// connection to end.
async fn expect_close(s: &mut TcpStream, code: u16) {
    let (first, payload) = read_frame(s).await;
    assert_eq!(first, 0x88, "a close frame, got {first:#x} {payload:?}");
    assert!(payload.len() >= 2, "a close code");
    let got = u16::from_be_bytes([payload[0], payload[1]]);
    assert_eq!(
        got,
        code,
        "close code (reason {:?})",
        String::from_utf8_lossy(&payload[2..])
    );
    // Our close reply may meet a socket the server closed already.
    let _ = s.write_all(&masked(0x88, &payload[..2])).await;
    within("the server closes the connection", async {
        let mut sink = [0u8; 256];
        loop {
            match s.read(&mut sink).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
    })
    .await;
}

#[test]
fn websocket_rules_are_kept() {
    let b = Broker::new();
    if b.skip_external("websocket_rules_are_kept") {
        return;
    }
    run(async {
        // A ping is answered; a fragmented message carrying the protocol header
        // in two pieces is one stream; the broker answers with connection.start.
        let mut s = upgraded(&b).await;
        s.write_all(&masked(0x89, b"hi")).await.expect("ping");
        let (first, payload) = read_frame(&mut s).await;
        assert_eq!((first, payload.as_slice()), (0x8a, &b"hi"[..]), "pong");
        s.write_all(&masked(0x02, b"AMQ")).await.expect("first fragment");
        s.write_all(&masked(0x80, b"P\x00\x00\x09\x01"))
            .await
            .expect("last fragment");
        let mut stream = Vec::new();
        while stream.len() < 7 || stream.len() < 8 + u32::from_be_bytes(stream[3..7].try_into().unwrap()) as usize {
            let (first, payload) = read_frame(&mut s).await;
            assert_eq!(first, 0x82, "binary messages");
            stream.extend_from_slice(&payload);
        }
        assert_eq!(&stream[..3], &[1, 0, 0], "a method frame on channel 0");
        assert_eq!(&stream[7..11], &[0, 10, 0, 10], "connection.start");
        // The client's close is answered, and the server closes the TCP connection.
        s.write_all(&masked(0x88, &1000u16.to_be_bytes())).await.expect("close");
        let (first, payload) = read_frame(&mut s).await;
        assert_eq!((first, &payload[..2]), (0x88, &1000u16.to_be_bytes()[..]));
        let mut rest = Vec::new();
        within("EOF", s.read_to_end(&mut rest)).await.expect("EOF");
        assert!(rest.is_empty());

        // The core ending the session ends the WebSocket: a protocol header it
        // does not speak gets the one it does, then close 1000.
        let mut s = upgraded(&b).await;
        s.write_all(&masked(0x82, b"AMQP\x00\x00\x09\x02"))
            .await
            .expect("header");
        let mut got = Vec::new();
        loop {
            let (first, payload) = read_frame(&mut s).await;
            if first == 0x88 {
                assert_eq!(&payload[..2], &1000u16.to_be_bytes()[..], "close 1000");
                break;
            }
            assert_eq!(first, 0x82, "binary messages");
            got.extend_from_slice(&payload);
        }
        assert_eq!(got, b"AMQP\x00\x00\x09\x01");
        s.write_all(&masked(0x88, &1000u16.to_be_bytes()))
            .await
            .expect("close reply");
        let mut rest = Vec::new();
        within("EOF", s.read_to_end(&mut rest)).await.expect("EOF");

        // Text messages are not AMQP: 1003.
        let mut s = upgraded(&b).await;
        s.write_all(&masked(0x81, b"AMQP\x00\x00\x09\x01")).await.expect("text");
        expect_close(&mut s, 1003).await;

        // Protocol errors: 1002.
        let unmasked = [&[0x82u8, 0x08][..], b"AMQP\x00\x00\x09\x01"].concat();
        let cases: Vec<(&str, Vec<u8>)> = vec![
            ("an unmasked client frame", unmasked),
            ("a control frame over 125 bytes", masked(0x89, &[0u8; 126])),
            ("a fragmented control frame", masked(0x09, b"hi")),
            ("a reserved data opcode", masked(0x83, b"x")),
            ("a reserved control opcode", masked(0x8b, b"")),
            ("reserved bits", masked(0xc2, b"x")),
            ("a continuation without a start", masked(0x80, b"x")),
        ];
        for (what, frame) in cases {
            let mut s = upgraded(&b).await;
            s.write_all(&frame).await.expect(what);
            eprintln!("{what}");
            expect_close(&mut s, 1002).await;
        }

        // Over the size limit (twice frame_max): 1009, from the frame's header.
        let mut s = upgraded(&b).await;
        let mut head = vec![0x82, 0x80 | 127];
        head.extend_from_slice(&(1u64 << 20).to_be_bytes());
        head.extend_from_slice(&[1, 2, 3, 4]);
        s.write_all(&head).await.expect("header");
        expect_close(&mut s, 1009).await;
        // ... and a message fragmented past it.
        let mut s = upgraded(&b).await;
        let piece = vec![0u8; 200_000];
        s.write_all(&masked(0x02, &piece)).await.expect("first fragment");
        let _ = s.write_all(&masked(0x00, &piece)).await;
        expect_close(&mut s, 1009).await;

        // The broker goes on serving, over TCP and over WebSocket.
        let (conn, _ch) = open(&b).await;
        within("close", conn.close(200, "bye".into())).await.expect("close");
        let addr = bridge(&b).await;
        round_trip(addr, &b).await;
    });
}

#[test]
fn max_connections_counts_websocket_connections() {
    let b = Broker::with_args(&["--max-connections", "1"]);
    if b.skip_external("max_connections_counts_websocket_connections") {
        return;
    }
    run(async {
        let (conn, _ch) = open(&b).await;
        // The upgrade succeeds, then the WebSocket closes: 1013, try again later.
        let mut s = upgraded(&b).await;
        expect_close(&mut s, 1013).await;
        within("close", conn.close(200, "bye".into())).await.expect("close");
        // With the TCP connection gone, the WebSocket one is let in.
        eventually("a connection slot", || admitted(&b)).await;
        let addr = bridge(&b).await;
        round_trip(addr, &b).await;
    });
}

/// Whether a WebSocket connection gets an AMQP session (connection.start),
/// not a close frame.
async fn admitted(b: &Broker) -> bool {
    let mut s = upgraded(b).await;
    s.write_all(&masked(0x82, b"AMQP\x00\x00\x09\x01"))
        .await
        .expect("header");
    let (first, _) = read_frame(&mut s).await;
    first == 0x82
}

#[test]
fn a_stopping_broker_closes_websocket_sessions() {
    for io in ["uring", "epoll"] {
        let io_flag = format!("--io={io}");
        let mut b = Broker::with_args(&[io_flag.as_str()]);
        if b.skip_external("a_stopping_broker_closes_websocket_sessions") {
            return;
        }
        run(async {
            let addr = bridge(&b).await;
            let conn = lapin_via(addr, &b).await;
            let _ch = channel(&conn).await;
            // SIGTERM: the session is closed by the broker (connection.close
            // through the WebSocket), and the broker exits cleanly.
            tokio::task::block_in_place(|| b.stop());
            closed_by_server(&conn).await;
        });
        let log = std::fs::read_to_string(b.log_path()).expect("log");
        assert!(log.contains("shutdown complete"), "{io}: {log}");
        assert!(!log.contains("connections still open at shutdown"), "{io}: {log}");
    }
}
