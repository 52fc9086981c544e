//! Topic permissions (issue 16, item 8): RabbitMQ's topic authorisation over
//! AMQP (publish routing keys, binding keys), the HTTP API's shapes, the
//! definitions import and export, and their life with users, vhosts and
//! restarts. Everything but the restart also runs against RabbitMQ 3.10
//! (`RINGMQ_TEST_URI` and `RINGMQ_TEST_HTTP_URI`); names are unique and
//! removed at the end, as the peer is shared.

mod common;

use common::http::{assert_err, enc, Api};
use common::*;
use serde_json::{json, Value};

fn api(b: &Broker) -> Api {
    Api::new(b.http_url(), b.user(), b.pass())
}

/// A user with full configure/write/read permissions on "/".
fn add_user(a: &Api, name: &str) {
    a.add_user(name, "pw", "", true);
}

fn set_topic(a: &Api, user: &str, exchange: &str, write: &str, read: &str) -> u16 {
    let r = a.put(
        &format!("/api/topic-permissions/%2F/{user}"),
        json!({"exchange": exchange, "write": write, "read": read}),
    );
    assert!(r.status == 201 || r.status == 204, "{}", r.text);
    r.status
}

/// A list sorted by exchange (RabbitMQ lists in its table's order).
fn by_exchange(v: Value) -> Value {
    let mut items = v.as_array().cloned().unwrap_or_else(|| panic!("not a list: {v}"));
    items.sort_by(|a, b| a["exchange"].as_str().cmp(&b["exchange"].as_str()));
    Value::Array(items)
}

fn refused(key: &str, exchange: &str, user: &str) -> String {
    format!("ACCESS_REFUSED - access to topic '{key}' in exchange '{exchange}' in vhost '/' refused for user '{user}'")
}

/// basic.publish on a confirm channel: Ok when confirmed, the channel's error otherwise.
async fn try_publish(conn: &lapin::Connection, exchange: &str, key: &str) -> lapin::Result<()> {
    let ch = confirm_channel(conn).await;
    let confirm = within(
        "basic.publish",
        ch.basic_publish(
            exchange.into(),
            key.into(),
            BasicPublishOptions::default(),
            b"m",
            BasicProperties::default(),
        ),
    )
    .await?;
    within("confirm", confirm).await.map(|_| ())
}

async fn try_bind(conn: &lapin::Connection, exchange: &str, key: &str, bind: bool) -> lapin::Result<()> {
    let ch = channel(conn).await;
    let q = within(
        "queue.declare",
        ch.queue_declare(
            "".into(),
            QueueDeclareOptions {
                exclusive: true,
                ..Default::default()
            },
            FieldTable::default(),
        ),
    )
    .await?;
    let (q, x, k) = (q.name().clone(), exchange.into(), key.into());
    if bind {
        within(
            "queue.bind",
            ch.queue_bind(q, x, k, QueueBindOptions::default(), FieldTable::default()),
        )
        .await
    } else {
        within("queue.unbind", ch.queue_unbind(q, x, k, FieldTable::default())).await
    }
}

async fn try_exchange_bind(conn: &lapin::Connection, dest: &str, source: &str, key: &str) -> lapin::Result<()> {
    let ch = channel(conn).await;
    temp_exchange(&ch, dest, ExchangeKind::Fanout).await;
    within(
        "exchange.bind",
        ch.exchange_bind(
            dest.into(),
            source.into(),
            key.into(),
            ExchangeBindOptions::default(),
            FieldTable::default(),
        ),
    )
    .await?;
    within(
        "exchange.delete",
        ch.exchange_delete(dest.into(), ExchangeDeleteOptions::default()),
    )
    .await
}

