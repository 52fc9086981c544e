//! Mutual TLS, SASL EXTERNAL, SNI, certificate reload and expiry (issue 19):
//! rustls clients with and without a client certificate, of the right CA and
//! of another; EXTERNAL logging in the certificate's subject, CN or
//! alternative name (`--tls-cert-login-from`) over a hand-rolled
//! AMQP client (pika's ExternalCredentials in tests/clients); the certificate
//! a server name gets; SIGHUP swapping the certificate under an open
//! connection; the certificate-expiration health check and metric.

mod common;

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::http::Api;
use common::tls::{
    amqp_start, amqp_start_as, client_config, client_config_with_cert, pki, pki_named, KeyKind, BACKENDS,
};
use common::*;
use ringmq_codec::{
    decode_frame, encode_method, ConnectionOpen, ConnectionStartOk, ConnectionTuneOk, DecodeError, FieldTable,
    FieldValue, Method, Table, PROTOCOL_HEADER,
};
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, StreamOwned};

type Tls = StreamOwned<ClientConnection, std::net::TcpStream>;

/// A blocking AMQP client over TLS, frame by frame.
struct Client {
    tls: Tls,
    buf: Vec<u8>,
}

impl Client {
    /// TLS handshake (as `localhost`), protocol header, connection.start: the
    /// client and the mechanisms the broker offered.
    fn connect(addr: SocketAddr, config: Arc<ClientConfig>) -> Result<(Client, String), String> {
        Client::connect_as(addr, config, "localhost")
    }

    /// [`Client::connect`] asking for server name `name` (SNI).
    fn connect_as(addr: SocketAddr, config: Arc<ClientConfig>, name: &str) -> Result<(Client, String), String> {
        let sock = std::net::TcpStream::connect(addr).map_err(|e| e.to_string())?;
        sock.set_read_timeout(Some(WAIT)).unwrap();
        let name = ServerName::try_from(name.to_owned()).unwrap();
        let conn = ClientConnection::new(config, name).map_err(|e| e.to_string())?;
        let mut c = Client {
            tls: StreamOwned::new(conn, sock),
            buf: Vec::new(),
        };
        c.tls.write_all(&PROTOCOL_HEADER).map_err(|e| e.to_string())?;
        let start = c.frame()?;
        let Some((_, mechanisms)) = start.start.clone() else {
            return Err(format!("not connection.start: {start:?}"));
        };
        Ok((c, mechanisms))
    }

    fn frame(&mut self) -> Result<common::raw::Got, String> {
        loop {
            match decode_frame(&self.buf, 0) {
                Ok((frame, used)) => {
                    let got = common::raw::describe(&frame);
                    self.buf.drain(..used);
                    return Ok(got);
                }
                Err(DecodeError::Incomplete(_)) => {}
                Err(e) => return Err(format!("{e:?}")),
            }
            let mut chunk = [0u8; 4096];
            match self.tls.read(&mut chunk) {
                Ok(0) => return Err("closed".into()),
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) => return Err(e.to_string()),
            }
        }
    }

    fn send(&mut self, m: &Method<'_>) {
        let mut out = Vec::new();
        encode_method(&mut out, 0, m);
        self.tls.write_all(&out).unwrap();
    }

    /// start-ok with `mechanism` and `response`; Ok after connection.open-ok,
    /// Err with the close's code and text.
    fn login(&mut self, mechanism: &str, response: &[u8]) -> Result<(), (u16, String)> {
        let mut caps = FieldTable::default();
        caps.insert(
            ringmq_codec::short!("authentication_failure_close"),
            FieldValue::Bool(true),
        );
        let mut props = FieldTable::default();
        props.insert(ringmq_codec::short!("capabilities"), FieldValue::Table(caps));
        let props = props.to_bytes();
        self.send(&Method::ConnectionStartOk(ConnectionStartOk {
            client_properties: Table::parse(&props).unwrap(),
            mechanism: ringmq_codec::ShortStr::new(mechanism).unwrap(),
            response,
            locale: ringmq_codec::short!("en_US"),
        }));
        let tune = self.frame().map_err(|e| (0, e))?;
        if let Some((code, text, _, _)) = tune.close {
            return Err((code, text));
        }
        assert_eq!(tune.name, "connection.tune", "{tune:?}");
        self.send(&Method::ConnectionTuneOk(ConnectionTuneOk {
            channel_max: 16,
            frame_max: 131_072,
            heartbeat: 0,
        }));
        self.send(&Method::ConnectionOpen(ConnectionOpen {
            virtual_host: ringmq_codec::short!("/"),
            capabilities: ringmq_codec::short!(""),
            insist: false,
        }));
        let open = self.frame().map_err(|e| (0, e))?;
        assert_eq!(open.name, "connection.open-ok", "{open:?}");
        Ok(())
    }
}

