//! Federation between real brokers: two ringmq binaries, upstreams and
//! policies configured through the API as RabbitMQ users do. Exchange
//! federation both ways in a ring of two with max-hops 1 (each message
//! once), bindings followed as they are added and removed, an upstream
//! killed and restarted mid-stream (on-confirm: nothing lost), wrong
//! credentials shown as the link's error, and queue federation fetching only
//! while the downstream queue has a consumer.

mod common;

use std::time::{Duration, Instant};

use common::http::{enc, Api};
use common::links::{client, count, declare, drain, publish};
use common::*;
use ringmq_client::{Consumer, Event, ExchangeOptions};
use ringmq_codec::{BasicProperties, FieldTable, FieldValue};
use serde_json::{json, Value};

fn api(b: &Broker) -> Api {
    Api::new(b.http_url(), b.user(), b.pass())
}

/// Polls `check` until it is true, for at most `within`.
fn wait_until(what: &str, within: Duration, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !check() {
        assert!(Instant::now() < deadline, "timed out after {within:?}: {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A broker with its own cluster name (the links' names and loop checks use it).
fn broker(cluster: &str) -> Broker {
    broker_with(cluster, &[])
}

fn broker_with(cluster: &str, args: &[&str]) -> Broker {
    let b = Broker::with_args(args);
    assert!(!b.is_external(), "federation tests start their own brokers");
    let r = api(&b).put("/api/cluster-name", json!({ "name": cluster }));
    assert_eq!(r.status, 204, "{}", r.text);
    b
}

fn put_upstream(b: &Broker, name: &str, value: Value) {
    let r = api(b).put(
        &format!("/api/parameters/federation-upstream/%2F/{}", enc(name)),
        json!({ "value": value }),
    );
    assert!(
        r.status == 201 || r.status == 204,
        "PUT upstream {name}: {} {}",
        r.status,
        r.text
    );
}

fn put_policy(b: &Broker, name: &str, pattern: &str, apply_to: &str, definition: Value) {
    let r = api(b).put(
        &format!("/api/policies/%2F/{name}"),
        json!({"pattern": pattern, "apply-to": apply_to, "definition": definition}),
    );
    assert!(
        r.status == 201 || r.status == 204,
        "PUT policy {name}: {} {}",
        r.status,
        r.text
    );
}

fn link(b: &Broker, name: &str) -> Option<Value> {
    let all = api(b).ok("/api/federation-links/%2F");
    let list = all.as_array().expect("a list");
    list.iter()
        .find(|l| l["exchange"] == name || l["queue"] == name)
        .cloned()
}

fn wait_status(b: &Broker, name: &str, status: &str) -> Value {
    let mut last = None;
    wait_until(&format!("link of {name} {status}"), WAIT, || {
        last = link(b, name);
        last.as_ref().is_some_and(|l| l["status"] == status)
    });
    last.expect("seen")
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

fn unbind(uri: &str, queue: &str, exchange: &str, key: &str) {
    run(async {
        let mut c = client(uri).await;
        let ch = c.open_channel().await.unwrap();
        c.queue_unbind(ch, queue, exchange, key).await.unwrap();
        c.close().await.unwrap();
    });
}

/// The headers of the first message of `queue` (left there).
fn first_headers(uri: &str, queue: &str) -> FieldTable {
    let mut out = FieldTable::new();
    run(async {
        let mut c = client(uri).await;
        let ch = c.open_channel().await.unwrap();
        c.keep_content();
        c.consume(ch, queue, false, &[]).await.unwrap();
        loop {
            if let Event::Delivery { .. } = within("a delivery", c.next()).await.unwrap() {
                let content = c.take_content().unwrap();
                let p = BasicProperties::decode(&content.properties_raw).unwrap();
                out = p.headers.map(|h| h.to_owned_table()).unwrap_or_default();
                break;
            }
        }
        c.close().await.unwrap();
    });
    out
}

fn text<'a>(t: &'a FieldTable, k: &str) -> Option<&'a str> {
    t.get(k).and_then(FieldValue::as_str)
}

fn bindings_from(b: &Broker, exchange: &str) -> Vec<Value> {
    let all = api(b).ok(&format!("/api/exchanges/%2F/{}/bindings/source", enc(exchange)));
    all.as_array().expect("a list").clone()
}

/// a and b federate `fed.x` from each other (max-hops 1): what is published
/// on one reaches the other's queue once and comes no further, marked with
/// where it came from; the upstream side is RabbitMQ's layout.
#[test]
fn exchange_federation_both_ways_in_a_ring_of_two() {
    let (a, b) = (broker("ring-a"), broker("ring-b"));
    for (here, there, up) in [(&a, &b, "to-b"), (&b, &a, "to-a")] {
        declare_exchange(here.uri(), "fed.x", "topic");
        declare(here.uri(), "q", Some(("fed.x", "#")));
        put_upstream(here, up, json!({"uri": there.uri(), "max-hops": 1}));
        put_policy(here, "fed", "^fed\\.", "exchanges", json!({"federation-upstream": up}));
    }
    let la = wait_status(&a, "fed.x", "running");
    wait_status(&b, "fed.x", "running");
    assert_eq!(
        (
            la["type"].as_str(),
            la["upstream"].as_str(),
            la["upstream_exchange"].as_str()
        ),
        (Some("exchange"), Some("to-b"), Some("fed.x"))
    );
    assert_eq!(la["vhost"], "/");
    assert!(la["id"].as_str().is_some_and(|i| i.len() == 8), "{la}");
    assert!(
        la["local_connection"].as_str().is_some_and(|c| c.contains("to-b")),
        "{la}"
    );
    let uri = la["uri"].as_str().unwrap();
    assert!(uri.starts_with("amqp://127.0.0.1:") && !uri.contains("guest"), "{uri}");
    // RabbitMQ's names on the upstream: a's link made them on b.
    let q = api(&b).ok(&format!("/api/queues/%2F/{}", enc("federation: fed.x -> ring-a")));
    assert_eq!(q["durable"], true, "{q}");
    let x = api(&b).ok(&format!("/api/exchanges/%2F/{}", enc("federation: fed.x -> ring-a A")));
    assert_eq!(
        (x["type"].as_str(), x["internal"].as_bool()),
        (Some("x-federation-upstream"), Some(true))
    );
    assert_eq!(x["arguments"]["x-max-hops"], 1, "{x}");
    // Both bindings are up before publishing (the links bind at start).
    wait_until("each upstream bound", WAIT, || {
        bindings_from(&a, "fed.x").len() == 2 && bindings_from(&b, "fed.x").len() == 2
    });
    publish(a.uri(), "fed.x", "from.a", "a", 50);
    publish(b.uri(), "fed.x", "from.b", "b", 50);
    wait_until("100 on each side", WAIT, || {
        count(a.uri(), "q") == 100 && count(b.uri(), "q") == 100
    });
    let started = Instant::now();
    std::thread::sleep(QUIET * 3);
    let (na, nb) = (count(a.uri(), "q"), count(b.uri(), "q"));
    println!("after {:?} more: a has {na}, b has {nb}", started.elapsed());
    assert_eq!((na, nb), (100, 100), "no message went round again");
    let got_b = drain(b.uri(), "q");
    let mut want: Vec<String> = (0..50).map(|i| format!("b{i}")).collect();
    want.extend((0..50).map(|i| format!("a{i}")));
    let mut sorted = got_b.clone();
    sorted.sort();
    want.sort();
    assert_eq!(sorted, want, "each message once");
    publish(a.uri(), "fed.x", "late", "late", 1);
    wait_until("the late one on b", WAIT, || count(b.uri(), "q") == 1);
    let h = first_headers(b.uri(), "q");
    let Some(FieldValue::Array(hops)) = h.get("x-received-from") else {
        panic!("no x-received-from: {h:?}")
    };
    assert_eq!(hops.len(), 1);
    let FieldValue::Table(hop) = &hops[0] else {
        panic!("{hops:?}")
    };
    assert_eq!(text(hop, "exchange"), Some("fed.x"));
    assert_eq!(text(hop, "cluster-name"), Some("ring-a"));
    assert_eq!(hop.get("redelivered"), Some(&FieldValue::Bool(false)));
    let u = text(hop, "uri").unwrap();
    assert!(u.starts_with("amqp://127.0.0.1:") && !u.contains("guest"), "{u}");
}

/// A binding made downstream after the link is up is made upstream (the
/// upstream then sends what matches it); an unbind is followed too.
#[test]
fn bindings_follow_the_downstream_exchange() {
    let (a, b) = (broker("bind-a"), broker("bind-b"));
    declare_exchange(b.uri(), "fed.d", "direct");
    put_upstream(&b, "up", json!({"uri": a.uri()}));
    put_policy(&b, "fed", "^fed\\.", "exchanges", json!({"federation-upstream": "up"}));
    wait_status(&b, "fed.d", "running");
    // The upstream exchange was declared like ours, with no binding to the helper yet.
    assert_eq!(api(&a).ok("/api/exchanges/%2F/fed.d")["type"], "direct");
    assert!(bindings_from(&a, "fed.d").is_empty());
    declare(b.uri(), "qd", Some(("fed.d", "k1")));
    let helper = "federation: fed.d -> bind-b A";
    wait_until("k1 bound upstream", WAIT, || {
        bindings_from(&a, "fed.d")
            .iter()
            .any(|x| x["destination"] == helper && x["routing_key"] == "k1")
    });
    let bound = bindings_from(&a, "fed.d");
    let from = &bound[0]["arguments"]["x-bound-from"][0];
    assert_eq!(
        (from["cluster-name"].as_str(), from["hops"].as_i64()),
        (Some("bind-b"), Some(1)),
        "{bound:?}"
    );
    publish(a.uri(), "fed.d", "k1", "m", 10);
    publish(a.uri(), "fed.d", "k2", "no", 10);
    wait_until("10 federated", WAIT, || count(b.uri(), "qd") == 10);
    std::thread::sleep(QUIET);
    assert_eq!(count(b.uri(), "qd"), 10, "k2 is not bound anywhere");
    unbind(b.uri(), "qd", "fed.d", "k1");
    wait_until("k1 unbound upstream", WAIT, || bindings_from(&a, "fed.d").is_empty());
    publish(a.uri(), "fed.d", "k1", "after", 10);
    std::thread::sleep(QUIET);
    let q = "federation: fed.d -> bind-b";
    assert_eq!(count(a.uri(), q), 0, "the upstream queue gets nothing unbound");
    assert_eq!(count(b.uri(), "qd"), 10);
    // The policy gone, the link stops and removes what it made upstream
    // (RabbitMQ's resource-cleanup-mode default).
    assert_eq!(api(&b).delete("/api/policies/%2F/fed").status, 204);
    wait_until("the upstream queue deleted", WAIT, || {
        api(&a).get(&format!("/api/queues/%2F/{}", enc(q))).status == 404
    });
    assert_eq!(api(&a).get(&format!("/api/exchanges/%2F/{}", enc(helper))).status, 404);
    assert!(link(&b, "fed.d").is_none());
}

/// The upstream killed (kill -9) and restarted while messages flow: the link
/// shows the error, starts again, and with on-confirm every message arrives.
#[test]
fn upstream_killed_mid_stream_loses_nothing_on_confirm() {
    let (mut a, b) = (broker("kill-a"), broker("kill-b"));
    const N: usize = 20_000;
    declare_exchange(b.uri(), "fed.k", "fanout");
    declare(b.uri(), "qk", Some(("fed.k", "")));
    put_upstream(
        &b,
        "up",
        json!({"uri": a.uri(), "prefetch-count": 20, "reconnect-delay": 1, "ack-mode": "on-confirm"}),
    );
    put_policy(&b, "fed", "^fed\\.", "exchanges", json!({"federation-upstream": "up"}));
    wait_status(&b, "fed.k", "running");
    wait_until("bound upstream", WAIT, || bindings_from(&a, "fed.k").len() == 1);
    // Held back while published: the downstream stopped, the upstream queue fills.
    b.signal(libc::SIGSTOP);
    publish(a.uri(), "fed.k", "", "m", N);
    b.signal(libc::SIGCONT);
    wait_until("some arrived", WAIT, || count(b.uri(), "qk") > 0);
    a.kill9();
    let at_kill = count(b.uri(), "qk");
    println!("{at_kill} of {N} had arrived when the upstream was killed");
    assert!(
        (at_kill as usize) < N,
        "killed mid-stream (all {N} had arrived already)"
    );
    let l = wait_status(&b, "fed.k", "error");
    assert!(l["error"].as_str().is_some_and(|e| e.contains("upstream")), "{l}");
    a.start();
    wait_status(&b, "fed.k", "running");
    let q = "federation: fed.k -> kill-b";
    wait_until("the upstream queue drained", Duration::from_secs(60), || {
        count(a.uri(), q) == 0
    });
    let got = drain(b.uri(), "qk");
    let mut unique = got.clone();
    unique.sort();
    unique.dedup();
    println!("{} delivered, {} distinct", got.len(), unique.len());
    assert_eq!(unique.len(), N, "every message arrived at least once");
}

#[test]
fn wrong_credentials_show_the_error() {
    let (a, b) = (broker("cred-a"), broker("cred-b"));
    declare_exchange(b.uri(), "fed.c", "fanout");
    let bad = format!("amqp://guest:wrong@127.0.0.1:{}/%2F", a.port());
    put_upstream(&b, "bad", json!({"uri": bad, "reconnect-delay": 1}));
    put_policy(&b, "fed", "^fed\\.", "exchanges", json!({"federation-upstream": "bad"}));
    let l = wait_status(&b, "fed.c", "error");
    let e = l["error"].as_str().unwrap();
    assert!(e.contains("ACCESS_REFUSED"), "{e}");
    assert!(
        !e.contains("wrong") && !l["uri"].as_str().unwrap().contains("wrong"),
        "no password shown: {l}"
    );
    let down = api(&b).ok("/api/federation-links/state/down");
    assert_eq!(down.as_array().map(Vec::len), Some(1), "{down}");
    // ringmqctl shows it as rabbitmqctl federation_status does.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ringmqctl"))
        .args(["--uri", b.http_url(), "-u", b.user(), "--password", b.pass()])
        .args(["federation_status", "--json"])
        .output()
        .expect("run ringmqctl");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let listed: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(listed[0]["exchange"], "fed.c", "{listed}");
    // Restarted on request (the API's id), and failing again.
    let id = l["id"].as_str().unwrap();
    let r = api(&b).delete(&format!("/api/federation-links/vhost/%2F/{id}/n/restart"));
    assert_eq!(r.status, 204, "{}", r.text);
    wait_status(&b, "fed.c", "error");
}

/// A federated queue fetches from its upstream queue only while it has a
/// consumer of its own and nothing ready: none with no consumer, all of it
/// while one consumes, none again once it went.
#[test]
fn queue_federation_fetches_for_local_consumers_only() {
    let (a, b) = (broker("qf-a"), broker("qf-b"));
    declare(a.uri(), "work", None);
    declare(b.uri(), "work", None);
    publish(a.uri(), "", "work", "w", 20);
    put_upstream(&b, "up", json!({"uri": a.uri(), "prefetch-count": 5}));
    put_policy(&b, "fedq", "^work$", "queues", json!({"federation-upstream": "up"}));
    let l = wait_status(&b, "work", "running");
    assert_eq!(
        (l["type"].as_str(), l["upstream_queue"].as_str()),
        (Some("queue"), Some("work"))
    );
    std::thread::sleep(QUIET * 2);
    assert_eq!(count(a.uri(), "work"), 20, "nothing fetched without a consumer");
    assert_eq!(link(&b, "work").unwrap()["consuming"], false);
    // A consumer on b: it gets all 20, fetched as it takes them.
    let mut got = Vec::new();
    run(async {
        let mut c = client(b.uri()).await;
        let ch = c.open_channel().await.unwrap();
        c.keep_content();
        let mut consumer = Consumer::start(&mut c, ch, "work", 3, false, &[]).await.unwrap();
        while got.len() < 20 {
            if let Event::Delivery { delivery_tag, .. } = within("a federated delivery", c.next()).await.unwrap() {
                consumer.handle_delivery(delivery_tag).unwrap();
                got.push(String::from_utf8(c.take_content().unwrap().body).unwrap());
                consumer.push_ack(&mut c, delivery_tag, false);
                c.flush().await.unwrap();
            }
        }
        c.close().await.unwrap();
    });
    assert_eq!(got, (0..20).map(|i| format!("w{i}")).collect::<Vec<_>>());
    assert_eq!(count(a.uri(), "work"), 0);
    // The consumer gone, the link stops consuming: new messages stay upstream.
    wait_until("paused", WAIT, || link(&b, "work").unwrap()["consuming"] == false);
    publish(a.uri(), "", "work", "later", 10);
    std::thread::sleep(QUIET * 2);
    assert_eq!((count(a.uri(), "work"), count(b.uri(), "work")), (10, 0));
}

/// Links come back after the downstream restarts (policies and upstreams are
/// durable), with two shards: the queue link asks the queue's owner shard
/// whether it has consumers.
#[test]
fn links_come_back_after_a_restart_with_two_shards() {
    let a = broker("restart-a");
    let mut b = broker_with("restart-b", &["--shards", "2"]);
    declare_exchange(b.uri(), "fed.r", "fanout");
    for q in ["qr", "work0", "work1", "work2", "work3"] {
        declare(b.uri(), q, if q == "qr" { Some(("fed.r", "")) } else { None });
        declare(a.uri(), q, None);
    }
    put_upstream(&b, "up", json!({"uri": a.uri(), "reconnect-delay": 1}));
    put_policy(&b, "fedx", "^fed\\.", "exchanges", json!({"federation-upstream": "up"}));
    put_policy(&b, "fedq", "^work", "queues", json!({"federation-upstream-set": "all"}));
    wait_status(&b, "fed.r", "running");
    b.restart();
    wait_status(&b, "fed.r", "running");
    wait_until("bound upstream again", WAIT, || bindings_from(&a, "fed.r").len() == 1);
    publish(a.uri(), "fed.r", "", "after", 10);
    wait_until("10 after the restart", WAIT, || count(b.uri(), "qr") == 10);
    // Four queues: with two shards some are owned by the other one.
    for q in ["work0", "work1", "work2", "work3"] {
        wait_status(&b, q, "running");
        publish(a.uri(), "", q, q, 5);
        let mut got = Vec::new();
        run(async {
            let mut c = client(b.uri()).await;
            let ch = c.open_channel().await.unwrap();
            c.keep_content();
            let mut consumer = Consumer::start(&mut c, ch, q, 2, false, &[]).await.unwrap();
            while got.len() < 5 {
                if let Event::Delivery { delivery_tag, .. } = within("a federated delivery", c.next()).await.unwrap() {
                    consumer.handle_delivery(delivery_tag).unwrap();
                    got.push(String::from_utf8(c.take_content().unwrap().body).unwrap());
                    consumer.push_ack(&mut c, delivery_tag, false);
                    c.flush().await.unwrap();
                }
            }
            c.close().await.unwrap();
        });
        assert_eq!(got, (0..5).map(|i| format!("{q}{i}")).collect::<Vec<_>>(), "{q}");
    }
}

/// Each ack mode moves every message once and leaves nothing unacknowledged
/// upstream; the upstream's `user_id` is dropped unless `trust-user-id`.
#[test]
fn each_ack_mode_moves_everything_once() {
    let (a, b) = (broker("modes-a"), broker("modes-b"));
    for mode in ["on-confirm", "on-publish", "no-ack"] {
        let x = format!("fed.{mode}");
        declare_exchange(b.uri(), &x, "fanout");
        declare(b.uri(), &format!("q-{mode}"), Some((&x, "")));
        put_upstream(&b, mode, json!({"uri": a.uri(), "ack-mode": mode, "prefetch-count": 7}));
        put_policy(
            &b,
            mode,
            &format!("^fed\\.{mode}$"),
            "exchanges",
            json!({"federation-upstream": mode}),
        );
    }
    for mode in ["on-confirm", "on-publish", "no-ack"] {
        let x = format!("fed.{mode}");
        wait_status(&b, &x, "running");
        wait_until("bound upstream", WAIT, || bindings_from(&a, &x).len() == 1);
        publish(a.uri(), &x, "", mode, 100);
    }
    for mode in ["on-confirm", "on-publish", "no-ack"] {
        let q = format!("q-{mode}");
        wait_until(&format!("{mode}: 100 arrived"), WAIT, || count(b.uri(), &q) == 100);
        let up_q = format!("federation: fed.{mode} -> modes-b");
        wait_until(&format!("{mode}: nothing left upstream"), WAIT, || {
            api(&a).ok(&format!("/api/queues/%2F/{}", enc(&up_q)))["messages"] == 0
        });
        let mut got = drain(b.uri(), &q);
        got.sort();
        let mut want: Vec<String> = (0..100).map(|i| format!("{mode}{i}")).collect();
        want.sort();
        assert_eq!(got, want, "{mode}: each once");
    }
    // user_id: dropped (the local broker would refuse another user's), kept
    // with trust-user-id.
    declare_exchange(b.uri(), "fed.trusted", "fanout");
    declare(b.uri(), "q-trusted", Some(("fed.trusted", "")));
    put_upstream(&b, "trusted", json!({"uri": a.uri(), "trust-user-id": true}));
    put_policy(
        &b,
        "trusted",
        "^fed\\.trusted$",
        "exchanges",
        json!({"federation-upstream": "trusted"}),
    );
    wait_status(&b, "fed.trusted", "running");
    for x in ["fed.on-confirm", "fed.trusted"] {
        wait_until("bound upstream", WAIT, || bindings_from(&a, x).len() == 1);
        run(async {
            let mut c = client(a.uri()).await;
            let ch = c.open_channel().await.unwrap();
            c.confirm_select(ch).await.unwrap();
            let mut props = Vec::new();
            BasicProperties {
                user_id: Some(ringmq_codec::ShortStr::truncate("guest")),
                ..Default::default()
            }
            .encode(&mut props);
            c.push_publish_raw(ch, x, "", &props, b"who").unwrap();
            c.flush().await.unwrap();
            while !matches!(within("a confirm", c.next()).await.unwrap(), Event::Ack { .. }) {}
            c.close().await.unwrap();
        });
    }
    for (q, user) in [("q-on-confirm", None), ("q-trusted", Some("guest"))] {
        wait_until(&format!("{q}: the message"), WAIT, || count(b.uri(), q) == 1);
        let mut seen = None;
        run(async {
            let mut c = client(b.uri()).await;
            let ch = c.open_channel().await.unwrap();
            c.keep_content();
            c.consume(ch, q, true, &[]).await.unwrap();
            loop {
                if let Event::Delivery { .. } = within("a delivery", c.next()).await.unwrap() {
                    let raw = c.take_content().unwrap().properties_raw;
                    seen = BasicProperties::decode(&raw)
                        .unwrap()
                        .user_id
                        .map(|u| u.as_str().to_owned());
                    break;
                }
            }
            c.close().await.unwrap();
        });
        assert_eq!(seen.as_deref(), user, "{q}");
    }
}

/// The upstream queue deleted under the link (an operator on the upstream):
/// the consumer is cancelled, the link says so, starts again and makes it anew.
#[test]
fn a_deleted_upstream_queue_restarts_the_link() {
    let (a, b) = (broker("del-a"), broker("del-b"));
    declare_exchange(b.uri(), "fed.del", "fanout");
    declare(b.uri(), "qdel", Some(("fed.del", "")));
    put_upstream(&b, "up", json!({"uri": a.uri(), "reconnect-delay": 1}));
    put_policy(&b, "fed", "^fed\\.", "exchanges", json!({"federation-upstream": "up"}));
    wait_status(&b, "fed.del", "running");
    let up_q = "federation: fed.del -> del-b";
    assert_eq!(api(&a).delete(&format!("/api/queues/%2F/{}", enc(up_q))).status, 204);
    let l = wait_status(&b, "fed.del", "error");
    assert!(l["error"].as_str().is_some_and(|e| e.contains("cancelled")), "{l}");
    wait_status(&b, "fed.del", "running");
    wait_until("bound upstream again", WAIT, || bindings_from(&a, "fed.del").len() == 1);
    publish(a.uri(), "fed.del", "", "again", 10);
    wait_until("10 after the restart", WAIT, || count(b.uri(), "qdel") == 10);
}

/// Restarting a link while messages are published upstream loses none of
/// them: the new helper exchange is bound before the old one goes (RabbitMQ's
/// A/B suffixes), so the upstream queue never misses one.
#[test]
fn link_restarts_lose_nothing_published_meanwhile() {
    let (a, b) = (broker("gap-a"), broker("gap-b"));
    declare_exchange(b.uri(), "fed.g", "fanout");
    declare(b.uri(), "qg", Some(("fed.g", "")));
    put_upstream(&b, "up", json!({"uri": a.uri(), "reconnect-delay": 0.1}));
    put_policy(&b, "fed", "^fed\\.", "exchanges", json!({"federation-upstream": "up"}));
    let id = wait_status(&b, "fed.g", "running")["id"].as_str().unwrap().to_owned();
    wait_until("bound upstream", WAIT, || bindings_from(&a, "fed.g").len() == 1);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let publisher = {
        let (uri, stop) = (a.uri().to_owned(), stop.clone());
        std::thread::spawn(move || {
            let mut n = 0usize;
            run(async {
                let mut c = client(&uri).await;
                let ch = c.open_channel().await.unwrap();
                c.confirm_select(ch).await.unwrap();
                let props = common::links::persistent();
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    c.push_publish_raw(ch, "fed.g", "", &props, format!("g{n}").as_bytes())
                        .unwrap();
                    c.flush().await.unwrap();
                    while !matches!(within("a confirm", c.next()).await.unwrap(), Event::Ack { .. }) {}
                    n += 1;
                }
                c.close().await.unwrap();
            });
            n
        })
    };
    for _ in 0..5 {
        let r = api(&b).delete(&format!("/api/federation-links/vhost/%2F/{id}/n/restart"));
        assert_eq!(r.status, 204, "{}", r.text);
        std::thread::sleep(Duration::from_millis(100));
        wait_status(&b, "fed.g", "running");
        std::thread::sleep(Duration::from_millis(200));
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let n = publisher.join().expect("the publisher");
    println!("{n} published (and confirmed) across 5 link restarts");
    let q = "federation: fed.g -> gap-b";
    wait_until("the upstream queue drained", WAIT, || {
        api(&a).ok(&format!("/api/queues/%2F/{}", enc(q)))["messages"] == 0
    });
    let mut got = drain(b.uri(), "qg");
    got.sort();
    got.dedup();
    assert_eq!(got.len(), n, "every confirmed message arrived");
}

/// An upstream over AMQPS with RabbitMQ's URI query parameters: the link
/// checks the upstream's certificate and presents its own.
#[test]
fn an_upstream_over_amqps_with_certificates_both_ways() {
    use common::tls::{amqps_addr, pki, KeyKind};
    let ca = pki(KeyKind::EcdsaP256);
    let (client_cert, client_key) = ca.issue_files("federation", "fed-client", &["fed-client"]);
    let (cert, key, ca_file) = (
        ca.cert_path.to_str().unwrap(),
        ca.key_path.to_str().unwrap(),
        ca.ca_path.to_str().unwrap(),
    );
    let a = broker_with(
        "tls-a",
        &[
            "--amqps-port",
            "0",
            "--cert",
            cert,
            "--key",
            key,
            "--tls-verify-peer",
            "--ca-cert",
            ca_file,
        ],
    );
    let b = broker("tls-b");
    let port = amqps_addr(&a).port();
    let uri = format!(
        "amqps://guest:guest@localhost:{port}/%2F?cacertfile={ca_file}&certfile={}&keyfile={}&verify=verify_peer",
        client_cert.display(),
        client_key.display()
    );
    declare_exchange(b.uri(), "fed.tls", "fanout");
    declare(b.uri(), "qt", Some(("fed.tls", "")));
    put_upstream(&b, "sealed", json!({"uri": uri, "reconnect-delay": 1}));
    put_policy(
        &b,
        "fed",
        "^fed\\.",
        "exchanges",
        json!({"federation-upstream": "sealed"}),
    );
    let l = wait_status(&b, "fed.tls", "running");
    assert!(!l.to_string().contains("guest:guest"), "no credentials: {l}");
    wait_until("bound upstream", WAIT, || bindings_from(&a, "fed.tls").len() == 1);
    publish(a.uri(), "fed.tls", "", "t", 50);
    wait_until("50 over TLS", WAIT, || count(b.uri(), "qt") == 50);
    let conns = api(&a).ok("/api/connections");
    let link_conn = (conns.as_array().unwrap().iter())
        .find(|c| c["ssl"] == true)
        .unwrap_or_else(|| panic!("a TLS connection: {conns}"));
    let subject = link_conn["peer_cert_subject"].as_str().unwrap_or_default();
    assert!(subject.contains("fed-client"), "{link_conn}");
}
