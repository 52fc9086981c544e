//! `ringmqctl` against a real broker's management API: every command is run as the
//! built binary and checked through its output, its exit code and, where it changes
//! something, through another command or an AMQP client.

mod common;

use std::process::{Command, Output};

use common::{run, unique, Broker, WAIT};
use serde_json::Value;

/// The management API's base URL of the broker under test.
/// (`RINGMQ_TEST_HTTP_URI` with `RINGMQ_TEST_URI` points these tests at RabbitMQ.)
fn api(b: &Broker) -> String {
    b.http_url().to_string()
}

fn ctl_as(b: &Broker, user: &str, pass: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ringmqctl"))
        .args(["--uri", &api(b), "-u", user, "--password", pass])
        .args(args)
        .output()
        .expect("run ringmqctl")
}

fn ctl(b: &Broker, args: &[&str]) -> Output {
    ctl_as(b, b.user(), b.pass(), args)
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Runs the command and asserts exit code 0; gives stdout.
#[track_caller]
fn ok(b: &Broker, args: &[&str]) -> String {
    let out = ctl(b, args);
    assert!(
        out.status.success(),
        "ringmqctl {args:?} exited with {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
}

/// Runs the command with `--json` and parses stdout.
#[track_caller]
fn json(b: &Broker, args: &[&str]) -> Value {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    let out = ok(b, &all);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{args:?}: not JSON ({e}): {out}"))
}

/// Runs the command, asserts it failed with `code`; gives stderr.
#[track_caller]
fn fails(b: &Broker, args: &[&str], code: i32) -> String {
    let out = ctl(b, args);
    assert_eq!(
        out.status.code(),
        Some(code),
        "ringmqctl {args:?}\nstdout: {}\nstderr: {}",
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stderr)
}

fn names(list: &Value) -> Vec<String> {
    list.as_array()
        .expect("a JSON array")
        .iter()
        .map(|r| r["name"].as_str().unwrap_or_default().to_string())
        .collect()
}

/// Polls `f` until it holds, for at most [`WAIT`] (stats may be sampled on a timer).
#[track_caller]
fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + WAIT;
    while !f() {
        assert!(std::time::Instant::now() < deadline, "timed out after {WAIT:?}: {what}");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

#[test]
fn status_shows_versions_and_totals() {
    let b = Broker::new();
    let out = ok(&b, &["status"]);
    for line in [
        "product:",
        "queues:",
        "connections:",
        "messages ready:",
        "publish rate:",
    ] {
        assert!(out.contains(line), "no {line:?} in\n{out}");
    }
    let ov = json(&b, &["status"]);
    assert!(ov["object_totals"]["queues"].is_u64(), "{ov}");
}

#[test]
fn usage_errors_exit_2_and_unreachable_api_exits_69() {
    let b = Broker::new();
    assert!(fails(&b, &["frobnicate"], 2).contains("unknown command"));
    assert!(fails(&b, &["add_user", "only-a-name"], 2).contains("wrong number"));
    assert!(fails(&b, &["set_policy", "p", ".*", "not json"], 2).contains("invalid JSON"));
    // A port that was free a moment ago: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let out = Command::new(env!("CARGO_BIN_EXE_ringmqctl"))
        .args(["--uri", &format!("http://127.0.0.1:{port}"), "status"])
        .output()
        .expect("run ringmqctl");
    assert_eq!(out.status.code(), Some(69), "{}", text(&out.stderr));
    let help = ok(&b, &["--help"]);
    assert!(help.contains("exit codes") && help.contains("69"), "{help}");
}

#[test]
fn api_errors_exit_1_with_error_and_reason() {
    let b = Broker::new();
    let err = fails(&b, &["delete_queue", &unique("ctl-missing")], 1);
    assert!(err.contains("404"), "{err}");
    let out = ctl_as(&b, "guest", "wrong-password", &["status"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("401"), "{}", text(&out.stderr));
    // With --json the server's error body is printed as it came.
    let err = fails(&b, &["--json", "delete_user", &unique("ctl-nobody")], 1);
    let body: Value = serde_json::from_str(err.trim()).expect("error body is JSON");
    assert!(body.get("error").is_some() && body.get("reason").is_some(), "{body}");
}

#[test]
fn list_every_kind_as_table_and_json() {
    let b = Broker::new();
    for kind in [
        "queues",
        "exchanges",
        "bindings",
        "connections",
        "channels",
        "consumers",
        "users",
        "vhosts",
    ] {
        let table = ok(&b, &["list", kind]);
        assert!(!table.is_empty(), "list {kind}: no header");
        assert!(json(&b, &["list", kind]).is_array(), "list {kind} --json");
    }
    let exchanges = ok(&b, &["list", "exchanges", "--columns", "name,type"]);
    assert!(exchanges.lines().next().unwrap().starts_with("name"), "{exchanges}");
    assert!(
        exchanges
            .lines()
            .any(|l| l.starts_with("amq.topic") && l.ends_with("topic")),
        "{exchanges}"
    );
    assert!(ok(&b, &["list_users"]).contains("guest"));
    assert!(ok(&b, &["list", "vhosts"])
        .lines()
        .any(|l| l.starts_with("/ ") || l == "/"));
}

#[test]
fn users_tags_passwords_and_permissions() {
    let b = Broker::new();
    let user = unique("ctl-user");
    ok(&b, &["add_user", &user, "pw-1", "--tags", "monitoring"]);
    let users = json(&b, &["list", "users"]);
    let row = users
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["name"] == user.as_str())
        .expect("user listed");
    let tags = row["tags"].to_string();
    assert!(tags.contains("monitoring"), "{row}");

    // A monitoring user can read the overview with its password.
    assert!(ctl_as(&b, &user, "pw-1", &["status"]).status.success());
    ok(&b, &["change_password", &user, "pw-2"]);
    assert_eq!(ctl_as(&b, &user, "pw-1", &["status"]).status.code(), Some(1));
    assert!(ctl_as(&b, &user, "pw-2", &["status"]).status.success());

    // New tags keep the password.
    ok(&b, &["set_user_tags", &user, "administrator"]);
    let me = ctl_as(&b, &user, "pw-2", &["--json", "whoami"]);
    assert!(me.status.success(), "{}", text(&me.stderr));
    assert!(text(&me.stdout).contains("administrator"), "{}", text(&me.stdout));

    ok(&b, &["set_permissions", &user, "^ctl-", ".*", ".*"]);
    let perms = json(&b, &["list", "permissions"]);
    let p = perms
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["user"] == user.as_str())
        .expect("permission listed");
    assert_eq!(
        (p["configure"].as_str(), p["write"].as_str(), p["read"].as_str()),
        (Some("^ctl-"), Some(".*"), Some(".*"))
    );
    ok(&b, &["clear_permissions", &user]);
    let perms = json(&b, &["list", "permissions"]);
    assert!(
        perms.as_array().unwrap().iter().all(|p| p["user"] != user.as_str()),
        "{perms}"
    );

    ok(&b, &["delete_user", &user]);
    assert!(!names(&json(&b, &["list", "users"])).contains(&user));
    assert!(fails(&b, &["delete_user", &user], 1).contains("404"));
}

#[test]
fn topic_permissions_set_list_clear() {
    let b = Broker::new();
    let user = unique("ctl-topic");
    ok(&b, &["add_user", &user, "pw"]);
    ok(
        &b,
        &["set_topic_permissions", &user, "amq.topic", "^{username}\\.", ".*"],
    );
    ok(&b, &["set_topic_permissions", &user, "amq.direct", "^a", ""]);
    let mine = |list: Value| -> Vec<Value> {
        let mut v: Vec<Value> = list
            .as_array()
            .expect("a list")
            .iter()
            .filter(|p| p["user"] == user.as_str())
            .cloned()
            .collect();
        v.sort_by(|a, b| a["exchange"].as_str().cmp(&b["exchange"].as_str()));
        v
    };
    let listed = mine(json(&b, &["list_topic_permissions"]));
    assert_eq!(listed.len(), 2, "{listed:?}");
    assert_eq!(
        (
            listed[1]["exchange"].as_str(),
            listed[1]["write"].as_str(),
            listed[1]["read"].as_str()
        ),
        (Some("amq.topic"), Some("^{username}\\."), Some(".*"))
    );
    let table = ok(&b, &["list", "topic_permissions"]);
    assert!(table.lines().next().unwrap().starts_with("user"), "{table}");
    assert!(table.contains(&user) && table.contains("amq.topic"), "{table}");
    ok(&b, &["clear_topic_permissions", &user, "amq.direct"]);
    assert_eq!(mine(json(&b, &["list", "topic_permissions"])).len(), 1);
    ok(&b, &["clear_topic_permissions", &user]);
    assert!(mine(json(&b, &["list", "topic_permissions", "--all-vhosts"])).is_empty());
    assert!(fails(&b, &["clear_topic_permissions", &user], 1).contains("404"));
    ok(&b, &["delete_user", &user]);
}

#[test]
fn queues_publish_get_purge_delete() {
    let b = Broker::new();
    let q = unique("ctl-q");
    ok(
        &b,
        &[
            "declare_queue",
            &q,
            "--durable",
            "--arguments",
            r#"{"x-max-length": 100}"#,
        ],
    );
    let queues = json(&b, &["list", "queues"]);
    let row = queues
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == q.as_str())
        .expect("queue listed");
    assert_eq!(row["durable"], true, "{row}");
    assert_eq!(row["arguments"]["x-max-length"], 100, "{row}");

    // The default exchange is "" on the command line.
    assert_eq!(ok(&b, &["publish", "", &q, "first"]).trim(), "published, routed");
    assert_eq!(ok(&b, &["publish", "", &q, "second"]).trim(), "published, routed");
    assert!(ok(&b, &["publish", "", &unique("ctl-nowhere"), "x"]).contains("not routed"));

    // get without --ack requeues, so the same message comes back.
    let got = json(&b, &["get", &q]);
    assert_eq!(got[0]["payload"], "first", "{got}");
    let table = ok(&b, &["get", &q, "--ack"]);
    assert!(table.contains("first"), "{table}");
    let got = json(&b, &["get", &q, "--count", "5"]);
    assert_eq!(got.as_array().unwrap().len(), 1, "{got}");
    assert_eq!(got[0]["payload"], "second", "{got}");

    ok(&b, &["purge_queue", &q]);
    assert_eq!(json(&b, &["get", &q]), serde_json::json!([]));
    ok(&b, &["publish", "", &q, "again"]);
    let err = fails(&b, &["delete_queue", &q, "--if-empty"], 1);
    assert!(err.contains("400") || err.contains("406"), "{err}");
    ok(&b, &["delete_queue", &q]);
    assert!(!names(&json(&b, &["list", "queues"])).contains(&q));
}

#[test]
fn exchanges_and_bindings_route_publishes() {
    let b = Broker::new();
    let (x, q) = (unique("ctl-x"), unique("ctl-q"));
    ok(&b, &["declare_exchange", &x, "topic"]);
    ok(&b, &["declare_queue", &q]);
    ok(&b, &["declare_binding", &x, &q, "--routing-key", "a.#"]);
    let bindings = json(&b, &["list", "bindings"]);
    assert!(
        bindings
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["source"] == x.as_str() && r["destination"] == q.as_str() && r["routing_key"] == "a.#"),
        "{bindings}"
    );
    assert_eq!(ok(&b, &["publish", &x, "a.b", "hit"]).trim(), "published, routed");
    assert!(ok(&b, &["publish", &x, "b.a", "miss"]).contains("not routed"));
    assert_eq!(json(&b, &["get", &q, "--ack"])[0]["routing_key"], "a.b");
    ok(&b, &["delete_queue", &q]);
    ok(&b, &["delete_exchange", &x]);
    assert!(!names(&json(&b, &["list", "exchanges"])).contains(&x));
}

