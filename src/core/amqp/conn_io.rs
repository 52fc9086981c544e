//! What the io contract (`contract.rs`) and the broker's output list do to a
//! connection, one method per intent: input counted, output taken and
//! written, the dirty-list mark, the held answer to a refused login,
//! heartbeats and close timeouts on a tick, the handshake's end.

use crate::core::amqp::broker::{CLOSE_TIMEOUT_MS, OUT_HIGH_WATER_BYTES};
use crate::core::amqp::channel::ChannelState;
use crate::core::amqp::confirm::SyncState;
use crate::core::amqp::connection::{ConnState, Connection};
use crate::core::amqp::output::{Output, IDLE_RELEASE_MS};
use crate::core::model::ids::{QueueId, VhostName};
use crate::core::model::stats::MsgCounters;

impl Connection {
    /// Bytes arrived at `now_ms` (before they are processed).
    #[inline]
    /// Waiting for another shard's answer (`remote`).
    pub(in crate::core) fn is_parked(&self) -> bool {
        self.parked.is_some()
    }

    /// Stopped before a frame to move to another shard (`hand_off`).
    pub(in crate::core) fn is_leaving(&self) -> bool {
        self.leaving.is_some()
    }

    pub(in crate::core) fn note_input(&mut self, now_ms: u64) {
        self.last_recv_ms = now_ms;
    }

    /// One read of `used` bytes was processed; a refused login's answer is
    /// moved to the held output, to go out at its release time.
    #[inline]
    pub(in crate::core) fn count_input(&mut self, used: usize) {
        self.stats.recv_oct += used as u64;
        self.stats.recv_cnt += 1;
        if self.release_at_ms.is_some() {
            let out = std::mem::take(&mut self.out);
            self.held_out.append(out);
        }
    }

    /// Lists the output in the broker's dirty list: true when it was not
    /// listed yet (the caller pushes the id), so it is listed once.
    #[inline]
    pub(in crate::core) fn enlist_output(&mut self) -> bool {
        !std::mem::replace(&mut self.dirty, true)
    }

    /// The dirty list was taken by the io layer.
    #[inline]
    pub(in crate::core) fn delist_output(&mut self) {
        self.dirty = false;
    }

    /// Swaps the sendable output (the connection's own, or what `sync` holds
    /// for it until a group commit) with the empty `buf`, counting it.
    #[inline]
    pub(in crate::core) fn take_output(&mut self, sync: &mut SyncState, buf: &mut Output, now_ms: u64) {
        let out = sync.sendable(self.id, &mut self.out);
        if !out.is_empty() {
            self.last_send_ms = now_ms;
        }
        std::mem::swap(out, buf);
        self.stats.send_oct += buf.len() as u64;
        self.stats.send_cnt += u64::from(!buf.is_empty());
        self.output_was_full = buf.len() >= OUT_HIGH_WATER_BYTES;
    }

    /// The io layer wrote what it took: true when that was at the high-water
    /// mark, so deliveries may have been held back.
    #[inline]
    pub(in crate::core) fn output_written(&mut self) -> bool {
        std::mem::take(&mut self.output_was_full)
    }

