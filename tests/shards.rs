//! `--shards 2` on both backends, through real sockets and lapin: queues on
//! both shards (by `ShardId::owner_of_queue`), clients on whichever shard the
//! kernel gave their connection (`SO_REUSEPORT`). Every test has queues on
//! both shards, so whatever shard a connection lands on, some of its
//! publishes, gets or declares cross to the other shard: without the rings
//! carrying `take_cross` batches, confirms, deliveries and replies never come
//! and the bounded waits fail.

mod common;

use std::collections::HashMap;

use common::*;
use futures_lite::StreamExt;
use ringmq::core::model::meta::ShardId;

const SHARDS: u16 = 2;

/// A queue name with `prefix` that shard `shard` owns.
fn owned_by(shard: u16, prefix: &str) -> String {
    (0..)
        .map(|i| format!("{prefix}-{i}"))
        .find(|n| ShardId::owner_of_queue("/", n, SHARDS) == ShardId(shard))
        .expect("some name")
}

fn start(io: &str) -> Broker {
    Broker::with_args(&["--shards", "2", "--io", io])
}

fn durable() -> QueueDeclareOptions {
    QueueDeclareOptions {
        durable: true,
        ..Default::default()
    }
}

fn passive() -> QueueDeclareOptions {
    QueueDeclareOptions {
        passive: true,
        ..Default::default()
    }
}

/// (a): publishers with confirms on several connections to queues of both
/// shards; consumers on other connections get every message once, in each
/// publisher's order.
fn publish_and_consume(io: &str) {
    let b = start(io);
    run(async {
        let queues = [owned_by(0, &unique("a0")), owned_by(1, &unique("a1"))];
        let (_setup, ch) = open(&b).await;
        for q in &queues {
            declare_queue(&ch, q, QueueDeclareOptions::default(), FieldTable::default()).await;
        }
        const PUBLISHERS: usize = 4;
        const EACH: usize = 300;
        // The consumers first, each on its own connection.
        let mut consumers = Vec::new();
        for q in &queues {
            let conn = connect(&b).await;
            let ch = channel(&conn).await;
            let c = consume_no_ack(&ch, q).await;
            consumers.push((conn, ch, c));
        }
        let mut publishers = Vec::new();
        for p in 0..PUBLISHERS {
            let queues = queues.clone();
            let conn = connect(&b).await;
            publishers.push(tokio::spawn(async move {
                let ch = confirm_channel(&conn).await;
                let mut pending = Vec::new();
                for i in 0..EACH {
                    for q in &queues {
                        let body = format!("{p}:{i}");
                        let c = within(
                            "publish",
                            ch.basic_publish(
                                "".into(),
                                q.as_str().into(),
                                BasicPublishOptions::default(),
                                body.as_bytes(),
                                BasicProperties::default(),
                            ),
                        )
                        .await
                        .expect("publish");
                        pending.push(c);
                    }
                }
                for (n, c) in pending.into_iter().enumerate() {
                    let c = within("confirm", c).await.expect("confirm");
                    assert!(
                        matches!(c, Confirmation::Ack(None)),
                        "publisher {p}, publish {n}: {c:?}"
                    );
                }
                conn
            }));
        }
        let mut conns = Vec::new();
        for p in publishers {
            conns.push(p.await.expect("publisher"));
        }
        for (qi, (_conn, _ch, c)) in consumers.iter_mut().enumerate() {
            let mut next_of: HashMap<usize, usize> = HashMap::new();
            for _ in 0..PUBLISHERS * EACH {
                let d = next(c).await;
                let body = String::from_utf8(d.data.clone()).expect("utf-8");
                let (p, i) = body.split_once(':').expect("p:i");
                let (p, i): (usize, usize) = (p.parse().unwrap(), i.parse().unwrap());
                let want = next_of.entry(p).or_insert(0);
                assert_eq!(i, *want, "queue {}: publisher {p} out of order", queues[qi]);
                *want += 1;
            }
            assert_quiet(c).await;
            assert!(next_of.values().all(|&n| n == EACH), "{next_of:?}");
        }
    });
}

#[test]
fn publish_and_consume_across_shards_epoll() {
    publish_and_consume("epoll");
}

