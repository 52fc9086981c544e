//! Protocol behaviour as RabbitMQ has it, where clients depend on it (issue 16,
//! items 1-6): idempotent unbinds, both sides closing a channel at once,
//! confirms coalesced into `multiple` acks, the class and method ids in a close,
//! and auto-delete exchange chains. (The channel_max default, 2047, is checked by
//! `tune_values` in tests/connection.rs.)
//!
//! Each test passes against RabbitMQ too:
//! `RINGMQ_TEST_URI=amqp://guest:guest@127.0.0.1:5673/%2f cargo test --test compat`.

mod common;

use common::http::Api;
use common::raw::{plain, RawConn};
use common::*;
use ringmq_codec::{
    ChannelClose, ChannelCloseOk, ConfirmSelect, ExchangeDeclare, Method, QueueDeclare, ShortStr, Table,
};
use serde_json::json;

fn passive_exchange() -> ExchangeDeclareOptions {
    ExchangeDeclareOptions {
        passive: true,
        ..Default::default()
    }
}

fn auto_delete_exchange() -> ExchangeDeclareOptions {
    ExchangeDeclareOptions {
        auto_delete: true,
        ..Default::default()
    }
}

#[test]
fn unbinding_what_is_not_there_is_ok() {
    let b = Broker::new();
    run(async {
        let (conn, ch) = open(&b).await;
        let q = unique("unbind-q");
        let x = unique("unbind-x");
        let missing = unique("unbind-missing");
        temp_queue(&ch, &q).await;
        temp_exchange(&ch, &x, ExchangeKind::Direct).await;
        let no_args = FieldTable::default;
        let cases = [
            ("missing binding", q.as_str(), x.as_str()),
            ("missing queue", missing.as_str(), x.as_str()),
            ("missing exchange", q.as_str(), missing.as_str()),
            ("both missing", missing.as_str(), missing.as_str()),
        ];
        for (what, queue, exchange) in cases {
            within(
                what,
                ch.queue_unbind(queue.into(), exchange.into(), "k".into(), no_args()),
            )
            .await
            .unwrap_or_else(|e| panic!("queue.unbind, {what}: {e}"));
        }
        let cases = [
            ("missing binding", x.as_str(), "amq.direct"),
            ("missing destination", missing.as_str(), "amq.direct"),
            ("missing source", x.as_str(), missing.as_str()),
        ];
        for (what, destination, source) in cases {
            within(
                what,
                ch.exchange_unbind(
                    destination.into(),
                    source.into(),
                    "k".into(),
                    ExchangeUnbindOptions::default(),
                    no_args(),
                ),
            )
            .await
            .unwrap_or_else(|e| panic!("exchange.unbind, {what}: {e}"));
        }
        // Binding still needs both ends.
        let r = within(
            "bind to a missing exchange",
            ch.queue_bind(
                q.as_str().into(),
                missing.as_str().into(),
                "k".into(),
                QueueBindOptions::default(),
                no_args(),
            ),
        )
        .await;
        assert_amqp_err(r, 404, &format!("NOT_FOUND - no exchange '{missing}' in vhost '/'"));
        assert!(conn.status().connected());
    });
}

/// queue.declare (server-named when `name` is empty), as bytes for one write.
fn queue_declare(out: &mut Vec<u8>, channel: u16, name: &str, passive: bool) {
    let declare = Method::QueueDeclare(QueueDeclare {
        ticket: 0,
        queue: ShortStr::new(name).unwrap(),
        passive,
        durable: false,
        exclusive: !passive,
        auto_delete: false,
        no_wait: false,
        arguments: Table::EMPTY,
    });
    ringmq_codec::encode_method(out, channel, &declare);
}

/// The error and the client's own close in one write, so they cross on the wire.
async fn cross_closes(c: &mut RawConn, channel: u16) {
    let mut out = Vec::new();
    queue_declare(&mut out, channel, &unique("cross-missing"), true);
    let close = Method::ChannelClose(ChannelClose {
        reply_code: 200,
        reply_text: ShortStr::new("bye").unwrap(),
        class_id: 0,
        method_id: 0,
    });
    ringmq_codec::encode_method(&mut out, channel, &close);
    c.send(&out).await;
    let g = c.expect("channel.close").await;
    assert_eq!(g.close.as_ref().map(|c| c.0), Some(404), "{g:?}");
    // The client's close is answered: the channel is closed for both.
    let g = c.expect("channel.close-ok").await;
    assert_eq!(g.channel, channel);
}

