//! The mesh with threads (each shard a thread with a current-thread runtime
//! that sleeps on its eventfd, as a shard loop will), and in one thread with
//! seeded interleavings (as the simulation will run it).

use std::collections::VecDeque;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::*;

/// A batch: who sent it and its number in that sender's sequence to us.
type Batch = (u16, u64);

/// Shard 0 sends far more than it gets, so it often finds every ring full and
/// sleeps with nothing coming in: only its peers' draining wakes it.
const SHARDS: u16 = 4;

fn batches(from: u16, _to: u16) -> u64 {
    if from == 0 {
        2_000
    } else {
        50
    }
}

#[test]
fn shards_on_threads_get_every_batch_once_in_order_and_no_wake_is_lost() {
    let links = mesh::<Batch>(SHARDS, 4).unwrap();
    let threads: Vec<_> = links
        .into_iter()
        .map(|l| std::thread::spawn(move || shard_thread(l)))
        .collect();
    for (shard, t) in threads.into_iter().enumerate() {
        let (received, full) = t.join().unwrap();
        let me = shard as u16;
        let want: u64 = (0..SHARDS).filter(|&p| p != me).map(|p| batches(p, me)).sum();
        assert_eq!(received, want, "shard {shard}");
        if shard == 0 {
            assert!(full > 0, "shard 0 never found a ring full: back-pressure untested");
        }
    }
}

/// One shard: sends its numbered batches to every peer (holding what a full
/// ring gives back), checks what it gets, sleeps on its eventfd when it has
/// nothing to do. Returns (batches received, pushes refused as full).
fn shard_thread(mut l: Links<Batch>) -> (u64, u64) {
    let shards = SHARDS;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let me = l.shard().0;
        let peers: Vec<u16> = (0..shards).filter(|&p| p != me).collect();
        let mut next_out = vec![0u64; usize::from(shards)];
        let mut next_in = vec![0u64; usize::from(shards)];
        let (mut received, mut full) = (0u64, 0u64);
        let watch = l.watch().unwrap();
        let total_in: u64 = peers.iter().map(|&p| batches(p, me)).sum();
        loop {
            if me != 0 {
                // Slow consumers: shard 0 fills its rings and sleeps before
                // they drain, so its wake-up must come from their draining.
                tokio::time::sleep(Duration::from_micros(100)).await;
            }
            // A turn: up to 8 batches to each peer, then wake them.
            for &p in &peers {
                for _ in 0..8 {
                    let n = next_out[usize::from(p)];
                    if n == batches(me, p) {
                        break;
                    }
                    match l.push(ShardId(p), (me, n)) {
                        Ok(()) => next_out[usize::from(p)] += 1,
                        Err(_) => {
                            full += 1;
                            break;
                        }
                    }
                }
            }
            l.end_turn().unwrap();
            l.take_wake();
            let got = l.drain(64, |from, (sender, n)| {
                assert_eq!(from.0, sender, "a batch came out of another peer's ring");
                assert_eq!(n, next_in[usize::from(sender)], "lost, repeated or out of order");
                next_in[usize::from(sender)] += 1;
            });
            received += got as u64;
            let sent_all = peers.iter().all(|&p| next_out[usize::from(p)] == batches(me, p));
            if sent_all && received == total_in {
                return (received, full);
            }
            if got == 0 && (sent_all || peers.iter().all(|&p| l.is_full(ShardId(p)))) {
                // Nothing to do until a peer pushes to us, or makes room in
                // a ring we found full: either wakes us.
                let woken = tokio::time::timeout(Duration::from_secs(10), watch.wait()).await;
                woken.expect("shard slept 10 s: a wake-up was lost").unwrap();
            }
        }
    })
}

#[test]
fn seeded_interleavings_in_one_thread_keep_each_pair_in_order() {
    let seeds: Vec<u64> = match std::env::var("RINGMQ_SIM_SEED").ok().and_then(|s| s.parse().ok()) {
        Some(seed) => vec![seed],
        None => {
            let base: u64 = rand::random();
            (0..20).map(|i| base.wrapping_add(i)).collect()
        }
    };
    for seed in seeds {
        eprintln!("rings seed {seed}");
        interleave(seed);
    }
}

