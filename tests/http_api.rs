//! The management API against the real binary: status codes, shapes, tag
//! rules, paging, and its effects seen by real AMQP clients (lapin). Shapes
//! and texts were compared with RabbitMQ 3.10's management plugin.

mod common;

use common::http::{assert_err, enc, Api};
use common::*;
use serde_json::{json, Value};

fn api(b: &Broker) -> Api {
    Api::new(b.http_url(), b.user(), b.pass())
}

/// Creates a user with tags and (optionally) full permissions on "/".
fn user(a: &Api, name: &str, tags: &str, perms: bool) -> Api {
    assert_eq!(
        a.put(&format!("/api/users/{name}"), json!({"password": name, "tags": tags}))
            .status,
        201
    );
    if perms {
        let r = a.put(
            &format!("/api/permissions/%2F/{name}"),
            json!({"configure": ".*", "write": ".*", "read": ".*"}),
        );
        assert_eq!(r.status, 201, "{}", r.text);
    }
    a.as_user(name, name)
}

#[test]
fn login_and_tag_rules() {
    let b = Broker::new();
    let a = api(&b);
    let anon = Api::anonymous(b.http_url()).get("/api/overview");
    assert_err(&anon, 401, "not_authorized");
    assert!(
        anon.www_authenticate.unwrap().starts_with("Basic"),
        "browsers get a login prompt"
    );
    let wrong = a.as_user("guest", "nope").get("/api/overview");
    assert_err(&wrong, 401, "not_authorized");
    assert_eq!(wrong.json["reason"], "Login failed");
    assert!(wrong.www_authenticate.is_none(), "no prompt when credentials were sent");

    let none = user(&a, "nobody", "", true);
    let r = none.get("/api/overview");
    assert_err(&r, 401, "not_authorised");
    assert_eq!(r.json["reason"], "Not management user");

    let mg = user(&a, "mg", "management", false);
    assert_eq!(mg.ok("/api/whoami"), json!({"name": "mg", "tags": ["management"]}));
    assert_eq!(
        mg.ok("/api/overview")["object_totals"]["queues"],
        0,
        "sees no vhost yet"
    );
    assert_eq!(mg.get("/api/users").json["reason"], "Not administrator user");
    assert_eq!(mg.get("/api/nodes").status, 401);
    let r = mg.get("/api/queues/%2F");
    assert_err(&r, 401, "not_authorised");
    assert_eq!(r.json["reason"], "User not authorised to access virtual host");
    assert_eq!(mg.ok("/api/queues"), json!([]));
    // Permissions open the vhost, and AMQP permissions still apply to writes.
    let r = a.put(
        "/api/permissions/%2F/mg",
        json!({"configure": "^mine", "write": ".*", "read": ".*"}),
    );
    assert_eq!(r.status, 201);
    assert_eq!(mg.put("/api/queues/%2F/mine.q", json!({})).status, 201);
    let r = mg.put("/api/queues/%2F/other.q", json!({}));
    assert_err(&r, 401, "not_authorised");
    assert_eq!(r.json["reason"], "Access refused.");
    assert_eq!(mg.ok("/api/queues").as_array().unwrap().len(), 1);

    let mon = user(&a, "mon", "monitoring", false);
    assert_eq!(mon.ok("/api/nodes").as_array().unwrap().len(), 1);
    assert_eq!(
        mon.ok("/api/queues").as_array().unwrap().len(),
        1,
        "monitoring reads every vhost"
    );
    assert_eq!(mon.get("/api/queues/%2F").status, 401, "vhost routes need permissions");
    assert_eq!(mon.get("/api/users").status, 401);

    let pm = user(&a, "pm", "policymaker", true);
    assert_eq!(pm.get("/api/nodes").status, 401);
    assert_eq!(pm.ok("/api/queues/%2F").as_array().unwrap().len(), 1);
}

