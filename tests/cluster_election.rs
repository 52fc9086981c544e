//! Issue 22, the election against a real etcd (Debian's `etcd-server`, started
//! here on free loopback ports; `.ci/run` installs it): three nodes, one
//! leads; the leader dies (its task dropped, no resign) and another leads
//! once its lease ends; a leader cut off from etcd (through a proxy the test
//! cuts) stops leading before another can win. Every 10 ms no two lead.

mod common;

use common::etcd::start_etcd;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ringmq::cluster::elect::{self, Isr, Keys, Status};
use ringmq::cluster::election::{ElectionConfig, Leader};
use ringmq::cluster::etcd::Etcd;

const TTL_MS: u64 = 2_000;

/// A TCP proxy to `to` that the test can cut: connections stop being
/// relayed (and new ones are refused) once `cut` is set.
async fn proxy(to: String, cut: Arc<Mutex<bool>>) -> String {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let at = l.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        loop {
            let Ok((mut c, _)) = l.accept().await else { return };
            if *cut.lock().unwrap() {
                continue; // dropped: refused
            }
            let to = to.clone();
            let cut = cut.clone();
            tokio::spawn(async move {
                let Ok(mut s) = tokio::net::TcpStream::connect(&to).await else {
                    return;
                };
                let relay = tokio::io::copy_bidirectional(&mut c, &mut s);
                let watch = async {
                    while !*cut.lock().unwrap() {
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                };
                tokio::select! { _ = relay => {}, _ = watch => {} }
            });
        }
    });
    at
}

fn now_ms() -> u64 {
    elect::now_ms()
}

fn node(endpoint: &str, me: &str, prefix: &str) -> (tokio::task::JoinHandle<()>, tokio::sync::watch::Receiver<Status>) {
    // A short timeout: a call to an etcd that is cut off fails well within the TTL.
    let etcd = Etcd::new(&[endpoint.to_string()], Duration::from_millis(300));
    let cfg = ElectionConfig {
        me: me.into(),
        ttl_ms: TTL_MS,
    };
    let (tx, rx) = tokio::sync::watch::channel(Status {
        leader: Leader::Unknown,
        leads_until_ms: None,
    });
    (tokio::spawn(elect::run(etcd, cfg, Keys::under(prefix), tx)), rx)
}

