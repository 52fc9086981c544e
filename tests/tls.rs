//! AMQPS (issue 19): real clients over TLS on both transport backends, the
//! key types, TLS versions and suites, and clients that do not speak TLS.
//! Certificates are made here (rcgen); `openssl s_client` (Debian's openssl,
//! installed by .ci/run) plays the client rustls cannot be (TLS 1.0 and 1.1).

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::http::Api;
use common::load::closed_within;
use common::tls::{amqp_start, client_config, open_fds, pki, KeyKind, BACKENDS};
use common::*;
use futures_lite::StreamExt;
use lapin::options::{BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use lapin::{BasicProperties, ConnectionProperties};
use rustls::version::{TLS12, TLS13};

/// lapin (rustls) trusting `ca_pem`.
async fn lapin_tls(uri: &str, ca_pem: &str) -> lapin::Result<lapin::Connection> {
    let tls = lapin::tcp::OwnedTLSConfig {
        identity: None,
        cert_chain: Some(ca_pem.to_string()),
    };
    let runtime = lapin::runtime::default_runtime()?;
    lapin::Connection::connect_with_config(uri, ConnectionProperties::default(), tls, runtime).await
}

#[test]
fn lapin_publishes_and_consumes_over_tls_on_both_backends() {
    let pki = pki(KeyKind::EcdsaP256);
    for io in BACKENDS {
        let (b, addr) = common::tls::broker(&pki, io, &[]);
        let uri = format!("amqps://guest:guest@localhost:{}/%2f", addr.port());
        // Bodies around and above a TLS record (16 KiB) and a seal chunk (256 KiB),
        // and above the zero-copy threshold, whose bodies the plain path sends
        // from the segment mapping.
        let sizes = [0usize, 1, 16, 1024, 16 * 1024 + 1, 70_000, 300_000];
        run(async {
            let conn = lapin_tls(&uri, &pki.ca_pem).await.expect("lapin over TLS");
            let ch = conn.create_channel().await.unwrap();
            let q = unique("tls");
            ch.queue_declare(q.as_str().into(), QueueDeclareOptions::default(), FieldTable::default())
                .await
                .unwrap();
            let mut sent = Vec::new();
            for round in 0..20u8 {
                for &size in &sizes {
                    let body: Vec<u8> = (0..size).map(|i| (i as u8).wrapping_add(round)).collect();
                    ch.basic_publish(
                        "".into(),
                        q.as_str().into(),
                        BasicPublishOptions::default(),
                        &body,
                        BasicProperties::default(),
                    )
                    .await
                    .unwrap();
                    sent.push(body);
                }
            }
            let mut consumer = ch
                .basic_consume(
                    q.as_str().into(),
                    "c".into(),
                    BasicConsumeOptions::default(),
                    FieldTable::default(),
                )
                .await
                .unwrap();
            for (i, want) in sent.iter().enumerate() {
                let d = within("a delivery over TLS", consumer.next()).await.unwrap().unwrap();
                assert_eq!(d.data.len(), want.len(), "message {i} on {io}");
                assert!(d.data == *want, "message {i} on {io}: body differs");
                d.ack(BasicAckOptions::default()).await.unwrap();
            }
            // The API says the connection is TLS, as RabbitMQ's does.
            let api = Api::new(b.http_url(), "guest", "guest");
            let conns = api.ok("/api/connections");
            let c = conns
                .as_array()
                .unwrap()
                .iter()
                .find(|c| c["port"] == addr.port())
                .expect("the TLS connection");
            assert_eq!(c["ssl"], true, "{c}");
            let name = c["name"].as_str().unwrap();
            assert!(name.ends_with(&format!(" -> {addr}")), "{c}");
            let one = api.ok(&format!("/api/connections/{}", common::http::enc(name)));
            assert_eq!(one["ssl"], true, "{one}");
            assert_eq!(c["ssl_protocol"], "tlsv1.3", "{c}");
            assert_eq!(c["ssl_key_exchange"], "any", "{c}");
            assert!(
                c["ssl_cipher"].as_str().unwrap().contains("gcm")
                    || c["ssl_cipher"].as_str().unwrap().contains("chacha"),
                "{c}"
            );
            api.ok(&format!("/api/health/checks/port-listener/{}", addr.port()));
            api.ok("/api/health/checks/protocol-listener/amqp%2Fssl");
            let listeners = api.ok("/api/overview")["listeners"].clone();
            assert!(
                listeners
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|l| l["protocol"] == "amqp/ssl" && l["port"] == addr.port()),
                "{listeners}"
            );
            conn.close(200, "bye".into()).await.unwrap();
            // A refused login: the broker's close (and close_notify) over TLS.
            let bad = format!("amqps://guest:wrong@localhost:{}/%2f", addr.port());
            let err = lapin_tls(&bad, &pki.ca_pem).await.expect_err("a wrong password");
            assert!(
                format!("{err:?}").contains("ACCESS_REFUSED") || format!("{err:?}").contains("403"),
                "{err:?}"
            );
            // The plain listener still speaks plain AMQP, and says so.
            let (plain, _ch) = open(&b).await;
            let conns = api.ok("/api/connections");
            assert!(conns.as_array().unwrap().iter().any(|c| c["ssl"] == false), "{conns}");
            plain.close(200, "bye".into()).await.unwrap();
        });
        let log = std::fs::read_to_string(b.log_path()).unwrap();
        assert!(log.contains(&format!("AMQPS listener started addr={addr}")), "{log}");
    }
}

