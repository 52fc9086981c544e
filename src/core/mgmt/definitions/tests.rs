//! Import and export against RabbitMQ's shapes, round trips, and refusals.

use super::*;
use crate::core::CoreConfig;
use serde_json::{json, Value};

fn broker(dir: &std::path::Path) -> Broker {
    let cfg = CoreConfig::for_tests(dir);
    Broker::open(cfg, 7).unwrap()
}

/// A RabbitMQ 3.10 export (trimmed), as `GET /api/definitions` gave it.
fn rabbit_export() -> Value {
    json!({
      "rabbit_version": "3.10.8", "rabbitmq_version": "3.10.8",
      "product_name": "RabbitMQ", "product_version": "3.10.8",
      "users": [{"name": "bob", "password_hash": "EaM0cnYXnkjddZj/FPfAqL+L6OXdESGU1MbJms1+ojw636Na",
                 "hashing_algorithm": "rabbit_password_hashing_sha256", "tags": ["monitoring"],
                 "limits": {"max-channels": 10}}],
      "vhosts": [{"name": "/"}, {"name": "v2"}],
      "permissions": [{"user": "bob", "vhost": "v2", "configure": ".*", "write": ".*", "read": ".*"}],
      "topic_permissions": [{"user": "bob", "vhost": "v2", "exchange": "x1", "write": "^{username}\\.", "read": ""}],
      "parameters": [
        {"value": [], "vhost": "/", "component": "vhost-limits", "name": "limits"},
        {"value": {"max-connections": 100}, "vhost": "v2", "component": "vhost-limits", "name": "limits"},
        {"value": {"pattern": ".*", "definition": {"max-length": 5}, "priority": 0, "apply-to": "queues"},
         "vhost": "v2", "component": "operator_policy", "name": "op1"}],
      "global_parameters": [{"name": "cluster_name", "value": "rabbit@x"}],
      "policies": [{"vhost": "v2", "name": "p1", "pattern": "^q", "apply-to": "queues",
                    "definition": {"message-ttl": 60000, "max-length": 50}, "priority": 1}],
      "queues": [{"name": "q1", "vhost": "v2", "durable": true, "auto_delete": false,
                  "arguments": {"x-max-length": 10}},
                 {"name": "t1", "vhost": "v2", "durable": false, "auto_delete": false, "arguments": {}}],
      "exchanges": [{"name": "x1", "vhost": "v2", "type": "topic", "durable": true, "auto_delete": false,
                     "internal": false, "arguments": {}}],
      "bindings": [{"source": "x1", "vhost": "v2", "destination": "q1", "destination_type": "queue",
                    "routing_key": "a.#", "arguments": {"k": 1}}]
    })
}

#[test]
fn rabbitmq_export_imports_and_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let mut b = broker(dir.path());
    let d: Definitions = serde_json::from_value(rabbit_export()).unwrap();
    b.import_definitions(d, None, None, 1_000).unwrap();
    let v2 = &b.model.vhosts["v2"];
    assert_eq!(v2.meta.limits.max_connections, Some(100));
    let q1 = v2.queues[&v2.queue_id("q1").unwrap()].settings().clone();
    // Lowest of argument 10, policy 50 and operator policy 5.
    assert_eq!(q1.max_length, Some(5));
    assert_eq!(q1.message_ttl_ms, Some(60_000));
    assert!(b.users.get("bob").unwrap().has_tag("monitoring"));
    assert_eq!(b.users.get("bob").unwrap().limits.max_channels, Some(10));
    assert!(b.permissions.get("bob", "v2").is_some());
    let tp = b.permissions.topic.defs();
    assert_eq!(
        (tp.len(), tp[0].exchange.as_str(), tp[0].write.as_str()),
        (1, "x1", "^{username}\\.")
    );

    let out = serde_json::to_value(b.export_definitions(None).unwrap()).unwrap();
    // Durable and transient queues are exported (not exclusive ones), as RabbitMQ does.
    let names: Vec<&str> = out["queues"]
        .as_array()
        .unwrap()
        .iter()
        .map(|q| q["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["q1", "t1"]);
    assert_eq!(out["bindings"][0]["arguments"], json!({"k": 1}));
    assert_eq!(out["parameters"].as_array().unwrap().len(), 2);

    // Into a fresh broker: the same export comes out.
    let dir2 = tempfile::tempdir().unwrap();
    let mut b2 = broker(dir2.path());
    b2.import_definitions(serde_json::from_value(out.clone()).unwrap(), None, None, 1_000)
        .unwrap();
    let mut out2 = serde_json::to_value(b2.export_definitions(None).unwrap()).unwrap();
    // guest's hash differs per broker (fresh salt); everything else matches.
    out2["users"] = out["users"].clone();
    assert_eq!(out2, out);

    // And durable things survive a restart.
    drop(b2);
    let b3 = broker(dir2.path());
    let v2 = &b3.model.vhosts["v2"];
    assert!(v2.queue_id("q1").is_some());
    assert!(v2.queue_id("t1").is_none(), "transient queue gone after restart");
    assert_eq!(v2.policies.len(), 1);
    assert_eq!(v2.operator_policies.len(), 1);
    assert_eq!(v2.meta.limits.max_connections, Some(100));
}

#[test]
fn a_bad_entry_is_named_and_nothing_is_applied() {
    let dir = tempfile::tempdir().unwrap();
    let mut b = broker(dir.path());
    let mut d = rabbit_export();
    d["bindings"][0]["destination"] = json!("missing");
    let e = b
        .import_definitions(serde_json::from_value(d).unwrap(), None, None, 1)
        .unwrap_err()
        .to_string();
    assert!(e.contains("binding of 'x1' to queue 'missing'"), "{e}");
    assert!(e.contains("does not exist"), "{e}");
    assert!(!b.model.vhosts.contains_key("v2"), "nothing applied");
    assert!(b.users.get("bob").is_none());

    let mut d = rabbit_export();
    d["policies"][0]["definition"] = json!({"nope": 1});
    let e = b
        .import_definitions(serde_json::from_value(d).unwrap(), None, None, 1)
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("policy 'p1': Validation failed"), "{e}");
    let mut d = rabbit_export();
    d["queues"][0]["arguments"] = json!({"x-max-length": -1});
    let e = b
        .import_definitions(serde_json::from_value(d).unwrap(), None, None, 1)
        .unwrap_err()
        .to_string();
    assert!(e.contains("queue 'q1'") && e.contains("value_negative"), "{e}");
    assert!(!b.model.vhosts.contains_key("v2"));
}

#[test]
fn per_vhost_export_has_no_vhost_fields_and_imports_elsewhere() {
    let dir = tempfile::tempdir().unwrap();
    let mut b = broker(dir.path());
    b.import_definitions(serde_json::from_value(rabbit_export()).unwrap(), None, None, 1)
        .unwrap();
    let one = serde_json::to_value(b.export_definitions(Some("v2")).unwrap()).unwrap();
    assert!(one.get("users").is_none() && one.get("vhosts").is_none());
    assert!(one["queues"][0].get("vhost").is_none());
    b.create_vhost("v3", None, None).unwrap();
    b.import_definitions(serde_json::from_value(one).unwrap(), Some("v3"), None, 2)
        .unwrap();
    assert!(b.model.vhosts["v3"].queue_id("q1").is_some());
    assert_eq!(b.model.vhosts["v3"].policies.len(), 1);
}
