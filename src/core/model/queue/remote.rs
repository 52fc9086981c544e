//! A queue's consumers on other shards (`model::cross::consume`): the
//! permits their shards grant, spent one per delivery.

use crate::core::model::ids::ConnId;

use super::Queue;

impl Queue {
    /// The consumer's shard lets it be sent `permits` more deliveries.
    /// Returns whether the consumer is here (a grant can cross its cancel).
    pub fn grant(&mut self, conn: ConnId, channel: u16, tag: &str, permits: u32) -> bool {
        let Some(c) = self
            .consumers
            .iter_mut()
            .find(|c| c.conn == conn && c.channel == channel && *c.tag == *tag)
        else {
            return false;
        };
        c.permits = c.permits.saturating_add(permits);
        true
    }

    /// Spends one permit of the consumer at `index` (its delivery is on its way).
    pub fn spend_permit(&mut self, index: usize) {
        let c = &mut self.consumers[index];
        debug_assert!(c.permits > 0, "a delivery without a permit");
        c.permits = c.permits.saturating_sub(1);
    }
}