#[test]
fn rsa_ecdsa_and_ed25519_keys() {
    for kind in [KeyKind::Rsa2048, KeyKind::EcdsaP384, KeyKind::Ed25519] {
        let pki = pki(kind);
        for io in BACKENDS {
            let (b, addr) = common::tls::broker(&pki, io, &[]);
            for versions in [&[&TLS13][..], &[&TLS12][..]] {
                let r = amqp_start(addr, client_config(&pki.ca_der, versions));
                assert!(r.is_ok(), "{kind:?} on {io}, {versions:?}: {r:?}\n{}", b.log_tail());
            }
        }
    }
}

#[test]
fn a_client_that_does_not_trust_the_certificate_is_refused_and_the_broker_goes_on() {
    let pki = pki(KeyKind::EcdsaP256);
    let other = common::tls::pki(KeyKind::EcdsaP256);
    for io in BACKENDS {
        let (b, addr) = common::tls::broker(&pki, io, &[]);
        let uri = format!("amqps://guest:guest@localhost:{}/%2f", addr.port());
        run(async {
            let err = lapin_tls(&uri, &other.ca_pem)
                .await
                .expect_err("a certificate of another CA");
            let text = format!("{err:?}");
            assert!(
                text.contains("UnknownIssuer") || text.to_lowercase().contains("certificate"),
                "{text}"
            );
            let conn = lapin_tls(&uri, &pki.ca_pem).await.expect("the right CA, after");
            conn.close(200, "bye".into()).await.unwrap();
        });
        let log = std::fs::read_to_string(b.log_path()).unwrap();
        assert!(log.contains("TLS connection failed"), "{log}");
    }
}