/// The API's view of the connection from local port `port`.
fn api_conn(api: &Api, port: u16) -> serde_json::Value {
    let conns = api.ok("/api/connections");
    (conns.as_array().unwrap().iter())
        .find(|c| c["peer_port"] == port)
        .unwrap_or_else(|| panic!("no connection from port {port}: {conns}"))
        .clone()
}

const REFUSED: &str =
    "ACCESS_REFUSED - Login was refused using authentication mechanism EXTERNAL. For details see the broker logfile.";

#[test]
fn client_certificates_are_verified_and_external_logs_in_their_cn() {
    let server = pki(KeyKind::EcdsaP256);
    let clients = pki_named(KeyKind::EcdsaP256, "ringmq client CA", None);
    let stranger = pki_named(KeyKind::EcdsaP256, "another CA", None);
    let ca = clients.ca_path.to_str().unwrap();
    for io in BACKENDS {
        let args = [
            "--tls-verify-peer",
            "--ca-cert",
            ca,
            "--tls-cert-login-from",
            "common_name",
        ];
        let (b, addr) = common::tls::broker(&server, io, &args);
        let with = |p: &common::tls::Pki, cn: &str| {
            let (chain, key) = p.issue(cn, &[]);
            client_config_with_cert(&server.ca_der, chain, key)
        };
        // The CN names a user: EXTERNAL is offered and logs it in, no password.
        let (mut c, mechanisms) =
            Client::connect(addr, with(&clients, "guest")).expect("a client certificate of the CA");
        assert_eq!(mechanisms, "PLAIN AMQPLAIN EXTERNAL", "{io}");
        c.login("EXTERNAL", b"").expect("EXTERNAL as guest");
        let api = Api::new(b.http_url(), "guest", "guest");
        let port = c.tls.sock.local_addr().unwrap().port();
        let seen = api_conn(&api, port);
        assert_eq!(seen["auth_mechanism"], "EXTERNAL", "{seen}");
        assert_eq!(seen["user"], "guest", "{seen}");
        assert_eq!(seen["peer_cert_subject"], "CN=guest", "{seen}");
        assert_eq!(seen["peer_cert_issuer"], "CN=ringmq client CA", "{seen}");
        let validity = seen["peer_cert_validity"].as_str().expect("validity");
        assert!(validity.contains("Z - ") && validity.ends_with('Z'), "{validity}");
        // PLAIN still works for a client with a certificate.
        let (mut p, _) = Client::connect(addr, with(&clients, "someone")).unwrap();
        p.login("PLAIN", b"\0guest\0guest").expect("PLAIN beside a certificate");
        let plain = api_conn(&api, p.tls.sock.local_addr().unwrap().port());
        assert_eq!(plain["auth_mechanism"], "PLAIN", "{plain}");
        assert_eq!(plain["peer_cert_subject"], "CN=someone", "{plain}");
        // A CN that is no user: refused as a wrong password is (403, after the delay).
        let (mut n, _) = Client::connect(addr, with(&clients, "nobody")).unwrap();
        assert_eq!(n.login("EXTERNAL", b""), Err((403, REFUSED.into())), "{io}");
        // No certificate, or one of another CA: no handshake.
        let none = amqp_start(addr, client_config(&server.ca_der, &[&rustls::version::TLS13]));
        assert!(none.is_err(), "{io}: a client without a certificate got in");
        let other = Client::connect(addr, with(&stranger, "guest"));
        assert!(other.is_err(), "{io}: a certificate of another CA got in");
        // The broker goes on.
        let (mut again, _) = Client::connect(addr, with(&clients, "guest")).unwrap();
        again.login("EXTERNAL", b"").unwrap();
        let log = std::fs::read_to_string(b.log_path()).unwrap();
        assert!(log.contains("login refused") && log.contains("nobody"), "{log}");
        assert!(log.contains("TLS connection failed"), "{log}");
    }
}

