//! Connections that have not finished the AMQP handshake: a deadline for each and
//! a bound on how many there are.
//!
//! Before `connection.open-ok` a connection has proved nothing (no login, maybe not
//! even the protocol header), yet it holds a socket and buffers. A client that
//! connects and sends nothing, or dribbles the header a byte every few seconds,
//! would keep them forever: 19,990 such sockets took an earlier build to its fd
//! limit and locked out real clients (issue 15, defect 6). So:
//!
//! - each must finish within the handshake timeout (RabbitMQ's `handshake_timeout`,
//!   10 s) or is closed, checked on the connection tick;
//! - at most [`HANDSHAKING_MAX`] may be in the handshake at once; one more evicts
//!   the oldest, the one nearest its deadline. A flood then only churns among
//!   itself, and a real client, which finishes in milliseconds, gets through
//!   (refusing the newest instead would let a flood that holds every slot lock
//!   real clients out).

use std::collections::VecDeque;

use crate::core::model::ids::ConnId;

/// Connections in the handshake at once. Far above any real burst of connects
/// (a pool of 1,000 clients reconnecting together), far below the fd limit.
pub const HANDSHAKING_MAX: usize = 4096;

/// The connections in the handshake, oldest first.
#[derive(Debug, Default)]
pub(crate) struct Handshakes {
    /// Connect order. Holds ids that have since finished or gone (removed lazily:
    /// `finished` is O(1)); [`Handshakes::prune`] drops them from the front, so
    /// the deque holds at most the connects of one timeout's span.
    order: VecDeque<ConnId>,
    /// How many are really in the handshake.
    count: usize,
}

impl Handshakes {
    pub fn started(&mut self, id: ConnId) {
        self.order.push_back(id);
        self.count += 1;
    }

    /// A connection left the handshake (opened, or went away while in it).
    pub fn finished(&mut self) {
        debug_assert!(self.count > 0, "handshake count underflow");
        self.count = self.count.saturating_sub(1);
    }

    pub fn count(&self) -> usize {
        self.count
    }

    /// Drops ids at the front that `in_handshake` says are done. Returns the oldest
    /// still in the handshake, if any.
    pub fn prune(&mut self, mut in_handshake: impl FnMut(ConnId) -> bool) -> Option<ConnId> {
        while let Some(&id) = self.order.front() {
            if in_handshake(id) {
                return Some(id);
            }
            self.order.pop_front();
        }
        None
    }

    /// The oldest in the handshake, taken off the order (the caller closes it).
    pub fn evict_oldest(&mut self, in_handshake: impl FnMut(ConnId) -> bool) -> Option<ConnId> {
        let id = self.prune(in_handshake)?;
        self.order.pop_front();
        Some(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn the_oldest_still_in_the_handshake_is_evicted_and_done_ones_are_pruned() {
        let mut h = Handshakes::default();
        let mut live: HashSet<u64> = HashSet::new();
        for i in 1..=5 {
            h.started(ConnId(i));
            live.insert(i);
        }
        // 1 and 2 opened; 3 is the oldest left.
        for i in [1, 2] {
            live.remove(&i);
            h.finished();
        }
        assert_eq!(h.count(), 3);
        assert_eq!(h.evict_oldest(|id| live.contains(&id.0)), Some(ConnId(3)));
        live.remove(&3);
        h.finished();
        assert_eq!(h.prune(|id| live.contains(&id.0)), Some(ConnId(4)));
        assert_eq!(h.order.len(), 2);
        live.clear();
        h.finished();
        h.finished();
        assert_eq!(h.prune(|id| live.contains(&id.0)), None);
        assert!(h.order.is_empty());
        assert_eq!(h.count(), 0);
    }
}
