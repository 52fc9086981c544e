//! Vhost and user limits, policies and operator policies as AMQP clients see
//! them, set up with `--load-definitions` (the runtime API paths are in
//! tests/http_policies.rs).

mod common;

use common::*;
use lapin::{Connection, ConnectionProperties};
use serde_json::json;

/// Starts a broker that loads `defs` at boot; returns it and the temp dir
/// holding the file.
fn broker_with(defs: serde_json::Value) -> (Broker, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("defs.json");
    std::fs::write(&path, serde_json::to_vec(&defs).unwrap()).unwrap();
    let b = Broker::with_args(&["--load-definitions", path.to_str().unwrap()]);
    (b, dir)
}

fn uri(b: &Broker, user: &str, pass: &str, vhost: &str) -> String {
    format!("amqp://{user}:{pass}@{}:{}/{vhost}", b.host(), b.port())
}

async fn connect_to(uri: &str) -> lapin::Result<Connection> {
    within("connect", Connection::connect(uri, ConnectionProperties::default())).await
}

fn limits_defs() -> serde_json::Value {
    json!({
        "vhosts": [{"name": "lim"}],
        "users": [{"name": "u1", "password": "pw", "tags": "", "limits": {"max-connections": 1, "max-channels": 2}}],
        "permissions": [
            {"user": "guest", "vhost": "lim", "configure": ".*", "write": ".*", "read": ".*"},
            {"user": "u1", "vhost": "/", "configure": ".*", "write": ".*", "read": ".*"}
        ],
        "parameters": [{"vhost": "lim", "component": "vhost-limits", "name": "limits",
                        "value": {"max-connections": 1, "max-queues": 2}}]
    })
}

#[test]
fn vhost_connection_limit_refuses_with_530_and_frees_on_close() {
    let (b, _defs) = broker_with(limits_defs());
    if b.skip_external("vhost_connection_limit") {
        return;
    }
    run(async {
        let first = connect_to(&uri(&b, "guest", "guest", "lim"))
            .await
            .expect("first connection");
        let second = connect_to(&uri(&b, "guest", "guest", "lim")).await;
        assert_amqp_err(
            second,
            530,
            "NOT_ALLOWED - access to vhost 'lim' refused for user 'guest': connection limit (1) is reached",
        );
        // Other vhosts are not affected.
        let other = connect_to(b.uri()).await.expect("connection to /");
        first.close(200, "bye".into()).await.unwrap();
        let again = connect_to(&uri(&b, "guest", "guest", "lim")).await.expect("slot freed");
        again.close(200, "bye".into()).await.unwrap();
        other.close(200, "bye".into()).await.unwrap();
    });
}

#[test]
fn vhost_queue_limit_refuses_new_queues_with_406() {
    let (b, _defs) = broker_with(limits_defs());
    if b.skip_external("vhost_queue_limit") {
        return;
    }
    run(async {
        let conn = connect_to(&uri(&b, "guest", "guest", "lim")).await.unwrap();
        let ch = channel(&conn).await;
        declare_queue(&ch, "q1", QueueDeclareOptions::default(), FieldTable::default()).await;
        declare_queue(&ch, "q2", QueueDeclareOptions::default(), FieldTable::default()).await;
        // Redeclaring an existing queue is not a new queue.
        declare_queue(&ch, "q1", QueueDeclareOptions::default(), FieldTable::default()).await;
        let r = ch
            .queue_declare("q3".into(), QueueDeclareOptions::default(), FieldTable::default())
            .await;
        assert_amqp_err(
            r,
            406,
            "PRECONDITION_FAILED - cannot declare queue 'q3': queue limit in vhost 'lim' (2) is reached",
        );
    });
}

#[test]
fn user_limits_cap_connections_and_channels() {
    let (b, _defs) = broker_with(limits_defs());
    if b.skip_external("user_limits") {
        return;
    }
    run(async {
        let u1 = uri(&b, "u1", "pw", "%2f");
        let conn = connect_to(&u1).await.expect("u1 connects");
        assert_amqp_err(
            connect_to(&u1).await,
            530,
            "NOT_ALLOWED - Connection refused for user 'u1': user connection limit (1) is reached",
        );
        let _c1 = conn.create_channel().await.expect("channel 1");
        let _c2 = conn.create_channel().await.expect("channel 2");
        let r = conn.create_channel().await;
        assert_amqp_err(
            r,
            530,
            "NOT_ALLOWED - number of channels opened for user 'u1' has reached the maximum allowed user limit of (2)",
        );
    });
}

#[test]
fn policies_from_definitions_apply_to_new_queues_lowest_limit_wins() {
    let defs = json!({
        "policies": [
            {"vhost": "/", "name": "short", "pattern": "^pol\\.", "apply-to": "queues", "priority": 1,
             "definition": {"max-length": 3}},
            {"vhost": "/", "name": "any", "pattern": ".*", "apply-to": "all", "priority": 0,
             "definition": {"alternate-exchange": "pol-ae"}}
        ],
        "parameters": [{"vhost": "/", "component": "operator_policy", "name": "cap",
                        "value": {"pattern": "^pol\\.capped", "definition": {"max-length": 1},
                                  "priority": 0, "apply-to": "queues"}}]
    });
    let (b, _defs) = broker_with(defs);
    if b.skip_external("policies_from_definitions") {
        return;
    }
    run(async {
        let (_conn, ch) = open(&b).await;
        for q in ["pol.a", "pol.capped"] {
            declare_queue(&ch, q, QueueDeclareOptions::default(), FieldTable::default()).await;
        }
        // A queue argument above the policy's limit: the policy's lower limit wins.
        declare_queue(
            &ch,
            "pol.arg",
            QueueDeclareOptions::default(),
            table(&[("x-max-length", AMQPValue::LongLongInt(10))]),
        )
        .await;
        for i in 0..5 {
            for q in ["pol.a", "pol.capped", "pol.arg"] {
                publish(&ch, "", q, format!("m{i}").as_bytes()).await;
            }
        }
        assert_eq!(get_all(&ch, "pol.a").await, strs(&["m2", "m3", "m4"]));
        assert_eq!(get_all(&ch, "pol.arg").await, strs(&["m2", "m3", "m4"]));
        // The operator policy caps below the policy.
        assert_eq!(get_all(&ch, "pol.capped").await, strs(&["m4"]));

        // alternate-exchange from the "any" policy: unroutable messages of a new
        // exchange go to pol-ae.
        temp_exchange(&ch, "pol-ae", ExchangeKind::Fanout).await;
        temp_exchange(&ch, "pol-x", ExchangeKind::Direct).await;
        temp_queue(&ch, "ae-sink").await;
        bind(&ch, "ae-sink", "pol-ae", "", FieldTable::default()).await;
        publish(&ch, "pol-x", "nowhere", b"lost?").await;
        assert_eq!(get_all(&ch, "ae-sink").await, strs(&["lost?"]));
    });
}

#[test]
fn a_bad_definitions_file_stops_the_start_and_names_the_entry() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("defs.json");
    let defs = json!({"queues": [{"name": "q", "vhost": "nope", "durable": true, "arguments": {}}]});
    std::fs::write(&path, serde_json::to_vec(&defs).unwrap()).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ringmq"))
        .arg("-D")
        .arg(dir.path().join("data"))
        .args([
            "--bind",
            "127.0.0.1",
            "--amqp-port",
            "0",
            "--http-port",
            "-1",
            "--mqtt-port=-1",
            "--load-definitions",
        ])
        .arg(&path)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("queue 'q': vhost 'nope' does not exist"), "{err}");
}