async fn declare_on(c: &mut RawConn, channel: u16) {
    let mut out = Vec::new();
    queue_declare(&mut out, channel, &unique("cross-after"), false);
    c.send(&out).await;
    c.expect("queue.declare-ok").await;
}

#[test]
fn both_sides_closing_a_channel_at_once() {
    let b = Broker::new();
    run(async {
        let (mut c, _, _) = RawConn::handshake(&b).await;
        c.open_channel(1).await;
        cross_closes(&mut c, 1).await;
        // A client that answers the server's close too (pika, aiormq, the Java
        // client): the close-ok is taken, not a protocol error.
        c.send_method(1, &Method::ChannelCloseOk(ChannelCloseOk)).await;
        c.open_channel(1).await;
        declare_on(&mut c, 1).await;
        // Other channels and the connection were never touched.
        c.open_channel(2).await;
        declare_on(&mut c, 2).await;
    });
}

/// A channel the server closed is not reusable until the client's close-ok, as
/// in RabbitMQ: a channel.open before it is the connection error RabbitMQ gives.
#[test]
fn channel_open_before_close_ok_is_a_connection_error() {
    let b = Broker::new();
    run(async {
        for crossed in [true, false] {
            let (mut c, _, _) = RawConn::handshake(&b).await;
            c.open_channel(1).await;
            if crossed {
                cross_closes(&mut c, 1).await;
            } else {
                let mut out = Vec::new();
                queue_declare(&mut out, 1, &unique("reopen-missing"), true);
                c.send(&out).await;
                c.expect("channel.close").await;
            }
            c.send_method(
                1,
                &Method::ChannelOpen(ringmq_codec::ChannelOpen {
                    out_of_band: ShortStr::EMPTY,
                }),
            )
            .await;
            let (code, text, class_id, method_id) = c.expect_connection_close().await;
            assert_eq!((code, class_id, method_id), (504, 20, 10), "crossed {crossed}");
            assert_eq!(text, "CHANNEL_ERROR - second 'channel.open' seen");
        }
    });
}

#[test]
fn confirms_ready_together_go_as_one_multiple_ack() {
    let b = Broker::new();
    const N: u64 = 200;
    run(async {
        let (mut c, _, _) = RawConn::handshake(&b).await;
        c.open_channel(1).await;
        c.send_method(1, &Method::ConfirmSelect(ConfirmSelect { no_wait: false }))
            .await;
        c.expect("confirm.select-ok").await;
        let q = unique("confirm-batch");
        let mut out = Vec::new();
        queue_declare(&mut out, 1, &q, false);
        c.send(&out).await;
        c.expect("queue.declare-ok").await;
        // Transient messages in one write: their confirms are ready at once.
        let mut out = Vec::new();
        for _ in 0..N {
            RawConn::encode_publish(&mut out, 1, "", &q);
        }
        c.send(&out).await;
        let (mut confirmed, mut frames, mut multiple) = (0u64, 0u64, 0u64);
        while confirmed < N {
            let g = c.expect("basic.ack").await;
            let (tag, is_multiple) = g.ack.expect("ack fields");
            assert!(tag > confirmed, "ack {tag} after {confirmed}");
            if !is_multiple {
                assert_eq!(tag, confirmed + 1, "a single ack skipped tags");
            }
            frames += 1;
            multiple += is_multiple as u64;
            confirmed = tag;
        }
        assert_eq!(confirmed, N);
        assert!(multiple > 0, "{N} confirms ready together, none with multiple");
        assert!(frames < N / 2, "{frames} ack frames for {N} confirms ready together");
    });
}

