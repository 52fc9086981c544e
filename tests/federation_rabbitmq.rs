//! Federation interoperating with a real RabbitMQ 3.10 (the peer with the
//! `rabbitmq_federation` and `rabbitmq_federation_management` plugins,
//! `.ci/rabbitmq_peer.sh`): ringmq federating an exchange from RabbitMQ, and
//! RabbitMQ (configured through its HTTP API) federating one from ringmq,
//! whose link declares RabbitMQ's `x-federation-upstream` helper here. The
//! peer is found at `RINGMQ_SHOVEL_PEER` (AMQP URI, default
//! `amqp://guest:guest@127.0.0.1:5694/`) and `RINGMQ_SHOVEL_PEER_HTTP`
//! (default `http://127.0.0.1:15694`); without it each test says so and
//! passes (`.ci/run` starts the peer for them).

mod common;

use std::time::{Duration, Instant};

use common::http::{enc, Api};
use common::links::{client, count, declare, drain, publish};
use common::peer::Peer;
use common::*;
use ringmq_client::{Event, ExchangeOptions};
use ringmq_codec::{BasicProperties, FieldValue};
use serde_json::{json, Value};

/// The peer with the federation plugins; its AMQP URI names the vhost `/`
/// as `%2F` (our client reads an empty path as "/", RabbitMQ as "").
fn peer(test: &str) -> Option<Peer> {
    let mut p = common::peer::rabbitmq(test, "/api/federation-links")?;
    p.amqp = format!("{}/%2F", p.amqp.trim_end_matches('/'));
    Some(p)
}

