//! Management endpoints monitoring tools call (issue 16, item 11): health
//! checks, cluster name, extensions, feature flags, a user's connections, a
//! vhost's connections and channels, queue actions. Shapes were taken from
//! RabbitMQ 3.10 and these tests also pass against it (`RINGMQ_TEST_URI` and
//! `RINGMQ_TEST_HTTP_URI`), except where a test says it needs ringmq.

mod common;

use std::time::{Duration, Instant};

use common::http::{assert_err, enc, Api};
use common::*;
use serde_json::{json, Value};

fn api(b: &Broker) -> Api {
    Api::new(b.http_url(), b.user(), b.pass())
}

/// RabbitMQ lists connections and channels after its next stats round (5 s).
const STATS_WAIT: Duration = Duration::from_secs(20);

#[track_caller]
fn poll(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + STATS_WAIT;
    while !f() {
        assert!(Instant::now() < deadline, "timed out after {STATS_WAIT:?}: {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn health_checks_answer_as_rabbitmq() {
    let b = Broker::new();
    let a = api(&b);
    let ok = json!({"status": "ok"});
    assert_eq!(a.ok("/api/health/checks/alarms"), ok);
    assert_eq!(a.ok("/api/health/checks/local-alarms"), ok);
    assert_eq!(a.ok("/api/health/checks/virtual-hosts"), ok);
    let single = json!({"status": "ok", "reason": "single node cluster"});
    assert_eq!(a.ok("/api/health/checks/node-is-quorum-critical"), single);
    assert_eq!(a.ok("/api/health/checks/node-is-mirror-sync-critical"), single);

    let port = b.port();
    assert_eq!(
        a.ok(&format!("/api/health/checks/port-listener/{port}")),
        json!({"status": "ok", "port": port})
    );
    let r = a.get("/api/health/checks/port-listener/1");
    assert_eq!(r.status, 503, "{}", r.text);
    assert_eq!(
        (&r.json["status"], &r.json["reason"], &r.json["missing"]),
        (&json!("failed"), &json!("No active listener"), &json!(1))
    );
    assert!(r.json["ports"].as_array().unwrap().contains(&json!(port)), "{}", r.text);
    let r = a.get("/api/health/checks/port-listener/abc");
    assert_err(&r, 400, "bad_request");
    assert_eq!(r.json["reason"], "Invalid port");

    for name in ["amqp", "amqp091", "amqp0-9-1"] {
        assert_eq!(
            a.ok(&format!("/api/health/checks/protocol-listener/{name}")),
            json!({"status": "ok", "protocol": "amqp"})
        );
    }
    let r = a.get("/api/health/checks/protocol-listener/stomp");
    assert_eq!((r.status, &r.json["missing"]), (503, &json!("stomp")), "{}", r.text);
    assert!(r.json["protocols"].as_array().unwrap().contains(&json!("amqp")));

    // No TLS listener: nothing can expire, once the arguments are valid.
    for unit in ["days", "weeks", "months", "years"] {
        assert_eq!(a.ok(&format!("/api/health/checks/certificate-expiration/1/{unit}")), ok);
    }
    let r = a.get("/api/health/checks/certificate-expiration/1/fortnights");
    assert_err(&r, 400, "bad_request");
    assert_eq!(
        r.json["reason"],
        "Time unit not recognised. Supported units: days, weeks, months, years."
    );
    let r = a.get("/api/health/checks/certificate-expiration/soon/days");
    assert_eq!(r.json["reason"], "Invalid expiration value.");
    assert_err(
        &a.get("/api/health/checks/certificate-expiration"),
        404,
        "Object Not Found",
    );
}

#[test]
fn alarm_health_checks_fail_with_the_alarms() {
    let b = Broker::with_args(&["--memory-high-watermark", "1MiB"]);
    if b.skip_external("alarm_health_checks_fail_with_the_alarms") {
        return;
    }
    let a = api(&b);
    poll("the memory alarm", || a.get("/api/health/checks/alarms").status == 503);
    let node = a.ok("/api/nodes")[0]["name"].clone();
    for (path, reason) in [
        ("alarms", "There are alarms in effect in the cluster"),
        ("local-alarms", "There are alarms in effect on the node"),
    ] {
        let r = a.get(&format!("/api/health/checks/{path}"));
        assert_eq!(r.status, 503, "{}", r.text);
        assert_eq!(
            r.json,
            json!({"status": "failed", "reason": reason, "alarms": [{"resource": "memory", "node": node}]})
        );
    }
}

#[test]
fn cluster_name_extensions_and_feature_flags() {
    let b = Broker::new();
    let a = api(&b);
    let before = a.ok("/api/cluster-name")["name"].clone();
    assert!(before.is_string(), "{before}");
    assert_eq!(a.ok("/api/overview")["cluster_name"], before);
    let name = unique("cluster");
    assert_eq!(a.put("/api/cluster-name", json!({"name": name})).status, 204);
    assert_eq!(a.ok("/api/cluster-name"), json!({"name": name}));
    assert_eq!(a.ok("/api/overview")["cluster_name"], json!(name));
    let r = a.put("/api/cluster-name", json!({}));
    assert_err(&r, 400, "bad_request");
    assert_eq!(r.json["reason"], "[{key_missing,name}]");
    assert_eq!(a.put("/api/cluster-name", json!({"name": before})).status, 204);
    assert_eq!(a.ok("/api/cluster-name")["name"], before);

    assert!(a.ok("/api/extensions").is_array());
    let flags = a.ok("/api/feature-flags");
    let flags = flags.as_array().unwrap();
    for f in flags {
        for key in ["name", "desc", "doc_url", "state", "stability", "provided_by"] {
            assert!(f[key].is_string(), "{key} in {f}");
        }
    }
    for name in [
        "user_limits",
        "virtual_host_metadata",
        "implicit_default_bindings",
        "quorum_queue",
    ] {
        let f = flags.iter().find(|f| f["name"] == name).expect(name);
        assert_eq!(f["state"], "enabled", "{f}");
    }
    // Administrators only.
    let user = unique("ff-user");
    a.add_user(&user, "pw", "management", false);
    assert_eq!(a.as_user(&user, "pw").get("/api/feature-flags").status, 401);
    assert_eq!(a.as_user(&user, "pw").get("/api/extensions").status, 200);
    assert_eq!(a.delete(&format!("/api/users/{user}")).status, 204);
}

#[test]
fn a_users_connections_and_a_vhosts_connections_and_channels() {
    let b = Broker::new();
    let a = api(&b);
    let user = unique("conn-user");
    a.add_user(&user, "pw", "", true);
    let path = format!("/api/connections/username/{}", enc(&user));
    assert_eq!(a.ok(&path), json!([]));
    assert_eq!(a.delete(&path).status, 204, "none to close");

    run(async {
        let conn = within(
            "connect",
            lapin::Connection::connect(&b.uri_with(&user, "pw"), lapin::ConnectionProperties::default()),
        )
        .await
        .expect("connect");
        let _ch = channel(&conn).await;
        let (a, user, path) = (a.clone(), user.clone(), path.clone());
        let name = tokio::task::spawn_blocking(move || {
            let mine = |list: Value| -> Vec<Value> {
                list.as_array()
                    .expect("a list")
                    .iter()
                    .filter(|c| c["user"] == json!(user))
                    .cloned()
                    .collect()
            };
            poll("the connection is listed", || {
                a.ok(&path).as_array().is_some_and(|l| !l.is_empty())
            });
            let tracked = a.ok(&path);
            let t = &tracked[0];
            let keys: Vec<&String> = t.as_object().unwrap().keys().collect();
            assert_eq!(keys, ["name", "node", "user", "vhost"], "{t}");
            assert_eq!((&t["user"], &t["vhost"]), (&json!(user), &json!("/")), "{t}");
            let name = t["name"].as_str().unwrap().to_owned();

            poll("the vhost lists the connection and its channel", || {
                !mine(a.ok("/api/vhosts/%2F/connections")).is_empty()
                    && !mine(a.ok("/api/vhosts/%2F/channels")).is_empty()
            });
            let c = &mine(a.ok("/api/vhosts/%2F/connections"))[0];
            // (RabbitMQ's `channels` count lags its channel list by a stats round.)
            assert_eq!((&c["name"], &c["vhost"]), (&json!(name), &json!("/")), "{c}");
            assert!(c["channels"].is_u64() && c["client_properties"].is_object(), "{c}");
            let ch = &mine(a.ok("/api/vhosts/%2F/channels"))[0];
            assert_eq!(ch["connection_details"]["name"], json!(name), "{ch}");
            assert_eq!((&ch["number"], &ch["vhost"]), (&json!(1), &json!("/")), "{ch}");
            assert_err(&a.get("/api/vhosts/no-such-vhost/connections"), 404, "Object Not Found");

            // DELETE closes them (320 with the reason).
            let r = a.call("DELETE", &path, None, &[("X-Reason", "bye from the test")]);
            assert_eq!(r.status, 204, "{}", r.text);
            name
        })
        .await
        .expect("checks");
        closed_by_server(&conn).await;
        assert!(!name.is_empty());
    });
    poll("the connection is gone", || a.ok(&path) == json!([]));
    assert_eq!(a.delete(&format!("/api/users/{user}")).status, 204);
}

#[test]
fn queue_actions_sync_and_cancel_sync_are_done_for_a_queue_without_mirrors() {
    let b = Broker::new();
    let a = api(&b);
    let q = unique("actions");
    let path = format!("/api/queues/%2F/{q}");
    assert_eq!(a.put(&path, json!({"durable": false})).status, 201);
    for action in ["sync", "cancel_sync"] {
        let r = a.post(&format!("{path}/actions"), json!({"action": action}));
        assert_eq!(r.status, 204, "{action}: {}", r.text);
    }
    // (RabbitMQ's reason is an Erlang term here: ["unknown","bogus"].)
    let r = a.post(&format!("{path}/actions"), json!({"action": "bogus"}));
    assert_eq!((r.status, &r.json["error"]), (400, &json!("bad_request")), "{}", r.text);
    let r = a.post(&format!("{path}/actions"), json!({}));
    assert_err(&r, 400, "bad_request");
    assert_eq!(r.json["reason"], "[{key_missing,action}]");
    assert_eq!(a.get(&format!("{path}/actions")).status, 405);

    // LavinMQ's pause and resume are actions here too (ringmq only).
    if !b.is_external() {
        let r = a.post(&format!("{path}/actions"), json!({"action": "pause"}));
        assert_eq!(r.status, 204, "{}", r.text);
        assert_eq!(a.ok(&path)["state"], "paused");
        let r = a.post(&format!("{path}/actions"), json!({"action": "resume"}));
        assert_eq!(r.status, 204, "{}", r.text);
        assert_eq!(a.ok(&path)["state"], "running");
        assert_err(
            &a.post("/api/queues/%2F/no-such-queue/actions", json!({"action": "sync"})),
            404,
            "Object Not Found",
        );
    }
    assert_eq!(a.delete(&path).status, 204);
}
