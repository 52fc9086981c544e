//! Shovels over AMQPS, configured with RabbitMQ's URI query parameters
//! (`cacertfile`, `certfile` + `keyfile`, `verify`): the destination checks
//! the shovel's client certificate, the shovel checks the destination's; a
//! CA that did not sign the destination's certificate stops the shovel with
//! the reason, `verify=verify_none` connects anyway. An `https://`
//! destination is checked against the broker's system CA store
//! (`SSL_CERT_FILE` in its environment names the test CA).

mod common;

use common::http::Api;
use common::links::{count, declare, publish};
use common::shovel_api::{put_shovel, shovel_status, wait_shovel_state, wait_until};
use common::tls::{amqps_addr, pki, KeyKind};
use common::*;
use serde_json::json;

fn api(b: &Broker) -> Api {
    Api::new(b.http_url(), b.user(), b.pass())
}

#[test]
fn a_shovel_moves_over_amqps_with_certificates_both_ways() {
    let ca = pki(KeyKind::EcdsaP256);
    let (client_cert, client_key) = ca.issue_files("shovel", "shovel-client", &["shovel-client"]);
    let cert = ca.cert_path.to_str().unwrap();
    let key = ca.key_path.to_str().unwrap();
    let ca_file = ca.ca_path.to_str().unwrap();
    // The destination asks for a client certificate signed by the CA, and
    // refuses a client without one.
    let dest = Broker::with_args(&[
        "--amqps-port",
        "0",
        "--cert",
        cert,
        "--key",
        key,
        "--tls-verify-peer",
        "--ca-cert",
        ca_file,
    ]);
    let src = Broker::new();
    assert!(!src.is_external(), "shovel tests start their own brokers");
    let port = amqps_addr(&dest).port();
    declare(src.uri(), "secret", None);
    let tls_uri = |query: &str| format!("amqps://guest:guest@localhost:{port}/%2F?{query}");
    let trusted = tls_uri(&format!(
        "cacertfile={ca_file}&certfile={}&keyfile={}&verify=verify_peer&heartbeat=5",
        client_cert.display(),
        client_key.display()
    ));
    put_shovel(
        &api(&src),
        "sealed",
        json!({"src-uri": "amqp://", "src-queue": "secret", "dest-uri": trusted, "dest-queue": "secret-out",
               "reconnect-delay": 1}),
    );
    wait_shovel_state(&api(&src), "sealed", "running");
    publish(src.uri(), "", "secret", "s", 200);
    wait_until("moved over TLS", WAIT, || count(dest.uri(), "secret-out") == 200);
    // The destination saw a TLS connection presenting the shovel's certificate,
    // with the heartbeat the URI asked for.
    let conns = api(&dest).ok("/api/connections");
    let shovel_conn = (conns.as_array().unwrap().iter())
        .find(|c| c["ssl"] == true)
        .unwrap_or_else(|| panic!("a TLS connection: {conns}"));
    let subject = shovel_conn["peer_cert_subject"].as_str().unwrap_or_default();
    assert!(subject.contains("shovel-client"), "{shovel_conn}");
    assert_eq!(shovel_conn["timeout"], 5, "heartbeat=5 from the URI: {shovel_conn}");
    let listed = shovel_status(&api(&src), "sealed").unwrap();
    assert!(
        !listed.to_string().contains("guest:guest"),
        "no credentials in the status: {listed}"
    );

    // A CA that did not sign the destination's certificate: the shovel stops
    // and says why; with verify=verify_none it connects anyway.
    let other = pki(KeyKind::EcdsaP256);
    let untrusting = tls_uri(&format!(
        "cacertfile={}&certfile={}&keyfile={}",
        other.ca_path.display(),
        client_cert.display(),
        client_key.display()
    ));
    put_shovel(
        &api(&src),
        "doubtful",
        json!({"src-uri": "amqp://", "src-queue": "secret2", "dest-uri": untrusting, "dest-queue": "secret-out",
               "reconnect-delay": 60}),
    );
    let st = wait_shovel_state(&api(&src), "doubtful", "terminated");
    let reason = st["reason"].as_str().unwrap_or_default().to_lowercase();
    assert!(reason.contains("certificate") || reason.contains("issuer"), "{st}");
    let unchecked = tls_uri(&format!(
        "verify=verify_none&certfile={}&keyfile={}",
        client_cert.display(),
        client_key.display()
    ));
    put_shovel(
        &api(&src),
        "careless",
        json!({"src-uri": "amqp://", "src-queue": "secret3", "dest-uri": unchecked, "dest-queue": "secret-out3",
               "reconnect-delay": 1}),
    );
    wait_shovel_state(&api(&src), "careless", "running");
    publish(src.uri(), "", "secret3", "c", 10);
    wait_until("moved unchecked", WAIT, || count(dest.uri(), "secret-out3") == 10);

    // Without a trust setting, or with an unknown parameter: refused at PUT.
    for (uri, says) in [
        (tls_uri(""), "needs cacertfile"),
        (tls_uri("cacertfile=/x&colour=red"), "unknown query parameter"),
    ] {
        let r = api(&src).put(
            "/api/parameters/shovel/%2F/refused",
            json!({"value": {"src-uri": "amqp://", "src-queue": "q", "dest-uri": uri}}),
        );
        assert_eq!(r.status, 400, "{uri}: {}", r.text);
        assert!(r.text.contains(says), "{uri}: {}", r.text);
    }
}