#[test]
fn without_fail_if_no_peer_cert_a_client_may_come_without_one() {
    let server = pki(KeyKind::EcdsaP256);
    let clients = pki_named(KeyKind::EcdsaP256, "ringmq client CA", None);
    let ca = clients.ca_path.to_str().unwrap();
    let args = [
        "--tls-verify-peer",
        "--ca-cert",
        ca,
        "--tls-fail-if-no-peer-cert=false",
        "--tls-cert-login-from=common_name",
    ];
    let (_b, addr) = common::tls::broker(&server, "epoll", &args);
    let (mut c, mechanisms) = Client::connect(addr, client_config(&server.ca_der, &[&rustls::version::TLS13])).unwrap();
    assert_eq!(mechanisms, "PLAIN AMQPLAIN", "no certificate: no EXTERNAL");
    assert_eq!(c.login("EXTERNAL", b""), Err((403, REFUSED.into())));
    let (mut c, _) = Client::connect(addr, client_config(&server.ca_der, &[&rustls::version::TLS12])).unwrap();
    c.login("PLAIN", b"\0guest\0guest").expect("a password instead");
    let (chain, key) = clients.issue("guest", &[]);
    let (mut c, mechanisms) = Client::connect(addr, client_config_with_cert(&server.ca_der, chain, key)).unwrap();
    assert_eq!(mechanisms, "PLAIN AMQPLAIN EXTERNAL");
    c.login("EXTERNAL", b"").unwrap();
    // A certificate that does not verify is still refused.
    let (chain, key) = pki(KeyKind::EcdsaP256).issue("guest", &[]);
    assert!(Client::connect(addr, client_config_with_cert(&server.ca_der, chain, key)).is_err());
}

#[test]
fn settings_that_would_do_nothing_are_refused_at_start() {
    let server = pki(KeyKind::EcdsaP256);
    let ca = server.ca_path.to_str().unwrap();
    let cert = server.cert_path.to_str().unwrap();
    let key = server.key_path.to_str().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    let base = [
        "-D",
        data,
        "--amqps-port",
        "0",
        "-p",
        "0",
        "--http-port",
        "-1",
        "--metrics-http-port",
        "-1",
    ];
    for (extra, want) in [
        (vec!["--tls-verify-peer"], "needs tls_ca_cert"),
        (vec!["--ca-cert", ca], "tls_verify_peer (--tls-verify-peer) is not"),
        (
            vec!["--tls-fail-if-no-peer-cert=false"],
            "does nothing without tls_verify_peer",
        ),
        (
            vec!["--tls-verify-peer", "--ca-cert", "/nonexistent.pem"],
            "TLS CA bundle (tls_ca_cert) /nonexistent.pem",
        ),
        (vec!["--tls-verify-peer", "--ca-cert", key], "no CERTIFICATE block"),
        (
            vec!["--tls-cert-login-from", "common_name"],
            "tls_cert_login_from (--tls-cert-login-from) does nothing without tls_verify_peer",
        ),
        (
            vec![
                "--tls-verify-peer",
                "--ca-cert",
                ca,
                "--tls-cert-login-san-type",
                "email",
            ],
            "do nothing unless tls_cert_login_from = subject_alternative_name",
        ),
        (vec!["--tls-cert-login-from", "cn"], "'cn' is not distinguished_name"),
        (
            vec![
                "--tls-cert-login-from=subject_alt_name",
                "--tls-cert-login-san-type",
                "x400",
            ],
            "'x400' is not dns, ip, email, uri or other_name",
        ),
    ] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_ringmq"))
            .args(base)
            .arg("--mqtt-port=-1")
            .args(["--cert", cert, "--key", key])
            .args(&extra)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{extra:?}: {err}");
        assert!(err.contains(want), "{extra:?}: {err}");
    }
}

