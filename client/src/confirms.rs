//! Publisher confirms: which publishes the broker has settled.
//!
//! After confirm.select every publish on the channel has the next sequence
//! number from 1; the broker's basic.ack / basic.nack name one (or, with
//! `multiple`, every one up to it). [`Confirms`] keeps what the caller attached
//! to each outstanding publish (a shovel: the source's delivery tag) and hands
//! it back when it is settled. Sans-IO: the caller feeds it the events.

use std::collections::VecDeque;

/// How the broker settled a publish.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Ack,
    /// The broker could not take it (basic.nack): the publisher decides.
    Nack,
}

/// Outstanding publishes of one channel in confirm mode, in sequence order.
#[derive(Debug)]
pub struct Confirms<T> {
    next_seq: u64,
    /// (sequence number, the caller's value), ascending.
    outstanding: VecDeque<(u64, T)>,
}

impl<T> Default for Confirms<T> {
    fn default() -> Self {
        Confirms {
            next_seq: 1,
            outstanding: VecDeque::new(),
        }
    }
}

impl<T> Confirms<T> {
    /// A publish was queued: returns its sequence number.
    pub fn handle_publish(&mut self, value: T) -> u64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.outstanding.push_back((seq, value));
        seq
    }

    /// A basic.ack or basic.nack: the values it settles go to `out`, in order.
    /// A tag naming nothing outstanding settles nothing (a duplicate ack).
    pub fn handle_confirm(&mut self, delivery_tag: u64, multiple: bool, outcome: Outcome, out: &mut Vec<(T, Outcome)>) {
        if multiple {
            while self.outstanding.front().is_some_and(|(seq, _)| *seq <= delivery_tag) {
                let (_, v) = self.outstanding.pop_front().expect("front checked");
                out.push((v, outcome));
            }
        } else if let Ok(i) = self.outstanding.binary_search_by_key(&delivery_tag, |(seq, _)| *seq) {
            let (_, v) = self.outstanding.remove(i).expect("index found");
            out.push((v, outcome));
        }
    }

    /// Publishes not settled yet.
    pub fn outstanding(&self) -> usize {
        self.outstanding.len()
    }

    /// The channel is gone: what was never settled, in order (a new channel
    /// numbers from 1 again).
    pub fn take_unsettled(&mut self) -> Vec<T> {
        self.next_seq = 1;
        self.outstanding.drain(..).map(|(_, v)| v).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_multiple_and_nack_settle_exactly_what_they_name() {
        let mut c = Confirms::default();
        for v in ["a", "b", "c", "d", "e"] {
            c.handle_publish(v);
        }
        let mut out = Vec::new();
        c.handle_confirm(2, false, Outcome::Ack, &mut out);
        assert_eq!(out, [("b", Outcome::Ack)]);
        out.clear();
        c.handle_confirm(3, true, Outcome::Ack, &mut out);
        assert_eq!(out, [("a", Outcome::Ack), ("c", Outcome::Ack)]);
        out.clear();
        c.handle_confirm(3, false, Outcome::Ack, &mut out);
        assert!(out.is_empty(), "a duplicate settles nothing");
        c.handle_confirm(5, false, Outcome::Nack, &mut out);
        assert_eq!(out, [("e", Outcome::Nack)]);
        assert_eq!(c.outstanding(), 1);
        assert_eq!(c.take_unsettled(), ["d"]);
        assert_eq!(c.handle_publish("f"), 1, "a new channel numbers from 1");
    }
}