#[test]
fn json_errors_for_bad_requests() {
    let b = Broker::new();
    let a = api(&b);
    assert_err(&a.get("/api/nothing"), 404, "Object Not Found");
    assert_err(&a.get("/api/queues/%2F/missing"), 404, "Object Not Found");
    assert_err(&a.get("/api/queues/no-such-vhost"), 404, "Object Not Found");
    assert_err(&a.get("/api/exchanges/%2F/missing"), 404, "Object Not Found");
    assert_err(&a.delete("/api/queues/%2F/missing"), 404, "Object Not Found");
    assert_err(&a.post("/api/overview", json!({})), 405, "method_not_allowed");
    assert_err(&a.post("/api/queues/%2F/q", json!({})), 405, "method_not_allowed");
    let r = a.call("PUT", "/api/queues/%2F/q", None, &[]);
    assert_eq!(r.status, 201, "an empty body is an empty object");
    let bad = Api::new(b.http_url(), "guest", "guest");
    let mut req = ureq::put(&format!("{}/api/queues/%2F/q2", b.http_url()));
    req = req.set("authorization", "Basic Z3Vlc3Q6Z3Vlc3Q=");
    let r = match req.send_string("{bad") {
        Err(ureq::Error::Status(code, r)) => (code, r.into_string().unwrap()),
        other => panic!("expected 400, got {other:?}"),
    };
    assert_eq!(r.0, 400);
    assert_eq!(
        serde_json::from_str::<Value>(&r.1).unwrap(),
        json!({"error": "bad_request", "reason": "not_json"})
    );
    assert_err(
        &bad.put("/api/queues/%2F/q3", json!({"arguments": 5})),
        400,
        "bad_request",
    );
    assert_err(&bad.get("/api/queues?page=0"), 400, "invalid_pagination_parameters");
    assert_err(&bad.get("/api/queues?page=9"), 400, "page_out_of_range");
}

#[test]
fn queue_declare_get_purge_delete() {
    let b = Broker::new();
    let a = api(&b);
    let q = "/api/queues/%2F/orders";
    assert_eq!(
        a.put(q, json!({"durable": true, "arguments": {"x-max-length": 10}}))
            .status,
        201
    );
    assert_eq!(
        a.put(q, json!({"durable": true, "arguments": {"x-max-length": 10}}))
            .status,
        204
    );
    let r = a.put(q, json!({"durable": false}));
    assert_err(&r, 400, "bad_request");
    assert_eq!(
        r.json["reason"],
        "inequivalent arg 'durable' for queue 'orders' in vhost '/': received 'false' but current is 'true'"
    );
    let r = a.put("/api/queues/%2F/bad", json!({"arguments": {"x-max-length": "abc"}}));
    assert_err(&r, 400, "bad_request");
    assert_err(&a.put("/api/queues/%2F/amq.x", json!({})), 401, "not_authorised");

    let got = a.ok(q);
    for key in [
        "name",
        "vhost",
        "durable",
        "auto_delete",
        "exclusive",
        "arguments",
        "messages",
        "messages_ready",
        "messages_unacknowledged",
        "consumers",
        "state",
        "node",
        "type",
        "policy",
        "consumer_details",
    ] {
        assert!(got.get(key).is_some(), "queue has {key}: {got}");
    }
    assert_eq!(got["arguments"], json!({"x-max-length": 10}));
    assert_eq!(
        (got["durable"].clone(), got["state"].clone()),
        (json!(true), json!("running"))
    );

    let publish = |body: &str| {
        a.post(
            "/api/exchanges/%2F/amq.default/publish",
            json!({"properties": {"delivery_mode": 2, "headers": {"h": 1}}, "routing_key": "orders",
                   "payload": body, "payload_encoding": "string"}),
        )
    };
    assert_eq!(publish("one").json, json!({"routed": true}));
    assert_eq!(publish("two").json, json!({"routed": true}));
    assert_eq!(a.ok(q)["messages"], 2);
    let get = |mode: &str| {
        a.post(
            &format!("{q}/get"),
            json!({"count": 1, "ackmode": mode, "encoding": "auto"}),
        )
    };
    let r = get("ack_requeue_true");
    assert_eq!(r.status, 200, "{}", r.text);
    let m = &r.json[0];
    assert_eq!(
        (m["payload"].clone(), m["redelivered"].clone()),
        (json!("one"), json!(false))
    );
    assert_eq!(m["payload_encoding"], "string");
    assert_eq!(m["message_count"], 1);
    assert_eq!(m["properties"], json!({"delivery_mode": 2, "headers": {"h": 1}}));
    let m = get("ack_requeue_false").json[0].clone();
    assert_eq!(
        (m["payload"].clone(), m["redelivered"].clone()),
        (json!("one"), json!(true))
    );
    assert_eq!(a.ok(q)["messages"], 1);
    assert_err(&a.post(&format!("{q}/get"), json!({"count": 1})), 400, "bad_request");
    assert_err(
        &a.post(&format!("{q}/get"), json!({"count": 1, "ackmode": "x"})),
        400,
        "bad_request",
    );

    let r = a.delete(&format!("{q}?if-empty=true"));
    assert_err(&r, 400, "bad_request");
    assert_eq!(r.json["reason"], "queue 'orders' in vhost '/' not empty");
    assert_eq!(a.delete(&format!("{q}/contents")).status, 204);
    assert_eq!(a.ok(q)["messages"], 0);
    assert_eq!(a.delete(&format!("{q}?if-empty=true")).status, 204);
    assert_eq!(a.get(q).status, 404);
}