/// A channel error's close names the method that caused it.
#[test]
fn closes_carry_the_class_and_method_of_the_cause() {
    let b = Broker::new();
    run(async {
        let (mut c, _, _) = RawConn::handshake(&b).await;
        // basic.publish to a missing exchange: 404 blamed on basic.publish (60/40),
        // though the broker sees it only with the content.
        c.open_channel(1).await;
        let mut out = Vec::new();
        RawConn::encode_publish(&mut out, 1, &unique("no-such-x"), "k");
        c.send(&out).await;
        let g = c.expect("channel.close").await;
        let (code, _, class_id, method_id) = g.close.clone().unwrap();
        assert_eq!((code, class_id, method_id), (404, 60, 40), "{g:?}");
        c.send_method(1, &Method::ChannelCloseOk(ChannelCloseOk)).await;
        // exchange.declare passive of a missing exchange: 40/10.
        c.open_channel(2).await;
        let missing = unique("no-such-x");
        let declare = Method::ExchangeDeclare(ExchangeDeclare {
            ticket: 0,
            exchange: ShortStr::new(&missing).unwrap(),
            kind: ShortStr::new("direct").unwrap(),
            passive: true,
            durable: false,
            auto_delete: false,
            internal: false,
            no_wait: false,
            arguments: Table::EMPTY,
        });
        c.send_method(2, &declare).await;
        let g = c.expect("channel.close").await;
        let (code, _, class_id, method_id) = g.close.clone().unwrap();
        assert_eq!((code, class_id, method_id), (404, 40, 10), "{g:?}");
        c.send_method(2, &Method::ChannelCloseOk(ChannelCloseOk)).await;
        // A connection error: channel.open on an open channel, blamed on 20/10.
        c.open_channel(3).await;
        c.send_method(
            3,
            &Method::ChannelOpen(ringmq_codec::ChannelOpen {
                out_of_band: ShortStr::EMPTY,
            }),
        )
        .await;
        let (code, _, class_id, method_id) = c.expect_connection_close().await;
        assert_eq!((code, class_id, method_id), (504, 20, 10));
    });
}

#[test]
fn auto_delete_exchanges_go_in_chains() {
    let b = Broker::new();
    run(async {
        let (_conn, ch) = open(&b).await;
        let (top, middle) = (unique("ad-top"), unique("ad-middle"));
        let q = unique("ad-q");
        temp_queue(&ch, &q).await;
        for x in [&top, &middle] {
            declare_exchange(
                &ch,
                x,
                ExchangeKind::Fanout,
                auto_delete_exchange(),
                FieldTable::default(),
            )
            .await;
        }
        // top -> middle -> q
        within(
            "exchange.bind",
            ch.exchange_bind(
                middle.as_str().into(),
                top.as_str().into(),
                "".into(),
                ExchangeBindOptions::default(),
                FieldTable::default(),
            ),
        )
        .await
        .expect("exchange.bind");
        bind(&ch, &q, &middle, "", FieldTable::default()).await;
        // The queue goes: middle has no binding as a source left and goes, which
        // takes top's last binding, so top goes too.
        within(
            "queue.delete",
            ch.queue_delete(q.as_str().into(), QueueDeleteOptions::default()),
        )
        .await
        .expect("queue.delete");
        for x in [&middle, &top] {
            let ch = channel(&_conn).await;
            let r = within(
                "passive",
                ch.exchange_declare(
                    x.as_str().into(),
                    ExchangeKind::Fanout,
                    passive_exchange(),
                    FieldTable::default(),
                ),
            )
            .await;
            assert_amqp_err(r, 404, &format!("NOT_FOUND - no exchange '{x}' in vhost '/'"));
        }
    });
}

/// Item 9: a dead-letter routing key without a dead-letter exchange is refused.
#[test]
fn dead_letter_routing_key_needs_a_dead_letter_exchange() {
    let b = Broker::new();
    run(async {
        let (_conn, ch) = open(&b).await;
        let q = unique("dlrk-only");
        let mut args = FieldTable::default();
        args.insert("x-dead-letter-routing-key".into(), AMQPValue::LongString("k".into()));
        let r = within(
            "declare",
            ch.queue_declare(q.as_str().into(), QueueDeclareOptions::default(), args),
        )
        .await;
        let text = format!(
            "PRECONDITION_FAILED - invalid arg 'x-dead-letter-routing-key' for queue '{q}' in vhost '/': routing_key_but_no_dlx_defined"
        );
        assert_amqp_err(r, 406, &text);
    });
}

