//! The batches between shards in a test, played by the test: what each
//! shard's broker makes for another (`take_cross`) waits on the wire of
//! that ordered pair, in order, until the test hands it over (the rings of
//! `src/io/rings` keep each pair's batches in order too).

use std::collections::{BTreeMap, VecDeque};

use rand::rngs::StdRng;
use rand::Rng;

use super::harness::Harness;
use crate::core::model::cross::CrossMsg;
use crate::core::model::meta::ShardId;

/// Batches in flight, by (from, to).
pub type Wires = BTreeMap<(usize, usize), VecDeque<Vec<CrossMsg>>>;

/// What each shard made for the others goes on the wires.
pub fn carry(shards: &mut [Harness], wires: &mut Wires) {
    for (from, h) in shards.iter_mut().enumerate() {
        let mut out = Vec::new();
        h.broker_mut().take_cross(&mut out);
        for (to, batch) in out {
            assert_ne!(usize::from(to.0), from, "a shard sent itself a batch");
            wires.entry((from, usize::from(to.0))).or_default().push_back(batch);
        }
    }
}

/// Hands over one waiting batch of a pair the seed picks, in order.
pub fn hand_over(rng: &mut StdRng, shards: &mut [Harness], wires: &mut Wires) {
    let ready: Vec<(usize, usize)> = wires.iter().filter(|(_, w)| !w.is_empty()).map(|(k, _)| *k).collect();
    if let Some(&(from, to)) = ready.get(rng.random_range(0..ready.len().max(1))) {
        let batch = wires.get_mut(&(from, to)).and_then(VecDeque::pop_front).expect("ready");
        shards[to].handle_cross(ShardId(from as u16), batch);
    }
}

/// Hands everything over until nothing moves.
pub fn settle_all(shards: &mut [Harness], wires: &mut Wires) {
    loop {
        carry(shards, wires);
        let Some((&(from, to), _)) = wires.iter().find(|(_, w)| !w.is_empty()) else {
            return;
        };
        let batch = wires.get_mut(&(from, to)).and_then(VecDeque::pop_front).expect("ready");
        shards[to].handle_cross(ShardId(from as u16), batch);
    }
}