#[test]
fn topic_permissions_are_checked_on_publish_and_bind() {
    let b = Broker::new();
    let a = api(&b);
    let user = unique("tp-user");
    let xt = unique("tp-x");
    add_user(&a, &user);
    let r = a.put(&format!("/api/exchanges/%2F/{xt}"), json!({"type": "topic"}));
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(
        set_topic(&a, &user, "amq.topic", "^{username}\\.", "^r\\.{vhost}$"),
        201
    );
    // {client_id} is MQTT's: on AMQP 0-9-1 it stays a literal, and an empty
    // pattern is ^$.
    assert_eq!(set_topic(&a, &user, &xt, "^{client_id}$", ""), 204);
    // Other exchange types are never checked.
    set_topic(&a, &user, "amq.direct", "^never$", "^never$");

    run(async {
        let conn = within(
            "connect",
            lapin::Connection::connect(&b.uri_with(&user, "pw"), lapin::ConnectionProperties::default()),
        )
        .await
        .expect("user connects");
        try_publish(&conn, "amq.topic", &format!("{user}.orders"))
            .await
            .expect("own prefix");
        let r = try_publish(&conn, "amq.topic", "other.orders").await;
        assert_amqp_err(r, 403, &refused("other.orders", "amq.topic", &user));
        try_publish(&conn, "amq.direct", "x")
            .await
            .expect("not a topic exchange");
        try_publish(&conn, &xt, "{client_id}").await.expect("literal");
        assert_amqp_err(try_publish(&conn, &xt, "c1").await, 403, &refused("c1", &xt, &user));

        try_bind(&conn, "amq.topic", "r./", true).await.expect("read ^r\\./$");
        assert_amqp_err(
            try_bind(&conn, "amq.topic", "r.x", true).await,
            403,
            &refused("r.x", "amq.topic", &user),
        );
        try_bind(&conn, &xt, "", true).await.expect("empty read pattern is ^$");
        assert_amqp_err(try_bind(&conn, &xt, "k", true).await, 403, &refused("k", &xt, &user));
        // RabbitMQ checks unbinding too (the same binding action).
        assert_amqp_err(
            try_bind(&conn, "amq.topic", "zz", false).await,
            403,
            &refused("zz", "amq.topic", &user),
        );
        // Even from a queue that is not there (unbind is otherwise idempotent).
        let ch = channel(&conn).await;
        let r = within(
            "queue.unbind",
            ch.queue_unbind(
                unique("tp-no-queue").as_str().into(),
                "amq.topic".into(),
                "zz".into(),
                FieldTable::default(),
            ),
        )
        .await;
        assert_amqp_err(r, 403, &refused("zz", "amq.topic", &user));
        let dest = unique("tp-dest");
        try_exchange_bind(&conn, &dest, "amq.topic", "r./")
            .await
            .expect("exchange.bind with a readable key");
        assert_amqp_err(
            try_exchange_bind(&conn, &dest, "amq.topic", "zz").await,
            403,
            &refused("zz", "amq.topic", &user),
        );
        let ch = channel(&conn).await;
        let _ = ch
            .exchange_delete(dest.as_str().into(), ExchangeDeleteOptions::default())
            .await;
        let _ = conn.close(200, "bye".into()).await;
    });

    let _ = a.delete(&format!("/api/exchanges/%2F/{xt}"));
    assert_eq!(a.delete(&format!("/api/users/{user}")).status, 204);
}

