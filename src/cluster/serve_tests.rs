//! The recorded changes served by the leader's state machine: a follower
//! connects while the store works (a full sync from the data directory on
//! disk, then the live stream from the replication log that the recorder
//! fills), frames go through the codec a few at a time, and whenever the
//! link is quiet the follower's files equal the data directory byte for
//! byte. Seeded (`RINGMQ_REPLAY_SEED` runs one).

use std::sync::{Arc, Mutex};

use rand::Rng;

use super::dir_files::DirFiles;
use super::files::MemFiles;
use super::follower::Follower;
use super::leader::Session;
use super::log::ReplLog;
use super::record::Recorder;
use super::replay_world::World;
use super::replica_check::{diff, walk};
use super::wire::{decode, encode};

const SECRET: &[u8] = b"secret";

struct Link {
    session: Session,
    follower: Follower,
    to_follower: Vec<u8>,
    to_leader: Vec<u8>,
}

/// Moves up to `budget` frames each way; true when nothing was left to move.
fn pump(link: &mut Link, leader: &DirFiles, log: &ReplLog, replica: &mut MemFiles, budget: usize) -> bool {
    for _ in 0..budget {
        let mut moved = false;
        if let Some(f) = link.session.poll_frame(leader, log).expect("the log holds everything") {
            encode(&mut link.to_follower, &f);
            moved = true;
        }
        while let Some(f) = link.follower.poll_frame() {
            encode(&mut link.to_leader, &f);
            moved = true;
        }
        while let Ok((f, n)) = decode(&link.to_follower) {
            link.to_follower.drain(..n);
            link.follower.handle_frame(f, replica).expect("the follower applies");
        }
        while let Ok((f, n)) = decode(&link.to_leader) {
            link.to_leader.drain(..n);
            link.session.handle_frame(f, leader, log).expect("the leader accepts");
        }
        if !moved {
            return true;
        }
    }
    false
}

fn serve(seed: u64, steps: usize) -> usize {
    let root = tempfile::tempdir().unwrap();
    let log = Arc::new(Mutex::new(ReplLog::new(usize::MAX)));
    ringmq_store::changes::install(Box::new(Recorder::new(root.path(), log.clone())));
    let mut w = World::new(root.path(), seed);
    let leader = DirFiles::new(root.path(), &[]);
    let mut replica = MemFiles::default();
    let mut link: Option<Link> = None;
    let mut quiet_checks = 0;
    let connect_at = w.rng.random_range(50..steps / 2);
    let check = |replica: &MemFiles, when: &str| {
        if let Err(e) = diff(&replica.files, &walk(root.path())) {
            ringmq_store::changes::uninstall();
            panic!("seed {seed} {when}: {e}");
        }
    };
    for i in 0..steps {
        w.step();
        if i == connect_at {
            link = Some(Link {
                session: Session::new(1, [7; 16], SECRET),
                follower: Follower::new("f", SECRET),
                to_follower: Vec::new(),
                to_leader: Vec::new(),
            });
        }
        let Some(link) = link.as_mut() else { continue };
        // The leader's group commit: what is pending goes into the log.
        ringmq_store::changes::synced();
        let budget = w.rng.random_range(0..4);
        let quiet = pump(link, &leader, &log.lock().unwrap(), &mut replica, budget);
        if quiet && link.session.is_live() {
            check(&replica, &format!("step {i}"));
            quiet_checks += 1;
        }
    }
    w.close();
    ringmq_store::changes::synced();
    let link = link.as_mut().expect("connected");
    while !pump(link, &leader, &log.lock().unwrap(), &mut replica, 64) {}
    assert!(link.session.is_live());
    check(&replica, "after the close");
    assert_eq!(
        link.session.acked(),
        log.lock().unwrap().last_seq(),
        "every change acknowledged"
    );
    ringmq_store::changes::uninstall();
    quiet_checks
}

#[test]
fn a_follower_joining_mid_run_ends_with_the_data_directory() {
    let base: u64 = std::env::var("RINGMQ_REPLAY_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    let count = if std::env::var("RINGMQ_REPLAY_SEED").is_ok() {
        1
    } else {
        8
    };
    for seed in (0..count).map(|i| base.wrapping_add(i)) {
        eprintln!("serve seed {seed}");
        let checks = serve(seed, 1200);
        eprintln!("  {checks} checks with the link quiet");
    }
}