#[test]
fn publish_through_the_api_reaches_an_amqp_consumer_and_get_sees_amqp_messages() {
    let b = Broker::new();
    let a = api(&b);
    run(async {
        let (_c, ch) = open(&b).await;
        let q = unique("api-pub");
        temp_queue(&ch, &q).await;
        let r = a.post(
            "/api/exchanges/%2F/amq.default/publish",
            json!({"properties": {"content_type": "text/plain"}, "routing_key": q,
                   "payload": "aGVsbG8=", "payload_encoding": "base64"}),
        );
        assert_eq!(r.json, json!({"routed": true}));
        let mut consumer = ch
            .basic_consume(
                q.as_str().into(),
                "c".into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
            .unwrap();
        let d = next(&mut consumer).await;
        assert_eq!(d.data, b"hello");
        assert_eq!(
            d.properties.content_type().as_ref().map(|s| s.as_str()),
            Some("text/plain")
        );
        d.ack(BasicAckOptions::default()).await.unwrap();
        let r = a.post(
            "/api/exchanges/%2F/amq.direct/publish",
            json!({"properties": {}, "routing_key": "nowhere", "payload": "x", "payload_encoding": "string"}),
        );
        assert_eq!(r.json, json!({"routed": false}));
        let r = a.post(
            "/api/exchanges/%2F/missing/publish",
            json!({"properties": {}, "routing_key": "", "payload": "x", "payload_encoding": "string"}),
        );
        assert_err(&r, 400, "bad_request");
        assert_eq!(r.json["reason"], "404 NOT_FOUND - no exchange 'missing' in vhost '/'");
        let r = a.post("/api/exchanges/%2F/amq.default/publish", json!({"routing_key": "x"}));
        assert_err(&r, 400, "bad_request");

        // Messages published over AMQP come out of /get (confirmed first: the
        // HTTP request must not overtake the publish).
        let q2 = unique("api-get");
        temp_queue(&ch, &q2).await;
        let cch = confirm_channel(&_c).await;
        publish(&cch, "", &q2, b"\xff\x00bin").await;
        let got = a.post(
            &format!("/api/queues/%2F/{}/get", enc(&q2)),
            json!({"count": 5, "ackmode": "reject_requeue_false", "encoding": "auto"}),
        );
        assert_eq!(got.json.as_array().unwrap().len(), 1);
        assert_eq!(got.json[0]["payload_encoding"], "base64");
        assert_eq!(got.json[0]["payload_bytes"], 5);
        assert_eq!(a.ok(&format!("/api/queues/%2F/{}", enc(&q2)))["messages"], 0);
    });
}

#[test]
fn exchanges_declare_get_delete() {
    let b = Broker::new();
    let a = api(&b);
    let x = "/api/exchanges/%2F/events";
    assert_eq!(a.put(x, json!({"type": "topic", "durable": true})).status, 201);
    assert_eq!(a.put(x, json!({"type": "topic", "durable": true})).status, 204);
    assert_err(&a.put(x, json!({"type": "fanout"})), 400, "bad_request");
    let r = a.put("/api/exchanges/%2F/t2", json!({"type": "nope"}));
    assert_eq!(r.json["reason"], "unknown exchange type 'nope'");
    let got = a.ok(x);
    for key in [
        "name",
        "vhost",
        "type",
        "durable",
        "auto_delete",
        "internal",
        "arguments",
    ] {
        assert!(got.get(key).is_some(), "exchange has {key}");
    }
    assert_eq!(got["type"], "topic");
    let all = a.ok("/api/exchanges/%2F");
    let names: Vec<&str> = all
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "",
            "amq.direct",
            "amq.fanout",
            "amq.headers",
            "amq.match",
            "amq.topic",
            "events"
        ]
    );
    assert_eq!(a.ok("/api/exchanges/%2F/amq.default")["name"], "");
    assert_err(&a.delete("/api/exchanges/%2F/amq.direct"), 401, "not_authorised");
    assert_eq!(a.put("/api/queues/%2F/qq", json!({})).status, 201);
    assert_eq!(
        a.post("/api/bindings/%2F/e/events/q/qq", json!({"routing_key": "a.#"}))
            .status,
        201
    );
    assert_err(&a.delete(&format!("{x}?if-unused=true")), 400, "bad_request");
    assert_eq!(a.delete(x).status, 204);
    assert_eq!(a.get(x).status, 404);
}