#[test]
fn close_connection_closes_an_amqp_client() {
    let b = Broker::new();
    run(async {
        let conn = common::connect(&b).await;
        let mut name = String::new();
        eventually("the connection is listed", || {
            let list = json(&b, &["list", "connections"]);
            match list.as_array().and_then(|l| l.first()) {
                Some(c) => {
                    name = c["name"].as_str().expect("connection name").to_string();
                    true
                }
                None => false,
            }
        });
        ok(&b, &["close_connection", &name, "closed by ringmqctl"]);
        common::closed_by_server(&conn).await;
        eventually("the connection is gone", || {
            json(&b, &["list", "connections"]) == serde_json::json!([])
        });
    });
}

#[test]
fn vhosts_and_their_limits() {
    let b = Broker::new();
    let v = unique("ctl/vhost");
    ok(&b, &["add_vhost", &v, "--description", "made by ringmqctl"]);
    let vhosts = json(&b, &["list", "vhosts"]);
    let row = vhosts
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == v.as_str())
        .expect("vhost listed");
    assert_eq!(row["description"], "made by ringmqctl", "{row}");

    ok(
        &b,
        &[
            "-p",
            &v,
            "set_vhost_limits",
            r#"{"max-queues": 7, "max-connections": 3}"#,
        ],
    );
    let limits = json(&b, &["-p", &v, "list", "vhost_limits"]);
    assert_eq!(limits[0]["value"]["max-queues"], 7, "{limits}");
    assert_eq!(limits[0]["value"]["max-connections"], 3, "{limits}");
    ok(&b, &["-p", &v, "clear_vhost_limits"]);
    let limits = json(&b, &["-p", &v, "list", "vhost_limits"]);
    let none = limits
        .as_array()
        .unwrap()
        .iter()
        .all(|r| r["value"].as_object().is_none_or(|o| o.is_empty()));
    assert!(none, "{limits}");

    ok(&b, &["delete_vhost", &v]);
    assert!(!names(&json(&b, &["list", "vhosts"])).contains(&v));
}

