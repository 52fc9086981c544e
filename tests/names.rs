//! Names and keys that AMQP cannot carry (short strings: at most 255 bytes) are
//! refused at the edge, with 400 and a JSON reason on the API, and never reach
//! the encoder (issue 15, defect 3: a 256-byte durable queue name aborted the
//! broker). Statuses and error shapes as RabbitMQ 3.10's management plugin, which
//! refuses long queue names with `queue should be less than 255 bytes, actually
//! was 256`; it accepts long exchange names and binding keys that no AMQP client
//! could then use, which we refuse the same way.

mod common;

use common::http::{assert_err, Api};
use common::*;
use lapin::options::{BasicGetOptions, BasicPublishOptions, BasicRejectOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::BasicProperties;
use serde_json::json;

fn api(b: &Broker) -> Api {
    Api::new(b.http_url(), b.user(), b.pass())
}

fn long(c: char, n: usize) -> String {
    std::iter::repeat_n(c, n).collect()
}

/// The broker still answers, on the API and over AMQP.
#[track_caller]
fn assert_alive(b: &Broker) {
    let a = api(b);
    assert_eq!(a.get("/api/overview").status, 200, "the API still answers");
    run(async {
        let (_c, ch) = open(b).await;
        ch.queue_declare(
            "alive-check".into(),
            QueueDeclareOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect("AMQP still answers");
    });
}

#[track_caller]
fn assert_400(r: &common::http::Resp, reason_starts: &str) {
    assert_err(r, 400, "bad_request");
    let reason = r.json["reason"].as_str().unwrap();
    assert!(
        reason.starts_with(reason_starts),
        "reason {reason:?}, want {reason_starts:?}"
    );
}

#[test]
fn long_queue_and_exchange_names_are_refused_with_400() {
    let b = Broker::new();
    let a = api(&b);
    let n256 = long('q', 256);
    let r = a.put(&format!("/api/queues/%2F/{n256}"), json!({"durable": true}));
    assert_400(&r, "queue should be less than 255 bytes, actually was 256");
    let r = a.put(
        &format!("/api/queues/%2F/{}", long('t', 300)),
        json!({"durable": false}),
    );
    assert_400(&r, "queue should be less than 255 bytes, actually was 300");
    assert_eq!(a.get(&format!("/api/queues/%2F/{n256}")).status, 404);
    let r = a.put(
        &format!("/api/exchanges/%2F/{}", long('x', 256)),
        json!({"type": "direct", "durable": true}),
    );
    assert_400(&r, "exchange should be less than 255 bytes, actually was 256");
    assert_alive(&b);

    // 255 bytes is the most AMQP carries, and an AMQP client can name them.
    let q255 = long('q', 255);
    let x255 = long('x', 255);
    assert_eq!(
        a.put(&format!("/api/queues/%2F/{q255}"), json!({"durable": true}))
            .status,
        201
    );
    assert_eq!(
        a.put(
            &format!("/api/exchanges/%2F/{x255}"),
            json!({"type": "direct", "durable": true})
        )
        .status,
        201
    );
    run(async {
        let (_c, ch) = open(&b).await;
        let passive = QueueDeclareOptions {
            passive: true,
            ..Default::default()
        };
        ch.queue_declare(q255.as_str().into(), passive, FieldTable::default())
            .await
            .expect("names it");
        ch.queue_bind(
            q255.as_str().into(),
            x255.as_str().into(),
            "k".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    });
    // They are in the definitions log, so a restart brings them back.
    let mut b = b;
    b.restart();
    let a = api(&b);
    assert_eq!(a.get(&format!("/api/queues/%2F/{q255}")).status, 200);
    assert_eq!(a.get(&format!("/api/exchanges/%2F/{x255}")).status, 200);
}

#[test]
fn long_routing_keys_and_argument_keys_are_refused_with_400() {
    let b = Broker::new();
    let a = api(&b);
    assert_eq!(a.put("/api/queues/%2F/dst", json!({"durable": true})).status, 201);
    assert_eq!(
        a.put("/api/exchanges/%2F/src", json!({"type": "direct", "durable": true}))
            .status,
        201
    );
    let r = a.post("/api/bindings/%2F/e/src/q/dst", json!({"routing_key": long('k', 300)}));
    assert_400(&r, "routing_key should be less than 255 bytes, actually was 300");
    let r = a.post(
        "/api/bindings/%2F/e/amq.direct/e/src",
        json!({"routing_key": long('k', 256)}),
    );
    assert_400(&r, "routing_key should be less than 255 bytes, actually was 256");
    assert_eq!(
        a.ok("/api/queues/%2F/dst/bindings").as_array().unwrap().len(),
        1,
        "only the default binding"
    );
    let r = a.post(
        "/api/exchanges/%2F/amq.direct/publish",
        json!({"properties": {}, "routing_key": long('k', 300), "payload": "m", "payload_encoding": "string"}),
    );
    assert_400(&r, "routing_key should be less than 255 bytes, actually was 300");
    // A 256-byte argument name whose last character is two bytes wide.
    let key = format!("{}é", long('a', 254));
    let r = a.put("/api/queues/%2F/args", json!({"arguments": {key.clone(): 1}}));
    assert_400(&r, "argument name should be less than 255 bytes, actually was 256");
    let r = a.put(
        "/api/exchanges/%2F/argx",
        json!({"type": "headers", "arguments": {"nested": {key.clone(): 1}}}),
    );
    assert_400(&r, "argument name should be less than 255 bytes, actually was 256");
    let r = a.post(
        "/api/exchanges/%2F/amq.direct/publish",
        json!({"properties": {"headers": {key: 1}}, "routing_key": "dst", "payload": "m", "payload_encoding": "string"}),
    );
    assert_400(&r, "argument name should be less than 255 bytes, actually was 256");
    let r = a.put(
        "/api/queues/%2F/dlk",
        json!({"arguments": {"x-dead-letter-exchange": "amq.topic", "x-dead-letter-routing-key": long('k', 256)}}),
    );
    assert_eq!(r.status, 400, "{}", r.text);
    assert_alive(&b);
    assert_eq!(a.get("/api/queues/%2F/args").status, 404);
    assert_eq!(a.get("/api/queues/%2F/dlk").status, 404);
}

#[test]
fn a_management_user_cannot_abort_the_broker() {
    let b = Broker::new();
    let a = api(&b);
    assert_eq!(a.put("/api/vhosts/own", json!({})).status, 201);
    assert_eq!(
        a.put("/api/users/mg", json!({"password": "mg", "tags": "management"}))
            .status,
        201
    );
    let r = a.put(
        "/api/permissions/own/mg",
        json!({"configure": ".*", "write": ".*", "read": ".*"}),
    );
    assert_eq!(r.status, 201);
    let mg = a.as_user("mg", "mg");
    let r = mg.put(&format!("/api/queues/own/{}", long('q', 256)), json!({"durable": true}));
    assert_400(&r, "queue should be less than 255 bytes");
    let r = mg.put(
        &format!("/api/exchanges/own/{}", long('x', 256)),
        json!({"type": "fanout", "durable": true}),
    );
    assert_400(&r, "exchange should be less than 255 bytes");
    assert_alive(&b);
    let r = a.put(&format!("/api/vhosts/{}", long('v', 300)), json!({}));
    assert_400(&r, "vhost should be less than 255 bytes, actually was 300");
}

#[test]
fn an_import_with_a_long_name_names_the_entry_and_applies_nothing() {
    let b = Broker::new();
    let a = api(&b);
    let defs = json!({
        "queues": [{"name": "good", "vhost": "/", "durable": true, "auto_delete": false, "arguments": {}}],
        "exchanges": [{"name": "gx", "vhost": "/", "type": "direct", "durable": true, "auto_delete": false,
                       "internal": false, "arguments": {}}],
        "bindings": [{"source": "gx", "vhost": "/", "destination": "good", "destination_type": "queue",
                      "routing_key": long('k', 300), "arguments": {}}]
    });
    let r = a.post("/api/definitions", defs);
    assert_err(&r, 400, "bad_request");
    let reason = r.json["reason"].as_str().unwrap();
    assert!(reason.contains("binding of 'gx' to queue 'good'"), "{reason}");
    assert!(reason.contains("routing_key should be less than 255 bytes"), "{reason}");
    assert_eq!(a.get("/api/queues/%2F/good").status, 404, "nothing applied");
    assert_eq!(a.get("/api/exchanges/%2F/gx").status, 404, "nothing applied");
    let key = format!("{}é", long('a', 254));
    let defs = json!({"queues": [{"name": "good", "vhost": "/", "durable": true, "auto_delete": false,
                                  "arguments": {key: 1}}]});
    let r = a.post("/api/definitions", defs);
    assert_400(&r, "queue 'good': argument name should be less than 255 bytes");
    assert_alive(&b);
}

/// Over AMQP a dead-letter routing key is a long string argument: one over 255
/// bytes would give dead-lettered messages a routing key no frame can carry.
#[test]
fn a_dead_letter_routing_key_amqp_cannot_carry_is_refused_at_declare() {
    let b = Broker::new();
    run(async {
        let (_c, ch) = open(&b).await;
        ch.queue_declare("dlq".into(), QueueDeclareOptions::default(), FieldTable::default())
            .await
            .unwrap();
        ch.queue_bind(
            "dlq".into(),
            "amq.topic".into(),
            "#".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
        let mut args = FieldTable::default();
        args.insert(
            "x-dead-letter-exchange".into(),
            AMQPValue::LongString("amq.topic".into()),
        );
        args.insert(
            "x-dead-letter-routing-key".into(),
            AMQPValue::LongString(long('k', 300).into()),
        );
        let r = ch
            .queue_declare("src".into(), QueueDeclareOptions::default(), args)
            .await;
        assert_amqp_err(r, 406, "PRECONDITION_FAILED");
        // Had it been accepted: publish, reject into amq.topic, get from dlq.
        let ch = channel(&_c).await;
        let r = ch
            .basic_publish(
                "".into(),
                "src".into(),
                BasicPublishOptions::default(),
                b"m",
                BasicProperties::default(),
            )
            .await;
        assert!(r.is_ok());
        if let Ok(Some(m)) = ch.basic_get("src".into(), BasicGetOptions::default()).await {
            m.reject(BasicRejectOptions { requeue: false }).await.unwrap();
        }
        let _ = ch.basic_get("dlq".into(), BasicGetOptions { no_ack: true }).await;
    });
    assert_alive(&b);
}
