//! Shovels interoperating with a real RabbitMQ (the peer: `rabbitmq.sh` with
//! `RMQ_PLUGINS="rabbitmq_shovel rabbitmq_shovel_management"`): a ringmq
//! shovel from RabbitMQ into ringmq and one back out to RabbitMQ, and a
//! RabbitMQ shovel taking from ringmq. The peer is found at
//! `RINGMQ_SHOVEL_PEER` (AMQP URI, default `amqp://guest:guest@127.0.0.1:5694/`)
//! and `RINGMQ_SHOVEL_PEER_HTTP` (default `http://127.0.0.1:15694`); without
//! it each test says so and passes (`.ci/run` starts the peer for them).

mod common;

use std::time::Duration;

use common::http::{enc, Api};
use common::links::{count, declare, drain, publish};
use common::peer::Peer;
use common::shovel_api::{names, put_shovel, shovel_status, wait_until};
use common::*;
use serde_json::json;

fn peer(test: &str) -> Option<Peer> {
    common::peer::rabbitmq(test, "/api/shovels")
}

#[test]
fn a_ringmq_shovel_takes_from_rabbitmq_and_another_gives_back() {
    let Some(p) = peer("a_ringmq_shovel_takes_from_rabbitmq_and_another_gives_back") else {
        return;
    };
    let b = Broker::new();
    let ours = Api::new(b.http_url(), b.user(), b.pass());
    let (r_in, here, r_out) = (unique("rmq-in"), unique("here"), unique("rmq-out"));
    declare(&p.amqp, &r_in, None);
    declare(&p.amqp, &r_out, None);
    put_shovel(
        &ours,
        "from-rabbit",
        json!({"src-uri": p.amqp, "src-queue": r_in, "dest-uri": "amqp://", "dest-queue": here}),
    );
    put_shovel(
        &ours,
        "to-rabbit",
        json!({"src-uri": "amqp://", "src-queue": here, "dest-uri": p.amqp, "dest-queue": r_out,
               "dest-add-forward-headers": true}),
    );
    wait_until("both running", WAIT, || {
        ["from-rabbit", "to-rabbit"]
            .iter()
            .all(|n| shovel_status(&ours, n).is_some_and(|s| s["state"] == "running"))
    });
    publish(&p.amqp, "", &r_in, "m", 200);
    wait_until("200 back on RabbitMQ", WAIT, || count(&p.amqp, &r_out) == 200);
    assert_eq!(count(&p.amqp, &r_in), 0);
    assert_eq!(drain(&p.amqp, &r_out), names("m", 200), "in order, once");
    // Our status has every field RabbitMQ's has for a running shovel.
    let theirs_keys = [
        "node",
        "timestamp",
        "name",
        "vhost",
        "type",
        "state",
        "src_uri",
        "src_protocol",
        "dest_protocol",
        "dest_uri",
        "src_queue",
        "dest_queue",
    ];
    let s = shovel_status(&ours, "to-rabbit").unwrap();
    for k in theirs_keys {
        assert!(s.get(k).is_some(), "{k} missing in {s}");
    }
    assert_eq!(s["src_uri"], "amqp://");
    assert!(
        !s["dest_uri"].as_str().unwrap().contains("guest:"),
        "credentials shown: {s}"
    );
    for n in ["from-rabbit", "to-rabbit"] {
        assert_eq!(ours.delete(&format!("/api/parameters/shovel/%2F/{n}")).status, 204);
    }
    for q in [&r_in, &r_out] {
        p.http.delete(&format!("/api/queues/%2F/{}", enc(q)));
    }
}

#[test]
fn a_rabbitmq_shovel_takes_from_ringmq() {
    let Some(p) = peer("a_rabbitmq_shovel_takes_from_ringmq") else {
        return;
    };
    let b = Broker::new();
    let (here, there, name) = (unique("rg-src"), unique("rmq-dest"), unique("from-ringmq"));
    declare(b.uri(), &here, None);
    declare(&p.amqp, &there, None);
    publish(b.uri(), "", &here, "r", 150);
    put_shovel(
        &p.http,
        &name,
        json!({"src-uri": b.uri(), "src-queue": here, "dest-uri": "amqp://", "dest-queue": there}),
    );
    wait_until("RabbitMQ's shovel moved all", Duration::from_secs(30), || {
        count(&p.amqp, &there) == 150
    });
    let s = shovel_status(&p.http, &name).expect("RabbitMQ reports it");
    assert_eq!(s["state"], "running", "{s}");
    assert_eq!(count(b.uri(), &here), 0);
    assert_eq!(drain(&p.amqp, &there), names("r", 150));
    assert_eq!(
        p.http
            .delete(&format!("/api/parameters/shovel/%2F/{}", enc(&name)))
            .status,
        204
    );
    p.http.delete(&format!("/api/queues/%2F/{}", enc(&there)));
}