/// The CN of the certificate a TLS client asking for `name` is shown,
/// trusting anything (which certificate comes is the question).
fn served_cn(addr: SocketAddr, name: &str) -> String {
    let out = std::process::Command::new("openssl")
        .args(["s_client", "-connect", &addr.to_string(), "-servername", name])
        .stdin(std::process::Stdio::null())
        .output()
        .expect("the openssl CLI");
    let text = String::from_utf8_lossy(&out.stdout);
    let subject = text
        .lines()
        .find(|l| l.starts_with("subject="))
        .unwrap_or_else(|| panic!("no subject= from s_client: {text}"));
    subject
        .rsplit("CN")
        .next()
        .unwrap()
        .trim_start_matches([' ', '='])
        .trim()
        .to_owned()
}

#[test]
fn sni_picks_the_certificate_by_name_and_the_default_for_others() {
    let server = pki(KeyKind::EcdsaP256);
    let (other_cert, other_key) = server.issue_files("other", "other.test", &["other.test"]);
    let (wild_cert, wild_key) = server.issue_files("wild", "wild", &["*.wild.test"]);
    let conf = server.dir.path().join("sni.ini");
    std::fs::write(
        &conf,
        format!(
            "[sni:Other.Test]\ntls_cert = {}\ntls_key = {}\n\n[sni:*.wild.test]\ntls_cert = {}\ntls_key = {}\n",
            other_cert.display(),
            other_key.display(),
            wild_cert.display(),
            wild_key.display()
        ),
    )
    .unwrap();
    for io in BACKENDS {
        let (b, addr) = common::tls::broker(&server, io, &["-c", conf.to_str().unwrap()]);
        let trust = || client_config(&server.ca_der, &[&rustls::version::TLS13, &rustls::version::TLS12]);
        // rustls checks that the certificate names the host it asked for.
        for name in ["other.test", "a.wild.test", "localhost"] {
            let r = amqp_start_as(addr, trust(), name);
            assert!(r.is_ok(), "{io}: {name}: {r:?}\n{}", b.log_tail());
        }
        let wrong = amqp_start_as(addr, trust(), "b.a.wild.test").err().unwrap_or_default();
        // A wildcard covers one label: the default certificate comes instead.
        assert!(
            wrong.contains("not valid for name") && wrong.contains("DnsName(\"localhost\")"),
            "{io}: {wrong}"
        );
        assert_eq!(served_cn(addr, "other.test"), "other.test");
        assert_eq!(served_cn(addr, "x.wild.test"), "wild");
        assert_eq!(
            served_cn(addr, "unknown.test"),
            "localhost",
            "unknown names get the default"
        );
        assert_eq!(served_cn(addr, "localhost"), "localhost");
    }
}