#[test]
fn bindings_in_all_four_url_forms() {
    let b = Broker::new();
    let a = api(&b);
    a.put("/api/exchanges/%2F/src", json!({"type": "direct"}));
    a.put("/api/exchanges/%2F/dst", json!({"type": "fanout"}));
    a.put("/api/queues/%2F/q1", json!({}));
    let r = a.post("/api/bindings/%2F/e/src/q/q1", json!({"routing_key": "k1"}));
    assert_eq!((r.status, r.location.as_deref()), (201, Some("q1/k1")));
    let r = a.post(
        "/api/bindings/%2F/e/src/q/q1",
        json!({"routing_key": "k2", "arguments": {"x": 1}}),
    );
    let loc = r.location.unwrap();
    assert!(loc.starts_with("q1/k2~"), "{loc}");
    let list = a.ok("/api/bindings/%2F/e/src/q/q1");
    assert_eq!(list.as_array().unwrap().len(), 2);
    assert_eq!(
        list[0],
        json!({"source": "src", "vhost": "/", "destination": "q1", "destination_type": "queue",
               "routing_key": "k1", "arguments": {}, "properties_key": "k1"})
    );
    let props = loc.strip_prefix("q1/").unwrap();
    let one = a.ok(&format!("/api/bindings/%2F/e/src/q/q1/{props}"));
    assert_eq!(one["arguments"], json!({"x": 1}));
    assert_eq!(a.get("/api/bindings/%2F/e/src/q/q1/nope").status, 404);
    assert_eq!(a.post("/api/bindings/%2F/e/src/q/missing", json!({})).status, 404);

    let r = a.post("/api/bindings/%2F/e/src/e/dst", json!({"routing_key": "to-dst"}));
    assert_eq!((r.status, r.location.as_deref()), (201, Some("dst/to-dst")));
    assert_eq!(a.ok("/api/bindings/%2F/e/src/e/dst")[0]["destination_type"], "exchange");
    assert_eq!(
        a.ok("/api/exchanges/%2F/src/bindings/source").as_array().unwrap().len(),
        3
    );
    assert_eq!(
        a.ok("/api/exchanges/%2F/dst/bindings/destination")
            .as_array()
            .unwrap()
            .len(),
        1
    );
    // The queue's list includes the default exchange's implicit binding.
    let qb = a.ok("/api/queues/%2F/q1/bindings");
    assert_eq!(qb.as_array().unwrap().len(), 3);
    assert_eq!(qb[0]["source"], "");
    assert_eq!(a.ok("/api/bindings/%2F").as_array().unwrap().len(), 4);

    assert_eq!(a.delete("/api/bindings/%2F/e/src/q/q1/k1").status, 204);
    assert_eq!(a.delete(&format!("/api/bindings/%2F/e/src/q/q1/{props}")).status, 204);
    assert_eq!(a.delete("/api/bindings/%2F/e/src/e/dst/to-dst").status, 204);
    assert_eq!(a.delete("/api/bindings/%2F/e/src/e/dst/to-dst").status, 404);
    assert_eq!(a.ok("/api/exchanges/%2F/src/bindings/source"), json!([]));
    // Routing follows the API's bindings.
    a.post("/api/bindings/%2F/e/src/q/q1", json!({"routing_key": "k"}));
    let r = a.post(
        "/api/exchanges/%2F/src/publish",
        json!({"properties": {}, "routing_key": "k", "payload": "m", "payload_encoding": "string"}),
    );
    assert_eq!(r.json["routed"], true);
}