#[test]
fn policies_and_operator_policies() {
    let b = Broker::new();
    let (p, op) = (unique("ctl-policy"), unique("ctl-op"));
    ok(
        &b,
        &[
            "set_policy",
            &p,
            "^ctl-ttl\\.",
            r#"{"message-ttl": 60000}"#,
            "--priority",
            "3",
            "--apply-to",
            "queues",
        ],
    );
    let policies = json(&b, &["list", "policies"]);
    let row = policies
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == p.as_str())
        .expect("policy listed");
    assert_eq!(
        (row["priority"].as_i64(), row["apply-to"].as_str()),
        (Some(3), Some("queues")),
        "{row}"
    );
    assert_eq!(row["definition"]["message-ttl"], 60000, "{row}");
    assert!(ok(&b, &["list", "policies"]).contains(&p));

    ok(
        &b,
        &[
            "set_operator_policy",
            &op,
            "^ctl-ttl\\.",
            r#"{"max-length": 10}"#,
            "--apply-to",
            "queues",
        ],
    );
    assert!(names(&json(&b, &["list", "operator_policies"])).contains(&op));

    ok(&b, &["clear_policy", &p]);
    ok(&b, &["clear_operator_policy", &op]);
    assert!(!names(&json(&b, &["list", "policies"])).contains(&p));
    assert!(!names(&json(&b, &["list", "operator_policies"])).contains(&op));
    assert!(fails(&b, &["clear_policy", &p], 1).contains("404"));
}

