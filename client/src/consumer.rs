//! A consumer with flow control by prefetch: basic.qos bounds how many
//! deliveries the broker sends before they are acknowledged, and this keeps
//! the window of the ones not yet acknowledged, so its user can see how much
//! credit is left and settle by tag (one, or every one up to a tag).
//!
//! Flow is the window: a user that cannot pass messages on (its destination
//! blocked, its confirms outstanding) stops acknowledging and the broker stops
//! sending once `prefetch` are out. RabbitMQ has no client-side channel.flow
//! (it refuses `active=false`), so credit is the only brake that works on it.

use std::collections::VecDeque;

use ringmq_codec::{BasicNack, Method};

use crate::connection::{ClientError, Connection, Result};

#[derive(Debug)]
pub struct Consumer {
    pub channel: u16,
    pub tag: String,
    /// 0: unbounded (no basic.qos limit).
    prefetch: u16,
    no_ack: bool,
    /// Delivery tags not yet settled, ascending (empty with no_ack).
    unacked: VecDeque<u64>,
}

impl Consumer {
    /// basic.qos (unless `prefetch` is 0), then basic.consume on `queue`.
    /// `arguments` are encoded field-table entries (`FieldTable::to_bytes`).
    pub async fn start(
        conn: &mut Connection,
        channel: u16,
        queue: &str,
        prefetch: u16,
        no_ack: bool,
        arguments: &[u8],
    ) -> Result<Consumer> {
        if prefetch > 0 {
            conn.qos(channel, prefetch).await?;
        }
        let tag = conn.consume(channel, queue, no_ack, arguments).await?;
        Ok(Consumer {
            channel,
            tag,
            prefetch,
            no_ack,
            unacked: VecDeque::new(),
        })
    }

    /// A consumer started without waiting for consume-ok (`no_wait`, its tag
    /// chosen by the caller; basic.qos already sent): a link that starts and
    /// cancels its consumer while deliveries flow, so no reply is awaited
    /// in the middle of them.
    pub fn started(channel: u16, tag: &str, prefetch: u16, no_ack: bool) -> Consumer {
        Consumer {
            channel,
            tag: tag.to_owned(),
            prefetch,
            no_ack,
            unacked: VecDeque::new(),
        }
    }

    /// A delivery for this consumer arrived.
    pub fn handle_delivery(&mut self, delivery_tag: u64) -> Result<()> {
        if self.no_ack {
            return Ok(());
        }
        if self.prefetch > 0 && self.unacked.len() >= self.prefetch as usize {
            return Err(ClientError::Protocol(format!(
                "delivery {delivery_tag} over the prefetch of {}",
                self.prefetch
            )));
        }
        self.unacked.push_back(delivery_tag);
        Ok(())
    }

    /// Deliveries not yet settled.
    pub fn unacked(&self) -> usize {
        self.unacked.len()
    }

    /// How many more deliveries the broker may send now (None: no bound).
    pub fn credit(&self) -> Option<usize> {
        (self.prefetch > 0).then(|| self.prefetch as usize - self.unacked.len())
    }

    fn settle(&mut self, delivery_tag: u64, multiple: bool) {
        if multiple {
            while self.unacked.front().is_some_and(|t| *t <= delivery_tag) {
                self.unacked.pop_front();
            }
        } else if let Ok(i) = self.unacked.binary_search(&delivery_tag) {
            self.unacked.remove(i);
        }
    }

    /// Queues basic.ack (the caller flushes) and opens the window by it.
    pub fn push_ack(&mut self, conn: &mut Connection, delivery_tag: u64, multiple: bool) {
        self.settle(delivery_tag, multiple);
        conn.push_ack(self.channel, delivery_tag, multiple);
    }

    /// Queues acks for `tags` (taken from the vector), as few as it can: one
    /// `multiple` ack when they are the oldest unsettled deliveries (the usual
    /// case: confirms come in publish order), one each otherwise.
    pub fn push_acks(&mut self, conn: &mut Connection, tags: &mut Vec<u64>) {
        if tags.is_empty() {
            return;
        }
        tags.sort_unstable();
        if let Some(last) = self.one_multiple(tags) {
            self.push_ack(conn, last, true);
        } else {
            for t in tags.iter() {
                self.push_ack(conn, *t, false);
            }
        }
        tags.clear();
    }

    /// The tag of one `multiple` ack that settles exactly `sorted` (they are
    /// the oldest unsettled), or None.
    fn one_multiple(&self, sorted: &[u64]) -> Option<u64> {
        let prefix = sorted.len() <= self.unacked.len() && sorted.iter().zip(&self.unacked).all(|(a, b)| a == b);
        prefix.then(|| *sorted.last().expect("not empty"))
    }

    /// Queues basic.nack (requeued or not) and opens the window by it.
    pub fn push_nack(&mut self, conn: &mut Connection, delivery_tag: u64, multiple: bool, requeue: bool) {
        self.settle(delivery_tag, multiple);
        let m = Method::BasicNack(BasicNack {
            delivery_tag,
            multiple,
            requeue,
        });
        conn.push_method(self.channel, &m);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_opens_by_what_is_settled() {
        let mut c = Consumer {
            channel: 1,
            tag: "t".into(),
            prefetch: 3,
            no_ack: false,
            unacked: VecDeque::new(),
        };
        for t in 1..=3 {
            c.handle_delivery(t).unwrap();
        }
        assert_eq!(c.credit(), Some(0));
        assert!(c.handle_delivery(4).is_err(), "over the prefetch");
        c.settle(2, false);
        assert_eq!((c.unacked(), c.credit()), (2, Some(1)));
        c.settle(3, true);
        assert_eq!(c.credit(), Some(3));
    }

    #[test]
    fn acks_for_the_oldest_deliveries_go_as_one_multiple() {
        let mut c = Consumer {
            channel: 1,
            tag: "t".into(),
            prefetch: 0,
            no_ack: false,
            unacked: (1..=6).collect(),
        };
        assert_eq!(c.one_multiple(&[1, 2, 3]), Some(3));
        assert_eq!(
            c.one_multiple(&[2, 3]),
            None,
            "1 is still out: a multiple ack would settle it"
        );
        assert_eq!(c.one_multiple(&[1, 3]), None, "2 is still out");
        c.settle(3, true);
        assert_eq!(c.one_multiple(&[4, 5]), Some(5));
        assert_eq!(c.one_multiple(&[4, 5, 6, 7]), None, "7 was never delivered");
    }
}