#[test]
fn paging_filter_sort_and_columns() {
    let b = Broker::new();
    let a = api(&b);
    for i in 0..25 {
        assert_eq!(a.put(&format!("/api/queues/%2F/page-{i:02}"), json!({})).status, 201);
    }
    for _ in 0..3 {
        a.post(
            "/api/exchanges/%2F/amq.default/publish",
            json!({"properties": {}, "routing_key": "page-07", "payload": "x", "payload_encoding": "string"}),
        );
    }
    let p = a.ok("/api/queues/%2F?page=2&page_size=10");
    assert_eq!(
        (p["page"].clone(), p["page_size"].clone(), p["page_count"].clone()),
        (json!(2), json!(10), json!(3))
    );
    assert_eq!(
        (
            p["total_count"].clone(),
            p["filtered_count"].clone(),
            p["item_count"].clone()
        ),
        (json!(25), json!(25), json!(10))
    );
    assert_eq!(p["items"][0]["name"], "page-10");
    let p = a.ok("/api/queues?page=1&name=PAGE-1");
    assert_eq!(p["filtered_count"], 10, "substring match, case-insensitive");
    let p = a.ok("/api/queues?page=1&name=%5Epage-2%5B0-2%5D%24&use_regex=true");
    assert_eq!(p["filtered_count"], 3);
    let p = a.ok("/api/queues?page=1&page_size=1&sort=messages&sort_reverse=true&columns=name,messages");
    assert_eq!(p["items"], json!([{"name": "page-07", "messages": 3}]));
    let p = a.ok("/api/queues?page=3&page_size=10&sort=name&sort_reverse=true");
    assert_eq!(p["items"].as_array().unwrap().len(), 5);
    assert_eq!(p["items"][4]["name"], "page-00");
}

#[test]
fn connections_channels_consumers_and_close_with_reason() {
    let b = Broker::new();
    let a = api(&b);
    run(async {
        let (conn, ch) = open(&b).await;
        let q = unique("cons");
        temp_queue(&ch, &q).await;
        let _consumer = ch
            .basic_consume(
                q.as_str().into(),
                "my-tag".into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
            .unwrap();
        let conns = a.ok("/api/connections");
        assert_eq!(conns.as_array().unwrap().len(), 1);
        let c = &conns[0];
        for key in [
            "name",
            "vhost",
            "user",
            "state",
            "channels",
            "peer_host",
            "peer_port",
            "client_properties",
            "recv_oct",
            "send_oct",
        ] {
            assert!(c.get(key).is_some(), "connection has {key}: {c}");
        }
        assert_eq!(
            (c["user"].clone(), c["vhost"].clone(), c["state"].clone()),
            (json!("guest"), json!("/"), json!("running"))
        );
        let name = c["name"].as_str().unwrap().to_owned();
        assert!(name.contains(" -> "), "{name}");
        assert_eq!(a.ok(&format!("/api/connections/{}", enc(&name)))["name"], name);
        assert_eq!(a.ok("/api/vhosts/%2F/connections").as_array().unwrap().len(), 1);
        let chans = a.ok(&format!("/api/connections/{}/channels", enc(&name)));
        assert_eq!(chans.as_array().unwrap().len(), 1);
        assert_eq!(chans[0]["consumer_count"], 1);
        let chan_name = chans[0]["name"].as_str().unwrap().to_owned();
        assert_eq!(
            a.ok(&format!("/api/channels/{}", enc(&chan_name)))["number"],
            chans[0]["number"]
        );
        assert_eq!(a.ok("/api/channels").as_array().unwrap().len(), 1);
        let cons = a.ok("/api/consumers/%2F");
        assert_eq!(cons[0]["consumer_tag"], "my-tag");
        assert_eq!(cons[0]["queue"], json!({"name": q, "vhost": "/"}));
        assert_eq!(cons[0]["channel_details"]["connection_name"], name);
        assert_eq!(
            a.ok(&format!("/api/queues/%2F/{}", enc(&q)))["consumer_details"][0]["consumer_tag"],
            "my-tag"
        );

        // Another management user does not see guest's connection.
        user(&a, "other", "management", true);
        assert_eq!(a.as_user("other", "other").ok("/api/connections"), json!([]));
        assert_eq!(
            a.as_user("other", "other")
                .get(&format!("/api/connections/{}", enc(&name)))
                .status,
            404
        );

        // Close a second connection (raw, to read the exact close frame).
        let (mut raw, _, _) = raw::RawConn::handshake(&b).await;
        let port = raw.socket().local_addr().unwrap().port();
        let raw_name = a
            .ok("/api/connections")
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap().to_owned())
            .find(|n| n.contains(&format!(":{port} ->")))
            .expect("raw connection listed");
        let path = format!("/api/connections/{}", enc(&raw_name));
        let r = a.call("DELETE", &path, None, &[("X-Reason", "maintenance window")]);
        assert_eq!(r.status, 204);
        let (code, text, _, _) = raw.expect_connection_close().await;
        assert_eq!((code, text.as_str()), (320, "CONNECTION_FORCED - maintenance window"));
        // Without X-Reason, RabbitMQ's default text.
        let r = a.delete(&format!("/api/connections/{}", enc(&name)));
        assert_eq!(r.status, 204);
        eventually("the client sees the close", || {
            let s = conn.status().clone();
            async move { !s.connected() }
        })
        .await;
        eventually("the connection is gone from the list", || {
            let n = a.ok("/api/connections").as_array().unwrap().len();
            async move { n == 0 }
        })
        .await;
    });
}

