//! A seeded simulation of one leader and one follower: the leader changes
//! its files all along (writes at random places, appends, truncates,
//! replacements, removals), the follower starts from files of its own (some
//! equal, some a prefix, some different, some the leader lacks), frames are
//! delivered in random amounts, the connection breaks at random (the follower
//! reconnects and syncs again), and the log's bound is small enough that a
//! follower falls behind it. At the end, with the connection left alone,
//! the follower's files equal the leader's and it acknowledged every change.

use super::files::{Files, MemFiles};
use super::follower::Follower;
use super::leader::Session;
use super::log::ReplLog;
use super::wire::{decode, encode, Op};

use super::test_rng::Rng;

const SECRET: &[u8] = b"the cluster's secret";

fn random_op(rng: &mut Rng, files: &MemFiles) -> Op {
    let path = format!("q{}/s{}", rng.below(3), rng.below(4));
    let len = files.files.get(&path).map_or(0, |f| f.len() as u64);
    match rng.below(10) {
        0..=4 => Op::Write {
            offset: len,
            bytes: rng.some_bytes(300, false),
            path,
        },
        5 | 6 => Op::Write {
            offset: rng.below(len + 1),
            bytes: rng.some_bytes(50, false),
            path,
        },
        7 => Op::Truncate {
            len: rng.below(len + 1),
            path,
        },
        8 => Op::Replace {
            bytes: rng.some_bytes(40, true),
            path,
        },
        _ => Op::Remove { path },
    }
}

/// One connection: the leader's session and the follower, with the bytes
/// in flight each way.
struct Link {
    session: Session,
    follower: Follower,
    to_follower: Vec<u8>,
    to_leader: Vec<u8>,
}

fn connect(rng: &mut Rng) -> Link {
    let nonce: [u8; 16] = rng.bytes(16).try_into().unwrap();
    Link {
        session: Session::new(7, nonce, SECRET),
        follower: Follower::new("f", SECRET),
        to_follower: Vec::new(),
        to_leader: Vec::new(),
    }
}

/// Moves frames both ways, up to `budget` of them; false if the link broke
/// (an error on either side: the follower reconnects).
fn pump(link: &mut Link, leader: &MemFiles, log: &ReplLog, follower: &mut dyn Files, budget: usize) -> bool {
    for _ in 0..budget {
        let mut moved = false;
        match link.session.poll_frame(leader, log) {
            Ok(Some(f)) => {
                encode(&mut link.to_follower, &f);
                moved = true;
            }
            Ok(None) => {}
            Err(_) => return false, // too far behind: sync again
        }
        while let Some(f) = link.follower.poll_frame() {
            // An ack promises the changes survive.
            follower.sync().unwrap();
            encode(&mut link.to_leader, &f);
            moved = true;
        }
        while let Ok((f, n)) = decode(&link.to_follower) {
            link.to_follower.drain(..n);
            if link.follower.handle_frame(f, follower).is_err() {
                return false;
            }
        }
        while let Ok((f, n)) = decode(&link.to_leader) {
            link.to_leader.drain(..n);
            if let Err(e) = link.session.handle_frame(f, leader, log) {
                panic!("the leader refused a correct follower: {e}");
            }
        }
        if !moved {
            break;
        }
    }
    true
}