fn interleave(seed: u64) {
    const SHARDS: u16 = 3;
    let mut rng = StdRng::seed_from_u64(seed);
    let mut links = mesh::<Batch>(SHARDS, 2).unwrap();
    let n = usize::from(SHARDS);
    // What each (sender, receiver) pair has in flight, oldest first.
    let mut in_flight: Vec<VecDeque<u64>> = vec![VecDeque::new(); n * n];
    let mut next = vec![0u64; n * n];
    // Whom each shard must wake at the end of its turn: peers it pushed to,
    // and peers whose full ring to it it made room in.
    let mut to_wake = vec![vec![false; n]; n];
    // A push from a to b was refused: b's next pop of that ring wakes a.
    let mut waiting = vec![vec![false; n]; n];
    for _ in 0..5_000 {
        let a = rng.random_range(0..n);
        let b = (a + rng.random_range(1..n)) % n;
        match rng.random_range(0..10) {
            0..=3 => {
                let k = a * n + b;
                match links[a].push(ShardId(b as u16), (a as u16, next[k])) {
                    Ok(()) => {
                        in_flight[k].push_back(next[k]);
                        next[k] += 1;
                        to_wake[a][b] = true;
                    }
                    Err(_) => {
                        assert_eq!(in_flight[k].len(), 2, "seed {seed}: refused with room");
                        waiting[a][b] = true;
                    }
                }
            }
            4..=5 => {
                links[a].end_turn().unwrap();
                for (peer, wake) in to_wake[a].iter_mut().enumerate() {
                    if std::mem::take(wake) {
                        assert!(links[peer].take_wake(), "seed {seed}: {a} did not wake {peer}");
                    }
                }
            }
            _ => {
                // Shard b pops shard a's ring.
                let got = links[b].pop_from(ShardId(a as u16));
                let want = in_flight[a * n + b].pop_front();
                if got.is_some() && std::mem::take(&mut waiting[a][b]) {
                    to_wake[b][a] = true;
                }
                assert_eq!(
                    got.map(|(s, x)| (usize::from(s), x)),
                    want.map(|x| (a, x)),
                    "seed {seed}"
                );
            }
        }
    }
    for b in 0..n {
        links[b].drain(usize::MAX, |from, (s, x)| {
            assert_eq!(from.0, s);
            let want = in_flight[usize::from(s) * n + b].pop_front();
            assert_eq!(Some(x), want, "seed {seed}: drain out of order");
        });
    }
    assert!(
        in_flight.iter().all(VecDeque::is_empty),
        "seed {seed}: batches left in rings"
    );
}

#[test]
fn drain_stops_at_its_bound() {
    let mut links = mesh::<u32>(3, 8).unwrap();
    for i in 0..5 {
        links[1].push(ShardId(0), i).unwrap();
        links[2].push(ShardId(0), 10 + i).unwrap();
    }
    let mut got = Vec::new();
    assert_eq!(links[0].drain(7, |_, x| got.push(x)), 7);
    assert_eq!(got, [0, 1, 2, 3, 4, 10, 11]);
    assert_eq!(
        links[0].drain(7, |_, x| got.push(x)),
        3,
        "fewer than the bound: all taken"
    );
}

#[test]
#[should_panic(expected = "not a peer")]
fn a_shard_has_no_ring_to_itself() {
    let mut links = mesh::<u32>(2, 2).unwrap();
    let _ = links[0].push(ShardId(0), 1);
}

#[test]
fn weight_in_flight_is_counted_per_pair_and_its_fall_under_the_mark_wakes_the_sender() {
    let mut links = mesh::<u32>(3, 4).unwrap();
    let (a, b, c) = (ShardId(0), ShardId(1), ShardId(2));
    links[0].add_weight(b, 300);
    links[0].add_weight(b, 200);
    links[2].add_weight(b, 50);
    assert_eq!(
        (links[0].weight_to(b), links[0].weight_to(c), links[2].weight_to(b)),
        (500, 0, 50)
    );
    let _ = links[0].take_wake();
    // Still over the mark: no wake.
    links[1].took_in(a, 200, 250);
    links[1].end_turn().unwrap();
    assert!(!links[0].take_wake(), "300 left, the mark is 250");
    // Under it: the sender is woken once, another sender's count is its own.
    links[1].took_in(a, 100, 250);
    links[1].took_in(c, 50, 250);
    links[1].end_turn().unwrap();
    assert!(links[0].take_wake(), "fell under the mark");
    assert!(!links[2].take_wake(), "never over it");
    assert_eq!((links[0].weight_to(b), links[2].weight_to(b)), (200, 0));
    links[1].took_in(a, 200, 250);
    links[1].end_turn().unwrap();
    assert!(!links[0].take_wake(), "already under it");
}