#[test]
fn definitions_export_and_import_round_trip() {
    let b = Broker::new();
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("defs.json");
    let file = file.to_str().unwrap();
    let (q, x) = (unique("ctl-defs-q"), unique("ctl-defs-x"));
    ok(&b, &["declare_queue", &q, "--durable"]);
    ok(&b, &["declare_exchange", &x, "fanout", "--durable"]);
    ok(&b, &["declare_binding", &x, &q]);
    ok(&b, &["export_definitions", file]);
    let defs: Value = serde_json::from_str(&std::fs::read_to_string(file).unwrap()).expect("definitions are JSON");
    assert!(names(&defs["queues"]).contains(&q), "{defs}");
    assert!(names(&defs["exchanges"]).contains(&x), "{defs}");

    // `-` writes to stdout.
    let stdout: Value = serde_json::from_str(&ok(&b, &["export_definitions", "-"])).expect("JSON on stdout");
    assert!(names(&stdout["queues"]).contains(&q));

    ok(&b, &["delete_queue", &q]);
    ok(&b, &["delete_exchange", &x]);
    ok(&b, &["import_definitions", file]);
    assert!(names(&json(&b, &["list", "queues"])).contains(&q));
    assert!(names(&json(&b, &["list", "exchanges"])).contains(&x));
    let bindings = json(&b, &["list", "bindings"]);
    assert!(bindings
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r["source"] == x.as_str() && r["destination"] == q.as_str()));
    ok(&b, &["delete_queue", &q]);
    ok(&b, &["delete_exchange", &x]);

    std::fs::write(file, "{ truncated").unwrap();
    assert!(fails(&b, &["import_definitions", file], 1).contains("invalid JSON"));
}