/// `[sni:HOST]` sections with their own client verification and versions:
/// `mtls.test` asks for a certificate of its own CA (and offers EXTERNAL),
/// `modern.test` takes TLS 1.3 only; the default name does neither. SIGHUP
/// re-reads the sections: a bad CA file keeps the running ones, another CA
/// takes effect.
#[test]
fn sni_sections_verify_clients_and_set_versions_for_their_name_only() {
    let server = pki(KeyKind::EcdsaP256);
    let clients = pki_named(KeyKind::EcdsaP256, "mtls.test clients", None);
    let (mtls_cert, mtls_key) = server.issue_files("mtls", "mtls.test", &["mtls.test"]);
    let (modern_cert, modern_key) = server.issue_files("modern", "modern.test", &["modern.test"]);
    let conf = server.dir.path().join("sni.ini");
    let write_conf = |ca: &std::path::Path| {
        let verify = format!("tls_verify_peer = true\ntls_ca_cert = {}\n", ca.display());
        let text = format!(
            "[sni:mtls.test]\ntls_cert = {}\ntls_key = {}\n{verify}\n\
             [sni:modern.test]\ntls_cert = {}\ntls_key = {}\ntls_min_version = 1.3\n",
            mtls_cert.display(),
            mtls_key.display(),
            modern_cert.display(),
            modern_key.display()
        );
        std::fs::write(&conf, text).unwrap();
    };
    write_conf(&clients.ca_path);
    let both = [&rustls::version::TLS13, &rustls::version::TLS12];
    for io in BACKENDS {
        let args = ["-c", conf.to_str().unwrap(), "--tls-cert-login-from", "common_name"];
        let (b, addr) = common::tls::broker(&server, io, &args);
        let anonymous = || client_config(&server.ca_der, &both);
        let with = |p: &common::tls::Pki, cn: &str| {
            let (chain, key) = p.issue(cn, &[]);
            client_config_with_cert(&server.ca_der, chain, key)
        };
        // The default name asks for no certificate: no EXTERNAL.
        let (mut c, mechanisms) = Client::connect_as(addr, anonymous(), "localhost").unwrap();
        assert_eq!(mechanisms, "PLAIN AMQPLAIN", "{io}");
        c.login("PLAIN", b"\0guest\0guest").unwrap();
        // mtls.test: no certificate, or one of another CA, gets no handshake.
        let none = Client::connect_as(addr, anonymous(), "mtls.test");
        assert!(none.is_err(), "{io}: mtls.test without a certificate got in");
        let other = Client::connect_as(addr, with(&pki(KeyKind::EcdsaP256), "guest"), "mtls.test");
        assert!(other.is_err(), "{io}: a certificate of another CA got in");
        // A certificate of its CA: EXTERNAL is offered and logs in by the CN.
        let (mut c, mechanisms) = Client::connect_as(addr, with(&clients, "guest"), "mtls.test").unwrap();
        assert_eq!(mechanisms, "PLAIN AMQPLAIN EXTERNAL", "{io}");
        c.login("EXTERNAL", b"").expect("EXTERNAL as guest");
        // The default name does not ask, so a certificate sent anyway is not used.
        let (_, mechanisms) = Client::connect_as(addr, with(&clients, "guest"), "localhost").unwrap();
        assert_eq!(mechanisms, "PLAIN AMQPLAIN", "{io}");
        // modern.test: TLS 1.3 only; other names still take 1.2.
        let tls12 = || client_config(&server.ca_der, &[&rustls::version::TLS12]);
        let old = amqp_start_as(addr, tls12(), "modern.test").err().unwrap_or_default();
        assert!(old.contains("ProtocolVersion"), "{io}: TLS 1.2 for modern.test: {old}");
        assert!(amqp_start_as(addr, tls12(), "localhost").is_ok(), "{io}");
        assert!(
            amqp_start_as(addr, tls12(), "mtls.test").is_err(),
            "{io}: no certificate"
        );
        assert!(amqp_start_as(addr, anonymous(), "modern.test").is_ok(), "{io}");
        if io != "epoll" {
            continue;
        }
        // SIGHUP with a bad CA file: nothing changes.
        let bad = server.dir.path().join("bad-ca.pem");
        std::fs::write(&bad, "not a certificate").unwrap();
        write_conf(&bad);
        let mark = std::fs::metadata(b.log_path()).unwrap().len() as usize;
        b.signal(libc::SIGHUP);
        log_after(&b, mark, "SIGHUP: nothing reloaded");
        assert!(
            Client::connect_as(addr, anonymous(), "mtls.test").is_err(),
            "still verified"
        );
        let (_, mechanisms) = Client::connect_as(addr, with(&clients, "guest"), "mtls.test").unwrap();
        assert_eq!(mechanisms, "PLAIN AMQPLAIN EXTERNAL", "the old CA still");
        // Another CA for the section: its certificates get in, the old CA's not.
        let next = pki_named(KeyKind::EcdsaP256, "next clients", None);
        write_conf(&next.ca_path);
        let mark = std::fs::metadata(b.log_path()).unwrap().len() as usize;
        b.signal(libc::SIGHUP);
        log_after(&b, mark, "TLS certificates reloaded");
        assert!(Client::connect_as(addr, with(&clients, "guest"), "mtls.test").is_err());
        let (mut c, _) = Client::connect_as(addr, with(&next, "guest"), "mtls.test").unwrap();
        c.login("EXTERNAL", b"")
            .expect("EXTERNAL with the new CA's certificate");
    }
}