#[test]
fn topic_permissions_http_api_definitions_and_user_deletion() {
    let b = Broker::new();
    let a = api(&b);
    let user = unique("tp-http");
    add_user(&a, &user);
    let path = format!("/api/topic-permissions/%2F/{}", enc(&user));
    assert_err(&a.get(&path), 404, "Object Not Found");
    assert_eq!(a.ok(&format!("/api/users/{user}/topic-permissions")), json!([]));
    assert_err(&a.delete(&path), 404, "Object Not Found");

    // Validation, with RabbitMQ's reasons.
    let r = a.put(&path, json!({"write": "^a"}));
    assert_err(&r, 400, "bad_request");
    assert_eq!(r.json["reason"], "[{key_missing,exchange},{key_missing,read}]");
    // (RabbitMQ's reason is an Erlang term here: ["invalid_regexp","(",[..]].)
    let r = a.put(&path, json!({"exchange": "amq.topic", "write": "(", "read": ""}));
    assert_eq!((r.status, &r.json["error"]), (400, &json!("bad_request")), "{}", r.text);
    let r = a.put(
        "/api/topic-permissions/%2F/no-such-user-tp",
        json!({"exchange": "amq.topic", "write": "", "read": ""}),
    );
    assert_err(&r, 400, "bad_request");
    assert_eq!(r.json["reason"], "vhost_or_user_not_found");
    assert_err(
        &a.put(
            &format!("/api/topic-permissions/no-such-vhost-tp/{user}"),
            json!({"exchange": "amq.topic", "write": "", "read": ""}),
        ),
        400,
        "bad_request",
    );

    assert_eq!(set_topic(&a, &user, "amq.topic", "^a", ".*"), 201);
    assert_eq!(set_topic(&a, &user, "amq.topic", "^b", ".*"), 204, "replaces");
    // The exchange need not exist.
    assert_eq!(set_topic(&a, &user, "tp-not-declared", "x", ""), 204);
    let entry = |x: &str, w: &str, r: &str| json!({"user": user, "vhost": "/", "exchange": x, "write": w, "read": r});
    let mine = json!([entry("amq.topic", "^b", ".*"), entry("tp-not-declared", "x", "")]);
    assert_eq!(by_exchange(a.ok(&path)), mine);
    assert_eq!(by_exchange(a.ok(&format!("/api/users/{user}/topic-permissions"))), mine);
    // RabbitMQ 3.10 lists all of the user's entries under an exchange's path too.
    assert_eq!(by_exchange(a.ok(&format!("{path}/amq.topic"))), mine);
    let of = |list: Value| -> Value {
        by_exchange(Value::Array(
            list.as_array()
                .expect("a list")
                .iter()
                .filter(|e| e["user"] == json!(user))
                .cloned()
                .collect(),
        ))
    };
    assert_eq!(of(a.ok("/api/topic-permissions")), mine);
    assert_eq!(of(a.ok("/api/vhosts/%2F/topic-permissions")), mine);
    assert_err(
        &a.get("/api/users/no-such-user-tp/topic-permissions"),
        404,
        "Object Not Found",
    );
    assert_err(
        &a.get("/api/vhosts/no-such-vhost-tp/topic-permissions"),
        404,
        "Object Not Found",
    );
    let d = a.ok("/api/definitions");
    assert_eq!(of(d["topic_permissions"].clone()), mine);

    // DELETE with the exchange removes that one; without, all of them.
    assert_eq!(a.delete(&format!("{path}/tp-not-declared")).status, 204);
    assert_eq!(a.ok(&path), json!([entry("amq.topic", "^b", ".*")]));
    assert_eq!(a.delete(&path).status, 204);
    assert_err(&a.get(&path), 404, "Object Not Found");

    // An import brings them (today's RabbitMQ exports carry them; they were dropped).
    let imported = unique("tp-imported");
    let defs = json!({
        "users": [{"name": imported, "password_hash": "", "hashing_algorithm": "rabbit_password_hashing_sha256", "tags": []}],
        "permissions": [{"user": imported, "vhost": "/", "configure": "", "write": ".*", "read": ".*"}],
        "topic_permissions": [{"user": imported, "vhost": "/", "exchange": "amq.topic", "write": "^{username}$", "read": ""}],
    });
    let r = a.post("/api/definitions", defs);
    assert!(r.status == 200 || r.status == 204, "{}", r.text);
    assert_eq!(
        a.ok(&format!("/api/topic-permissions/%2F/{imported}")),
        json!([{"user": imported, "vhost": "/", "exchange": "amq.topic", "write": "^{username}$", "read": ""}])
    );

    // Deleting a user removes its topic permissions.
    set_topic(&a, &user, "amq.topic", ".*", ".*");
    for u in [&user, &imported] {
        assert_eq!(a.delete(&format!("/api/users/{u}")).status, 204);
    }
    assert_eq!(of(a.ok("/api/topic-permissions")), json!([]));
    assert!(a
        .ok("/api/topic-permissions")
        .as_array()
        .unwrap()
        .iter()
        .all(|e| e["user"] != json!(imported)));
}

#[test]
fn topic_permissions_survive_restarts_and_go_with_their_vhost() {
    let mut b = Broker::new();
    if b.skip_external("topic_permissions_survive_restarts_and_go_with_their_vhost") {
        return;
    }
    let a = api(&b);
    add_user(&a, "tp-durable");
    set_topic(&a, "tp-durable", "amq.topic", "^kept$", "");
    assert_eq!(a.put("/api/vhosts/tpv", json!({})).status, 201);
    let r = a.put(
        "/api/topic-permissions/tpv/tp-durable",
        json!({"exchange": "amq.topic", "write": "", "read": ""}),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    b.restart();
    let before = a.ok("/api/topic-permissions");
    assert_eq!(before.as_array().unwrap().len(), 2, "{before}");
    run(async {
        let conn = within(
            "connect",
            lapin::Connection::connect(&b.uri_with("tp-durable", "pw"), lapin::ConnectionProperties::default()),
        )
        .await
        .expect("connect");
        try_publish(&conn, "amq.topic", "kept").await.expect("allowed key");
        assert_amqp_err(
            try_publish(&conn, "amq.topic", "other").await,
            403,
            &refused("other", "amq.topic", "tp-durable"),
        );
    });
    assert_eq!(a.delete("/api/vhosts/tpv").status, 204);
    b.restart();
    assert_eq!(
        a.ok("/api/topic-permissions"),
        json!([{"user": "tp-durable", "vhost": "/", "exchange": "amq.topic", "write": "^kept$", "read": ""}])
    );
}
