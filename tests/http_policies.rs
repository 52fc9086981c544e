//! Policies, vhosts, limits, parameters and definitions through the HTTP API,
//! with their effects seen by AMQP clients: a max-length policy added to a live
//! queue trims it at once and removing it stops the trimming; deleting a vhost
//! closes its connections; definitions round-trip.

mod common;

use common::*;
use serde_json::{json, Value};

/// The shared test client (`common::http`), with a (status, JSON) view.
struct Api(common::http::Api);

impl Api {
    fn new(b: &Broker) -> Api {
        Api::as_user(b, "guest", "guest")
    }

    fn as_user(b: &Broker, user: &str, pass: &str) -> Api {
        Api(common::http::Api::new(b.http_url(), user, pass))
    }

    fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let r = self.0.call(method, path, body.as_ref(), &[]);
        (r.status, r.json)
    }

    #[track_caller]
    fn ok(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let (s, v) = self.call(method, path, body);
        assert!((200..300).contains(&s), "{method} {path}: {s} {v}");
        v
    }
}

async fn fill(ch: &lapin::Channel, q: &str, n: usize) {
    for i in 0..n {
        publish(ch, "", q, format!("m{i}").as_bytes()).await;
    }
}

async fn ready(api: &Api, q: &str) -> u64 {
    // Counts are read from the queue itself, not the 5 s stats tick.
    api.ok("GET", &format!("/api/queues/%2F/{q}"), None)["messages_ready"]
        .as_u64()
        .unwrap()
}

#[test]
fn a_max_length_policy_trims_a_live_queue_and_removing_it_stops_trimming() {
    let b = Broker::new();
    if b.skip_external("policy_on_live_queue") {
        return;
    }
    let api = Api::new(&b);
    run(async {
        let conn = connect(&b).await;
        let ch = confirm_channel(&conn).await;
        temp_queue(&ch, "live.q").await;
        fill(&ch, "live.q", 10).await;
        assert_eq!(ready(&api, "live.q").await, 10);

        let (s, _) = api.call(
            "PUT",
            "/api/policies/%2F/cap",
            Some(json!({"pattern": "^live\\.", "definition": {"max-length": 3}, "apply-to": "queues"})),
        );
        assert_eq!(s, 201);
        // Trimmed from the head at once.
        assert_eq!(ready(&api, "live.q").await, 3);
        let q = api.ok("GET", "/api/queues/%2F/live.q", None);
        assert_eq!(q["policy"], "cap");
        assert_eq!(q["effective_policy_definition"]["max-length"], 3);
        fill(&ch, "live.q", 2).await;
        assert_eq!(ready(&api, "live.q").await, 3);

        // Updating is 204; a lower operator policy caps further.
        let (s, _) = api.call(
            "PUT",
            "/api/policies/%2F/cap",
            Some(json!({"pattern": "^live\\.", "definition": {"max-length": 5}, "apply-to": "queues"})),
        );
        assert_eq!(s, 204);
        api.ok(
            "PUT",
            "/api/operator-policies/%2F/opcap",
            Some(json!({"pattern": ".*", "definition": {"max-length": 2}, "apply-to": "queues"})),
        );
        assert_eq!(ready(&api, "live.q").await, 2);
        api.ok("DELETE", "/api/operator-policies/%2F/opcap", None);
        api.ok("DELETE", "/api/policies/%2F/cap", None);
        fill(&ch, "live.q", 4).await;
        assert_eq!(ready(&api, "live.q").await, 6, "no limit any more");
        let q = api.ok("GET", "/api/queues/%2F/live.q", None);
        assert!(q["policy"].is_null(), "{q}");
        // The oldest survivors were trimmed; later messages are all there.
        let got = get_all(&ch, "live.q").await;
        assert_eq!(got, strs(&["m0", "m1", "m0", "m1", "m2", "m3"]));
    });
}

#[test]
fn policy_validation_errors_are_400_with_reasons() {
    let b = Broker::new();
    let api = Api::new(&b);
    let (s, v) = api.call(
        "PUT",
        "/api/policies/%2F/bad",
        Some(json!({"pattern": ".*", "definition": {"foo": 1}})),
    );
    assert_eq!(s, 400);
    assert_eq!(v["error"], "bad_request");
    assert!(
        v["reason"]
            .as_str()
            .unwrap()
            .contains("are not recognised policy settings"),
        "{v}"
    );
    let (s, v) = api.call(
        "PUT",
        "/api/policies/%2F/bad",
        Some(json!({"pattern": ".*", "definition": {"max-length": -1}})),
    );
    assert_eq!(s, 400, "{v}");
    let (s, _) = api.call(
        "PUT",
        "/api/operator-policies/%2F/bad",
        Some(json!({"pattern": ".*", "definition": {"dead-letter-exchange": "x"}})),
    );
    assert_eq!(s, 400);
    assert_eq!(api.call("GET", "/api/policies/%2F/missing", None).0, 404);
    assert_eq!(api.call("DELETE", "/api/policies/%2F/missing", None).0, 404);
    assert_eq!(api.call("GET", "/api/policies/nohost", None).0, 404);
    assert_eq!(api.ok("GET", "/api/policies", None), json!([]));
}

