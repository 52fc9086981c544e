//! A shard's port on the rings (`io::rings`): what the core's `take_cross`
//! gives goes out as one batch per peer per loop turn, and what peers sent
//! comes in through [`cross_task`] to `handle_cross`.
//!
//! A full ring is back-pressure, never blocking and never a loss: the batch
//! waits in the peer's outbox, in order (a later batch for that peer queues
//! behind it), and is pushed again when the peer wakes this shard, which it
//! does at the end of the turn in which it made room (`rings` docs).
//!
//! Credit: what this shard sent a peer and the peer has not taken in yet
//! (in its ring or in the outbox) is counted by weight, roughly bytes
//! (`CrossMsg::weight`). While that is past [`flow_bytes`] for any peer, the
//! core holds back the connections whose publishes go to other shards
//! (`Broker::set_cross_flow`: their sockets are not read, TCP slows the
//! clients), as RabbitMQ's credit flow blocks a publisher that outruns a
//! queue; consumers, acks and publishers to this shard's own queues go on.
//! The peer wakes this shard when the count falls under half of it, and
//! they are read again. Before, a publisher to another shard's queue was
//! paced by nothing: the receiver's backlog grew to 430-510 MB of RSS under
//! 10p10c over 10 queues on 2 shards. Deliveries to consumers on other
//! shards are bounded by their permits, answers by their parked
//! connections. Draining what peers sent never stops, whatever this shard
//! holds back: two shards that wait for each other's credit still take each
//! other's batches, so neither waits for the other and they cannot
//! deadlock.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;
use std::sync::Arc;

use tokio::sync::Notify;

use super::Crew;
use crate::core::amqp::hand_off::Departing;
use crate::core::model::cross::CrossMsg;
use crate::core::model::meta::ShardId;
use crate::core::Broker;
use crate::io::rings::Links;
use crate::shard::Shared;

/// A loop turn's messages for one peer, with their weight, then the
/// connections handed to it (after the messages: what a connection
/// forwarded before it left is taken in before it arrives).
#[derive(Debug, Default)]
pub(crate) struct Batch {
    msgs: Vec<CrossMsg>,
    weight: usize,
    moving: Vec<Moving>,
}

/// A connection on its way to another shard (`core::amqp::hand_off`): its
/// core state, its socket, and the input it had not handled.
#[derive(Debug)]
pub(crate) struct Moving {
    pub departing: Departing,
    pub socket: std::os::fd::OwnedFd,
    pub input: Vec<u8>,
}

impl Moving {
    /// Its weight against the credit: its input and a fixed cost for the rest.
    fn weight(&self) -> usize {
        4096 + self.input.len()
    }
}

/// A connection another shard handed to this one, with its id here: the io
/// layer serves its socket from now on, its input first.
#[derive(Debug)]
pub(crate) struct Arrived {
    pub id: crate::core::model::ids::ConnId,
    pub socket: std::os::fd::OwnedFd,
    pub input: Vec<u8>,
}

/// Slots per ring: a turn pushes at most one batch per peer, and the epoll
/// backend's turns are one connection's input each, so a burst of small
/// batches fits before the outbox takes over.
pub(crate) const RING_SLOTS: usize = 64;
/// The weight in flight to one peer past which this shard's publishers to
/// other shards are held back: 16 MiB for up to 5 shards, so a peer
/// has ~50-100 ms of work queued at the rates measured here, and 64 MiB
/// over all peers with more, at least 1 MiB each.
pub(crate) fn flow_bytes(shards: u16) -> usize {
    const ALL_PEERS: usize = 64 << 20;
    (ALL_PEERS / usize::from(shards.max(2) - 1)).clamp(1 << 20, 16 << 20)
}
/// Batches taken from peers per turn of [`cross_task`] before the other
/// tasks of the shard get a turn. One: a batch is a whole turn of a peer's
/// (thousands of forwarded publishes under load), and while this shard
/// drains, its own connections wait, among them the consumers whose permits
/// the peer needs to send more. 10p10c over 10 queues on 2 shards
/// (`ringmqperf compare ... -- throughput -x 10 -y 10 -z 5 --queue-pattern
/// 'q-%d' --queue-pattern-from 1 --queue-pattern-to 10`, 3 rounds): consumed
/// 50 k msgs/s with 256 (turns of 680 ms), 0.57-0.72 M with 4, 1.53 M with 1.
const DRAIN_PER_TURN: usize = 1;

