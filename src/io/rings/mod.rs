//! What crosses between shards (`docs/shards.md`, step 2): between every
//! ordered pair of shards one bounded single-producer single-consumer ring of
//! batches ([`spsc`]), and per shard one wake-up ([`wake`]) that its peers
//! write after a loop turn in which they pushed to it.
//!
//! A shard collects what it has for a peer during a loop turn, pushes it as
//! one batch ([`Links::push`]) and at the end of the turn wakes each peer it
//! pushed to once ([`Links::end_turn`]). A full ring is back-pressure, never
//! blocking: the batch comes back and the caller stops producing for that
//! peer (as a connection over its output high-water mark stops being read),
//! and the peer wakes it at the end of the turn in which it made room.
//! A woken shard takes the wake, then pops what its peers sent
//! ([`Links::drain`]). With N shards there are N(N-1) rings; 64 shards with 8
//! slots of one pointer each is 32 K slots, 4 MiB with the padded indexes.
//!
//! Credit: a full ring bounds batches, not bytes, and a batch is a whole
//! turn's messages. Each ordered pair of shards also counts the weight (the
//! bytes, roughly) sent and not yet taken in ([`Links::add_weight`],
//! [`Links::took_in`]); the sender holds its publishers back while the count
//! is past its bound, and the receiver wakes it once the count falls under
//! the point where it may go on.
//!
//! The simulation runs all shards' links in one thread and chooses, by its
//! seed, which shard pops which peer's ring next ([`Links::pop_from`]): the
//! same code as the threads run, deterministically interleaved.

pub mod spsc;
pub mod wake;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use crate::core::model::meta::shard::SHARDS_MAX;
use crate::core::model::meta::ShardId;
use spsc::{Consumer, Producer};
use wake::Wake;

/// One shard's ends of the mesh: a producer to every peer, a consumer from
/// every peer, its own wake-up and its peers'.
pub struct Links<T> {
    me: ShardId,
    /// Indexed by peer shard; None at `me`.
    to: Vec<Option<Producer<T>>>,
    from: Vec<Option<Consumer<T>>>,
    wakes: Arc<[Wake]>,
    /// The peers to wake at the end of the turn: pushed to, or whose full
    /// ring to this shard it drained.
    to_wake: Vec<bool>,
    /// Per ordered pair (`from * n + to`): the weight sent and not yet taken
    /// in by the receiver.
    weights: Arc<[AtomicUsize]>,
}

impl<T> std::fmt::Debug for Links<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Links").field("me", &self.me).finish_non_exhaustive()
    }
}

/// The links of `shards` shards, index = shard, with rings of `slots` batches.
pub fn mesh<T: Send>(shards: u16, slots: usize) -> std::io::Result<Vec<Links<T>>> {
    assert!((1..=SHARDS_MAX).contains(&shards), "{shards} shards");
    let n = usize::from(shards);
    let wakes: Arc<[Wake]> = (0..n).map(|_| Wake::new()).collect::<std::io::Result<Vec<_>>>()?.into();
    let weights: Arc<[AtomicUsize]> = (0..n * n).map(|_| AtomicUsize::new(0)).collect();
    let mut links: Vec<Links<T>> = (0..n)
        .map(|i| Links {
            me: ShardId(i as u16),
            to: (0..n).map(|_| None).collect(),
            from: (0..n).map(|_| None).collect(),
            wakes: wakes.clone(),
            to_wake: vec![false; n],
            weights: weights.clone(),
        })
        .collect();
    for a in 0..n {
        for b in (0..n).filter(|&b| b != a) {
            let (p, c) = spsc::ring(slots);
            links[a].to[b] = Some(p);
            links[b].from[a] = Some(c);
        }
    }
    Ok(links)
}

impl<T> Links<T> {
    /// The shard these links belong to.
    pub fn shard(&self) -> ShardId {
        self.me
    }