#[test]
fn publish_and_consume_across_shards_uring() {
    publish_and_consume("uring");
}

/// (b): a declare and a bind made through one connection route a publish
/// through another right after the declare-ok and bind-ok, whichever shards
/// the two connections are on (several pairs, queues of both shards).
fn declare_then_publish_elsewhere(io: &str) {
    let b = start(io);
    run(async {
        for round in 0..6 {
            let shard = round % 2;
            let q = owned_by(shard, &unique("b"));
            let x = unique("bx");
            let (_a, cha) = open(&b).await;
            declare_exchange(
                &cha,
                &x,
                ExchangeKind::Direct,
                Default::default(),
                FieldTable::default(),
            )
            .await;
            declare_queue(&cha, &q, QueueDeclareOptions::default(), FieldTable::default()).await;
            bind(&cha, &q, &x, "k", FieldTable::default()).await;
            let (_b, chb) = open(&b).await;
            within("confirm.select", chb.confirm_select(ConfirmSelectOptions::default()))
                .await
                .expect("confirm.select");
            // Mandatory: routed nowhere (a binding not seen there) comes back.
            let opts = BasicPublishOptions {
                mandatory: true,
                ..Default::default()
            };
            let c = publish_with(&chb, &x, "k", b"routed", BasicProperties::default(), opts).await;
            assert!(matches!(c, Confirmation::Ack(None)), "round {round}: {c:?}");
            let d = declare_queue(&chb, &q, passive(), FieldTable::default()).await;
            assert_eq!(d.message_count(), 1, "round {round}: queue {q} of shard {shard}");
            assert_eq!(get_all(&chb, &q).await, ["routed"]);
        }
    });
}

#[test]
fn declare_on_one_connection_routes_on_another_epoll() {
    declare_then_publish_elsewhere("epoll");
}

#[test]
fn declare_on_one_connection_routes_on_another_uring() {
    declare_then_publish_elsewhere("uring");
}

/// (c): basic.get and a passive queue.declare's counts, from connections on
/// either shard, for queues of both shards.
fn get_and_counts(io: &str) {
    let b = start(io);
    run(async {
        let queues = [owned_by(0, &unique("c0")), owned_by(1, &unique("c1"))];
        let (_c, ch) = open(&b).await;
        let pch = confirm_channel(&_c).await;
        for q in &queues {
            declare_queue(&ch, q, QueueDeclareOptions::default(), FieldTable::default()).await;
            for i in 0..5 {
                publish(&pch, "", q, format!("m{i}").as_bytes()).await;
            }
        }
        // Several connections: the kernel puts some on each shard.
        let mut conns = Vec::new();
        for _ in 0..4 {
            conns.push(open(&b).await);
        }
        for (_, ch) in &conns {
            for q in &queues {
                let d = declare_queue(ch, q, passive(), FieldTable::default()).await;
                assert_eq!((d.message_count(), d.consumer_count()), (5, 0), "{q}");
            }
        }
        for (n, q) in queues.iter().enumerate() {
            let (_, ch) = &conns[n];
            let got = within("get", ch.basic_get(q.as_str().into(), BasicGetOptions::default()))
                .await
                .expect("get")
                .expect("a message");
            assert_eq!(got.delivery.data, b"m0");
            assert_eq!(got.message_count, 4, "{q}");
            within(
                "ack",
                ch.basic_ack(got.delivery.delivery_tag, BasicAckOptions::default()),
            )
            .await
            .expect("ack");
            let (_, other) = &conns[3 - n];
            assert_eq!(get_all(other, q).await, ["m1", "m2", "m3", "m4"]);
            let d = declare_queue(other, q, passive(), FieldTable::default()).await;
            assert_eq!(d.message_count(), 0, "{q}");
        }
    });
}

#[test]
fn get_and_declare_counts_across_shards_epoll() {
    get_and_counts("epoll");
}

#[test]
fn get_and_declare_counts_across_shards_uring() {
    get_and_counts("uring");
}