/// Runs `openssl s_client` against `addr` with `args`, sending the AMQP header;
/// returns (success, everything it printed).
fn s_client(addr: std::net::SocketAddr, ca: &std::path::Path, args: &[&str]) -> (bool, String) {
    let mut child = Command::new("openssl")
        .args([
            "s_client",
            "-connect",
            &addr.to_string(),
            "-servername",
            "localhost",
            "-CAfile",
        ])
        .arg(ca)
        .args(args)
        // The system's openssl.cnf raises the floor to TLS 1.2 on the client
        // side: without it, the old versions are really offered to the broker.
        .env("OPENSSL_CONF", "/dev/null")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the openssl CLI (Debian's openssl package; .ci/run installs it)");
    let mut stdin = child.stdin.take().unwrap();
    let _ = stdin.write_all(b"AMQP\x00\x00\x09\x01");
    let started = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if started.elapsed() > Duration::from_secs(3) {
            // Connected and waiting on stdin: done with it.
            drop(stdin);
            break child.wait().unwrap();
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    // The output has connection.start's binary bytes in it.
    let mut bytes = Vec::new();
    child.stdout.take().unwrap().read_to_end(&mut bytes).unwrap();
    child.stderr.take().unwrap().read_to_end(&mut bytes).unwrap();
    (status.success(), String::from_utf8_lossy(&bytes).into_owned())
}

#[test]
fn tls_1_0_and_1_1_are_refused_1_2_and_1_3_served_and_the_floor_can_be_1_3() {
    let pki = pki(KeyKind::EcdsaP256);
    for io in BACKENDS {
        let (b, addr) = common::tls::broker(&pki, io, &[]);
        for old in ["-tls1", "-tls1_1"] {
            let (ok, text) = s_client(addr, &pki.ca_path, &[old, "-cipher", "DEFAULT@SECLEVEL=0"]);
            assert!(!ok && text.contains("alert"), "{old} on {io} was not refused:\n{text}");
            assert!(!text.contains("Cipher is ECDHE"), "{text}");
        }
        for (flag, name) in [("-tls1_2", "TLSv1.2"), ("-tls1_3", "TLSv1.3")] {
            let (_, text) = s_client(addr, &pki.ca_path, &[flag]);
            assert!(
                text.contains(&format!("Protocol  : {name}")) || text.contains(&format!("New, {name}")),
                "{flag} on {io}:\n{text}"
            );
            assert!(text.contains("Verify return code: 0 (ok)"), "{text}");
            // connection.start came back in the clear part of the output.
            assert!(text.contains("AMQPLAIN"), "no connection.start over {name}:\n{text}");
        }
        drop(b);
        let (_b, addr) = common::tls::broker(&pki, io, &["--tls-min-version", "1.3"]);
        let (ok, text) = s_client(addr, &pki.ca_path, &["-tls1_2"]);
        assert!(
            !ok && text.contains("alert"),
            "TLS 1.2 under a 1.3 floor on {io}:\n{text}"
        );
        assert!(amqp_start(addr, client_config(&pki.ca_der, &[&TLS13])).is_ok());
    }
}

#[test]
fn the_chosen_cipher_suites_are_the_only_ones() {
    let pki = pki(KeyKind::EcdsaP256);
    let (_b, addr) = common::tls::broker(
        &pki,
        "epoll",
        &[
            "--ciphers",
            "ECDHE-ECDSA-AES128-GCM-SHA256:TLS_CHACHA20_POLY1305_SHA256",
        ],
    );
    let (_, text) = s_client(addr, &pki.ca_path, &["-tls1_2"]);
    assert!(text.contains("Cipher is ECDHE-ECDSA-AES128-GCM-SHA256"), "{text}");
    let (ok, text) = s_client(
        addr,
        &pki.ca_path,
        &["-tls1_2", "-cipher", "ECDHE-ECDSA-AES256-GCM-SHA384"],
    );
    assert!(
        !ok && text.contains("alert"),
        "a suite not chosen was accepted:\n{text}"
    );
    let (_, text) = s_client(addr, &pki.ca_path, &["-tls1_3"]);
    assert!(text.contains("TLS_CHACHA20_POLY1305_SHA256"), "{text}");
}

#[test]
fn plain_text_garbage_and_broken_handshakes_are_closed_and_leave_nothing() {
    let pki = pki(KeyKind::EcdsaP256);
    for io in BACKENDS {
        let (mut b, addr) = common::tls::broker(&pki, io, &["--handshake-timeout", "1000"]);
        let pid = b.pid().unwrap();
        // A TLS client in, so everything lazily opened at the first one is.
        drop(amqp_start(addr, client_config(&pki.ca_der, &[&TLS13])).unwrap());
        std::thread::sleep(Duration::from_millis(300));
        let fds = open_fds(pid);
        let mut socks = Vec::new();
        for _ in 0..5 {
            // An AMQP client that forgot TLS: an alert back, then the close.
            let mut plain = TcpStream::connect(addr).unwrap();
            plain.write_all(b"AMQP\x00\x00\x09\x01").unwrap();
            socks.push(("plain AMQP", plain));
            let mut garbage = TcpStream::connect(addr).unwrap();
            garbage.write_all(&[0xde, 0xad, 0xbe, 0xef].repeat(300)).unwrap();
            socks.push(("garbage", garbage));
            // Half a ClientHello, then silence: the handshake timeout ends it.
            let mut half = TcpStream::connect(addr).unwrap();
            half.write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03])
                .unwrap();
            socks.push(("half a ClientHello", half));
            // Nothing at all.
            socks.push(("silent", TcpStream::connect(addr).unwrap()));
            // Half a ClientHello and gone.
            let mut gone = TcpStream::connect(addr).unwrap();
            gone.write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01]).unwrap();
            drop(gone);
        }
        for (what, s) in &mut socks {
            assert!(closed_within(s, Duration::from_secs(5)), "{what} kept open on {io}");
        }
        drop(socks);
        // Every socket of theirs is closed broker-side too.
        let deadline = Instant::now() + Duration::from_secs(5);
        while open_fds(pid) > fds && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        assert_eq!(open_fds(pid), fds, "descriptors left open on {io}");
        assert!(b.is_running(), "broker died on {io}");
        // Still serving TLS and plain.
        assert!(amqp_start(addr, client_config(&pki.ca_der, &[&TLS12])).is_ok());
        run(async {
            let (c, _ch) = open(&b).await;
            c.close(200, "bye".into()).await.unwrap();
        });
        let log = std::fs::read_to_string(b.log_path()).unwrap();
        assert!(log.contains("TLS connection failed"), "{log}");
        // One INFO line per 10 s, not one per client.
        assert!(log.matches("TLS connection failed").count() <= 2, "{log}");
    }
}