#[test]
fn a_policymaker_sets_policies_a_management_user_cannot() {
    let b = Broker::new();
    if b.skip_external("policymaker") {
        return;
    }
    let api = Api::new(&b);
    for (user, tags) in [("pm", "policymaker"), ("mg", "management")] {
        api.ok(
            "PUT",
            &format!("/api/users/{user}"),
            Some(json!({"password": "pw", "tags": tags})),
        );
        api.ok(
            "PUT",
            &format!("/api/permissions/%2F/{user}"),
            Some(json!({"configure": ".*", "write": ".*", "read": ".*"})),
        );
    }
    let body = json!({"pattern": "^x", "definition": {"message-ttl": 1000}});
    let (s, _) = Api::as_user(&b, "pm", "pw").call("PUT", "/api/policies/%2F/p", Some(body.clone()));
    assert_eq!(s, 201);
    let (s, _) = Api::as_user(&b, "mg", "pw").call("PUT", "/api/policies/%2F/p2", Some(body.clone()));
    assert_eq!(s, 401);
    // Operator policies are for administrators only.
    let (s, _) = Api::as_user(&b, "pm", "pw").call("PUT", "/api/operator-policies/%2F/o", Some(body));
    assert_eq!(s, 401);
}

#[test]
fn vhost_create_limit_and_delete_closes_its_connections() {
    let b = Broker::new();
    if b.skip_external("vhost_delete") {
        return;
    }
    let api = Api::new(&b);
    assert_eq!(
        api.call(
            "PUT",
            "/api/vhosts/v1",
            Some(json!({"description": "first", "tags": "a,b"}))
        )
        .0,
        201
    );
    assert_eq!(
        api.call("PUT", "/api/vhosts/v1", Some(json!({"description": "again"})))
            .0,
        204
    );
    // The creator got full permissions, as in RabbitMQ.
    let p = api.ok("GET", "/api/permissions/v1/guest", None);
    assert_eq!(p["configure"], ".*");
    api.ok("PUT", "/api/vhost-limits/v1/max-queues", Some(json!({"value": 1})));
    assert_eq!(
        api.ok("GET", "/api/vhost-limits/v1", None),
        json!([{"vhost": "v1", "value": {"max-queues": 1}}])
    );
    run(async {
        let uri = format!("amqp://guest:guest@{}:{}/v1", b.host(), b.port());
        let conn = lapin::Connection::connect(&uri, lapin::ConnectionProperties::default())
            .await
            .expect("connect to v1");
        let ch = channel(&conn).await;
        declare_queue(&ch, "only", QueueDeclareOptions::default(), FieldTable::default()).await;
        let r = ch
            .queue_declare("second".into(), QueueDeclareOptions::default(), FieldTable::default())
            .await;
        assert_amqp_err(r, 406, "PRECONDITION_FAILED - cannot declare queue 'second'");

        let data = b.data_dir();
        let before = std::fs::read_dir(&data).unwrap().count();
        api.ok("DELETE", "/api/vhosts/v1", None);
        eventually("connection closed by vhost delete", || {
            let c = conn.status().connected();
            async move { !c }
        })
        .await;
        assert_eq!(
            std::fs::read_dir(&data).unwrap().count(),
            before - 1,
            "vhost dir removed"
        );
        assert_eq!(api.call("GET", "/api/permissions/v1/guest", None).0, 404);
        assert_eq!(api.call("DELETE", "/api/vhosts/v1", None).0, 404);
        let r = lapin::Connection::connect(&uri, lapin::ConnectionProperties::default()).await;
        assert_amqp_err(r, 530, "NOT_ALLOWED - vhost v1 not found");
    });
}