/// (d): SIGTERM stops every shard (exit 0, asserted by `stop`) while
/// clients publish and consume on both shards' queues, and the broker starts
/// again with the same shard count and serves queues of both.
fn sigterm_stops_every_shard(io: &str) {
    let mut b = start(io);
    run(async {
        for q in [owned_by(0, &unique("t0")), owned_by(1, &unique("t1"))] {
            let (c, ch) = open(&b).await;
            // Transient: what survives is `restart_keeps_durable_messages`'s.
            declare_queue(&ch, &q, QueueDeclareOptions::default(), FieldTable::default()).await;
            let pch = confirm_channel(&c).await;
            publish(&pch, "", &q, b"t").await;
            // A consumer still attached at the stop, its delivery unacked.
            let cch = channel(&c).await;
            let opts = BasicConsumeOptions::default();
            let consume = cch.basic_consume(q.as_str().into(), "".into(), opts, FieldTable::default());
            let mut consumer = within("consume", consume).await.expect("consume");
            assert_eq!(next(&mut consumer).await.data, b"t");
            std::mem::forget(c);
        }
    });
    b.restart();
    run(async {
        for q in [owned_by(0, &unique("u0")), owned_by(1, &unique("u1"))] {
            let (c, ch) = open(&b).await;
            declare_queue(&ch, &q, QueueDeclareOptions::default(), FieldTable::default()).await;
            let pch = confirm_channel(&c).await;
            publish(&pch, "", &q, b"again").await;
            assert_eq!(get_all(&ch, &q).await, ["again"]);
        }
    });
    b.stop();
}

#[test]
fn sigterm_stops_every_shard_epoll() {
    sigterm_stops_every_shard("epoll");
}

#[test]
fn sigterm_stops_every_shard_uring() {
    sigterm_stops_every_shard("uring");
}

/// (d): durable messages on both shards' queues are there after a start
/// with the same shard count.
fn restart_keeps_durable_messages(io: &str) {
    let mut b = start(io);
    let queues = [owned_by(0, &unique("d0")), owned_by(1, &unique("d1"))];
    run(async {
        for q in &queues {
            let (c, ch) = open(&b).await;
            declare_queue(&ch, q, durable(), FieldTable::default()).await;
            let pch = confirm_channel(&c).await;
            for i in 0..10 {
                let props = BasicProperties::default().with_delivery_mode(2);
                publish_with(&pch, "", q, format!("d{i}").as_bytes(), props, Default::default()).await;
            }
        }
    });
    b.restart();
    run(async {
        for q in &queues {
            let (_c, ch) = open(&b).await;
            let d = declare_queue(&ch, q, passive(), FieldTable::default()).await;
            assert_eq!(d.message_count(), 10, "{q}");
            let want: Vec<String> = (0..10).map(|i| format!("d{i}")).collect();
            assert_eq!(get_all(&ch, q).await, want, "{q}");
        }
    });
    b.stop();
}

#[test]
fn durable_messages_survive_a_restart_epoll() {
    restart_keeps_durable_messages("epoll");
}

#[test]
fn durable_messages_survive_a_restart_uring() {
    restart_keeps_durable_messages("uring");
}

/// Connections spread over both shards, and consumers get messages whichever
/// shard their queue is on (a quick smoke test of the listeners).
#[test]
fn both_shards_accept() {
    let b = start("epoll");
    run(async {
        let q = owned_by(1, &unique("s"));
        let (_c, ch) = open(&b).await;
        declare_queue(&ch, &q, QueueDeclareOptions::default(), FieldTable::default()).await;
        let mut consumers = Vec::new();
        for _ in 0..4 {
            let (c, ch) = open(&b).await;
            let cons = consume_no_ack(&ch, &q).await;
            consumers.push((c, ch, cons));
        }
        let pch = confirm_channel(&_c).await;
        for i in 0..8 {
            publish(&pch, "", &q, format!("{i}").as_bytes()).await;
        }
        let mut got = 0;
        for (_, _, c) in &mut consumers {
            while let Ok(Some(Ok(_))) = tokio::time::timeout(QUIET, c.next()).await {
                got += 1;
            }
        }
        assert_eq!(got, 8);
    });
}