/// What a shard holds of the mesh (one per shard thread; `Shared::cross`).
pub(crate) struct CrossPort {
    links: RefCell<Links<Batch>>,
    outbox: RefCell<Outboxes<Batch>>,
    scratch: RefCell<Vec<(ShardId, Vec<CrossMsg>)>>,
    /// The weight in flight to one peer past which publishers to other
    /// shards are held back ([`flow_bytes`]), and whether they are.
    flow_at: usize,
    flow: std::cell::Cell<bool>,
    shards: u16,
    /// Counts for the shutdown's log line: batches sent and received, and
    /// the most that waited in the outboxes at once.
    stats: std::cell::Cell<(u64, u64, usize)>,
    pub crew: Arc<Crew>,
    /// The management API's jobs for this shard and the other shards'
    /// senders (`shard::peers`), until the shard's tasks start.
    jobs: RefCell<Option<super::Jobs>>,
    /// Wakes this shard's main loop when the crew stops.
    pub stop: Notify,
    /// Connections leaving for other shards, for the next [`CrossPort::pump`].
    departing: RefCell<Vec<Moving>>,
    /// Connections that came from other shards, for the io layer to serve.
    arrived: RefCell<Vec<Arrived>>,
}

impl CrossPort {
    pub(crate) fn new(links: Links<Batch>, crew: Arc<Crew>, shards: u16, jobs: super::Jobs) -> CrossPort {
        CrossPort {
            links: RefCell::new(links),
            outbox: RefCell::new(Outboxes::new(shards)),
            scratch: RefCell::new(Vec::new()),
            flow_at: flow_bytes(shards),
            shards,
            flow: Default::default(),
            stats: Default::default(),
            jobs: RefCell::new(Some(jobs)),
            crew,
            stop: Notify::new(),
            departing: RefCell::new(Vec::new()),
            arrived: RefCell::new(Vec::new()),
        }
    }

    /// Connection `m` goes to its target with the next [`CrossPort::pump`].
    pub(crate) fn depart(&self, m: Moving) {
        self.departing.borrow_mut().push(m);
    }

    /// The connections other shards handed here since the last call.
    pub(crate) fn take_arrived(&self) -> Vec<Arrived> {
        std::mem::take(&mut self.arrived.borrow_mut())
    }

    /// Whether connections came that the io layer has not taken yet.
    pub(crate) fn has_arrived(&self) -> bool {
        !self.arrived.borrow().is_empty()
    }

    pub(crate) fn shard(&self) -> ShardId {
        self.links.borrow().shard()
    }

    /// Takes this shard's wake-up (before taking batches in: a push after
    /// this wakes it again). Returns whether one was pending.
    pub(crate) fn take_wake(&self) -> bool {
        self.links.borrow().take_wake()
    }

    /// Logs what crossed (at shutdown).
    pub(crate) fn log_stats(&self) {
        let (sent, received, held_max) = self.stats.get();
        tracing::info!(shard = self.shard().0, sent, received, held_max, "cross-shard batches");
    }