    /// The queues this connection's consumers consume from.
    pub(in crate::core) fn consumed_queues(&self) -> impl Iterator<Item = QueueId> + '_ {
        self.channels
            .values()
            .flat_map(|ch| ch.consumers.values().map(|c| c.queue))
    }

    /// A refused login's answer goes out once its time has come: then the
    /// connection is closed (true: it has output).
    pub(in crate::core) fn release_refused_login(&mut self, now_ms: u64) -> bool {
        match self.release_at_ms {
            Some(at) if now_ms >= at => {
                self.release_at_ms = None;
                self.out = std::mem::take(&mut self.held_out);
                self.state = ConnState::Closed;
                true
            }
            _ => false,
        }
    }

    /// In the handshake for longer than `timeout_ms`.
    pub(in crate::core) fn handshake_timed_out(&self, now_ms: u64, timeout_ms: u64) -> bool {
        self.in_handshake && now_ms.saturating_sub(self.connected_at_ms) > timeout_ms
    }

    /// A tick's heartbeat and close-timeout work, and an idle connection's
    /// output buffer given back after [`IDLE_RELEASE_MS`] without output: a peer silent for two
    /// heartbeats is closed, a heartbeat goes out after half of one without
    /// output, a close unanswered for [`CLOSE_TIMEOUT_MS`] is given up.
    /// `held_back`: the broker is not reading this publisher's socket (flow
    /// control), so its silence is ours.
    pub(in crate::core) fn tick_heartbeats(&mut self, now_ms: u64, held_back: bool) {
        let hb_ms = self.tuning.heartbeat_secs as u64 * 1000;
        if now_ms.saturating_sub(self.last_send_ms) >= IDLE_RELEASE_MS {
            self.out.release_if_empty();
        }
        // Not read, so not heard: a publisher paused by an alarm, or a
        // connection parked for another shard's answer (`remote`), is not
        // taken for a dead peer.
        if held_back || self.parked.is_some() {
            self.last_recv_ms = now_ms;
        }
        match self.state {
            ConnState::Open if hb_ms > 0 => {
                if now_ms.saturating_sub(self.last_recv_ms) > 2 * hb_ms {
                    tracing::warn!(conn = %self.describe(), "missed heartbeats from client, closing");
                    self.state = ConnState::Closed;
                } else if now_ms.saturating_sub(self.last_send_ms) >= hb_ms / 2 {
                    ringmq_codec::encode_heartbeat(&mut self.out);
                    self.last_send_ms = now_ms;
                }
            }
            ConnState::Closing if now_ms.saturating_sub(self.closing_since_ms) > CLOSE_TIMEOUT_MS => {
                self.state = ConnState::Closed;
            }
            _ => {}
        }
    }

    /// Open channels with a delivery past its consumer timeout: (channel, timeout).
    pub(in crate::core) fn timed_out_channels(&self, now_ms: u64) -> Vec<(u16, u64)> {
        self.channels
            .iter()
            .filter(|(_, ch)| ch.state == ChannelState::Open)
            .filter_map(|(id, ch)| ch.timed_out(now_ms).map(|t| (*id, t)))
            .collect()
    }

    /// Accepted: counted among the handshakes until connection.open.
    pub(in crate::core) fn begin_handshake(&mut self) {
        self.in_handshake = true;
    }

    /// Leaves the handshake count: true when it was in it.
    pub(in crate::core) fn leave_handshake(&mut self) -> bool {
        std::mem::take(&mut self.in_handshake)
    }

    /// Gives up a connection in the handshake (timeout, eviction).
    pub(in crate::core) fn abort_handshake(&mut self) {
        self.state = ConnState::Closed;
        self.in_handshake = false;
    }

    /// Done: the io layer writes what is left, then closes the socket.
    pub(in crate::core) fn mark_closed(&mut self) {
        self.state = ConnState::Closed;
    }

    /// Counts one basic.publish on `channel` (the management API's publish).
    pub(in crate::core) fn count_publish(&mut self, channel: u16) {
        if let Some(ch) = self.channels.get_mut(&channel) {
            ch.stats.c.publish += 1;
        }
    }

    /// The stats tick: byte rates over `interval_ms`, then the message counts
    /// of every channel since the last tick, summed with the vhost they belong
    /// to (None, and no channel ticked, before connection.open named one).
    pub(in crate::core) fn tick_stats(&mut self, interval_ms: u64) -> Option<(&VhostName, MsgCounters)> {
        let s = &mut self.stats;
        let secs = interval_ms as f64 / 1000.0;
        s.recv_oct_rate = (s.recv_oct - s.prev_recv_oct) as f64 / secs;
        s.send_oct_rate = (s.send_oct - s.prev_send_oct) as f64 / secs;
        s.prev_recv_oct = s.recv_oct;
        s.prev_send_oct = s.send_oct;
        let v = self.vhost.as_ref()?;
        let mut sum = MsgCounters::default();
        for ch in self.channels.values_mut() {
            sum.add(&ch.stats.tick(interval_ms));
        }
        Some((v, sum))
    }
}