#[test]
fn users_permissions_and_hashes() {
    let b = Broker::new();
    let a = api(&b);
    let r = a.put(
        "/api/users/alice",
        json!({"password": "s3cret", "tags": "administrator, monitoring"}),
    );
    assert_eq!(r.status, 201);
    let u = a.ok("/api/users/alice");
    assert_eq!(u["tags"], json!(["administrator", "monitoring"]));
    assert_eq!(u["hashing_algorithm"], "rabbit_password_hashing_sha256");
    for key in ["name", "password_hash", "hashing_algorithm", "tags", "limits"] {
        assert!(u.get(key).is_some(), "user has {key}");
    }
    assert_eq!(a.as_user("alice", "s3cret").ok("/api/whoami")["name"], "alice");
    // Update tags only: the password stays.
    assert_eq!(a.put("/api/users/alice", json!({"tags": ["management"]})).status, 204);
    assert_eq!(
        a.as_user("alice", "s3cret").ok("/api/whoami")["tags"],
        json!(["management"])
    );
    // A hash from another user logs in with that user's password.
    let hash = a.ok("/api/auth/hash_password/pw2")["ok"].as_str().unwrap().to_owned();
    let r = a.put(
        "/api/users/bob",
        json!({"password_hash": hash, "hashing_algorithm": "rabbit_password_hashing_sha256", "tags": ""}),
    );
    assert_eq!(r.status, 201);
    assert_err(&a.as_user("bob", "pw2").get("/api/overview"), 401, "not_authorised");
    assert_err(&a.put("/api/users/carol", json!({"tags": ""})), 400, "bad_request");
    assert_err(
        &a.put("/api/users/carol", json!({"password_hash": "!!"})),
        400,
        "bad_request",
    );

    let without: Vec<String> = a
        .ok("/api/users/without-permissions")
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(without, ["alice", "bob"]);
    let p = json!({"configure": "^c", "write": "^w", "read": ".*"});
    assert_eq!(a.put("/api/permissions/%2F/bob", p.clone()).status, 201);
    assert_eq!(a.put("/api/permissions/%2F/bob", p).status, 204);
    assert_eq!(
        a.ok("/api/permissions/%2F/bob"),
        json!({"user": "bob", "vhost": "/", "configure": "^c", "write": "^w", "read": ".*"})
    );
    assert_eq!(a.ok("/api/users/bob/permissions").as_array().unwrap().len(), 1);
    assert_eq!(a.ok("/api/vhosts/%2F/permissions").as_array().unwrap().len(), 2);
    assert_eq!(a.ok("/api/permissions").as_array().unwrap().len(), 2);
    assert_err(
        &a.put("/api/permissions/%2F/bob", json!({"configure": "("})),
        400,
        "bad_request",
    );
    // A missing vhost or user: RabbitMQ 3.10's 400, not 404.
    for path in ["/api/permissions/nope/bob", "/api/permissions/%2F/nobody"] {
        let r = a.put(path, json!({"configure": "", "write": "", "read": ""}));
        assert_err(&r, 400, "bad_request");
        assert_eq!(r.json["reason"], "vhost_or_user_not_found", "{path}");
    }
    run(async {
        // The new user logs in over AMQP with the permissions set here.
        let conn = lapin::Connection::connect(&b.uri_with("bob", "pw2"), lapin::ConnectionProperties::default())
            .await
            .unwrap();
        let ch = conn.create_channel().await.unwrap();
        let r = ch
            .queue_declare("x-denied".into(), QueueDeclareOptions::default(), FieldTable::default())
            .await;
        assert_amqp_err(r, 403, "ACCESS_REFUSED");
    });
    assert_eq!(a.delete("/api/permissions/%2F/bob").status, 204);
    assert_eq!(a.delete("/api/permissions/%2F/bob").status, 404);
    assert_eq!(
        a.post("/api/users/bulk-delete", json!({"users": ["alice", "bob", "ghost"]}))
            .status,
        204
    );
    assert_eq!(a.get("/api/users/alice").status, 404);
    assert_eq!(a.delete("/api/users/alice").status, 404);
    let names: Vec<Value> = a
        .ok("/api/users")
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["name"].clone())
        .collect();
    assert_eq!(names, [json!("guest")]);
}