/// Samples every 10 ms until `done` says so (or 15 s): asserts no two nodes
/// lead at once; returns, per node, when it first led in the window.
async fn watch_leaders(
    nodes: &[(&str, tokio::sync::watch::Receiver<Status>)],
    mut done: impl FnMut(&[Option<u64>]) -> bool,
) -> Vec<Option<u64>> {
    let mut first = vec![None; nodes.len()];
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let now = now_ms();
        let leading: Vec<&str> = (nodes.iter().enumerate())
            .filter(|(_, (_, rx))| rx.borrow().leads(now))
            .map(|(i, (name, _))| {
                first[i].get_or_insert(now);
                *name
            })
            .collect();
        assert!(leading.len() <= 1, "at {now} ms {leading:?} all lead");
        if done(&first) {
            return first;
        }
        assert!(Instant::now() < deadline, "timed out; first led: {first:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[test]
fn one_leads_and_another_takes_over_when_it_dies_or_is_cut_off() {
    let etcd = start_etcd();
    let rt = common::runtime();
    rt.block_on(async {
        let key = "/ringmq-test";
        let cut = Arc::new(Mutex::new(false));
        let via = proxy(etcd.endpoint.clone(), cut.clone()).await;
        // Node a reaches etcd only through the proxy; it starts first, so it
        // leads (the others start once it does).
        let (a, a_rx) = node(&via, "a", key);
        watch_leaders(&[("a", a_rx.clone())], |f| f[0].is_some()).await;
        let (b, b_rx) = node(&etcd.endpoint, "b", key);
        let (c, c_rx) = node(&etcd.endpoint, "c", key);
        let nodes = [("a", a_rx.clone()), ("b", b_rx.clone()), ("c", c_rx.clone())];
        let rxs = [&b_rx, &c_rx];
        let follows_a = |rx: &tokio::sync::watch::Receiver<Status>| {
            matches!(&rx.borrow().leader, Leader::Other { uri, .. } if uri == "a")
        };
        common::eventually("b and c follow a", || async { rxs.iter().all(|rx| follows_a(rx)) }).await;

        // a is cut off from etcd: it stops leading before b or c can lead.
        let a_until = a_rx.borrow().leads_until_ms.expect("a leads");
        *cut.lock().unwrap() = true;
        let first = watch_leaders(&nodes, |f| f[1].is_some() || f[2].is_some()).await;
        let new = first[1].or(first[2]).unwrap();
        assert!(!a_rx.borrow().leads(now_ms()), "a still leads");
        assert!(
            new >= a_until,
            "the new leader led at {new} ms, before a's fence at {a_until} ms"
        );
        println!("cut off: a's fence at {a_until}, the next leader at {new} (+{} ms)", new - a_until);
        a.abort();

        // The new leader dies (no resign): the last one leads once its lease ends.
        let (dead, alive, alive_rx) = match first[1].is_some() {
            true => (b, c, c_rx.clone()),
            false => (c, b, b_rx.clone()),
        };
        let died = now_ms();
        dead.abort();
        let alive_name = if first[1].is_some() { "c" } else { "b" };
        let last = watch_leaders(&[(alive_name, alive_rx.clone())], |f| f[0].is_some()).await;
        let took = last[0].unwrap() - died;
        // A measurement, not a bound (the wait above is bounded): ~TTL here.
        println!("{alive_name} leads {took} ms after the leader died");
        alive.abort();
    });
}

/// Only members of the in-sync replica set campaign (or anyone while it is
/// empty); only the leader of the current term writes the set.
#[test]
fn only_in_sync_replicas_campaign_and_only_the_leader_writes_the_set() {
    let etcd = start_etcd();
    let rt = common::runtime();
    rt.block_on(async {
        let prefix = "/ringmq-isr";
        let keys = Keys::under(prefix);
        let client = Etcd::new(std::slice::from_ref(&etcd.endpoint), Duration::from_secs(2));
        let isr = |m: &[&str]| Isr {
            members: m.iter().map(|s| s.to_string()).collect(),
        };
        let set = serde_json::to_vec(&isr(&["b"])).unwrap();
        client.put(&keys.isr, &set, 0).await.unwrap();
        // a starts first but is not in the set: b leads.
        let (a, a_rx) = node(&etcd.endpoint, "a", prefix);
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(a_rx.borrow().leader, Leader::Unknown, "a campaigned");
        let (b, b_rx) = node(&etcd.endpoint, "b", prefix);
        watch_leaders(&[("a", a_rx.clone()), ("b", b_rx.clone())], |f| f[1].is_some()).await;
        let Leader::Me { term } = b_rx.borrow().leader.clone() else {
            panic!("b leads")
        };
        // The leader writes the set; a, not leading, cannot (nor b with another term).
        assert!(elect::write_isr(&client, &keys, "b", term, &isr(&["b", "a"]))
            .await
            .unwrap());
        assert!(!elect::write_isr(&client, &keys, "a", term, &isr(&["a"])).await.unwrap());
        assert!(!elect::write_isr(&client, &keys, "b", term + 1, &isr(&["a"]))
            .await
            .unwrap());
        let got: Isr = serde_json::from_slice(&client.get(&keys.isr).await.unwrap().unwrap().value).unwrap();
        assert_eq!(got, isr(&["b", "a"]));
        // Now a is in the set: when b dies, a leads.
        b.abort();
        watch_leaders(&[("a", a_rx.clone())], |f| f[0].is_some()).await;
        // b's term is over: its write is refused.
        assert!(!elect::write_isr(&client, &keys, "b", term, &isr(&["b"])).await.unwrap());
        a.abort();
    });
}