    /// After a turn that called the core: what it made for other shards goes
    /// out (behind what waits in the outboxes), and each peer pushed to is
    /// woken once. Then the credit: publishers to other shards are held back
    /// while a peer has more than its bound in flight, until it has less
    /// than half. Returns true when they were and may go on now (the caller
    /// wakes their readers).
    pub(crate) fn pump(&self, broker: &mut Broker) -> bool {
        let mut links = self.links.borrow_mut();
        let mut out = self.scratch.borrow_mut();
        broker.take_cross(&mut out);
        let (mut sent, received, held_max) = self.stats.get();
        let batches = out.drain(..).filter(|(_, b)| !b.is_empty()).map(|(peer, msgs)| {
            let weight = msgs.iter().map(CrossMsg::weight).sum();
            let moving = Vec::new();
            (peer, Batch { msgs, weight, moving })
        });
        let mut batches: Vec<_> = batches.collect();
        for m in self.departing.borrow_mut().drain(..) {
            let to = m.departing.to;
            let at = match batches.iter().position(|(p, _)| *p == to) {
                Some(at) => at,
                None => {
                    batches.push((to, Batch::default()));
                    batches.len() - 1
                }
            };
            let b = &mut batches[at].1;
            b.weight += m.weight();
            b.moving.push(m);
        }
        for (peer, b) in &batches {
            sent += 1;
            links.add_weight(*peer, b.weight);
        }
        let mut outbox = self.outbox.borrow_mut();
        outbox.send(&mut links, batches.into_iter());
        self.stats.set((sent, received, held_max.max(outbox.held())));
        drop(outbox);
        if let Err(e) = links.end_turn() {
            tracing::error!(error = %e, "cannot wake another shard");
        }
        let peers = (0..self.shards).map(ShardId).filter(|&p| p != links.shard());
        let most = peers.map(|p| links.weight_to(p)).max().unwrap_or(0);
        let was = self.flow.get();
        let now = if was {
            most >= self.flow_at / 2
        } else {
            most > self.flow_at
        };
        if now != was {
            self.flow.set(now);
            broker.set_cross_flow(now);
        }
        was && !now
    }

    /// Takes up to [`DRAIN_PER_TURN`] batches from peers into the core;
    /// returns how many (fewer: nothing was left). The caller ends the turn
    /// ([`CrossPort::pump`]), which wakes the senders whose credit came back.
    pub(crate) fn take_in(&self, broker: &mut Broker, now_ms: u64) -> usize {
        let mut links = self.links.borrow_mut();
        let mut took = [(ShardId(0), 0); DRAIN_PER_TURN];
        let mut arrived = self.arrived.borrow_mut();
        let n = links.drain(DRAIN_PER_TURN, |from, batch| {
            broker.handle_cross(from, batch.msgs, now_ms);
            for m in batch.moving {
                let id = broker.arrive(m.departing, now_ms);
                let (socket, input) = (m.socket, m.input);
                arrived.push(Arrived { id, socket, input });
            }
            took[0] = (from, batch.weight);
            took.rotate_left(1); // the newest last
        });
        // The senders' credit back, after handling: a batch counts until its
        // messages are stored.
        for &(from, weight) in &took[DRAIN_PER_TURN - n..] {
            links.took_in(from, weight, self.flow_at / 2);
        }
        n
    }
}

/// Per peer, the batches its full ring gave back, oldest first: never
/// dropped, never blocking.
pub(crate) struct Outboxes<T> {
    queues: Vec<VecDeque<T>>,
    held: usize,
}

impl<T> Outboxes<T> {
    pub(crate) fn new(shards: u16) -> Outboxes<T> {
        Outboxes {
            queues: (0..shards).map(|_| VecDeque::new()).collect(),
            held: 0,
        }
    }

    /// Batches waiting for room.
    pub(crate) fn held(&self) -> usize {
        self.held
    }

    /// Pushes what waits for room, then `batches`, each behind what still
    /// waits for its peer (a peer's batches stay in order). The caller ends
    /// the turn (`Links::end_turn`).
    pub(crate) fn send(&mut self, links: &mut Links<T>, batches: impl Iterator<Item = (ShardId, T)>) {
        if self.held > 0 {
            for (i, q) in self.queues.iter_mut().enumerate() {
                while let Some(batch) = q.pop_front() {
                    if let Err(batch) = links.push(ShardId(i as u16), batch) {
                        q.push_front(batch);
                        break;
                    }
                    self.held -= 1;
                }
            }
        }
        for (peer, batch) in batches {
            let q = &mut self.queues[usize::from(peer.0)];
            let back = match q.is_empty() {
                true => links.push(peer, batch).err(),
                false => Some(batch),
            };
            if let Some(batch) = back {
                q.push_back(batch);
                self.held += 1;
            }
        }
    }
}

