//! Issue 22, the replication stream over real sockets and directories: a
//! leader changes its files while a follower, which started with files of
//! its own, syncs and follows; the follower is stopped mid-stream and started
//! again (its directory kept) and syncs again; in the end its directory
//! equals the leader's and it acknowledged every change.

mod common;

use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use ringmq::cluster::dir_files::DirFiles;
use ringmq::cluster::files::Files;
use ringmq::cluster::log::ReplLog;
use ringmq::cluster::stream::{follow, serve, Primary};
use ringmq::cluster::wire::Op;

const SECRET: &[u8] = b"test secret";

fn op(i: u64) -> Op {
    let path = format!("vhosts/v/q{}/{:04}.seg", i % 3, i % 5);
    match i % 7 {
        0 => Op::Replace {
            path: format!("vhosts/v/defs-{}.json", i % 2),
            bytes: format!("{{\"n\":{i}}}").into_bytes(),
        },
        1 => Op::Truncate { path, len: i % 50 },
        2 if i.is_multiple_of(3) => Op::Remove { path },
        _ => Op::Write {
            path,
            offset: (i * 37) % 400,
            bytes: vec![i as u8; 1 + (i % 200) as usize],
        },
    }
}

#[test]
fn a_follower_syncs_follows_and_resyncs_after_a_restart() {
    let leader_dir = tempfile::tempdir().unwrap();
    let follower_dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(leader_dir.path().join("vhosts/v/q0")).unwrap();
    std::fs::write(leader_dir.path().join("vhosts/v/q0/0000.seg"), vec![7u8; 100_000]).unwrap();
    std::fs::create_dir_all(follower_dir.path().join("stale")).unwrap();
    std::fs::write(follower_dir.path().join("stale/only-here"), b"x").unwrap();
    let rt = common::runtime();
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, async {
        let primary = Primary::new(
            Box::new(DirFiles::new(leader_dir.path(), &[])),
            ReplLog::new(64 << 10),
            1,
            SECRET,
        );
        let primary = Rc::new(RefCell::new(primary));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let at = listener.local_addr().unwrap().to_string();
        tokio::task::spawn_local(serve(listener, primary.clone()));
        let start_follower = || {
            let (tx, rx) = tokio::sync::watch::channel(0u64);
            let (at, dir) = (at.clone(), follower_dir.path().to_path_buf());
            let task = tokio::task::spawn_local(async move {
                let mut files = DirFiles::new(&dir, &[]);
                follow(
                    at,
                    "f1".into(),
                    SECRET.to_vec(),
                    &mut files,
                    Duration::from_millis(50),
                    tx,
                )
                .await;
            });
            (task, rx)
        };
        let record = |from: u64, to: u64| {
            let primary = primary.clone();
            async move {
                for i in from..to {
                    primary.borrow_mut().record(op(i)).unwrap();
                    if i % 50 == 0 {
                        tokio::time::sleep(Duration::from_millis(2)).await;
                    }
                }
            }
        };
        let (task, _rx) = start_follower();
        record(0, 1_500).await;
        task.abort(); // stopped mid-stream; its directory stays
        record(1_500, 2_000).await;
        // Started again: a full sync, then the live stream of what follows.
        let (_task, mut rx) = start_follower();
        record(2_000, 4_000).await;
        let last = primary.borrow().last_seq();
        let deadline = Instant::now() + Duration::from_secs(20);
        while *rx.borrow_and_update() < last {
            assert!(Instant::now() < deadline, "the follower has {} of {last}", *rx.borrow());
            let _ = tokio::time::timeout(Duration::from_millis(100), rx.changed()).await;
        }
        let acked = || primary.borrow().acks().get("f1").copied();
        while acked() != Some(last) {
            assert!(
                Instant::now() < deadline,
                "the leader saw the follower at {:?} of {last}",
                acked()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    });
    let mine = DirFiles::new(leader_dir.path(), &[]).list();
    let theirs = DirFiles::new(follower_dir.path(), &[]).list();
    assert!(mine.len() > 5, "{mine:?}");
    assert_eq!(theirs, mine, "the follower's directory equals the leader's");
}

/// A follower's relay: a client connected to it works with the leader
/// (lapin publishes with a confirm and gets the message back), and with no
/// leader known the connection is refused promptly.
#[test]
fn a_client_of_a_follower_is_served_by_the_leader() {
    use common::*;
    let b = Broker::new();
    let rt = common::runtime();
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, async {
        let leader = std::rc::Rc::new(RefCell::new(Some(b.addr().to_string())));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let via = listener.local_addr().unwrap();
        tokio::task::spawn_local(ringmq::cluster::relay::relay(listener, leader.clone()));
        let uri = format!("amqp://{}:{}@{via}/%2f", b.user(), b.pass());
        let conn = within(
            "connect through the relay",
            lapin::Connection::connect(&uri, Default::default()),
        )
        .await
        .expect("connect");
        let ch = confirm_channel(&conn).await;
        let q = unique("relay");
        declare_queue(&ch, &q, QueueDeclareOptions::default(), FieldTable::default()).await;
        assert!(matches!(
            publish(&ch, "", &q, b"via a follower").await,
            Confirmation::Ack(None)
        ));
        let got = within("get", ch.basic_get(q.as_str().into(), BasicGetOptions { no_ack: true }))
            .await
            .unwrap()
            .expect("a message");
        assert_eq!(got.delivery.data, b"via a follower");
        // No leader: refused, not hung.
        *leader.borrow_mut() = None;
        let r = tokio::time::timeout(
            Duration::from_secs(5),
            lapin::Connection::connect(&uri, Default::default()),
        )
        .await;
        assert!(matches!(r, Ok(Err(_))), "connected without a leader");
    });
}
