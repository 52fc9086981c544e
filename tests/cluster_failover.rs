//! Issue 22, clustering with real processes: `ringmq --clustering` nodes on
//! loopback ports and an etcd of the test's own (`common::etcd`).
//!
//! - The leader is killed (-9) while a client publishes with confirms; a
//!   follower in the in-sync set takes over, and every confirmed message is
//!   there, in order, read through another follower's relay.
//! - A client of a follower is served by the leader through its relay, and
//!   once the load stops the follower's data directory equals the leader's.
//! - A leader stopped cleanly (SIGTERM) exits 0 and resigns: the follower
//!   leads without waiting for the lease to end, with every message.
//! - A confirm waits for the in-sync followers: with one stopped (SIGSTOP)
//!   it comes only once etcd no longer names that follower; with
//!   `--clustering-min-isr=2` and the leader alone, only once a follower joined.

mod common;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::etcd::start_etcd;
use common::load::{assert_none_lost, publish_confirmed_until, take_all_ids};
use common::{free_ports, Broker};
use lapin::{Connection, ConnectionProperties};
use ringmq::cluster::dir_files::DirFiles;
use ringmq::cluster::elect::{Isr, Keys};
use ringmq::cluster::etcd::Etcd;
use ringmq::cluster::files::Files;

/// Generous: these fail only on a hang.
const WAIT: Duration = Duration::from_secs(60);

/// A node: a spawned broker with clustering on (its advertised URI).
fn node(etcd: &str, prefix: &str) -> (Broker, String) {
    node_with(etcd, prefix, &[])
}

fn node_with(etcd: &str, prefix: &str, extra: &[&str]) -> (Broker, String) {
    let [port] = free_ports::<1>();
    let uri = format!("tcp://127.0.0.1:{port}");
    let args = [
        "--clustering".to_string(),
        "--clustering-bind=127.0.0.1".into(),
        format!("--clustering-port={port}"),
        format!("--clustering-etcd-endpoints={etcd}"),
        format!("--clustering-etcd-prefix={prefix}"),
        format!("--clustering-advertised-uri={uri}"),
    ];
    let args: Vec<&str> = args.iter().map(String::as_str).chain(extra.iter().copied()).collect();
    (Broker::with_args(&args), uri)
}

/// The in-sync replica set as etcd has it.
fn isr(rt: &tokio::runtime::Runtime, etcd: &str, prefix: &str) -> Vec<String> {
    let client = Etcd::new(&[etcd.to_string()], Duration::from_secs(2));
    let kv = rt.block_on(client.get(&Keys::under(prefix).isr)).expect("etcd get");
    kv.and_then(|kv| serde_json::from_slice::<Isr>(&kv.value).ok())
        .map(|i| i.members)
        .unwrap_or_default()
}

fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !done() {
        assert!(Instant::now() < deadline, "timed out: {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Connects to `uri`, retrying while no leader serves (a relay closes a
/// connection it cannot pass on).
async fn connect_retrying(uri: &str) -> Connection {
    let deadline = Instant::now() + WAIT;
    loop {
        match Connection::connect(uri, ConnectionProperties::default()).await {
            Ok(c) => return c,
            Err(e) => assert!(Instant::now() < deadline, "no leader served {uri}: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[test]
fn confirmed_messages_survive_the_leaders_kill() {
    let etcd = start_etcd();
    let rt = common::runtime();
    let prefix = "failover";
    let (mut a, a_uri) = node(&etcd.endpoint, prefix);
    let (b, b_uri) = node(&etcd.endpoint, prefix);
    let (c, c_uri) = node(&etcd.endpoint, prefix);
    wait_until("three nodes in sync", || isr(&rt, &etcd.endpoint, prefix).len() == 3);
    assert_eq!(isr(&rt, &etcd.endpoint, prefix)[0], a_uri, "the first node leads");
    let confirmed = Arc::new(Mutex::new(BTreeSet::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let publisher = rt.spawn(publish_confirmed_until(
        a.uri().to_string(),
        "failover",
        confirmed.clone(),
        stop.clone(),
    ));
    wait_until("2,000 confirms", || confirmed.lock().unwrap().len() >= 2_000);
    a.kill9();
    let killed = Instant::now();
    stop.store(true, Ordering::Relaxed);
    let _ = rt.block_on(publisher);
    let confirmed = confirmed.lock().unwrap().clone();
    // Read through c's port: its relay, or its own broker if it leads now.
    let via = c.uri().to_string();
    let found = rt.block_on(async move {
        let conn = connect_retrying(&via).await;
        let ch = conn.create_channel().await.expect("channel");
        take_all_ids(&ch, "failover").await
    });
    println!(
        "a new leader served {:.1} s after the kill; {} confirmed, {} found",
        killed.elapsed().as_secs_f64(),
        confirmed.len(),
        found.len()
    );
    assert_none_lost(&confirmed, &found, "the leader's kill");
    let members = isr(&rt, &etcd.endpoint, prefix);
    assert!(
        members[0] == b_uri || members[0] == c_uri,
        "a follower leads: {members:?}"
    );
    assert!(!members.contains(&a_uri), "the dead leader left the set: {members:?}");
    drop(b);
}

#[test]
fn a_followers_client_is_served_and_its_directory_follows() {
    let etcd = start_etcd();
    let rt = common::runtime();
    let prefix = "relay";
    let (a, _) = node(&etcd.endpoint, prefix);
    let (b, _) = node(&etcd.endpoint, prefix);
    wait_until("two nodes in sync", || isr(&rt, &etcd.endpoint, prefix).len() == 2);
    // A client of the follower publishes with confirms and consumes half.
    let confirmed = Arc::new(Mutex::new(BTreeSet::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let publisher = rt.spawn(publish_confirmed_until(
        b.uri().to_string(),
        "relayed",
        confirmed.clone(),
        stop.clone(),
    ));
    wait_until("1,000 confirms through the relay", || {
        confirmed.lock().unwrap().len() >= 1_000
    });
    stop.store(true, Ordering::Relaxed);
    rt.block_on(publisher).unwrap();
    let confirmed = confirmed.lock().unwrap().clone();
    let via = b.uri().to_string();
    let found = rt.block_on(async move {
        let conn = connect_retrying(&via).await;
        let ch = conn.create_channel().await.expect("channel");
        take_all_ids(&ch, "relayed").await
    });
    assert_none_lost(&confirmed, &found, "publishing through a follower");
    // The leader's API through the follower's relay names both.
    let api = common::http::Api::new(b.http_url(), b.user(), b.pass());
    let nodes = api.ok("/api/nodes");
    let roles: Vec<(&str, bool)> = (nodes.as_array().expect("a list of nodes").iter())
        .map(|n| (n["role"].as_str().unwrap_or("?"), n["in_sync"] == true))
        .collect();
    assert_eq!(roles, [("leader", true), ("follower", true)], "{nodes}");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ringmqctl"))
        .args([
            "--uri",
            b.http_url(),
            "-u",
            b.user(),
            "--password",
            b.pass(),
            "cluster_status",
        ])
        .output()
        .expect("run ringmqctl");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("leader") && text.contains("follower"), "{text}");
    // Quiet now: the follower's files equal the leader's.
    let (ad, bd) = (a.data_dir(), b.data_dir());
    let deadline = Instant::now() + WAIT;
    let last = loop {
        let lists = (DirFiles::new(&ad, &[]).list(), DirFiles::new(&bd, &[]).list());
        if lists.0 == lists.1 {
            break lists;
        }
        assert!(
            Instant::now() < deadline,
            "the follower's directory differs:\n{:?}\n{:?}",
            lists.0,
            lists.1
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(last.0.len() > 3, "{:?}", last.0);
}

/// A durable queue declared and a persistent message published on `ch`
/// (a confirm channel): the confirm's future.
async fn publish_one(ch: &lapin::Channel, queue: &str) -> lapin::PublisherConfirm {
    let durable = lapin::options::QueueDeclareOptions {
        durable: true,
        ..Default::default()
    };
    ch.queue_declare(queue.into(), durable, Default::default())
        .await
        .expect("queue.declare");
    let props = lapin::BasicProperties::default().with_delivery_mode(2);
    ch.basic_publish("".into(), queue.into(), Default::default(), b"m", props)
        .await
        .expect("basic.publish")
}

async fn confirm_channel(uri: &str) -> (Connection, lapin::Channel) {
    let conn = connect_retrying(uri).await;
    let ch = conn.create_channel().await.expect("channel");
    ch.confirm_select(Default::default()).await.expect("confirm.select");
    (conn, ch)
}

#[test]
fn a_confirm_waits_for_the_in_sync_followers() {
    let etcd = start_etcd();
    let rt = common::runtime();
    let prefix = "waits";
    let (a, _) = node(&etcd.endpoint, prefix);
    let (b, b_uri) = node(&etcd.endpoint, prefix);
    wait_until("two nodes in sync", || isr(&rt, &etcd.endpoint, prefix).len() == 2);
    let (_conn, ch) = rt.block_on(confirm_channel(a.uri()));
    b.signal(libc::SIGSTOP);
    let confirm = rt.block_on(publish_one(&ch, "waits"));
    let got = rt
        .block_on(async { tokio::time::timeout(WAIT, confirm).await })
        .expect("a confirm in time");
    assert!(got.expect("confirm").is_ack());
    let members = isr(&rt, &etcd.endpoint, prefix);
    assert!(
        !members.contains(&b_uri),
        "confirmed while a stopped follower is in the set: {members:?}"
    );
    b.signal(libc::SIGCONT);
    wait_until("the follower back in sync", || {
        isr(&rt, &etcd.endpoint, prefix).len() == 2
    });
}

#[test]
fn with_min_isr_2_the_leader_alone_does_not_confirm() {
    let etcd = start_etcd();
    let rt = common::runtime();
    let prefix = "min-isr";
    let min_isr = ["--clustering-min-isr=2"];
    let (a, _) = node_with(&etcd.endpoint, prefix, &min_isr);
    let (mut b, _) = node_with(&etcd.endpoint, prefix, &min_isr);
    wait_until("two nodes in sync", || isr(&rt, &etcd.endpoint, prefix).len() == 2);
    let (_conn, ch) = rt.block_on(confirm_channel(a.uri()));
    let first = rt.block_on(publish_one(&ch, "min-isr"));
    let got = rt
        .block_on(async { tokio::time::timeout(WAIT, first).await })
        .expect("a confirm in time");
    assert!(got.expect("confirm").is_ack());
    b.kill9();
    wait_until("the leader alone in the set", || {
        isr(&rt, &etcd.endpoint, prefix).len() == 1
    });
    let mut confirm = rt.block_on(publish_one(&ch, "min-isr"));
    // A lower bound only: a confirm now would be wrong whenever it came.
    let early = rt.block_on(async { tokio::time::timeout(Duration::from_secs(2), &mut confirm).await });
    assert!(early.is_err(), "confirmed by the leader alone: {early:?}");
    b.start();
    let got = rt
        .block_on(async { tokio::time::timeout(WAIT, confirm).await })
        .expect("a confirm in time");
    assert!(got.expect("confirm").is_ack());
    assert_eq!(isr(&rt, &etcd.endpoint, prefix).len(), 2);
}

#[test]
fn a_leader_stopped_cleanly_resigns_and_a_follower_leads() {
    let etcd = start_etcd();
    let rt = common::runtime();
    let prefix = "resign";
    let (mut a, a_uri) = node(&etcd.endpoint, prefix);
    let (b, b_uri) = node(&etcd.endpoint, prefix);
    wait_until("two nodes in sync", || isr(&rt, &etcd.endpoint, prefix).len() == 2);
    let (_conn, ch) = rt.block_on(confirm_channel(a.uri()));
    for _ in 0..10 {
        let confirm = rt.block_on(publish_one(&ch, "resign"));
        let got = rt
            .block_on(async { tokio::time::timeout(WAIT, confirm).await })
            .expect("a confirm in time");
        assert!(got.expect("confirm").is_ack());
    }
    a.stop(); // asserts exit 0
    let client = Etcd::new(std::slice::from_ref(&etcd.endpoint), Duration::from_secs(2));
    let leader = rt.block_on(client.get(&Keys::under(prefix).leader)).expect("etcd get");
    assert!(
        leader.as_ref().is_none_or(|kv| kv.value != a_uri.as_bytes()),
        "the stopped leader's key outlived it: {leader:?}"
    );
    let via = b.uri().to_string();
    let found = rt.block_on(async move {
        let conn = connect_retrying(&via).await;
        let ch = conn.create_channel().await.expect("channel");
        queue_len(&ch, "resign").await
    });
    assert_eq!(found, 10);
    assert_eq!(isr(&rt, &etcd.endpoint, prefix)[0], b_uri);
}

/// How many messages `queue` holds.
async fn queue_len(ch: &lapin::Channel, queue: &str) -> u32 {
    let passive = lapin::options::QueueDeclareOptions {
        passive: true,
        ..Default::default()
    };
    let q = ch
        .queue_declare(queue.into(), passive, Default::default())
        .await
        .expect("the queue is there");
    q.message_count()
}