/// Serves the management API's jobs sent to this shard, and gives it the
/// other shards' senders (`shard::peers`): before the services start.
pub(crate) fn serve_jobs(shared: &Rc<Shared>) {
    let Some(port) = shared.cross.as_ref() else { return };
    let Some(jobs) = port.jobs.borrow_mut().take() else {
        return;
    };
    shared.set_peers(jobs.others);
    tokio::task::spawn_local(crate::shard::peers::serve(shared.clone(), jobs.mine));
}

/// Takes what peers send (on every wake of this shard) into the core, and
/// keeps the shard's copy of the metadata current on a shard without input
/// (on every wake, and every tick). Runs until the loop ends.
pub(crate) async fn cross_task(shared: Rc<Shared>) {
    let Some(port) = shared.cross.as_ref() else { return };
    let watch = match port.links.borrow().watch() {
        Ok(w) => w,
        Err(e) => {
            port.crew
                .fail(format!("shard {}: cannot watch its wake-up: {e}", port.shard().0));
            return;
        }
    };
    let mut tick = tokio::time::interval(crate::io::server::TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            r = watch.wait() => {
                if let Err(e) = r {
                    port.crew.fail(format!("shard {}: its wake-up failed: {e}", port.shard().0));
                    return;
                }
            }
            _ = tick.tick() => {}
        }
        loop {
            // Before popping: a push after this take wakes the shard again.
            port.take_wake();
            if port.crew.stopping() {
                port.stop.notify_one();
            }
            let t = shared.turns.start();
            let now = crate::io::now_ms();
            let n = {
                let mut b = shared.broker.borrow_mut();
                b.catch_up_meta();
                port.take_in(&mut b, now)
            };
            let (sent, received, held_max) = port.stats.get();
            port.stats.set((sent, received + n as u64, held_max));
            if shared.driver_kick.is_none() {
                // The epoll backend serves each connection handed here in a
                // task (the io_uring driver takes them at its next turn).
                for a in port.take_arrived() {
                    tokio::task::spawn_local(crate::io::conn::serve_arrived(shared.clone(), a));
                }
            }
            shared.after_core_call();
            shared.turns.end(t, "cross-shard batches", n);
            if n < DRAIN_PER_TURN {
                break;
            }
            tokio::task::yield_now().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::rings::mesh;

    #[test]
    fn a_full_ring_keeps_batches_in_order_and_sends_them_when_the_peer_makes_room() {
        let mut links = mesh::<u32>(2, 2).unwrap();
        let (peer, me) = (ShardId(1), ShardId(0));
        let mut boxes = Outboxes::new(2);
        boxes.send(&mut links[0], (0..5).map(|i| (peer, i)));
        links[0].end_turn().unwrap();
        assert_eq!(boxes.held(), 3, "two fit in the ring");
        // A later batch queues behind the held ones, even if the ring had room.
        assert_eq!(links[1].pop_from(me), Some(0));
        boxes.send(&mut links[0], std::iter::once((peer, 5)));
        assert_eq!(boxes.held(), 3);
        // The peer drains: the end of its turn wakes this shard to send more.
        links[0].take_wake();
        let mut got = Vec::new();
        links[1].drain(10, |_, b| got.push(b));
        links[1].end_turn().unwrap();
        assert!(links[0].take_wake(), "the peer that made room wakes the sender");
        while boxes.held() > 0 {
            boxes.send(&mut links[0], std::iter::empty());
            links[1].drain(10, |_, b| got.push(b));
        }
        assert_eq!(got, [1, 2, 3, 4, 5], "nothing lost, nothing reordered");
    }
}