#[test]
fn start_up_errors_are_clear() {
    let pki = pki(KeyKind::EcdsaP256);
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data = data.to_str().unwrap();
    let cert = pki.cert_path.to_str().unwrap();
    let key = pki.key_path.to_str().unwrap();
    let missing = dir.path().join("missing.pem");
    let missing = missing.to_str().unwrap();
    for (args, says) in [
        (vec!["--amqps-port", "0"], "tls_cert and tls_key"),
        (vec!["--amqps-port", "0", "--cert", cert], "tls_cert and tls_key"),
        (
            vec!["--amqps-port", "0", "--cert", missing, "--key", key],
            "missing.pem",
        ),
        (
            vec!["--amqps-port", "0", "--cert", cert, "--key", cert],
            "no private key",
        ),
        // The HTTPS listener reads the same files, with the same errors.
        (vec!["--https-port", "0", "--key", key], "tls_cert and tls_key"),
        (
            vec!["--https-port", "0", "--cert", cert, "--key", missing],
            "missing.pem",
        ),
        (
            vec![
                "--amqps-port",
                "0",
                "--cert",
                cert,
                "--key",
                key,
                "--tls-min-version",
                "1.1",
            ],
            "RFC 8996",
        ),
        (
            vec![
                "--amqps-port",
                "0",
                "--cert",
                cert,
                "--key",
                key,
                "--ciphers",
                "RC4-MD5",
            ],
            "unknown cipher suite",
        ),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_ringmq"))
            .args([
                "-D",
                data,
                "-p",
                "0",
                "--http-port",
                "-1",
                "--metrics-http-port",
                "-1",
                "--mqtt-port=-1",
            ])
            .args(&args)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {text}");
        assert!(text.contains(says), "{args:?}: {text}");
    }
}

#[test]
fn ringmqperf_speaks_amqps() {
    let pki = pki(KeyKind::EcdsaP256);
    let (_b, addr) = common::tls::broker(&pki, "uring", &[]);
    let uri = format!("amqps://guest:guest@localhost:{}/%2f", addr.port());
    for trust in [vec!["--tls-ca", pki.ca_path.to_str().unwrap()], vec!["--insecure"]] {
        let out = Command::new(env!("CARGO_BIN_EXE_ringmqperf"))
            .args([
                "throughput",
                "--uri",
                &uri,
                "-C",
                "3000",
                "-D",
                "3000",
                "-s",
                "1000",
                "-a",
                "50",
            ])
            .args(&trust)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{trust:?}: {text}");
        assert!(text.contains("published 3000 consumed 3000"), "{trust:?}: {text}");
    }
    // Another CA's certificate: refused.
    let other = common::tls::pki(KeyKind::EcdsaP256);
    let out = Command::new(env!("CARGO_BIN_EXE_ringmqperf"))
        .args([
            "throughput",
            "--uri",
            &uri,
            "-C",
            "10",
            "--tls-ca",
            other.ca_path.to_str().unwrap(),
        ])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && text.contains("invalid peer certificate"),
        "{text}"
    );
}