/// The health check of the Docker image: no login, only the AMQP listener.
#[test]
fn ping_answers_while_the_broker_serves_and_exits_69_once_it_is_gone() {
    let mut b = Broker::new();
    let addr = format!("{}:{}", b.host(), b.port());
    let ping = |addr: &str| {
        Command::new(env!("CARGO_BIN_EXE_ringmqctl"))
            .args(["--timeout", "5", "ping", addr])
            .output()
            .expect("run ringmqctl")
    };
    let out = ping(&addr);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("ok"), "{}", text(&out.stdout));
    if b.is_external() {
        return;
    }
    b.stop();
    let out = ping(&addr);
    assert_eq!(out.status.code(), Some(69), "{}", text(&out.stderr));
}

/// `-p` is the vhost (as rabbitmqctl's and lavinmqctl's); the password is `--password`.
#[test]
fn dash_p_is_the_vhost_and_the_password_is_long_only() {
    let b = Broker::new();
    let v = unique("ctl-p");
    ok(&b, &["add_vhost", &v]);
    let q = unique("ctl-p-q");
    ok(&b, &["-p", &v, "declare_queue", &q]);
    assert!(names(&json(&b, &["-p", &v, "list", "queues"])).contains(&q));
    assert!(!names(&json(&b, &["list", "queues"])).contains(&q), "not in /");
    let out = Command::new(env!("CARGO_BIN_EXE_ringmqctl"))
        .args(["--uri", &api(&b), "--user", b.user(), "--password", "wrong", "status"])
        .output()
        .expect("run ringmqctl");
    assert_eq!(out.status.code(), Some(1), "--password is the password");
    ok(&b, &["delete_vhost", &v]);
}