fn simulate(seed: u64, on_disk: bool) {
    let mut rng = Rng::seeded(seed);
    let mut leader = MemFiles::default();
    for _ in 0..30 {
        let op = random_op(&mut rng, &leader);
        leader.apply(&op).unwrap();
    }
    // The follower's own files: a copy, then changes of its own.
    let mut follower = leader.clone();
    for _ in 0..rng.below(20) {
        let op = random_op(&mut rng, &follower);
        follower.apply(&op).unwrap();
    }
    follower.files.insert("gone/only-here".into(), rng.bytes(10));
    let dir = tempfile::tempdir().unwrap();
    let mut disk = super::dir_files::DirFiles::new(dir.path(), &[]);
    let follower: &mut dyn Files = match on_disk {
        true => {
            for (path, bytes) in &follower.files {
                let (path, bytes) = (path.clone(), bytes.clone());
                disk.apply(&Op::Replace { path, bytes }).unwrap();
            }
            &mut disk
        }
        false => &mut follower,
    };
    let mut log = ReplLog::new(4096 + rng.below(16_384) as usize);
    let mut link = connect(&mut rng);
    for _ in 0..2_000 {
        for _ in 0..rng.below(4) {
            let op = random_op(&mut rng, &leader);
            leader.apply(&op).unwrap();
            log.append(op);
        }
        let budget = rng.below(6) as usize;
        let whole = pump(&mut link, &leader, &log, follower, budget);
        if !whole || rng.below(300) == 0 {
            link = connect(&mut rng);
        }
    }
    // Quiet: the link is left alone until nothing moves.
    let mut rounds = 0;
    while !(link.session.is_live() && link.session.acked() == log.last_seq() && link.follower.is_live()) {
        if !pump(&mut link, &leader, &log, follower, 1_000) {
            link = connect(&mut rng);
        }
        rounds += 1;
        assert!(rounds < 100, "seed {seed}: the follower never caught up");
    }
    assert_eq!(
        follower.list(),
        leader.list(),
        "seed {seed}: the follower's files differ"
    );
    assert_eq!(link.follower.applied(), log.last_seq(), "seed {seed}");
}

#[test]
fn a_follower_ends_with_the_leaders_files_whatever_breaks_on_the_way() {
    let seeds: Vec<u64> = match std::env::var("RINGMQ_SEED") {
        Ok(s) => vec![s.parse().expect("RINGMQ_SEED is a number")],
        Err(_) => (1..=60).collect(),
    };
    for seed in seeds {
        println!("seed {seed} (RINGMQ_SEED={seed} replays it)");
        // Every twentieth on disk (`DirFiles`, which syncs before each ack:
        // slower), the rest in memory.
        simulate(seed, seed % 20 == 0);
    }
}

#[test]
fn a_follower_without_the_secret_is_refused() {
    let leader = MemFiles::default();
    let log = ReplLog::new(1 << 20);
    let mut session = Session::new(1, [3; 16], SECRET);
    let mut f = Follower::new("intruder", b"a guess");
    let mut files = MemFiles::default();
    let c = session.poll_frame(&leader, &log).unwrap().unwrap();
    f.handle_frame(c, &mut files).unwrap();
    let hello = f.poll_frame().unwrap();
    assert!(session.handle_frame(hello, &leader, &log).is_err());
}

/// A full sync with nothing changing meanwhile, each case of the plan once:
/// a shorter file with another prefix is copied whole, a shorter one with the
/// same prefix gets its tail, a longer one is cut, an equal one is left, one
/// the leader lacks goes, one the follower lacks comes.
#[test]
fn a_full_sync_makes_every_kind_of_difference_equal() {
    let mut leader = MemFiles::default();
    let mut follower = MemFiles::default();
    for (path, mine, theirs) in [
        ("a", Some(&b"hello world"[..]), Some(&b"hellX"[..])),
        ("b", Some(b"hello world"), Some(b"hello")),
        ("c", Some(b"abc"), Some(b"abcdef")),
        ("d", Some(b"same"), Some(b"same")),
        ("e", None, Some(b"extra")),
        ("f", Some(b"new"), None),
        ("g", Some(b""), None),
    ] {
        if let Some(m) = mine {
            leader.files.insert(path.into(), m.to_vec());
        }
        if let Some(t) = theirs {
            follower.files.insert(path.into(), t.to_vec());
        }
    }
    let log = ReplLog::new(1 << 20);
    let mut link = connect(&mut Rng::seeded(1));
    assert!(pump(&mut link, &leader, &log, &mut follower, 100));
    assert!(link.follower.is_live() && link.session.is_live());
    assert_eq!(follower, leader);
}