#[test]
fn definitions_export_import_round_trip_over_http() {
    let b = Broker::new();
    if b.skip_external("definitions_round_trip") {
        return;
    }
    let api = Api::new(&b);
    api.ok("PUT", "/api/vhosts/dv", None);
    api.ok(
        "PUT",
        "/api/queues/dv/dq",
        Some(json!({"durable": true, "arguments": {"x-max-length": 7}})),
    );
    api.ok(
        "PUT",
        "/api/exchanges/dv/dx",
        Some(json!({"type": "topic", "durable": true})),
    );
    api.ok(
        "POST",
        "/api/bindings/dv/e/dx/q/dq",
        Some(json!({"routing_key": "a.*"})),
    );
    api.ok(
        "PUT",
        "/api/policies/dv/dp",
        Some(json!({"pattern": "^d", "definition": {"expires": 60000}, "priority": 2})),
    );
    api.ok(
        "PUT",
        "/api/users/du",
        Some(json!({"password": "pw", "tags": ["monitoring"]})),
    );
    api.ok("PUT", "/api/user-limits/du/max-connections", Some(json!({"value": 3})));
    let exported = api.ok("GET", "/api/definitions", None);
    assert_eq!(exported["users"].as_array().unwrap().len(), 2);

    // Into a second broker: the same definitions come out again.
    let b2 = Broker::new();
    let api2 = Api::new(&b2);
    let (s, v) = api2.call("POST", "/api/definitions", Some(exported.clone()));
    assert_eq!(s, 204, "{v}");
    let again = api2.ok("GET", "/api/definitions", None);
    for key in [
        "vhosts",
        "queues",
        "exchanges",
        "bindings",
        "policies",
        "parameters",
        "permissions",
    ] {
        assert_eq!(again[key], exported[key], "{key}");
    }
    let du = again["users"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["name"] == "du")
        .unwrap();
    assert_eq!(du["limits"], json!({"max-connections": 3}));

    // A bad file: 400 naming the entry, nothing applied.
    let bad = json!({"vhosts": [{"name": "nv"}], "queues": [{"name": "q", "vhost": "nv", "arguments": {"x-max-priority": 1000}}]});
    let (s, v) = api2.call("POST", "/api/definitions", Some(bad));
    assert_eq!(s, 400);
    assert!(v["reason"].as_str().unwrap().contains("queue 'q'"), "{v}");
    assert_eq!(api2.call("GET", "/api/vhosts/nv", None).0, 404);
    // Per vhost.
    let one = api.ok("GET", "/api/definitions/dv", None);
    assert!(one.get("users").is_none());
    api2.ok("PUT", "/api/vhosts/copy", None);
    api2.ok("POST", "/api/definitions/copy", Some(one));
    assert_eq!(
        api2.ok("GET", "/api/queues/copy/dq", None)["arguments"]["x-max-length"],
        7
    );
}

#[test]
fn parameters_and_global_parameters() {
    let b = Broker::new();
    let api = Api::new(&b);
    let body = json!({"value": {"uri": "amqp://upstream"}});
    assert_eq!(
        api.call("PUT", "/api/parameters/federation-upstream/%2F/up1", Some(body))
            .0,
        204
    );
    let v = api.ok("GET", "/api/parameters/federation-upstream/%2F/up1", None);
    assert_eq!(v["value"]["uri"], "amqp://upstream");
    // A value no upstream could be: 400 with RabbitMQ's text, nothing stored.
    let (status, reply) = api.call(
        "PUT",
        "/api/parameters/federation-upstream/%2F/up2",
        Some(json!({"value": {"uri": "amqp://upstream", "max-hops": "a"}})),
    );
    assert_eq!(status, 400, "{reply}");
    assert!(reply.to_string().contains("max-hops should be a number"), "{reply}");
    let (status, _) = api.call(
        "PUT",
        "/api/parameters/federation-upstream-set/%2F/s1",
        Some(json!({"value": [{}]})),
    );
    assert_eq!(status, 400);
    assert_eq!(
        api.ok("GET", "/api/parameters/federation-upstream", None)
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        api.call("PUT", "/api/parameters/nope/%2F/x", Some(json!({"value": 1})))
            .0,
        404
    );
    api.ok("DELETE", "/api/parameters/federation-upstream/%2F/up1", None);
    assert_eq!(
        api.call("GET", "/api/parameters/federation-upstream/%2F/up1", None).0,
        404
    );
    api.ok(
        "PUT",
        "/api/global-parameters/cluster_tags",
        Some(json!({"value": {"region": "eu"}})),
    );
    assert_eq!(
        api.ok("GET", "/api/global-parameters/cluster_tags", None)["value"]["region"],
        "eu"
    );
}