#[test]
fn hash_password_gives_a_hash_the_api_takes() {
    let b = Broker::new();
    let hash = ok(&b, &["hash_password", "s3cret"]).trim().to_owned();
    assert_eq!(hash.len(), 48, "base64 of a 4-byte salt and a SHA-256: {hash}");
    assert_ne!(ok(&b, &["hash_password", "s3cret"]).trim(), hash, "salted");
    let user = unique("ctl-hash");
    let a = common::http::Api::new(&api(&b), b.user(), b.pass());
    let r = a.put(
        &format!("/api/users/{user}"),
        serde_json::json!({"password_hash": hash, "tags": "administrator"}),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    assert!(ctl_as(&b, &user, "s3cret", &["status"]).status.success());
    assert_eq!(ctl_as(&b, &user, "other", &["status"]).status.code(), Some(1));
    ok(&b, &["delete_user", &user]);
}

#[test]
fn close_all_connections_of_a_vhost() {
    let b = Broker::new();
    let v = unique("ctl-close-all");
    ok(&b, &["add_vhost", &v]);
    ok(&b, &["-p", &v, "set_permissions", b.user(), ".*", ".*", ".*"]);
    let uri = format!(
        "amqp://{}:{}@{}:{}/{}",
        b.user(),
        b.pass(),
        b.host(),
        b.port(),
        common::http::enc(&v)
    );
    run(async {
        let mut conns = Vec::new();
        for _ in 0..2 {
            let c = common::within(
                "connect",
                lapin::Connection::connect(&uri, lapin::ConnectionProperties::default()),
            )
            .await
            .expect("connect to the vhost");
            conns.push(c);
        }
        // RabbitMQ lists connections after a stats round.
        let in_vhost = || {
            json(&b, &["list", "connections"])
                .as_array()
                .unwrap()
                .iter()
                .filter(|c| c["vhost"] == v.as_str())
                .count()
        };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while in_vhost() < 2 {
            assert!(std::time::Instant::now() < deadline, "connections not listed");
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        let out = ok(&b, &["-p", &v, "close_all_connections", "maintenance"]);
        assert_eq!(out.trim(), "closed 2 connection(s)", "{out}");
        for c in &conns {
            common::closed_by_server(c).await;
        }
    });
    ok(&b, &["delete_vhost", &v]);
}

/// Node-wide (every vhost) only on a broker of our own: the peer is shared.
#[test]
fn close_all_connections_of_the_node() {
    let b = Broker::new();
    if b.skip_external("close_all_connections_of_the_node") {
        return;
    }
    run(async {
        let c = common::connect(&b).await;
        eventually("listed", || json(&b, &["list", "connections"]) != serde_json::json!([]));
        assert_eq!(json(&b, &["close_all_connections"]).as_array().map(Vec::len), Some(1));
        common::closed_by_server(&c).await;
    });
}

/// LavinMQ's pause: a paused queue keeps its consumer and delivers nothing
/// until resumed (ringmq only: RabbitMQ has no queue pause).
#[test]
fn pause_and_resume_a_queue() {
    let b = Broker::new();
    if b.skip_external("pause_and_resume_a_queue") {
        return;
    }
    let q = unique("ctl-pause");
    ok(&b, &["declare_queue", &q]);
    ok(&b, &["pause_queue", &q]);
    let state = |b: &Broker| {
        json(b, &["list", "queues"])
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == q.as_str())
            .map(|r| r["state"].clone())
    };
    assert_eq!(state(&b), Some(serde_json::json!("paused")));
    run(async {
        let (_c, ch) = common::open(&b).await;
        let mut consumer = common::consume_no_ack(&ch, &q).await;
        ok(&b, &["publish", "", &q, "held"]);
        common::assert_quiet(&mut consumer).await;
        ok(&b, &["resume_queue", &q]);
        let d = common::next(&mut consumer).await;
        assert_eq!(d.data, b"held");
    });
    assert_eq!(state(&b), Some(serde_json::json!("running")));
    assert!(fails(&b, &["pause_queue", &unique("ctl-none")], 1).contains("404"));
}

#[test]
fn user_limits_set_and_clear() {
    let b = Broker::new();
    let user = unique("ctl-limits");
    ok(&b, &["add_user", &user, "pw"]);
    ok(
        &b,
        &["set_user_limits", &user, r#"{"max-connections": 2, "max-channels": 5}"#],
    );
    let limits = |b: &Broker| {
        json(b, &["list", "user_limits"])
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["user"] == user.as_str())
            .map(|r| r["value"].clone())
    };
    assert_eq!(
        limits(&b),
        Some(serde_json::json!({"max-connections": 2, "max-channels": 5}))
    );
    ok(&b, &["clear_user_limits", &user, "max-connections"]);
    assert_eq!(limits(&b), Some(serde_json::json!({"max-channels": 5})));
    ok(&b, &["clear_user_limits", &user, "all"]);
    assert!(limits(&b).is_none_or(|v| v.as_object().is_none_or(|o| o.is_empty())));
    ok(&b, &["delete_user", &user]);
}

/// Federation's components are plugins in RabbitMQ (not enabled on the peer).
#[test]
fn parameters_set_list_and_clear() {
    let b = Broker::new();
    if b.skip_external("parameters_set_list_and_clear") {
        return;
    }
    let name = unique("ctl-upstream");
    ok(
        &b,
        &[
            "set_parameter",
            "federation-upstream",
            &name,
            r#"{"uri": "amqp://upstream"}"#,
        ],
    );
    let listed = json(&b, &["list", "parameters"]);
    let row = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == name.as_str())
        .expect("parameter listed");
    assert_eq!(row["value"]["uri"], "amqp://upstream", "{row}");
    assert_eq!(row["component"], "federation-upstream", "{row}");
    assert!(ok(&b, &["list_parameters"]).contains(&name));
    ok(&b, &["clear_parameter", "federation-upstream", &name]);
    assert!(!names(&json(&b, &["list", "parameters"])).contains(&name));
    assert!(fails(&b, &["set_parameter", "federation-upstream", &name, "{"], 2).contains("invalid JSON"));
}