/// `max_connections` counts every shard's connections: with 2 shards and a
/// maximum of 3, a fourth connection is refused whichever shard the kernel
/// gives it (a count per shard would take up to 6).
#[test]
fn max_connections_is_broker_wide() {
    let b = Broker::with_args(&["--shards", "2", "--max-connections", "3"]);
    run(async {
        // Up to 3 (the start-up probe's socket may still count for a moment).
        let mut open = Vec::new();
        for _ in 0..50 {
            if open.len() == 3 {
                break;
            }
            match lapin::Connection::connect(b.uri(), Default::default()).await {
                Ok(c) => open.push(c),
                Err(_) => tokio::time::sleep(std::time::Duration::from_millis(50)).await,
            }
        }
        assert_eq!(open.len(), 3);
        for i in 0..6 {
            let r = within("connect", lapin::Connection::connect(b.uri(), Default::default())).await;
            assert!(r.is_err(), "connection {} over the maximum was served", i + 4);
        }
    });
}

/// AMQPS with 2 shards: both bind the TLS port (port 0 asked for: the
/// other shard binds the one shard 0 got), and TLS connections on either
/// publish with confirms to both shards' queues and get the messages back.
#[test]
fn amqps_on_both_shards() {
    let pki = common::tls::pki(common::tls::KeyKind::EcdsaP256);
    for io in common::tls::BACKENDS {
        let (b, addr) = common::tls::broker(&pki, io, &["--shards", "2"]);
        let log = std::fs::read_to_string(b.log_path()).unwrap();
        let listening = log.lines().filter(|l| l.contains("AMQPS listener started")).count();
        assert_eq!(listening, 2, "one AMQPS listener per shard:\n{log}");
        let uri = format!("amqps://guest:guest@localhost:{}/%2f", addr.port());
        run(async {
            let queues = [owned_by(0, &unique("tls0")), owned_by(1, &unique("tls1"))];
            for n in 0..4 {
                let tls = lapin::tcp::OwnedTLSConfig {
                    identity: None,
                    cert_chain: Some(pki.ca_pem.clone()),
                };
                let runtime = lapin::runtime::default_runtime().expect("runtime");
                let connect = lapin::Connection::connect_with_config(&uri, Default::default(), tls, runtime);
                let conn = within("connect over TLS", connect).await.expect("lapin over TLS");
                let ch = confirm_channel(&conn).await;
                for q in &queues {
                    declare_queue(&ch, q, QueueDeclareOptions::default(), FieldTable::default()).await;
                    let c = publish(&ch, "", q, format!("{io} {n}").as_bytes()).await;
                    assert!(matches!(c, Confirmation::Ack(None)), "{c:?}");
                    assert_eq!(get_all(&ch, q).await, [format!("{io} {n}")]);
                }
            }
        });
    }
}

/// The management API (on shard 0) gathers every shard's part: both shards'
/// queues are listed, each with its owner's message count, and the
/// connections of both shards.
#[test]
fn the_api_shows_every_shard() {
    let b = start("epoll");
    let queues = [owned_by(0, &unique("h0")), owned_by(1, &unique("h1"))];
    // Kept (and its runtime, which drives the clients) until the end.
    let rt = runtime();
    let (conns, _channels) = rt.block_on(async {
        let (mut conns, mut channels) = (Vec::new(), Vec::new());
        for (n, q) in queues.iter().enumerate() {
            let (c, ch) = open(&b).await;
            declare_queue(&ch, q, QueueDeclareOptions::default(), FieldTable::default()).await;
            let pch = confirm_channel(&c).await;
            for i in 0..=n {
                publish(&pch, "", q, format!("{i}").as_bytes()).await;
            }
            conns.push(c);
            channels.extend([ch, pch]);
        }
        // More connections: the kernel puts some on each shard.
        for _ in 0..4 {
            conns.push(connect(&b).await);
        }
        (conns, channels)
    });
    let api = common::http::Api::new(b.http_url(), b.user(), b.pass());
    for (n, q) in queues.iter().enumerate() {
        let one = api.ok(&format!("/api/queues/%2F/{}", common::http::enc(q)));
        assert_eq!(one["messages"], n + 1, "{q}: {one}");
    }
    let listed = api.ok("/api/queues");
    let names: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|q| q["name"].as_str())
        .collect();
    assert!(queues.iter().all(|q| names.contains(&q.as_str())), "{names:?}");
    let listed = api.ok("/api/connections");
    assert_eq!(listed.as_array().unwrap().len(), conns.len(), "{listed}");
}

