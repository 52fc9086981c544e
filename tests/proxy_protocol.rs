//! The PROXY protocol behind a load balancer (issue 19): Debian's haproxy in
//! front of the broker sends v1 (`send-proxy`) and v2 (`send-proxy-v2`)
//! headers; the management API shows the client haproxy accepted, not
//! haproxy; the default user's loopback rule looks at the header's address; a
//! connection without a valid header is closed, with a log line naming the
//! peer and why. On both backends, and on AMQPS (the header before the TLS
//! ClientHello).

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::haproxy::{Frontend, Haproxy};
use common::http::Api;
use common::raw::{plain, RawConn};
use common::tls::{KeyKind, BACKENDS};
use common::*;
use ringmq_codec::PROTOCOL_HEADER;
use serde_json::Value;

/// A TCP connection to `to` from the loopback address `from` (127.0.0.x), so
/// the client's address differs from haproxy's own (127.0.0.1).
async fn tcp_from(from: &str, to: SocketAddr) -> tokio::net::TcpStream {
    let s = tokio::net::TcpSocket::new_v4().unwrap();
    s.bind(format!("{from}:0").parse().unwrap()).unwrap();
    within("connect", s.connect(to)).await.expect("connect")
}

/// Logs in as `user` and opens the vhost: the broker let it in.
async fn log_in(c: &mut RawConn, user: &str, pass: &str) {
    c.start().await;
    c.start_ok("PLAIN", &plain(user, pass)).await;
    c.tune_open().await;
}

/// The connection the API shows for the peer `host:port`, if any.
fn api_connection(b: &Broker, host: &str, port: u16) -> Option<Value> {
    let all = Api::new(b.http_url(), "guest", "guest").ok("/api/connections");
    all.as_array()
        .unwrap()
        .iter()
        .find(|c| c["peer_host"] == host && c["peer_port"] == port)
        .cloned()
}

/// The connection must be in the API under the client's own address and port.
#[track_caller]
fn assert_shown_as(b: &Broker, client: SocketAddr) {
    let host = client.ip().to_string();
    let c = api_connection(b, &host, client.port()).unwrap_or_else(|| {
        let all = Api::new(b.http_url(), "guest", "guest").ok("/api/connections");
        panic!("no connection from {client} in the API: {all:#}\n{}", b.log_tail())
    });
    assert!(
        c["name"].as_str().unwrap().starts_with(&format!("{client} -> ")),
        "{c:#}"
    );
}

