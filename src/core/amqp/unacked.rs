//! A channel's deliveries waiting for an ack, in delivery-tag order.
//!
//! Delivery tags only grow on a channel, so a delivery is always the newest:
//! the log is a deque, appended at the back in O(1) (the `BTreeMap` it
//! replaces cost ~250 instructions per delivery in node searches and splits).
//! Acks come mostly from the front (in order, or `multiple` up to a tag); an
//! ack of a tag in the middle leaves a hole, found by binary search. Holes at
//! the front are dropped at once; the log is compacted when holes outnumber
//! the live entries, so one delivery never acked cannot make it grow without
//! bound while others flow (amortized O(1) per ack).

use std::collections::VecDeque;

use crate::core::amqp::channel::Unacked;

/// Holes kept before compaction is considered, so small logs never compact.
const HOLES_SLACK: usize = 64;

#[derive(Debug, Default)]
pub struct UnackedLog {
    /// (tag, delivery), tags strictly increasing; None is an acked hole. The
    /// front entry, when there is one, is never a hole.
    slots: VecDeque<(u64, Option<Unacked>)>,
    live: usize,
}

impl UnackedLog {
    /// Records a delivery. Tags must grow: a channel hands them out in order.
    pub fn push(&mut self, tag: u64, u: Unacked) {
        assert!(
            self.slots.back().is_none_or(|(last, _)| *last < tag),
            "delivery tag {tag} not after the last unacked one"
        );
        self.slots.push_back((tag, Some(u)));
        self.live += 1;
    }

    pub fn len(&self) -> usize {
        self.live
    }

    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    fn index(&self, tag: u64) -> Option<usize> {
        let i = self.slots.binary_search_by_key(&tag, |(t, _)| *t).ok()?;
        self.slots[i].1.is_some().then_some(i)
    }

    pub fn contains_key(&self, tag: u64) -> bool {
        self.index(tag).is_some()
    }

    /// Removes one delivery by its tag.
    pub fn remove(&mut self, tag: u64) -> Option<Unacked> {
        let i = self.index(tag)?;
        let u = self.slots[i].1.take();
        self.live -= 1;
        self.tidy();
        u
    }

    /// Removes every delivery with a tag at or below `upto`, oldest first.
    pub fn take_upto(&mut self, upto: u64, out: &mut Vec<(u64, Unacked)>) {
        while let Some((tag, _)) = self.slots.front() {
            if *tag > upto {
                break;
            }
            let (tag, u) = self.slots.pop_front().expect("front exists");
            if let Some(u) = u {
                self.live -= 1;
                out.push((tag, u));
            }
        }
        self.tidy();
    }

    /// Every delivery, oldest first.
    pub fn into_entries(self) -> impl Iterator<Item = (u64, Unacked)> {
        self.slots.into_iter().filter_map(|(t, u)| u.map(|u| (t, u)))
    }

    /// The deliveries, oldest first.
    pub fn values(&self) -> impl Iterator<Item = &Unacked> {
        self.slots.iter().filter_map(|(_, u)| u.as_ref())
    }

    /// Drops holes at the front, and compacts when holes outnumber live
    /// entries (by more than the slack).
    fn tidy(&mut self) {
        while self.slots.front().is_some_and(|(_, u)| u.is_none()) {
            self.slots.pop_front();
        }
        if self.slots.len() > 2 * self.live + HOLES_SLACK {
            self.slots.retain(|(_, u)| u.is_some());
            debug_assert_eq!(self.slots.len(), self.live);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::model::ids::QueueId;
    use ringmq_store::{SegmentId, SegmentPosition};

    fn u(n: u64) -> Unacked {
        Unacked {
            queue: QueueId(n),
            position: SegmentPosition {
                segment: SegmentId(0),
                offset: 0,
                size: 0,
            },
            consumer: None,
            timeout: None,
        }
    }

    fn tags(log: &UnackedLog) -> Vec<u64> {
        log.values().map(|u| u.queue.0).collect()
    }

    #[test]
    fn acks_from_the_front_the_middle_and_multiple() {
        let mut log = UnackedLog::default();
        for t in 1..=10 {
            log.push(t, u(t));
        }
        assert_eq!(log.remove(1).map(|u| u.queue.0), Some(1));
        assert_eq!(log.remove(5).map(|u| u.queue.0), Some(5));
        assert!(log.remove(5).is_none(), "acked twice");
        assert!(!log.contains_key(5) && log.contains_key(6));
        assert!(log.remove(11).is_none() && log.remove(0).is_none());
        let mut out = Vec::new();
        log.take_upto(7, &mut out);
        assert_eq!(out.iter().map(|(t, _)| *t).collect::<Vec<_>>(), [2, 3, 4, 6, 7]);
        assert_eq!(tags(&log), [8, 9, 10]);
        assert_eq!(log.len(), 3);
        assert_eq!(log.into_entries().map(|(t, _)| t).collect::<Vec<_>>(), [8, 9, 10]);
    }

    /// One delivery never acked while a million others come and go: the log
    /// stays small (holes are compacted), and the old one is still there.
    #[test]
    fn one_old_delivery_does_not_make_the_log_grow() {
        let mut log = UnackedLog::default();
        log.push(1, u(1));
        for t in 2..1_000_000 {
            log.push(t, u(t));
            assert!(log.remove(t).is_some());
            assert!(log.slots.len() <= 2 * log.len() + HOLES_SLACK + 1);
        }
        assert_eq!(tags(&log), [1]);
    }

    /// Against a BTreeMap: the same answers for a random mix of operations.
    #[test]
    fn behaves_as_an_ordered_map() {
        let mut rng = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        let mut log = UnackedLog::default();
        let mut map = std::collections::BTreeMap::new();
        let mut tag = 0;
        for _ in 0..200_000 {
            match next() % 10 {
                0..=4 => {
                    tag += 1 + next() % 3;
                    log.push(tag, u(tag));
                    map.insert(tag, tag);
                }
                5..=7 => {
                    let t = tag.saturating_sub(next() % 40);
                    assert_eq!(log.remove(t).map(|u| u.queue.0), map.remove(&t));
                }
                8 => {
                    let upto = tag.saturating_sub(next() % 60);
                    let mut out = Vec::new();
                    log.take_upto(upto, &mut out);
                    let rest = map.split_off(&(upto + 1));
                    let taken: Vec<u64> = std::mem::replace(&mut map, rest).into_keys().collect();
                    assert_eq!(out.into_iter().map(|(t, _)| t).collect::<Vec<_>>(), taken);
                }
                _ => {
                    let t = tag.saturating_sub(next() % 40);
                    assert_eq!(log.contains_key(t), map.contains_key(&t));
                }
            }
            assert_eq!(log.len(), map.len());
        }
        assert_eq!(tags(&log), map.into_keys().collect::<Vec<_>>());
    }
}
