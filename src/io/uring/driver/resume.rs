//! Connections that stopped being read and go on: paused ones (the disk
//! alarm, another shard's answer awaited, the rings to other shards full) and
//! parked ones whose answer came.

use super::super::conn::Phase;
use super::feed::refeed;
use super::Driver;

impl Driver {
    /// Parked connections whose answer came from another shard: their kept
    /// input goes to the core again (a paused one's by `resume_paused`).
    pub(super) fn take_resumed(&mut self) {
        let mut ids = std::mem::take(&mut self.dirty_ids);
        self.shared.broker.borrow_mut().take_resumed(&mut ids);
        for id in ids.drain(..) {
            match self.by_id.get(&id) {
                Some(&slot) if self.slots[slot as usize].as_ref().is_some_and(|c| !c.paused) => {
                    self.more_input.push(slot);
                }
                Some(_) => {}
                None => {
                    if let Some(writer) = self.shared.writers.borrow().get(&id) {
                        writer.notify_one();
                    }
                }
            }
        }
        self.dirty_ids = ids;
    }

    pub(super) fn resume_paused(&mut self, now_ms: u64) {
        if self.paused.is_empty() {
            return;
        }
        for slot in std::mem::take(&mut self.paused) {
            let Some(conn) = self.slots[slot as usize].as_mut() else {
                continue;
            };
            if conn.phase != Phase::Open {
                continue;
            }
            if self.shared.broker.borrow().should_pause_reading(conn.id) {
                self.paused.push(slot);
                continue;
            }
            conn.paused = false;
            if refeed(&self.shared, conn, now_ms) {
                self.more_input.push(slot);
            }
            self.want_send.push(slot);
            self.rearm.push(slot);
        }
    }
}
