//! Shovels over AMQPS, configured with RabbitMQ's URI query parameters
//! (`cacertfile`, `certfile` + `keyfile`, `verify`): the destination checks
//! the shovel's client certificate, the shovel checks the destination's; a
//! CA that did not sign the destination's certificate stops the shovel with
//! the reason, `verify=verify_none` connects anyway.

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