/// The broker's log must come to hold a line with every one of `parts`.
fn wait_for_log_line(b: &Broker, parts: &[&str]) {
    let deadline = Instant::now() + WAIT;
    loop {
        let log = std::fs::read_to_string(b.log_path()).unwrap_or_default();
        if log.lines().any(|l| parts.iter().all(|p| l.contains(p))) {
            return;
        }
        assert!(Instant::now() < deadline, "no log line with {parts:?}:\n{log}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Sends the AMQP protocol header without a PROXY header: the broker must
/// close the socket without a word of AMQP, and log the refusal with the peer.
async fn direct_client_is_refused(b: &Broker, addr: SocketAddr) {
    let mut c = RawConn::connect(addr).await;
    let me = c.socket().local_addr().unwrap();
    c.send(&PROTOCOL_HEADER).await;
    assert!(c.recv().await.is_none(), "a client without a PROXY header was answered");
    wait_for_log_line(
        b,
        &[
            "connection refused: no valid PROXY header",
            &format!("peer=\"{me}\""),
            "the connection starts with \"AMQP",
        ],
    );
}

#[test]
fn haproxy_v1_and_v2_name_the_client_on_both_backends() {
    for io in BACKENDS {
        let b = Broker::with_args(&[&format!("--io={io}"), "--amqp-proxy-protocol", "1"]);
        if b.skip_external("haproxy_v1_and_v2_name_the_client_on_both_backends") {
            return;
        }
        let haproxy = Haproxy::start(&[
            Frontend {
                backend: b.addr(),
                send: "send-proxy-v2",
            },
            Frontend {
                backend: b.addr(),
                send: "send-proxy",
            },
        ]);
        run(async {
            for (frontend, from) in [(0, "127.0.0.2"), (1, "127.0.0.3")] {
                let sock = tcp_from(from, haproxy.addr(frontend)).await;
                let me = sock.local_addr().unwrap();
                let mut c = RawConn::from_tcp(sock);
                // guest may: the client is on loopback (127.0.0.x).
                log_in(&mut c, "guest", "guest").await;
                assert_shown_as(&b, me);
            }
            // A real client library through haproxy: a message there and back.
            let uri = format!("amqp://guest:guest@{}/%2f", haproxy.addr(0));
            let conn = within(
                "lapin via haproxy",
                lapin::Connection::connect(&uri, Default::default()),
            )
            .await
            .expect("lapin through haproxy");
            let ch = channel(&conn).await;
            let q = unique("proxied");
            temp_queue(&ch, &q).await;
            publish(&ch, "", &q, b"through haproxy").await;
            assert_eq!(get_all(&ch, &q).await, ["through haproxy"]);
            direct_client_is_refused(&b, b.addr()).await;
        });
    }
}

/// v2 header bytes for a TCP4 client `source` reaching `destination`.
fn v2_header(source: SocketAddr, destination: SocketAddr) -> Vec<u8> {
    let (SocketAddr::V4(s), SocketAddr::V4(d)) = (source, destination) else {
        panic!("IPv4 only here");
    };
    let mut h = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    h.extend_from_slice(&[0x21, 0x11, 0, 12]);
    h.extend_from_slice(&s.ip().octets());
    h.extend_from_slice(&d.ip().octets());
    h.extend_from_slice(&s.port().to_be_bytes());
    h.extend_from_slice(&d.port().to_be_bytes());
    h
}

#[test]
fn the_loopback_rule_and_the_api_use_the_header_address() {
    let b = Broker::with_args(&["--amqp-proxy-protocol", "2"]);
    if b.skip_external("the_loopback_rule_and_the_api_use_the_header_address") {
        return;
    }
    let api = Api::new(b.http_url(), "guest", "guest");
    api.add_user("remote", "remote-pw", "", true);
    run(async {
        // guest from a documentation address (a header's bytes: no traffic goes
        // there) is refused although the socket is on loopback.
        let far: SocketAddr = "203.0.113.7:50412".parse().unwrap();
        let mut c = RawConn::connect(b.addr()).await;
        c.send(&v2_header(far, b.addr())).await;
        c.start().await;
        c.start_ok("PLAIN", &plain("guest", "guest")).await;
        let (code, text, _, _) = c.expect_connection_close().await;
        assert_eq!(code, 403, "{text}");
        // Another user from there logs in and is shown there (v1 this time).
        let mut c = RawConn::connect(b.addr()).await;
        c.send(b"PROXY TCP4 198.51.100.20 127.0.0.1 4242 5672\r\n").await;
        log_in(&mut c, "remote", "remote-pw").await;
        assert_shown_as(&b, "198.51.100.20:4242".parse().unwrap());
        // LOCAL (a proxy's own health check) and UNKNOWN: the socket's own peer.
        for header in [&b"\r\n\r\n\0\r\nQUIT\n\x20\x00\x00\x00"[..], b"PROXY UNKNOWN\r\n"] {
            let mut c = RawConn::connect(b.addr()).await;
            let me = c.socket().local_addr().unwrap();
            c.send(header).await;
            log_in(&mut c, "guest", "guest").await;
            assert_shown_as(&b, me);
        }
    });
}

#[test]
fn bad_headers_are_closed_at_once_and_silent_ones_at_the_handshake_timeout() {
    let b = Broker::with_args(&["--amqp-proxy-protocol", "1", "--handshake-timeout", "700"]);
    if b.skip_external("bad_headers_are_closed_at_once_and_silent_ones_at_the_handshake_timeout") {
        return;
    }
    run(async {
        for (bytes, why) in [
            (&b"PROXY TCP4 1.2.3.4 5.6.7.8 99999 1\r\n"[..], "bad port"),
            (b"PROXY TCP5 1.2.3.4 5.6.7.8 1 1\r\n", "protocol is not TCP4"),
            (&[b'x'; 200][..], "no PROXY protocol header"),
            (b"\r\n\r\n\0\r\nQUIT\n\x21\x12\x00\x0c", "UDP client"),
        ] {
            let mut c = RawConn::connect(b.addr()).await;
            c.send(bytes).await;
            assert!(c.recv().await.is_none(), "{why}: answered");
            // Closed for the header, not at the handshake timeout: the log line
            // names the header's fault (no wall-clock bound: shared machines).
            wait_for_log_line(&b, &["no valid PROXY header", why]);
        }
        // A v1 line that never ends: refused at 107 bytes.
        let mut c = RawConn::connect(b.addr()).await;
        c.send(format!("PROXY UNKNOWN {}", "y".repeat(300)).as_bytes()).await;
        assert!(c.recv().await.is_none());
        wait_for_log_line(&b, &["without a CRLF in its first 107 bytes"]);
        // Half a header, then nothing: closed at the handshake timeout.
        let mut c = RawConn::connect(b.addr()).await;
        c.send(b"PROXY TCP4 10.0.0.1").await;
        let started = Instant::now();
        assert!(c.recv().await.is_none());
        let took = started.elapsed();
        // Not before the timeout (a lower bound holds on any machine).
        assert!(took >= Duration::from_millis(600), "closed after {took:?}");
        wait_for_log_line(&b, &["no complete PROXY header within 700 ms (19 bytes came)"]);
        // The broker serves proxied clients as before.
        let mut c = RawConn::connect(b.addr()).await;
        c.send(b"PROXY TCP4 127.0.0.5 127.0.0.1 1000 5672\r\n").await;
        log_in(&mut c, "guest", "guest").await;
    });
}

/// AMQPS behind haproxy: the header comes before the TLS ClientHello; the
/// client's TLS session goes through haproxy untouched.
#[test]
fn amqps_behind_haproxy_on_both_backends() {
    let pki = common::tls::pki(KeyKind::EcdsaP256);
    for io in BACKENDS {
        let (b, amqps) = common::tls::broker(&pki, io, &["--amqps-proxy-protocol", "2"]);
        if b.skip_external("amqps_behind_haproxy_on_both_backends") {
            return;
        }
        let haproxy = Haproxy::start(&[Frontend {
            backend: amqps,
            send: "send-proxy-v2",
        }]);
        let config = common::tls::client_config(&pki.ca_der, &[&rustls::version::TLS13, &rustls::version::TLS12]);
        run(async {
            let sock = tcp_from("127.0.0.4", haproxy.addr(0)).await;
            let me = sock.local_addr().unwrap();
            let tls = tokio_rustls::TlsConnector::from(Arc::clone(&config));
            let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
            let stream = within("TLS through haproxy", tls.connect(name, sock))
                .await
                .expect("TLS handshake through haproxy");
            let mut c = RawConn::over(stream);
            log_in(&mut c, "guest", "guest").await;
            assert_shown_as(&b, me);
            let shown = api_connection(&b, "127.0.0.4", me.port()).unwrap();
            assert_eq!(shown["ssl"], true, "{shown:#}");
        });
        // Straight to the AMQPS port, without the header: refused, named.
        let direct = common::tls::amqp_start(amqps, config.clone());
        assert!(direct.is_err(), "a TLS client without a PROXY header was served");
        wait_for_log_line(&b, &["no valid PROXY header", "listener=\"AMQPS\""]);
        // The plain port does not want a header: a direct client is served there.
        run(async {
            let mut c = RawConn::connect(b.addr()).await;
            log_in(&mut c, "guest", "guest").await;
        });
    }
}

/// A stream whose first write carries `head` in front of the caller's bytes,
/// in one write: a header and the client's first bytes in one segment, as a
/// proxy may send them when the client spoke first.
struct Prepend {
    inner: tokio::net::TcpStream,
    head: Option<Vec<u8>>,
}

impl tokio::io::AsyncRead for Prepend {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl tokio::io::AsyncWrite for Prepend {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        use std::task::Poll;
        let Some(head) = self.head.take() else {
            return std::pin::Pin::new(&mut self.inner).poll_write(cx, buf);
        };
        let both = [head.as_slice(), buf].concat();
        // A loopback socket takes a few hundred bytes whole.
        match std::pin::Pin::new(&mut self.inner).poll_write(cx, &both) {
            Poll::Ready(Ok(n)) if n == both.len() => Poll::Ready(Ok(buf.len())),
            Poll::Ready(Ok(n)) => Poll::Ready(Err(std::io::Error::other(format!("short write {n}")))),
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => {
                self.head = Some(head);
                Poll::Pending
            }
        }
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// The client's first bytes in the same segment as the header (the AMQP
/// protocol header; a TLS ClientHello on AMQPS): read with the header, they
/// must still reach the core (or rustls) first, on both backends.
#[test]
fn bytes_that_come_with_the_header_are_the_clients_on_both_backends() {
    let pki = common::tls::pki(KeyKind::EcdsaP256);
    for io in BACKENDS {
        let (b, amqps) = common::tls::broker(&pki, io, &["--amqp-proxy-protocol", "1", "--amqps-proxy-protocol", "1"]);
        if b.skip_external("bytes_that_come_with_the_header_are_the_clients_on_both_backends") {
            return;
        }
        let config = common::tls::client_config(&pki.ca_der, &[&rustls::version::TLS13]);
        run(async {
            let client: SocketAddr = "127.0.0.9:777".parse().unwrap();
            let mut c = RawConn::connect(b.addr()).await;
            let mut first = v2_header(client, b.addr());
            first.extend_from_slice(&PROTOCOL_HEADER);
            c.send(&first).await;
            c.expect("connection.start").await;
            c.start_ok("PLAIN", &plain("guest", "guest")).await;
            c.tune_open().await;
            assert_shown_as(&b, client);

            let tls_client: SocketAddr = "127.0.0.10:778".parse().unwrap();
            let sock = within("connect", tokio::net::TcpStream::connect(amqps)).await.unwrap();
            let prepend = Prepend {
                inner: sock,
                head: Some(format!("PROXY TCP4 {} {} 778 1\r\n", tls_client.ip(), amqps.ip()).into_bytes()),
            };
            let tls = tokio_rustls::TlsConnector::from(Arc::clone(&config));
            let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
            let stream = within("TLS after a header in the same write", tls.connect(name, prepend))
                .await
                .expect("TLS handshake");
            let mut c = RawConn::over(stream);
            log_in(&mut c, "guest", "guest").await;
            assert_shown_as(&b, tls_client);
        });
    }
}
