//! HTTPS for the management API (issue 19): `--https-port` with the same
//! certificate and key as AMQPS, served beside the plain API; ALPN offers
//! HTTP/1.1; the overview and health checks list the listener as RabbitMQ names
//! it (`https`); a client that speaks plain HTTP or garbage to it is closed and
//! the broker goes on; an `[sni:HOST]` section's certificate and HTTPS
//! versions serve its name only.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use common::tls::{client_config, pki, KeyKind, Pki};
use common::*;
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, StreamOwned};

/// A broker with an HTTPS API listener on a free port; its address.
fn broker(pki: &Pki) -> (Broker, SocketAddr) {
    let (cert, key) = (pki.cert_path.to_str().unwrap(), pki.key_path.to_str().unwrap());
    let b = Broker::with_args(&["--https-port", "0", "--cert", cert, "--key", key]);
    let addr = listener_addr(&b, "HTTPS API listener started");
    (b, addr)
}

/// The address from the broker's `what ... addr=` log line.
fn listener_addr(b: &Broker, what: &str) -> SocketAddr {
    let deadline = Instant::now() + WAIT;
    loop {
        let log = std::fs::read_to_string(b.log_path()).unwrap_or_default();
        if let Some(line) = log.lines().rev().find(|l| l.contains(what)) {
            let at = line.find("addr=").expect("addr= in the listener line") + 5;
            let addr = line[at..].split_whitespace().next().unwrap();
            return addr.parse().unwrap_or_else(|e| panic!("{addr}: {e}"));
        }
        assert!(Instant::now() < deadline, "no {what:?} in the log:\n{log}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A client config trusting the test's CA and offering HTTP/1.1 by ALPN.
fn https_client(pki: &Pki) -> Arc<ClientConfig> {
    let mut c = (*client_config(&pki.ca_der, rustls::DEFAULT_VERSIONS)).clone();
    c.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(c)
}

/// One `GET path` over TLS as guest; the status, the body and the ALPN protocol
/// the server chose.
fn get(addr: SocketAddr, config: Arc<ClientConfig>, path: &str) -> (u16, serde_json::Value, Option<Vec<u8>>) {
    get_as(addr, config, path, "localhost")
}

/// [`get`] asking for server name `name` (SNI).
fn get_as(
    addr: SocketAddr,
    config: Arc<ClientConfig>,
    path: &str,
    name: &str,
) -> (u16, serde_json::Value, Option<Vec<u8>>) {
    let sock = TcpStream::connect(addr).unwrap();
    sock.set_read_timeout(Some(WAIT)).unwrap();
    let conn = ClientConnection::new(config, ServerName::try_from(name.to_owned()).unwrap()).unwrap();
    let mut tls = StreamOwned::new(conn, sock);
    let auth = base64::engine::general_purpose::STANDARD.encode("guest:guest");
    let req =
        format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nAuthorization: Basic {auth}\r\nConnection: close\r\n\r\n");
    tls.write_all(req.as_bytes()).unwrap();
    let mut reply = Vec::new();
    // The server closes after the reply (Connection: close); some servers skip
    // close_notify, which rustls reports as an unexpected EOF after the data.
    match tls.read_to_end(&mut reply) {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {}
        Err(e) => panic!("reading the reply: {e}"),
    }
    let alpn = tls.conn.alpn_protocol().map(<[u8]>::to_vec);
    let text = String::from_utf8_lossy(&reply);
    let status: u16 = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line: {text}"));
    let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    // Chunked or not, the JSON object is the body's one {...} span.
    let json = match (body.find('{'), body.rfind('}')) {
        (Some(a), Some(z)) => serde_json::from_str(&body[a..=z]).unwrap_or(serde_json::Value::Null),
        _ => serde_json::Value::Null,
    };
    (status, json, alpn)
}

#[test]
fn the_api_answers_over_https_beside_plain_http() {
    let pki = pki(KeyKind::EcdsaP256);
    let (b, addr) = broker(&pki);
    if b.skip_external("the_api_answers_over_https_beside_plain_http") {
        return;
    }
    let (status, overview, alpn) = get(addr, https_client(&pki), "/api/overview");
    assert_eq!(status, 200, "{overview}");
    assert_eq!(alpn.as_deref(), Some(&b"http/1.1"[..]), "ALPN");
    let listeners = overview["listeners"].as_array().expect("listeners");
    assert!(
        listeners
            .iter()
            .any(|l| l["protocol"] == "https" && l["port"] == u64::from(addr.port())),
        "{listeners:?}"
    );
    // RabbitMQ's health checks know the listener by port and by protocol.
    let (status, _, _) = get(
        addr,
        https_client(&pki),
        &format!("/api/health/checks/port-listener/{}", addr.port()),
    );
    assert_eq!(status, 200);
    let (status, _, _) = get(addr, https_client(&pki), "/api/health/checks/protocol-listener/https");
    assert_eq!(status, 200);
    // A client without ALPN is served too, and the plain listener still is.
    let (status, _, alpn) = get(
        addr,
        client_config(&pki.ca_der, rustls::DEFAULT_VERSIONS),
        "/api/whoami",
    );
    assert_eq!((status, alpn), (200, None));
    let plain = common::http::Api::new(b.http_url(), "guest", "guest");
    assert_eq!(plain.get("/api/whoami").status, 200);
}

#[test]
fn plain_http_and_garbage_on_the_https_port_are_closed_and_the_broker_goes_on() {
    let pki = pki(KeyKind::Ed25519);
    let (b, addr) = broker(&pki);
    if b.skip_external("plain_http_and_garbage_on_the_https_port_are_closed_and_the_broker_goes_on") {
        return;
    }
    for bytes in [
        &b"GET /api/overview HTTP/1.1\r\nHost: x\r\n\r\n"[..],
        &[0x16, 0x03, 0x01, 0xff, 0xff, 0x01, 0, 0, 0][..],
        &[0u8; 64][..],
    ] {
        let mut sock = TcpStream::connect(addr).unwrap();
        sock.set_read_timeout(Some(WAIT)).unwrap();
        sock.write_all(bytes).unwrap();
        // An alert at most, then the close: never an HTTP reply in clear.
        let mut got = Vec::new();
        let _ = sock.read_to_end(&mut got);
        assert!(!got.starts_with(b"HTTP/"), "plain reply on the TLS port: {got:?}");
    }
    let (status, _, _) = get(addr, https_client(&pki), "/api/whoami");
    assert_eq!(status, 200, "the HTTPS listener after the bad clients");
}

#[test]
fn curl_trusts_the_api_with_the_ca() {
    if std::process::Command::new("curl").arg("--version").output().is_err() {
        eprintln!("SKIPPED: no curl");
        return;
    }
    let pki = pki(KeyKind::EcdsaP384);
    let (b, addr) = broker(&pki);
    if b.skip_external("curl_trusts_the_api_with_the_ca") {
        return;
    }
    let url = format!("https://localhost:{}/api/whoami", addr.port());
    let out = std::process::Command::new("curl")
        .args(["-sS", "--fail", "-u", "guest:guest", "--resolve"])
        .arg(format!("localhost:{}:127.0.0.1", addr.port()))
        .arg("--cacert")
        .arg(&pki.ca_path)
        .arg(&url)
        .output()
        .unwrap();
    let body = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "curl: {}", String::from_utf8_lossy(&out.stderr));
    assert!(body.contains("\"name\":\"guest\""), "{body}");
    // Without the CA, curl refuses the certificate (the test's CA is trusted by nothing else).
    let out = std::process::Command::new("curl")
        .args(["-sS", "-u", "guest:guest", "--resolve"])
        .arg(format!("localhost:{}:127.0.0.1", addr.port()))
        .arg(&url)
        .output()
        .unwrap();
    assert!(!out.status.success(), "curl trusted an unknown CA");
}

/// `[sni:api.test]` with its certificate and `http_tls_min_version = 1.3`: the
/// HTTPS listener reads the ClientHello, serves that name its certificate over
/// TLS 1.3 only, and every other name `[main]`'s, TLS 1.2 included.
#[test]
fn an_sni_section_sets_the_certificate_and_https_versions_for_its_name() {
    let p = pki(KeyKind::EcdsaP256);
    let (api_cert, api_key) = p.issue_files("api", "api.test", &["api.test"]);
    let conf = p.dir.path().join("sni.ini");
    let text = format!(
        "[sni:api.test]\ntls_cert = {}\ntls_key = {}\nhttp_tls_min_version = 1.3\n",
        api_cert.display(),
        api_key.display()
    );
    std::fs::write(&conf, text).unwrap();
    let (cert, key) = (p.cert_path.to_str().unwrap(), p.key_path.to_str().unwrap());
    let b = Broker::with_args(&[
        "--https-port",
        "0",
        "--cert",
        cert,
        "--key",
        key,
        "-c",
        conf.to_str().unwrap(),
    ]);
    let addr = listener_addr(&b, "HTTPS API listener started");
    let with = |versions: &[&'static rustls::SupportedProtocolVersion]| {
        let mut c = (*client_config(&p.ca_der, versions)).clone();
        c.alpn_protocols = vec![b"http/1.1".to_vec()];
        Arc::new(c)
    };
    // rustls checks the name: api.test's certificate came (the default one names localhost).
    let (status, _, alpn) = get_as(addr, with(&[&rustls::version::TLS13]), "/api/overview", "api.test");
    assert_eq!((status, alpn.as_deref()), (200, Some(&b"http/1.1"[..])));
    let (status, _, _) = get_as(addr, with(&[&rustls::version::TLS12]), "/api/overview", "localhost");
    assert_eq!(status, 200, "TLS 1.2 for the other names");
    // TLS 1.2 asking for api.test: no handshake.
    let sock = TcpStream::connect(addr).unwrap();
    sock.set_read_timeout(Some(WAIT)).unwrap();
    let conn = ClientConnection::new(
        with(&[&rustls::version::TLS12]),
        ServerName::try_from("api.test").unwrap(),
    );
    let mut tls = StreamOwned::new(conn.unwrap(), sock);
    let e = tls.write_all(b"GET / HTTP/1.1\r\n\r\n").and_then(|_| tls.flush());
    let e = e.and_then(|_| tls.read(&mut [0u8; 64])).err().map(|e| e.to_string());
    assert!(e.as_deref().is_some_and(|e| e.contains("ProtocolVersion")), "{e:?}");
}