/// An HTTPS endpoint on a thread with `pki`'s server certificate: answers
/// every request 200 and records each body.
fn https_endpoint(pki: &common::tls::Pki) -> (u16, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    use std::io::{BufRead, BufReader, Read, Write};
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&pki.cert_path)
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let key = PrivateKeyDer::from_pem_file(&pki.key_path).unwrap();
    let config = std::sync::Arc::new(
        rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .unwrap(),
    );
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let got = seen.clone();
    std::thread::spawn(move || {
        for conn in l.incoming() {
            let Ok(tcp) = conn else { return };
            let got = got.clone();
            let config = config.clone();
            std::thread::spawn(move || {
                let tls = rustls::ServerConnection::new(config).unwrap();
                let mut r = BufReader::new(rustls::StreamOwned::new(tls, tcp));
                loop {
                    let mut len = 0usize;
                    loop {
                        let mut line = String::new();
                        // A failed handshake (an untrusting client) ends here.
                        if r.read_line(&mut line).unwrap_or(0) == 0 {
                            return;
                        }
                        if line == "\r\n" {
                            break;
                        }
                        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                            len = v.trim().parse().unwrap();
                        }
                    }
                    let mut body = vec![0; len];
                    r.read_exact(&mut body).unwrap();
                    got.lock().unwrap().push(String::from_utf8(body).unwrap());
                    let w = r.get_mut();
                    w.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n").unwrap();
                    w.flush().unwrap();
                }
            });
        }
    });
    (port, seen)
}

#[test]
fn an_https_destination_is_checked_against_the_system_store() {
    let ca = pki(KeyKind::EcdsaP256);
    let (port, seen) = https_endpoint(&ca);
    let dest = format!("https://localhost:{port}/in");
    // SSL_CERT_FILE: the broker's "system" store is the test CA.
    let trusting = Broker::with_args_env(&[], &[("SSL_CERT_FILE", ca.ca_path.to_str().unwrap())]);
    if trusting.skip_external("an_https_destination_is_checked_against_the_system_store") {
        return;
    }
    declare(trusting.uri(), "to-https", None);
    put_shovel(
        &api(&trusting),
        "web",
        json!({"src-uri": "amqp://", "src-queue": "to-https", "dest-uri": dest}),
    );
    wait_shovel_state(&api(&trusting), "web", "running");
    publish(trusting.uri(), "", "to-https", "t", 3);
    wait_until("3 posted over TLS", WAIT, || seen.lock().unwrap().len() == 3);
    assert_eq!(*seen.lock().unwrap(), ["t0", "t1", "t2"]);
    wait_until("acked at the source", WAIT, || count(trusting.uri(), "to-https") == 0);

    // A store without the test CA: the endpoint's certificate is refused, the
    // message stays at the source, retried, and the log says why.
    let empty = tempfile::NamedTempFile::new().unwrap();
    let other = pki(KeyKind::EcdsaP256);
    std::fs::write(empty.path(), &other.ca_pem).unwrap();
    let doubting = Broker::with_args_env(&[], &[("SSL_CERT_FILE", empty.path().to_str().unwrap())]);
    declare(doubting.uri(), "to-https", None);
    put_shovel(
        &api(&doubting),
        "web",
        json!({"src-uri": "amqp://", "src-queue": "to-https", "dest-uri": dest}),
    );
    publish(doubting.uri(), "", "to-https", "d", 1);
    wait_until("the refusal logged", WAIT, || {
        std::fs::read_to_string(doubting.log_path())
            .unwrap_or_default()
            .contains("tls:")
    });
    let log = std::fs::read_to_string(doubting.log_path()).unwrap();
    let line = log.lines().find(|l| l.contains("tls:")).unwrap();
    assert!(line.to_lowercase().contains("certificate"), "{line}");
    assert_eq!(seen.lock().unwrap().len(), 3, "nothing posted by the doubting broker");
    // Held by the shovel unacknowledged (not ready: a passive declare says 0).
    wait_until("kept at the source, unacknowledged", WAIT, || {
        api(&doubting).ok("/api/queues/%2F/to-https")["messages_unacknowledged"] == 1
    });
}