fn wait_until(what: &str, within: Duration, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !check() {
        assert!(Instant::now() < deadline, "timed out after {within:?}: {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn put(api: &Api, path: &str, body: Value) {
    let r = api.put(path, body);
    assert!(
        r.status == 201 || r.status == 204,
        "PUT {path}: {} {}",
        r.status,
        r.text
    );
}

fn links(api: &Api) -> Vec<Value> {
    api.ok("/api/federation-links/%2F").as_array().expect("a list").clone()
}

fn wait_running(api: &Api, exchange: &str) -> Value {
    let mut last = Vec::new();
    let mut found = None;
    wait_until(
        &format!("the link of {exchange} running"),
        Duration::from_secs(30),
        || {
            last = links(api);
            found = last
                .iter()
                .find(|l| l["exchange"] == exchange && l["status"] == "running")
                .cloned();
            found.is_some()
        },
    );
    found.expect("seen")
}

fn declare_exchange(uri: &str, name: &str, kind: &str) {
    run(async {
        let mut c = client(uri).await;
        let ch = c.open_channel().await.unwrap();
        let o = ExchangeOptions {
            durable: true,
            ..ExchangeOptions::default()
        };
        c.exchange_declare_with(ch, name, kind, o).await.unwrap();
        c.close().await.unwrap();
    });
}

/// `x-received-from`'s first entry of the first message of `queue` (left there).
fn first_hop(uri: &str, queue: &str) -> ringmq_codec::FieldTable {
    let mut out = None;
    run(async {
        let mut c = client(uri).await;
        let ch = c.open_channel().await.unwrap();
        c.keep_content();
        c.consume(ch, queue, false, &[]).await.unwrap();
        loop {
            if let Event::Delivery { .. } = within("a delivery", c.next()).await.unwrap() {
                let p = c.take_content().unwrap().properties_raw;
                let h = BasicProperties::decode(&p).unwrap().headers.unwrap().to_owned_table();
                if let Some(FieldValue::Array(a)) = h.get("x-received-from") {
                    if let Some(FieldValue::Table(t)) = a.first() {
                        out = Some(t.clone());
                    }
                }
                break;
            }
        }
        c.close().await.unwrap();
    });
    out.expect("an x-received-from entry")
}

fn text(t: &ringmq_codec::FieldTable, k: &str) -> Option<String> {
    t.get(k).and_then(FieldValue::as_str).map(str::to_owned)
}

fn delete_on_peer(p: &Peer, paths: &[String]) {
    for path in paths {
        let _ = p.http.delete(path);
    }
}

#[test]
fn ringmq_federates_an_exchange_from_rabbitmq() {
    let Some(p) = peer("ringmq_federates_an_exchange_from_rabbitmq") else {
        return;
    };
    let b = Broker::new();
    let cluster = unique("ringmq-fed");
    put(
        &Api::new(b.http_url(), b.user(), b.pass()),
        "/api/cluster-name",
        json!({"name": cluster}),
    );
    let api = Api::new(b.http_url(), b.user(), b.pass());
    let x = unique("fedr.from-rabbit");
    let up_q = format!("federation: {x} -> {cluster}");
    let peer_cluster = p.http.ok("/api/overview")["cluster_name"].as_str().unwrap().to_owned();
    declare_exchange(b.uri(), &x, "topic");
    declare(b.uri(), "in", Some((&x, "a.#")));
    put(
        &api,
        "/api/parameters/federation-upstream/%2F/rabbit",
        json!({"value": {"uri": p.amqp, "expires": 600_000}}),
    );
    put(
        &api,
        "/api/policies/%2F/fed",
        json!({"pattern": "^fedr\\.", "apply-to": "exchanges", "definition": {"federation-upstream": "rabbit"}}),
    );
    let l = wait_running(&api, &x);
    assert_eq!(l["upstream"], "rabbit");
    assert!(!l["uri"].as_str().unwrap().contains("guest"), "{l}");
    // On RabbitMQ: its own layout, made by our link.
    let q = p.http.ok(&format!("/api/queues/%2F/{}", enc(&up_q)));
    assert_eq!(
        (q["durable"].as_bool(), q["arguments"]["x-expires"].as_i64()),
        (Some(true), Some(600_000)),
        "{q}"
    );
    let helper = p.http.ok(&format!("/api/exchanges/%2F/{}", enc(&format!("{up_q} A"))));
    assert_eq!(helper["type"], "x-federation-upstream", "{helper}");
    wait_until("a.# bound on RabbitMQ", Duration::from_secs(10), || {
        let bs = p.http.ok(&format!("/api/exchanges/%2F/{}/bindings/source", enc(&x)));
        bs.as_array()
            .is_some_and(|a| a.iter().any(|b| b["routing_key"] == "a.#"))
    });
    publish(&p.amqp, &x, "a.1", "r", 200);
    publish(&p.amqp, &x, "b.1", "no", 20);
    wait_until("200 from RabbitMQ", Duration::from_secs(20), || {
        count(b.uri(), "in") == 200
    });
    std::thread::sleep(QUIET);
    assert_eq!(count(b.uri(), "in"), 200, "only what our bindings match");
    let hop = first_hop(b.uri(), "in");
    assert_eq!(text(&hop, "cluster-name"), Some(peer_cluster), "{hop:?}");
    assert_eq!(text(&hop, "exchange").as_deref(), Some(x.as_str()));
    assert_eq!(
        drain(b.uri(), "in"),
        (0..200).map(|i| format!("r{i}")).collect::<Vec<_>>()
    );
    // The policy gone, the link goes.
    assert_eq!(api.delete("/api/policies/%2F/fed").status, 204);
    wait_until("no link", Duration::from_secs(10), || links(&api).is_empty());
    delete_on_peer(
        &p,
        &[
            format!("/api/queues/%2F/{}", enc(&up_q)),
            format!("/api/exchanges/%2F/{}", enc(&format!("{up_q} A"))),
            format!("/api/exchanges/%2F/{}", enc(&x)),
        ],
    );
}

#[test]
fn rabbitmq_federates_an_exchange_from_ringmq() {
    let Some(p) = peer("rabbitmq_federates_an_exchange_from_ringmq") else {
        return;
    };
    let b = Broker::new();
    let api = Api::new(b.http_url(), b.user(), b.pass());
    let x = unique("fedr.from-ringmq");
    let up = unique("ringmq");
    let policy = unique("fed-from-ringmq");
    let peer_cluster = p.http.ok("/api/overview")["cluster_name"].as_str().unwrap().to_owned();
    declare_exchange(&p.amqp, &x, "direct");
    let q = unique("fed-in");
    declare(&p.amqp, &q, Some((&x, "k")));
    put(
        &p.http,
        &format!("/api/parameters/federation-upstream/%2F/{}", enc(&up)),
        json!({"value": {"uri": b.uri(), "max-hops": 1}}),
    );
    put(
        &p.http,
        &format!("/api/policies/%2F/{}", enc(&policy)),
        json!({"pattern": format!("^{}$", regex_escape(&x)), "apply-to": "exchanges",
               "definition": {"federation-upstream": up}}),
    );
    let l = wait_running(&p.http, &x);
    println!("RabbitMQ's link: {l}");
    // RabbitMQ's link made its layout here: the exchange like its own, the
    // queue, the x-federation-upstream helper, the binding with k.
    assert_eq!(api.ok(&format!("/api/exchanges/%2F/{}", enc(&x)))["type"], "direct");
    let up_q = format!("federation: {x} -> {peer_cluster}");
    // RabbitMQ alternates the suffix (A, B) across its link's starts.
    let all = api.ok("/api/exchanges/%2F");
    let helper = all
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"].as_str().is_some_and(|n| n.starts_with(&format!("{up_q} "))))
        .cloned()
        .unwrap_or_else(|| panic!("no helper exchange {up_q} A/B here: {all}"));
    assert_eq!(
        (helper["type"].as_str(), helper["internal"].as_bool()),
        (Some("x-federation-upstream"), Some(true)),
        "{helper}"
    );
    wait_until("k bound here", Duration::from_secs(10), || {
        let bs = api.ok(&format!("/api/exchanges/%2F/{}/bindings/source", enc(&x)));
        bs.as_array().is_some_and(|a| a.iter().any(|b| b["routing_key"] == "k"))
    });
    publish(b.uri(), &x, "k", "m", 200);
    publish(b.uri(), &x, "other", "no", 20);
    wait_until("200 on RabbitMQ", Duration::from_secs(20), || count(&p.amqp, &q) == 200);
    std::thread::sleep(QUIET);
    assert_eq!(count(&p.amqp, &q), 200);
    assert_eq!(
        drain(&p.amqp, &q),
        (0..200).map(|i| format!("m{i}")).collect::<Vec<_>>()
    );
    delete_on_peer(
        &p,
        &[
            format!("/api/policies/%2F/{}", enc(&policy)),
            format!("/api/parameters/federation-upstream/%2F/{}", enc(&up)),
            format!("/api/queues/%2F/{}", enc(&q)),
            format!("/api/exchanges/%2F/{}", enc(&x)),
        ],
    );
}

fn regex_escape(s: &str) -> String {
    s.chars()
        .flat_map(|c| match c {
            '.' | '-' | '+' | '*' | '?' | '(' | ')' | '[' | ']' | '{' | '}' | '^' | '$' | '|' | '\\' => {
                vec!['\\', c]
            }
            c => vec![c],
        })
        .collect()
}

/// Takes `n` messages from `queue` with a consumer (prefetch 3, acked one by one).
fn consume_n(uri: &str, queue: &str, n: usize) -> Vec<String> {
    let mut got = Vec::new();
    run(async {
        let mut c = client(uri).await;
        let ch = c.open_channel().await.unwrap();
        c.keep_content();
        let mut consumer = ringmq_client::Consumer::start(&mut c, ch, queue, 3, false, &[])
            .await
            .unwrap();
        while got.len() < n {
            let ev = tokio::time::timeout(Duration::from_secs(30), c.next()).await;
            if let Event::Delivery { delivery_tag, .. } = ev.expect("a federated delivery within 30 s").unwrap() {
                consumer.handle_delivery(delivery_tag).unwrap();
                got.push(String::from_utf8(c.take_content().unwrap().body).unwrap());
                consumer.push_ack(&mut c, delivery_tag, false);
                c.flush().await.unwrap();
            }
        }
        c.close().await.unwrap();
    });
    got
}

/// Queue federation both ways: a consumer on a federated queue (ringmq's,
/// then RabbitMQ's) gets what waited in the other broker's queue.
#[test]
fn queue_federation_both_ways_with_rabbitmq() {
    let Some(p) = peer("queue_federation_both_ways_with_rabbitmq") else {
        return;
    };
    let b = Broker::new();
    let api = Api::new(b.http_url(), b.user(), b.pass());
    let want = |prefix: &str| (0..20).map(|i| format!("{prefix}{i}")).collect::<Vec<_>>();
    // ringmq's queue fed from RabbitMQ's.
    let q1 = unique("fedq-from-rabbit");
    declare(&p.amqp, &q1, None);
    publish(&p.amqp, "", &q1, "r", 20);
    declare(b.uri(), &q1, None);
    put(
        &api,
        "/api/parameters/federation-upstream/%2F/rabbit",
        json!({"value": {"uri": p.amqp}}),
    );
    put(
        &api,
        "/api/policies/%2F/fedq",
        json!({"pattern": "^fedq-from-rabbit", "apply-to": "queues", "definition": {"federation-upstream": "rabbit"}}),
    );
    wait_until("ringmq's queue link running", Duration::from_secs(30), || {
        links(&api).iter().any(|l| l["queue"] == q1 && l["status"] == "running")
    });
    assert_eq!(consume_n(b.uri(), &q1, 20), want("r"));
    assert_eq!(count(&p.amqp, &q1), 0);
    // RabbitMQ's queue fed from ringmq's.
    let q2 = unique("fedq-from-ringmq");
    let (up, policy) = (unique("ringmq-q"), unique("fedq-from-ringmq"));
    declare(b.uri(), &q2, None);
    publish(b.uri(), "", &q2, "m", 20);
    declare(&p.amqp, &q2, None);
    put(
        &p.http,
        &format!("/api/parameters/federation-upstream/%2F/{}", enc(&up)),
        json!({"value": {"uri": b.uri()}}),
    );
    put(
        &p.http,
        &format!("/api/policies/%2F/{}", enc(&policy)),
        json!({"pattern": format!("^{}$", regex_escape(&q2)), "apply-to": "queues",
               "definition": {"federation-upstream": up}}),
    );
    wait_until("RabbitMQ's queue link running", Duration::from_secs(30), || {
        links(&p.http)
            .iter()
            .any(|l| l["queue"] == q2 && l["status"] == "running")
    });
    assert_eq!(consume_n(&p.amqp, &q2, 20), want("m"));
    assert_eq!(count(b.uri(), &q2), 0);
    delete_on_peer(
        &p,
        &[
            format!("/api/policies/%2F/{}", enc(&policy)),
            format!("/api/parameters/federation-upstream/%2F/{}", enc(&up)),
            format!("/api/queues/%2F/{}", enc(&q1)),
            format!("/api/queues/%2F/{}", enc(&q2)),
        ],
    );
}

/// ringmq and RabbitMQ federating one exchange from each other with max-hops
/// 1: each message once on each side (each one's loop check and binding
/// propagation read the other's headers and binding arguments).
#[test]
fn a_ring_of_ringmq_and_rabbitmq_passes_each_message_once() {
    let Some(p) = peer("a_ring_of_ringmq_and_rabbitmq_passes_each_message_once") else {
        return;
    };
    let b = Broker::new();
    let api = Api::new(b.http_url(), b.user(), b.pass());
    let cluster = unique("ring-ringmq");
    put(&api, "/api/cluster-name", json!({ "name": cluster }));
    let x = unique("fedr.ring");
    let (up, policy) = (unique("ring-ringmq"), unique("ring"));
    let (qr, qb) = (unique("ring-at-rabbit"), unique("ring-at-ringmq"));
    declare_exchange(&p.amqp, &x, "fanout");
    declare(&p.amqp, &qr, Some((&x, "")));
    declare_exchange(b.uri(), &x, "fanout");
    declare(b.uri(), &qb, Some((&x, "")));
    put(
        &api,
        "/api/parameters/federation-upstream/%2F/rabbit",
        json!({"value": {"uri": p.amqp, "max-hops": 1}}),
    );
    put(
        &api,
        "/api/policies/%2F/fed",
        json!({"pattern": format!("^{}$", regex_escape(&x)), "apply-to": "exchanges",
               "definition": {"federation-upstream": "rabbit"}}),
    );
    put(
        &p.http,
        &format!("/api/parameters/federation-upstream/%2F/{}", enc(&up)),
        json!({"value": {"uri": b.uri(), "max-hops": 1}}),
    );
    put(
        &p.http,
        &format!("/api/policies/%2F/{}", enc(&policy)),
        json!({"pattern": format!("^{}$", regex_escape(&x)), "apply-to": "exchanges",
               "definition": {"federation-upstream": up}}),
    );
    wait_running(&api, &x);
    wait_running(&p.http, &x);
    // Each side's exchange bound to the other's link helper (the queue's binding and one E2E).
    let bound = |a: &Api| {
        a.ok(&format!("/api/exchanges/%2F/{}/bindings/source", enc(&x)))
            .as_array()
            .map_or(0, Vec::len)
    };
    wait_until("both helpers bound", Duration::from_secs(20), || {
        bound(&api) == 2 && bound(&p.http) == 2
    });
    publish(b.uri(), &x, "", "from-ringmq", 30);
    publish(&p.amqp, &x, "", "from-rabbit", 30);
    wait_until("60 on each side", Duration::from_secs(20), || {
        count(b.uri(), &qb) == 60 && count(&p.amqp, &qr) == 60
    });
    std::thread::sleep(QUIET * 3);
    assert_eq!(
        (count(b.uri(), &qb), count(&p.amqp, &qr)),
        (60, 60),
        "nothing went round again"
    );
    let mut at_ringmq = drain(b.uri(), &qb);
    at_ringmq.sort();
    let mut want: Vec<String> = (0..30).map(|i| format!("from-ringmq{i}")).collect();
    want.extend((0..30).map(|i| format!("from-rabbit{i}")));
    want.sort();
    assert_eq!(at_ringmq, want);
    delete_on_peer(
        &p,
        &[
            format!("/api/policies/%2F/{}", enc(&policy)),
            format!("/api/parameters/federation-upstream/%2F/{}", enc(&up)),
            format!("/api/queues/%2F/{}", enc(&qr)),
            format!("/api/exchanges/%2F/{}", enc(&x)),
            // What ringmq's link made there (the broker is gone before it could).
            format!("/api/queues/%2F/{}", enc(&format!("federation: {x} -> {cluster}"))),
            format!("/api/exchanges/%2F/{}", enc(&format!("federation: {x} -> {cluster} A"))),
            format!("/api/exchanges/%2F/{}", enc(&format!("federation: {x} -> {cluster} B"))),
        ],
    );
}