#[test]
fn overview_nodes_vhosts_aliveness_and_rates_from_the_timer() {
    let b = Broker::new();
    let a = api(&b);
    let o = a.ok("/api/overview");
    for key in [
        "management_version",
        "rabbitmq_version",
        "product_name",
        "node",
        "message_stats",
        "queue_totals",
        "object_totals",
        "listeners",
        "exchange_types",
        "cluster_name",
    ] {
        assert!(o.get(key).is_some(), "overview has {key}");
    }
    assert_eq!(o["object_totals"]["exchanges"], 6);
    let nodes = a.ok("/api/nodes");
    let node = nodes[0]["name"].as_str().unwrap().to_owned();
    assert_eq!(o["node"], node.as_str());
    assert!(nodes[0]["mem_used"].as_u64().unwrap() > 0);
    assert!(nodes[0]["fd_used"].as_u64().unwrap() > 0);
    assert_eq!(a.ok(&format!("/api/nodes/{}", enc(&node)))["name"], node.as_str());
    assert_eq!(a.get("/api/nodes/other@host").status, 404);

    run(async {
        let (_c, ch) = open(&b).await;
        let q = unique("rates");
        temp_queue(&ch, &q).await;
        for _ in 0..10 {
            publish(&ch, "", &q, b"m").await;
        }
        let got = get_all(&ch, &q).await;
        assert_eq!(got.len(), 10);
        // Counters are folded into the vhost on the 5 s stats tick.
        eventually("vhost totals count the publishes", || {
            let v = a.ok("/api/vhosts");
            async move { v[0]["message_stats"]["publish"] == 10 }
        })
        .await;
        let v = &a.ok("/api/vhosts")[0];
        assert_eq!(v["name"], "/");
        assert!(v["message_stats"]["publish_details"]["rate"].is_number());
        assert_eq!(v["message_stats"]["get_no_ack"], 10);
        assert_eq!(v["message_stats"]["deliver_get"], 10);
        let qs = a.ok(&format!("/api/queues/%2F/{}", enc(&q)));
        assert_eq!(qs["message_stats"]["publish"], 10);
        assert_eq!(qs["message_stats"]["get_no_ack"], 10);
        let o = a.ok("/api/overview?msg_rates_age=60&msg_rates_incr=5&lengths_age=60&lengths_incr=5");
        assert_eq!(o["message_stats"]["publish"], 10);
        assert!(o["message_stats"]["publish_details"]["samples"]
            .as_array()
            .is_some_and(|s| !s.is_empty()));
        assert!(o["queue_totals"]["messages_details"]["samples"].is_array());
        let x = a.ok("/api/exchanges/%2F/amq.default");
        assert_eq!(x["message_stats"]["publish_in"], 10);
        assert_eq!(x["message_stats"]["publish_out"], 10);
    });
    // Last: its own publish and get would count in the totals above.
    assert_eq!(a.ok("/api/aliveness-test/%2F"), json!({"status": "ok"}));
}