#[test]
fn delete_binding_removes_the_one_named() {
    let b = Broker::new();
    let (x, q) = (unique("ctl-unbind-x"), unique("ctl-unbind-q"));
    ok(&b, &["declare_exchange", &x, "direct"]);
    ok(&b, &["declare_queue", &q]);
    ok(&b, &["declare_binding", &x, &q, "--routing-key", "a"]);
    ok(&b, &["declare_binding", &x, &q, "--routing-key", "b"]);
    ok(&b, &["delete_binding", &x, &q, "--routing-key", "a"]);
    let keys: Vec<String> = json(&b, &["list", "bindings"])
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["source"] == x.as_str())
        .map(|r| r["routing_key"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(keys, ["b"]);
    assert!(fails(&b, &["delete_binding", &x, &q, "--routing-key", "a"], 1).contains("no binding"));
    ok(&b, &["delete_queue", &q]);
    ok(&b, &["delete_exchange", &x]);
}

#[test]
fn await_startup_waits_for_the_api() {
    let mut b = Broker::new();
    assert!(ok(&b, &["await_startup"]).contains("is up"));
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let out = Command::new(env!("CARGO_BIN_EXE_ringmqctl"))
        .args([
            "--uri",
            &format!("http://127.0.0.1:{port}"),
            "--timeout",
            "1",
            "await_startup",
        ])
        .output()
        .expect("run ringmqctl");
    // 69: it gave up when --timeout ran out (no wall-clock bound asserted here:
    // the machine is shared; a hang would fail the test run itself).
    assert_eq!(out.status.code(), Some(69), "{}", text(&out.stderr));
    if b.is_external() {
        return;
    }
    b.stop();
    let waiter = Command::new(env!("CARGO_BIN_EXE_ringmqctl"))
        .args(["--uri", &api(&b), "--timeout", "30", "await_startup"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("spawn ringmqctl");
    std::thread::sleep(std::time::Duration::from_millis(500));
    b.start();
    let out = waiter.wait_with_output().expect("await_startup");
    assert!(out.status.success(), "{}", text(&out.stdout));
}

#[test]
fn status_shows_alarms() {
    let b = Broker::new();
    let out = ok(&b, &["status"]);
    assert!(
        out.lines().any(|l| l.starts_with("alarms:") && l.ends_with("none")),
        "{out}"
    );
    if b.is_external() {
        return;
    }
    let b = Broker::with_args(&["--memory-high-watermark", "1MiB"]);
    eventually("the memory alarm", || {
        ok(&b, &["status"])
            .lines()
            .any(|l| l.starts_with("alarms:") && l.ends_with("memory"))
    });
}

#[test]
fn completion_scripts_parse_in_their_shells() {
    let b = Broker::new();
    let dir = tempfile::tempdir().expect("temp dir");
    for (shell, check) in [("bash", "-n"), ("zsh", "-n"), ("fish", "--no-execute")] {
        let script = ok(&b, &["completion", shell]);
        assert!(
            script.contains("set_topic_permissions") && script.contains("--vhost"),
            "{shell}"
        );
        let file = dir.path().join(shell);
        std::fs::write(&file, &script).unwrap();
        // Each shell's syntax check where it is installed (bash always is).
        match Command::new(shell).arg(check).arg(&file).output() {
            Ok(out) => assert!(out.status.success(), "{shell}: {}", text(&out.stderr)),
            Err(_) => assert_ne!(shell, "bash", "bash is needed"),
        }
    }
    assert!(fails(&b, &["completion", "tcsh"], 2).contains("unknown shell"));
}