/// Waits for `what` in the broker's log, after `from` bytes of it.
fn log_after(b: &Broker, from: usize, what: &str) -> String {
    let deadline = Instant::now() + WAIT;
    loop {
        let log = std::fs::read_to_string(b.log_path()).unwrap_or_default();
        if let Some(rest) = log.get(from..).filter(|r| r.contains(what)) {
            return rest.to_owned();
        }
        assert!(
            Instant::now() < deadline,
            "no {what:?} in the log:\n{}",
            &log[from.min(log.len())..]
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn sighup_reloads_the_certificate_keeping_open_connections_and_a_bad_file_keeps_the_old() {
    for io in BACKENDS {
        let first = pki(KeyKind::EcdsaP256);
        let second = pki_named(KeyKind::EcdsaP256, "second CA", None);
        let (b, addr) = common::tls::broker(&first, io, &[]);
        let trust = |p: &common::tls::Pki| client_config(&p.ca_der, &[&rustls::version::TLS13]);
        let (mut old, _) = Client::connect(addr, trust(&first)).unwrap();
        old.login("PLAIN", b"\0guest\0guest").unwrap();

        // New files in place, then SIGHUP.
        std::fs::copy(&second.cert_path, &first.cert_path).unwrap();
        std::fs::copy(&second.key_path, &first.key_path).unwrap();
        let mark = std::fs::metadata(b.log_path()).unwrap().len() as usize;
        b.signal(libc::SIGHUP);
        log_after(&b, mark, "TLS certificates reloaded");
        assert!(amqp_start(addr, trust(&second)).is_ok(), "{io}: the new certificate");
        assert!(
            amqp_start(addr, trust(&first)).is_err(),
            "{io}: the old certificate after the reload"
        );
        // The connection from before still works: a channel opens on it.
        let mut out = Vec::new();
        encode_method(
            &mut out,
            1,
            &Method::ChannelOpen(ringmq_codec::ChannelOpen {
                out_of_band: ringmq_codec::short!(""),
            }),
        );
        old.tls.write_all(&out).unwrap();
        assert_eq!(old.frame().unwrap().name, "channel.open-ok", "{io}");

        // A bad file: refused, named in the log, and the running one stays.
        std::fs::write(&first.cert_path, "not a certificate").unwrap();
        let mark = std::fs::metadata(b.log_path()).unwrap().len() as usize;
        b.signal(libc::SIGHUP);
        let line = log_after(&b, mark, "SIGHUP: nothing reloaded");
        assert!(line.contains(first.cert_path.to_str().unwrap()), "{line}");
        assert!(
            amqp_start(addr, trust(&second)).is_ok(),
            "{io}: still the second certificate"
        );
    }
}

#[test]
fn certificate_expiration_health_check_and_metric() {
    // Expires on 2035-01-01: within 20 years, not within a day.
    let server = pki_named(KeyKind::EcdsaP256, "ringmq test CA", Some((2035, 1, 1)));
    let (b, addr) = common::tls::broker(&server, "epoll", &[]);
    let api = Api::new(b.http_url(), "guest", "guest");
    assert_eq!(
        api.ok("/api/health/checks/certificate-expiration/1/days"),
        serde_json::json!({"status": "ok"})
    );
    let r = api.get("/api/health/checks/certificate-expiration/20/years");
    assert_eq!(r.status, 503, "{}", r.text);
    let body: serde_json::Value = serde_json::from_str(&r.text).unwrap();
    assert_eq!(body["status"], "failed");
    assert_eq!(body["reason"], "Certificates expiring");
    let e = &body["expired"][0];
    assert_eq!(e["protocol"], "amqp/ssl", "{body}");
    assert_eq!(e["port"], addr.port(), "{body}");
    assert_eq!(e["certfile"], server.cert_path.to_str().unwrap(), "{body}");
    assert_eq!(e["certfile_expires_on"][0], "2035-01-01 0:00:00", "{body}");
    assert_eq!(
        api.get("/api/health/checks/certificate-expiration/1/fortnights").status,
        400
    );
    let metrics = Api::anonymous(&b.metrics_url()).get("/metrics").text;
    let line = format!(
        "rabbitmq_tls_certificate_expiry_timestamp_seconds{{file=\"{}\",role=\"certificate\",sni=\"\"}} 2051222400",
        server.cert_path.display()
    );
    assert!(metrics.contains(&line), "{line} in:\n{metrics}");
}

/// `--tls-cert-login-from` (RabbitMQ's `ssl_cert_login_from`): by default the
/// whole subject (`CN=alice`) is the user, as in RabbitMQ; with
/// `subject_alternative_name` the SAN of the type and index asked for, and a
/// certificate without it is refused.
#[test]
fn external_logs_in_as_the_subject_or_an_alternative_name() {
    let server = pki(KeyKind::EcdsaP256);
    let clients = pki_named(KeyKind::EcdsaP256, "ringmq client CA", None);
    let ca = clients.ca_path.to_str().unwrap();
    let with = |cn: &str, names: &[&str]| {
        let (chain, key) = clients.issue(cn, names);
        client_config_with_cert(&server.ca_der, chain, key)
    };
    let add_user = |b: &Broker, name: &str| {
        let api = Api::new(b.http_url(), "guest", "guest");
        let enc = name.replace('=', "%3D").replace(',', "%2C");
        api.put(
            &format!("/api/users/{enc}"),
            serde_json::json!({"password": "x", "tags": ""}),
        );
        let all = serde_json::json!({"configure": ".*", "write": ".*", "read": ".*"});
        api.put(&format!("/api/permissions/%2F/{enc}"), all);
    };

    // The default: the subject as RabbitMQ writes it.
    let (b, addr) = common::tls::broker(&server, "epoll", &["--tls-verify-peer", "--ca-cert", ca]);
    add_user(&b, "CN=alice");
    let (mut c, _) = Client::connect(addr, with("alice", &[])).unwrap();
    c.login("EXTERNAL", b"").expect("EXTERNAL as CN=alice");
    let api = Api::new(b.http_url(), "guest", "guest");
    let seen = api_conn(&api, c.tls.sock.local_addr().unwrap().port());
    assert_eq!(seen["user"], "CN=alice", "{seen}");
    // A user named as the CN alone is not the subject.
    let (mut g, _) = Client::connect(addr, with("guest", &[])).unwrap();
    assert_eq!(g.login("EXTERNAL", b""), Err((403, REFUSED.into())));
    drop(b);

    // The second DNS name.
    let args = [
        "--tls-verify-peer",
        "--ca-cert",
        ca,
        "--tls-cert-login-from",
        "subject_alternative_name",
        "--tls-cert-login-san-type",
        "dns",
        "--tls-cert-login-san-index",
        "1",
    ];
    for io in BACKENDS {
        let (b, addr) = common::tls::broker(&server, io, &args);
        add_user(&b, "bob.example");
        let (mut c, _) = Client::connect(addr, with("guest", &["a.example", "bob.example"])).unwrap();
        c.login("EXTERNAL", b"").expect("EXTERNAL as the second DNS name");
        let api = Api::new(b.http_url(), "guest", "guest");
        let seen = api_conn(&api, c.tls.sock.local_addr().unwrap().port());
        assert_eq!(seen["user"], "bob.example", "{io}: {seen}");
        // One DNS name only: no second one to log in as, whatever the CN.
        let (mut one, _) = Client::connect(addr, with("guest", &["a.example"])).unwrap();
        assert_eq!(one.login("EXTERNAL", b""), Err((403, REFUSED.into())), "{io}");
        let log = std::fs::read_to_string(b.log_path()).unwrap();
        assert!(log.contains("no name where tls_cert_login_from looks"), "{io}: {log}");
    }
}