/// Item 9: deleting a user closes its open connections with 320.
#[test]
fn deleting_a_user_closes_its_connections() {
    let b = Broker::new();
    let a = Api::new(b.http_url(), b.user(), b.pass());
    let name = unique("doomed");
    assert_eq!(
        a.put(&format!("/api/users/{name}"), json!({"password": "pw", "tags": ""}))
            .status,
        201
    );
    let perms = json!({"configure": ".*", "write": ".*", "read": ".*"});
    assert_eq!(a.put(&format!("/api/permissions/%2F/{name}"), perms).status, 201);
    run(async {
        let mut c = RawConn::connect(b.addr()).await;
        c.start().await;
        c.start_ok("PLAIN", &plain(&name, "pw")).await;
        c.tune_open().await;
        // Another user's connection stays.
        let (mut other, _, _) = RawConn::handshake(&b).await;
        assert_eq!(a.delete(&format!("/api/users/{name}")).status, 204);
        let (code, text, _, _) = c.expect_connection_close().await;
        assert_eq!(text, format!("CONNECTION_FORCED - user '{name}' is deleted"));
        assert_eq!(code, 320);
        other.open_channel(1).await;
    });
}

/// Item 9: an import that creates a vhost with its queues; the importing user gets
/// full permissions on the new vhost (RabbitMQ's maybe_grant_full_permissions), and
/// administrators read any vhost without a permission entry there, while acting in
/// it as a client still needs one.
#[test]
fn imported_vhost_and_its_queues_are_there_for_the_importer() {
    let b = Broker::new();
    let a = Api::new(b.http_url(), b.user(), b.pass());
    let (v, app) = (unique("imported-v"), unique("imported-app"));
    let defs = json!({
        "users": [{"name": app, "password_hash": "kI3GCqW5JLMJa4iX1lo7X4D6XbYqlLgxIs30+P6tENUV2POR",
                   "hashing_algorithm": "rabbit_password_hashing_sha256", "tags": [], "limits": {}}],
        "vhosts": [{"name": v, "description": "", "tags": [], "metadata": {"description": "", "tags": []}}],
        "permissions": [{"user": app, "vhost": v, "configure": ".*", "write": ".*", "read": ".*"}],
        "queues": [
            {"name": "work", "vhost": v, "durable": true, "auto_delete": false, "arguments": {"x-queue-type": "classic"}},
            {"name": "t", "vhost": v, "durable": false, "auto_delete": false, "arguments": {}}],
        "exchanges": [{"name": "ex", "vhost": v, "type": "direct", "durable": true, "auto_delete": false,
                       "internal": false, "arguments": {}}],
        "bindings": [{"source": "ex", "vhost": v, "destination": "work", "destination_type": "queue",
                      "routing_key": "k", "arguments": {}}],
    });
    assert_eq!(a.post("/api/definitions", defs).status, 204);
    let queues = a.ok(&format!("/api/queues/{v}"));
    let mut names: Vec<&str> = queues
        .as_array()
        .unwrap()
        .iter()
        .map(|q| q["name"].as_str().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["t", "work"]);
    let perms = a.ok(&format!("/api/vhosts/{v}/permissions"));
    let users: Vec<&str> = perms
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["user"].as_str().unwrap())
        .collect();
    assert!(users.contains(&b.user()) && users.contains(&app.as_str()), "{perms}");

    // Another administrator, without permissions in the vhost: reads, but acts
    // there as a client only with them.
    let admin2 = unique("admin2");
    assert_eq!(
        a.put(
            &format!("/api/users/{admin2}"),
            json!({"password": "pw", "tags": "administrator"})
        )
        .status,
        201
    );
    let a2 = a.as_user(&admin2, "pw");
    assert_eq!(a2.ok(&format!("/api/queues/{v}")).as_array().unwrap().len(), 2);
    let r = a2.put(&format!("/api/queues/{v}/mine"), json!({}));
    assert_eq!((r.status, r.json["reason"].as_str()), (401, Some("Access refused.")));
    // A management user without permissions does not see the vhost.
    let mg = unique("mg");
    assert_eq!(
        a.put(
            &format!("/api/users/{mg}"),
            json!({"password": "pw", "tags": "management"})
        )
        .status,
        201
    );
    let r = a.as_user(&mg, "pw").get(&format!("/api/queues/{v}"));
    assert_eq!(r.status, 401);
    for path in [
        format!("/api/vhosts/{v}"),
        format!("/api/users/{app}"),
        format!("/api/users/{admin2}"),
        format!("/api/users/{mg}"),
    ] {
        assert_eq!(a.delete(&path).status, 204, "{path}");
    }
}