    /// Pushes a batch to `peer`, or gives it back when its ring is full (keep
    /// it, stop producing for that peer, try again next turn).
    pub fn push(&mut self, peer: ShardId, batch: T) -> Result<(), T> {
        let i = usize::from(peer.0);
        let Some(ring) = self.to.get_mut(i).and_then(Option::as_mut) else {
            panic!("shard {:?} pushed to {peer:?}: not a peer", self.me);
        };
        ring.push(batch)?;
        self.to_wake[i] = true;
        Ok(())
    }

    /// Whether a push to `peer` would give the batch back now (then the peer
    /// wakes this shard when it has made room).
    pub fn is_full(&mut self, peer: ShardId) -> bool {
        self.to[usize::from(peer.0)].as_mut().is_some_and(Producer::is_full)
    }

    /// The end of a loop turn: every peer pushed to during it, and every peer
    /// waiting for room in a ring this shard drained, is woken once.
    pub fn end_turn(&mut self) -> std::io::Result<()> {
        for (i, wake) in self.to_wake.iter_mut().enumerate() {
            if std::mem::take(wake) {
                self.wakes[i].wake()?;
            }
        }
        Ok(())
    }

    /// Takes this shard's wake (before popping: see [`Wake::take`]). Returns
    /// whether one was pending.
    pub fn take_wake(&self) -> bool {
        self.wakes[usize::from(self.me.0)].take()
    }

    /// The oldest batch from `peer`, if any.
    pub fn pop_from(&mut self, peer: ShardId) -> Option<T> {
        let i = usize::from(peer.0);
        let ring = self.from.get_mut(i)?.as_mut()?;
        let batch = ring.pop()?;
        if ring.take_producer_waiting() {
            self.to_wake[i] = true;
        }
        Some(batch)
    }

    /// Pops every batch the peers have sent, peer by peer (each peer's in the
    /// order it pushed them), up to `max` batches, so one turn's work stays
    /// bounded; returns how many. Fewer than `max`: nothing was left.
    pub fn drain(&mut self, max: usize, mut f: impl FnMut(ShardId, T)) -> usize {
        let mut n = 0;
        for (i, ring) in self.from.iter_mut().enumerate() {
            let Some(ring) = ring else { continue };
            let before = n;
            while n < max {
                let Some(batch) = ring.pop() else { break };
                f(ShardId(i as u16), batch);
                n += 1;
            }
            if n > before && ring.take_producer_waiting() {
                self.to_wake[i] = true;
            }
        }
        n
    }

    fn weight_of(&self, from: ShardId, to: ShardId) -> &AtomicUsize {
        &self.weights[usize::from(from.0) * self.to.len() + usize::from(to.0)]
    }

    /// Counts `weight` more sent to `peer` (when made: a batch waiting in
    /// an outbox counts as sent).
    pub fn add_weight(&self, peer: ShardId, weight: usize) {
        self.weight_of(self.me, peer).fetch_add(weight, Ordering::Relaxed);
    }

    /// The weight sent to `peer` that it has not taken in yet.
    pub fn weight_to(&self, peer: ShardId) -> usize {
        self.weight_of(self.me, peer).load(Ordering::Relaxed)
    }

    /// The receiver's side: `weight` of what `from` sent was taken in. When
    /// that brings what `from` has in flight to this shard under
    /// `resume_at`, `from` is woken at the end of the turn: it may be
    /// holding its publishers back for it.
    pub fn took_in(&mut self, from: ShardId, weight: usize, resume_at: usize) {
        let before = self.weight_of(from, self.me).fetch_sub(weight, Ordering::AcqRel);
        debug_assert!(before >= weight, "took in more than was sent");
        if before >= resume_at && before - weight < resume_at {
            self.to_wake[usize::from(from.0)] = true;
        }
    }

    /// Every shard's wake-up, index = shard (to wake them for something
    /// other than a push: the metadata log's growth, a stop).
    pub fn wakes(&self) -> Arc<[Wake]> {
        self.wakes.clone()
    }

    /// A watch on this shard's wake-up for its loop (inside its runtime).
    pub fn watch(&self) -> std::io::Result<wake::Watch> {
        self.wakes[usize::from(self.me.0)].watch()
    }
}

#[cfg(test)]
mod tests;