/// The Unix socket is shard 0's: a connection on it publishes to a queue of
/// shard 1 (always across), on both backends.
#[test]
fn the_unix_socket_is_shard_0s_and_its_publishes_cross() {
    use common::raw::RawConn;
    for io in common::tls::BACKENDS {
        let dir = tempfile::Builder::new().prefix("ringmq-unix-").tempdir().unwrap();
        let sock = dir.path().join("amqp.sock");
        let b = Broker::with_args(&["--shards", "2", "--io", io, "--amqp-unix-path", sock.to_str().unwrap()]);
        run(async {
            let q = owned_by(1, &unique("unix"));
            let (_c, ch) = open(&b).await;
            declare_queue(&ch, &q, QueueDeclareOptions::default(), FieldTable::default()).await;
            let mut c = RawConn::unix_guest(&sock).await;
            let mut out = Vec::new();
            RawConn::encode_publish(&mut out, 1, "", &q);
            c.send(&out).await;
            eventually("the message on shard 1's queue", || async {
                let d = declare_queue(&ch, &q, passive(), FieldTable::default()).await;
                d.message_count() == 1
            })
            .await;
        });
    }
}

/// The API's totals add up both shards (overview, consumers, /metrics), a
/// queue's consumers are named by the shard of their connection, and its
/// commands run on the shard that has the queue or the connection (purge,
/// get, close). Each queue lives on one shard, so shard 0's copy alone
/// would show the other's queue empty and its consumer unnamed.
#[test]
fn the_api_totals_and_commands_reach_every_shard() {
    let b = start("uring");
    let queues = [owned_by(0, &unique("t0")), owned_by(1, &unique("t1"))];
    let rt = runtime();
    let (conns, _keep) = rt.block_on(async {
        let (c, ch) = open(&b).await;
        let pch = confirm_channel(&c).await;
        for (n, q) in queues.iter().enumerate() {
            declare_queue(&ch, q, QueueDeclareOptions::default(), FieldTable::default()).await;
            for i in 0..n + 2 {
                publish(&pch, "", q, format!("{i}").as_bytes()).await;
            }
        }
        // A consumer of shard 1's queue, one message unacked, on a
        // connection of its own (on whichever shard the kernel picks).
        let (cc, cch) = open(&b).await;
        cch.basic_qos(1, BasicQosOptions::default()).await.expect("qos");
        let mut consumer = cch
            .basic_consume(
                queues[1].as_str().into(),
                "t-consumer".into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
            .expect("consume");
        let first = within("a delivery", consumer.next()).await.expect("one").expect("ok");
        let mut conns = vec![c, cc];
        for _ in 0..4 {
            conns.push(connect(&b).await);
        }
        (conns, (ch, pch, cch, consumer, first))
    });
    let api = common::http::Api::new(b.http_url(), b.user(), b.pass());
    let enc = common::http::enc;
    let overview = api.ok("/api/overview");
    assert_eq!(overview["queue_totals"]["messages"], 5, "{overview}");
    assert_eq!(overview["queue_totals"]["messages_unacknowledged"], 1, "{overview}");
    let totals = &overview["object_totals"];
    assert_eq!(totals["queues"], 2, "{overview}");
    assert_eq!(totals["consumers"], 1, "{overview}");
    assert_eq!(totals["connections"], conns.len(), "{overview}");

    let consumers = api.ok("/api/consumers");
    let listed = consumers.as_array().unwrap();
    assert_eq!(listed.len(), 1, "{consumers}");
    assert_ne!(listed[0]["channel_details"]["connection_name"], "", "{consumers}");
    let q1 = api.ok(&format!("/api/queues/%2F/{}", enc(&queues[1])));
    assert_eq!(
        (q1["messages"].as_u64(), q1["consumers"].as_u64()),
        (Some(3), Some(1)),
        "{q1}"
    );
    let details = q1["consumer_details"].as_array().unwrap();
    assert_eq!(details.len(), 1, "{q1}");
    assert_ne!(details[0]["channel_details"]["connection_name"], "", "{q1}");

    let metrics = common::http::Api::anonymous(&b.metrics_url()).get("/metrics").text;
    assert!(
        metrics.lines().any(|l| l == "rabbitmq_queue_messages 5"),
        "both shards' queues summed: {metrics}"
    );

    // Commands on shard 0's and shard 1's queues.
    let purged = api.delete(&format!("/api/queues/%2F/{}/contents", enc(&queues[0])));
    assert_eq!(purged.status, 204, "{}", purged.text);
    assert_eq!(api.ok(&format!("/api/queues/%2F/{}", enc(&queues[0])))["messages"], 0);
    let got = api.post(
        &format!("/api/queues/%2F/{}/get", enc(&queues[1])),
        serde_json::json!({"count": 5, "ackmode": "ack_requeue_false", "encoding": "auto"}),
    );
    assert_eq!(got.status, 200, "{}", got.text);
    assert_eq!(
        got.json.as_array().map(Vec::len),
        Some(2),
        "the two ready ones: {}",
        got.text
    );

    // Every connection closed through the API, by the shard that has it.
    let listed = api.ok("/api/connections");
    for c in listed.as_array().unwrap() {
        let name = c["name"].as_str().unwrap();
        let r = api.delete(&format!("/api/connections/{}", enc(name)));
        assert_eq!(r.status, 204, "{name}: {}", r.text);
    }
    rt.block_on(eventually("every connection closed", || async {
        conns.iter().all(|c| !c.status().connected())
    }));
    // A client sees its close before its shard has let the connection go
    // (that follows close-ok and the socket's end): the list empties soon after.
    rt.block_on(eventually("no connection listed", || async {
        api.ok("/api/connections").as_array().map(Vec::len) == Some(0)
    }));
}

/// Step 4 (`core::amqp::hand_off`, both backends): a connection whose work is on
/// the other shard's queues moves there with its socket: consumers before
/// their basic.consume, publishers once a publish of theirs crossed, one
/// with confirms once its confirm is in. The kernel puts connections on
/// either shard, so about half of them move: every one ends on its queue's
/// shard (the API's `shard`), every message arrives once and each consumer
/// sees each publisher's messages in order; an API close reaches a moved
/// connection. Publishers with confirms always outstanding (`x`) move only
/// when none are: their confirms all come (none is lost on the way; three
/// per queue, so that some land on the other shard nearly always).
fn connections_move_to_their_queues_shard(io: &str) {
    const EACH: usize = 300;
    const PER_QUEUE: usize = 3;
    const PUBLISHERS: usize = PER_QUEUE + 3;
    let b = start(io);
    let queues = [owned_by(0, &unique("m0")), owned_by(1, &unique("m1"))];
    let rt = runtime();
    let named = |name: String| lapin::ConnectionProperties::default().with_connection_name(name.into());
    let conns = rt.block_on(async {
        let (setup, ch) = open(&b).await;
        for q in &queues {
            declare_queue(&ch, q, QueueDeclareOptions::default(), FieldTable::default()).await;
        }
        let mut conns = vec![setup];
        let mut consumers = Vec::new();
        for (k, q) in queues.iter().enumerate() {
            for n in 0..PER_QUEUE {
                let conn = within(
                    "connect",
                    lapin::Connection::connect(b.uri(), named(format!("c{k}-{n}"))),
                )
                .await
                .expect("connect");
                let ch = channel(&conn).await;
                within("qos", ch.basic_qos(50, BasicQosOptions::default()))
                    .await
                    .expect("qos");
                let c = within(
                    "basic.consume",
                    ch.basic_consume(
                        q.as_str().into(),
                        "c".into(),
                        BasicConsumeOptions::default(),
                        FieldTable::default(),
                    ),
                )
                .await
                .expect("basic.consume");
                consumers.push((k, ch, c));
                conns.push(conn);
            }
        }
        let mut publishers = Vec::new();
        for (k, q) in queues.iter().enumerate() {
            for n in 0..PUBLISHERS {
                let name = match n {
                    n if n >= PER_QUEUE => format!("x{k}-{n}"),
                    n => format!("p{k}-{n}"),
                };
                let conn = within("connect", lapin::Connection::connect(b.uri(), named(name)))
                    .await
                    .expect("connect");
                let q = q.clone();
                // The third publisher of each queue waits for each confirm,
                // the `x`s for all of them at the end.
                let (confirms, pipelined) = (n >= PER_QUEUE - 1, n >= PER_QUEUE);
                publishers.push(tokio::spawn(async move {
                    let ch = match confirms {
                        true => confirm_channel(&conn).await,
                        false => channel(&conn).await,
                    };
                    let mut pending = Vec::new();
                    for i in 0..EACH {
                        let body = format!("{k}-{n}:{i}");
                        let c = within(
                            "publish",
                            ch.basic_publish(
                                "".into(),
                                q.as_str().into(),
                                BasicPublishOptions::default(),
                                body.as_bytes(),
                                BasicProperties::default(),
                            ),
                        )
                        .await
                        .expect("publish");
                        if pipelined {
                            pending.push((body, c));
                        } else if confirms {
                            let c = within("confirm", c).await.expect("confirm");
                            assert!(matches!(c, Confirmation::Ack(None)), "{body}: {c:?}");
                        }
                    }
                    for (body, c) in pending {
                        let c = within("confirm", c).await.expect("confirm");
                        assert!(matches!(c, Confirmation::Ack(None)), "{body}: {c:?}");
                    }
                    conn
                }));
            }
        }
        for p in publishers {
            conns.push(p.await.expect("publisher"));
        }
        // Each queue's consumers share its messages: each sees every
        // publisher's in order, and together they see each once.
        for k in 0..queues.len() {
            let mut seen: HashMap<String, Vec<usize>> = HashMap::new();
            let mut last: HashMap<(usize, String), usize> = HashMap::new();
            let mut left = PUBLISHERS * EACH;
            while left > 0 {
                for (ci, (_, _, c)) in consumers.iter_mut().enumerate().filter(|(_, (kk, _, _))| *kk == k) {
                    let Ok(Some(d)) = tokio::time::timeout(std::time::Duration::from_millis(50), c.next()).await else {
                        continue;
                    };
                    let d = d.expect("delivery");
                    let body = String::from_utf8(d.data.clone()).expect("utf-8");
                    let (p, i) = body.split_once(':').expect("p:i");
                    let i: usize = i.parse().unwrap();
                    if let Some(&before) = last.get(&(ci, p.to_string())) {
                        assert!(i > before, "consumer {ci} of queue {k}: {p}:{i} after {p}:{before}");
                    }
                    last.insert((ci, p.to_string()), i);
                    seen.entry(p.to_string()).or_default().push(i);
                    within("ack", d.ack(BasicAckOptions::default())).await.expect("ack");
                    left -= 1;
                }
            }
            for (p, mut got) in seen {
                got.sort_unstable();
                assert_eq!(got, (0..EACH).collect::<Vec<_>>(), "publisher {p} to queue {k}");
            }
        }
        conns
    });
    let api = common::http::Api::new(b.http_url(), b.user(), b.pass());
    let listed = api.ok("/api/connections");
    let listed = listed.as_array().unwrap();
    assert_eq!(listed.len(), conns.len(), "{listed:?}");
    let mut checked = 0;
    for c in listed {
        let Some(name) = c["user_provided_name"].as_str().filter(|n| !n.starts_with('x')) else {
            continue;
        };
        let k: u64 = name[1..2].parse().unwrap();
        assert_eq!(c["shard"], k, "{name} is served by the shard of queue {k}: {c}");
        checked += 1;
    }
    assert_eq!(checked, 4 * PER_QUEUE);
    for c in listed {
        let name = c["name"].as_str().unwrap();
        let r = api.delete(&format!("/api/connections/{}", common::http::enc(name)));
        assert_eq!(r.status, 204, "{name}: {}", r.text);
    }
    rt.block_on(eventually("every connection closed", || async {
        conns.iter().all(|c| !c.status().connected())
    }));
}

#[test]
fn connections_move_to_their_queues_shard_epoll() {
    connections_move_to_their_queues_shard("epoll");
}

#[test]
fn connections_move_to_their_queues_shard_uring() {
    connections_move_to_their_queues_shard("uring");
}