/// The cluster name set through the API is the one connection.start announces.
#[test]
fn connection_start_announces_the_cluster_name() {
    let b = Broker::new();
    if b.skip_external("connection_start_announces_the_cluster_name") {
        return; // the external broker's name is its own
    }
    let a = Api::new(b.http_url(), b.user(), b.pass());
    assert_eq!(a.put("/api/cluster-name", json!({"name": "orders-eu"})).status, 204);
    run(async {
        let mut c = RawConn::connect(b.addr()).await;
        let (props, _) = c.start().await;
        let name = props.get("cluster_name").and_then(|v| v.as_str().map(str::to_owned));
        assert_eq!(name.as_deref(), Some("orders-eu"));
    });
}

/// Redeclaring a queue with the other exclusive flag is 405, on the owning
/// connection too (RabbitMQ's assert_equivalence: exclusivity first, strictly).
/// aiormq's own test suite relies on it.
#[test]
fn exclusive_flag_mismatch_is_resource_locked() {
    let b = Broker::new();
    run(async {
        let conn = connect(&b).await;
        let (ch0, ch1) = (channel(&conn).await, channel(&conn).await);
        let q = unique("excl-mismatch");
        let exclusive = QueueDeclareOptions {
            exclusive: true,
            ..Default::default()
        };
        declare_queue(&ch0, &q, exclusive, FieldTable::default()).await;
        let r = within(
            "redeclare not exclusive",
            ch1.queue_declare(q.as_str().into(), QueueDeclareOptions::default(), FieldTable::default()),
        )
        .await;
        assert_amqp_err(
            r,
            405,
            "RESOURCE_LOCKED - cannot obtain exclusive access to locked queue",
        );
        // And a shared queue declared again as exclusive.
        let shared = unique("shared-mismatch");
        let ch2 = channel(&conn).await;
        temp_queue_shared(&ch2, &shared).await;
        let ch3 = channel(&conn).await;
        let r = within(
            "redeclare exclusive",
            ch3.queue_declare(shared.as_str().into(), exclusive, FieldTable::default()),
        )
        .await;
        assert_amqp_err(r, 405, "RESOURCE_LOCKED");
        let ch4 = channel(&conn).await;
        within(
            "delete",
            ch4.queue_delete(shared.as_str().into(), QueueDeleteOptions::default()),
        )
        .await
        .unwrap();
    });
}

async fn temp_queue_shared(ch: &lapin::Channel, name: &str) {
    let opts = QueueDeclareOptions {
        auto_delete: true,
        ..Default::default()
    };
    declare_queue(ch, name, opts, FieldTable::default()).await;
}

/// A passive declare of the default exchange is refused as any declare of it is
/// (aiormq's suite checks it).
#[test]
fn passive_declare_of_the_default_exchange_is_403() {
    let b = Broker::new();
    run(async {
        let (_conn, ch) = open(&b).await;
        let opts = ExchangeDeclareOptions {
            passive: true,
            ..Default::default()
        };
        let r = within(
            "passive ''",
            ch.exchange_declare("".into(), ExchangeKind::Direct, opts, FieldTable::default()),
        )
        .await;
        assert_amqp_err(
            r,
            403,
            "ACCESS_REFUSED - operation not permitted on the default exchange",
        );
    });
}