#[test]
fn pause_stops_deliveries_until_resume() {
    let b = Broker::new();
    let a = api(&b);
    run(async {
        let (_c, ch) = open(&b).await;
        let q = unique("paused");
        temp_queue(&ch, &q).await;
        let path = format!("/api/queues/%2F/{}", enc(&q));
        assert_eq!(a.put(&format!("{path}/pause"), json!({})).status, 204);
        assert_eq!(a.ok(&path)["state"], "paused");
        let mut consumer = ch
            .basic_consume(
                q.as_str().into(),
                "c".into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
            .unwrap();
        publish(&ch, "", &q, b"held").await;
        assert_quiet(&mut consumer).await;
        assert_eq!(a.put(&format!("{path}/resume"), json!({})).status, 204);
        assert_eq!(next(&mut consumer).await.data, b"held");
        assert_eq!(a.ok(&path)["state"], "running");
    });
}

/// A durable queue stays paused across a restart, clean or kill -9 (as LavinMQ
/// keeps it): it must not wake up delivering.
#[test]
fn pause_survives_restarts() {
    let mut b = Broker::new();
    if b.skip_external("pause_survives_restarts") {
        return;
    }
    let a = api(&b);
    let q = unique("paused-durable");
    let path = format!("/api/queues/%2F/{}", enc(&q));
    assert_eq!(a.put(&path, json!({"durable": true})).status, 201);
    assert_eq!(a.put(&format!("{path}/pause"), json!({})).status, 204);
    b.restart();
    assert_eq!(a.ok(&path)["state"], "paused", "after a clean restart");
    b.kill9();
    b.start();
    assert_eq!(a.ok(&path)["state"], "paused", "after kill -9");
    assert_eq!(a.put(&format!("{path}/resume"), json!({})).status, 204);
    b.restart();
    assert_eq!(a.ok(&path)["state"], "running", "resumed stays resumed");
}

#[test]
fn metrics_open_on_their_port_and_behind_login_on_the_api() {
    let b = Broker::new();
    let a = api(&b);
    a.put("/api/queues/%2F/metered", json!({}));
    let open = Api::anonymous(&b.metrics_url());
    let m = open.get("/metrics");
    assert_eq!(m.status, 200);
    assert!(m.content_type.unwrap().starts_with("text/plain"));
    for family in [
        "rabbitmq_process_resident_memory_bytes",
        "rabbitmq_process_open_fds",
        "rabbitmq_erlang_uptime_seconds",
        "rabbitmq_disk_space_available_bytes",
        "rabbitmq_queues 1",
        "rabbitmq_connections 0",
    ] {
        assert!(m.text.contains(family), "metrics have {family}:\n{}", m.text);
    }
    assert_eq!(
        open.get("/api/overview").status,
        404,
        "the metrics port serves only metrics"
    );
    assert_eq!(Api::anonymous(b.http_url()).get("/metrics").status, 401);
    assert_eq!(a.get("/metrics").status, 200);
    let d = open.get("/metrics/detailed?family=queue_coarse_metrics");
    assert!(
        d.text
            .contains("rabbitmq_detailed_queue_messages_ready{vhost=\"/\",queue=\"metered\"} 0"),
        "{}",
        d.text
    );
    assert!(!d.text.contains("exchange_messages"), "family filter");
}

#[test]
fn ui_is_served_from_the_binary() {
    let b = Broker::new();
    let anon = Api::anonymous(b.http_url());
    let r = anon.get("/");
    assert_eq!(r.status, 200);
    assert!(r.content_type.unwrap().starts_with("text/html"));
    assert!(anon.get("/app.js").content_type.unwrap().starts_with("text/javascript"));
    assert!(anon.get("/style.css").content_type.unwrap().starts_with("text/css"));
    assert_eq!(anon.get("/nope.js").status, 404);
}