/// A real RabbitMQ 3.10 export (`GET /api/definitions` on the peer from
/// ../shared/peers/rabbitmq.sh, with a user `rabbituser`/`rabbitpw` made there)
/// imports into ringmq: RabbitMQ's password hashes work for logins, limits,
/// operator policies, policies, queues, exchanges and bindings all arrive.
/// (The other direction, a ringmq export into RabbitMQ, was checked by hand
/// against the same peer: 204, and ringmq's hashes log in there.)
#[test]
fn a_rabbitmq_export_imports() {
    let b = Broker::new();
    if b.skip_external("rabbitmq_export_imports") {
        return;
    }
    let api = Api::new(&b);
    let defs: Value = serde_json::from_str(include_str!("fixtures/rabbitmq-3.10-definitions.json")).unwrap();
    let (s, v) = api.call("POST", "/api/definitions", Some(defs.clone()));
    assert_eq!(s, 204, "{v}");
    let who = Api::as_user(&b, "rabbituser", "rabbitpw").ok("GET", "/api/whoami", None);
    assert_eq!(who["tags"], json!(["monitoring"]));
    let q = api.ok("GET", "/api/queues/compat/cq", None);
    assert_eq!(q["arguments"]["x-max-length"], 5);
    assert_eq!(q["policy"], "cp");
    assert_eq!(q["operator_policy"], "op");
    assert_eq!(
        api.ok("GET", "/api/vhost-limits/compat", None),
        json!([{"vhost": "compat", "value": {"max-queues": 50}}])
    );
    let out = api.ok("GET", "/api/definitions", None);
    for key in ["queues", "exchanges", "bindings", "policies"] {
        let names = |d: &Value| {
            let mut v: Vec<String> = d[key].as_array().unwrap().iter().map(|x| x.to_string()).collect();
            v.sort();
            v
        };
        // Same entries (ringmq writes keys in sorted order; compare as JSON values).
        let ours: Vec<Value> = out[key].as_array().unwrap().clone();
        for entry in defs[key].as_array().unwrap() {
            assert!(ours.contains(entry), "{key}: {entry} missing from {:?}", names(&out));
        }
    }
}

#[test]
fn overview_counts_churn() {
    let b = Broker::new();
    if b.skip_external("churn") {
        return;
    }
    let api = Api::new(&b);
    // The harness's port probes count as connections too: compare with a baseline.
    let count = |c: &Value, k: &str| c[k].as_u64().unwrap();
    let before = api.ok("GET", "/api/overview", None)["churn_rates"].clone();
    run(async {
        let (conn, ch) = open(&b).await;
        temp_queue(&ch, "churned").await;
        ch.queue_delete("churned".into(), QueueDeleteOptions::default())
            .await
            .unwrap();
        ch.close(200, "bye".into()).await.unwrap();
        conn.close(200, "bye".into()).await.unwrap();
        // Queue counts are folded in on the 5 s stats tick.
        eventually("churn counted", || {
            let c = api.ok("GET", "/api/overview", None)["churn_rates"].clone();
            // (The probe's close may land after the baseline was read.)
            let grew = |k: &str| count(&c, k) > count(&before, k);
            let ok = [
                "connection_created",
                "connection_closed",
                "channel_created",
                "channel_closed",
                "queue_declared",
                "queue_created",
                "queue_deleted",
            ]
            .iter()
            .all(|k| grew(k))
                && c["queue_created_details"]["rate"].is_number();
            async move { ok }
        })
        .await;
    });
}

#[test]
fn queue_depth_rates_follow_the_stats_tick() {
    let b = Broker::new();
    if b.skip_external("depth_rates") {
        return;
    }
    let api = Api::new(&b);
    run(async {
        let conn = connect(&b).await;
        let ch = confirm_channel(&conn).await;
        temp_queue(&ch, "deep").await;
        fill(&ch, "deep", 20).await;
        // The tick after the publishes sees the depth grow by 20 in ~5 s.
        eventually("positive messages_ready rate", || {
            let q = api.ok("GET", "/api/queues/%2F/deep", None);
            async move { q["messages_ready_details"]["rate"].as_f64().unwrap() > 0.0 }
        })
        .await;
    });
}

#[test]
fn a_ttl_and_dlx_policy_on_a_live_queue_dead_letters_its_messages() {
    let b = Broker::new();
    if b.skip_external("ttl_dlx_policy") {
        return;
    }
    let api = Api::new(&b);
    run(async {
        let conn = connect(&b).await;
        let ch = confirm_channel(&conn).await;
        temp_exchange(&ch, "pol-dlx", ExchangeKind::Fanout).await;
        temp_queue(&ch, "pol-dead").await;
        bind(&ch, "pol-dead", "pol-dlx", "", FieldTable::default()).await;
        temp_queue(&ch, "pol-src").await;
        fill(&ch, "pol-src", 3).await;
        api.ok(
            "PUT",
            "/api/policies/%2F/expire",
            Some(json!({"pattern": "^pol-src$", "apply-to": "queues",
                        "definition": {"message-ttl": 50, "dead-letter-exchange": "pol-dlx"}})),
        );
        // The messages already in the queue expire under the new TTL.
        eventually("dead-lettered", || {
            let n = api.ok("GET", "/api/queues/%2F/pol-dead", None)["messages_ready"].clone();
            async move { n == 3 }
        })
        .await;
        assert_eq!(ready(&api, "pol-src").await, 0);
        let mut dead = get_all(&ch, "pol-dead").await;
        dead.sort();
        assert_eq!(dead, strs(&["m0", "m1", "m2"]));
    });
}
