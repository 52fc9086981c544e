//! The io contract: the calls `src/io` makes into the core, and nothing else.
//!
//! Inputs (`handle_*`): a connection opened, bytes received, output drained, a
//! timer tick, a connection lost, shutdown; alarms (`alarms`), sync results
//! (`handle_sync_done`, with `poll_sync` in `amqp::confirm`) and timers
//! (`poll_timeout`/`handle_timeout`, in `model::timers`). Outputs (`take_*` /
//! `poll_*`): which connections have output, each connection's bytes, whether
//! one is done. `now` is always passed in, so tests drive the core
//! deterministically without sockets or clocks (`testkit`).
//!
//! Order of work in one input: decode and handle every complete frame (methods may
//! queue deliveries and cross-connection notices), then run deliveries, then the
//! caller polls output. Deliveries therefore always follow the `*-ok` that enabled
//! them (consume-ok before the first deliver), as clients expect.

use ringmq_codec::{ProtocolError, ReplyCode, FRAME_MIN_SIZE};

use crate::core::amqp::broker::Broker;
use crate::core::amqp::connection::{Connection, Tuning};
use crate::core::amqp::output::Output;
use crate::core::model::cross::CrossMsg;
use crate::core::model::ids::{ConnId, QueueId};
use crate::core::model::meta::ShardId;
use crate::core::model::timers::{TimerKind, TIMERS_PER_TURN_MAX};

impl Broker {
    // ---- inputs -------------------------------------------------------------

    /// A TCP connection was accepted.
    pub fn handle_connect(&mut self, peer: String, peer_is_loopback: bool, now_ms: u64) -> ConnId {
        self.ensure_started(now_ms);
        let id = self.new_conn_id();
        self.node_stats
            .churn
            .bump(crate::core::model::stats::Churn::CONNECTION_CREATED);
        let tuning = Tuning {
            frame_max: FRAME_MIN_SIZE,
            channel_max: self.config.channel_max,
            heartbeat_secs: 0,
        };
        let mut conn = Box::new(Connection::new(id, peer, peer_is_loopback, tuning, now_ms));
        conn.begin_handshake();
        self.conns.insert(id, conn);
        self.handshakes.started(id);
        if self.handshakes.count() > crate::core::amqp::handshake::HANDSHAKING_MAX {
            let conns = &self.conns;
            let oldest = self
                .handshakes
                .evict_oldest(|c| conns.get(&c).is_some_and(|c| c.in_handshake()));
            if let Some(old) = oldest {
                self.drop_in_handshake(old, now_ms, "evicted: too many connections in the handshake");
            }
        }
        id
    }

    /// The connection's TLS handshake verified a client certificate: what it
    /// offers SASL EXTERNAL. The io layer calls this once, when the handshake
    /// ends and before the connection's first plaintext reaches
    /// [`Self::handle_input`] (a TLS client sends AMQP only after its
    /// handshake), so connection.start offers EXTERNAL to it and to no one else.
    pub fn handle_peer_certificate(&mut self, id: ConnId, identity: crate::core::access::auth::CertIdentity) {
        if let Some(conn) = self.conns.get_mut(&id) {
            conn.set_cert_identity(identity);
        }
    }

    /// Bytes arrived. Returns how many were consumed; the caller keeps the rest
    /// (an incomplete frame) and passes it again with more bytes appended.
    pub fn handle_input(&mut self, id: ConnId, input: &[u8], now_ms: u64) -> usize {
        let Some(mut conn) = self.conns.remove(&id) else {
            return input.len();
        };
        // Other shards' declares and bindings first: one atomic load when none.
        self.catch_up_meta();
        if conn.is_parked() || conn.is_leaving() {
            // Waiting for another shard's answer: the input stays with the
            // caller until `take_resumed` names this connection (or, leaving
            // for another shard, goes there with it: `hand_off`).
            self.conns.insert(id, conn);
            return 0;
        }
        conn.note_input(now_ms);
        let now_ms = self.advance_clock(now_ms);
        let used = if conn.login_refused() {
            input.len() // a refused login: nothing more is read
        } else {
            self.process_frames(&mut conn, input, now_ms)
        };
        crate::core::amqp::confirm::flush_ready_confirms(&mut conn, self.model.commit.synced);
        conn.count_input(used);
        if conn.has_output() {
            self.mark_dirty(&mut conn);
        }
        self.conns.insert(id, conn);
        self.after_input();
        used
    }

    /// The io layer wrote everything it took from this connection's output.
    pub fn handle_output_drained(&mut self, id: ConnId) {
        // Deliveries held back by the high-water mark may proceed. Only when the
        // output taken was over the mark can any have been held back: a write of
        // a small batch (the common case) costs nothing more here.
        let Some(conn) = self.conns.get_mut(&id) else { return };
        if !conn.output_written() {
            return;
        }
        if self.model.shards.count > 1 {
            self.regrant_all(id);
        }
        if let Some(conn) = self.conns.get(&id) {
            if let Some(vhost) = conn.vhost_key() {
                let vhost = vhost.clone();
                let queues: Vec<QueueId> = conn.consumed_queues().collect();
                for q in queues {
                    self.model.deliver_pending.push((vhost.clone(), q));
                }
            }
        }
        self.after_input();
    }

    /// Timer tick: heartbeats out, dead peers and stuck closes detected.
    pub fn handle_tick(&mut self, id: ConnId, now_ms: u64) {
        let Some(mut conn) = self.conns.remove(&id) else { return };
        if conn.login_refused() {
            if conn.release_refused_login(now_ms) {
                self.mark_dirty(&mut conn);
            }
            self.conns.insert(id, conn);
            return;
        }
        if conn.handshake_timed_out(now_ms, self.config.handshake_timeout_ms) {
            self.conns.insert(id, conn);
            self.drop_in_handshake(id, now_ms, "handshake_timeout");
            return;
        }
        // While publishers' sockets are not read (flow control), their silence is ours.
        let held_back = self.holds_back(&conn);
        conn.tick_heartbeats(now_ms, held_back);
        if conn.is_open() {
            let late = conn.timed_out_channels(now_ms);
            for (channel, t) in late {
                let e = ProtocolError::new(
                    ReplyCode::PreconditionFailed,
                    format!(
                        "delivery acknowledgement on channel {channel} timed out. Timeout value used: {t} ms. This timeout value can be configured, see consumers doc guide to learn more"
                    ),
                );
                self.close_channel(&mut conn, channel, e);
            }
        }
        if conn.has_output() {
            self.mark_dirty(&mut conn);
        }
        self.conns.insert(id, conn);
    }

    /// The socket is gone (EOF, error, or we closed it): release everything the
    /// connection held. Unacked messages go back to their queues.
    pub fn handle_disconnect(&mut self, id: ConnId) {
        let Some(mut conn) = self.conns.remove(&id) else { return };
        self.sync.forget(id);
        if conn.leave_handshake() {
            self.handshakes.finished();
        }
        self.node_stats
            .churn
            .bump(crate::core::model::stats::Churn::CONNECTION_CLOSED);
        if conn.user().is_some() {
            tracing::info!(conn = %conn.describe(), "connection closed");
        }
        let channels = conn.channel_numbers();
        for ch in channels {
            self.release_channel(&mut conn, ch);
            self.drop_channel(&mut conn, ch);
        }
        if let Some(vhost) = conn.vhost_key().cloned() {
            self.delete_exclusive_queues(&vhost, id);
        }
        self.after_input();
    }

    /// The broker is stopping: every open connection gets connection.close 320
    /// CONNECTION_FORCED, as RabbitMQ sends it, and is then considered closed.
    pub fn handle_shutdown(&mut self, now_ms: u64) {
        // Every written definition is durable before the last replies go out (the
        // io layer keeps running commits while it drains, which release them).
        crate::core::definitions::log::sync_now(&mut self.model);
        let ids: Vec<ConnId> = self.conns.keys().copied().collect();
        for id in ids {
            let Some(mut conn) = self.conns.remove(&id) else {
                continue;
            };
            if conn.is_open() {
                let e = ProtocolError::new(
                    ReplyCode::ConnectionForced,
                    "broker forced connection closure with reason 'shutdown'",
                );
                self.close_connection(&mut conn, e, now_ms);
            }
            conn.mark_closed();
            self.mark_dirty(&mut conn);
            self.conns.insert(id, conn);
        }
    }

    pub fn sync_running(&self) -> bool {
        self.model.commit.running.is_some()
    }

    /// A batch from shard `from` (`model::cross`): messages for this shard's
    /// queues, stored and delivered as a publish here would be, and the word
    /// of other shards that they stored this shard's publishes, which
    /// releases their confirms.
    pub fn handle_cross(&mut self, from: ShardId, msgs: Vec<CrossMsg>, now_ms: u64) {
        self.ensure_started(now_ms);
        self.advance_clock(now_ms);
        self.catch_up_meta();
        for msg in msgs {
            match msg {
                CrossMsg::Forwards(mut f) => {
                    f.localize(|v| self.model.local_vhost(v));
                    self.model.store_forwards(from, &f)
                }
                CrossMsg::ForwardDelayed(f) => self.model.store_delayed_forward(from, &f),
                CrossMsg::Stored { confirm, failed } => self.handle_stored(confirm, failed),
                CrossMsg::Ask(ask) => self.handle_ask(from, &ask),
                CrossMsg::Reply(reply) => self.handle_reply(from, &reply),
                CrossMsg::Settle(s) => self.model.handle_settlement(&s),
                CrossMsg::Delivers(mut d) => {
                    d.localize(|v| self.model.local_vhost(v));
                    self.handle_delivers(from, &d)
                }
                CrossMsg::Grant { consumer, permits } => self.handle_grant(&consumer, permits),
                CrossMsg::Cancel(k) => self.handle_cancel(&k),
            }
        }
        self.after_input();
    }

    // ---- outputs ------------------------------------------------------------

    /// What this shard has for other shards since the last call, a batch per
    /// peer (`model::cross`): the io layer hands each to its shard, in order.
    pub fn take_cross(&mut self, out: &mut Vec<(ShardId, Vec<CrossMsg>)>) {
        self.model.cross.take(out);
    }

    /// Connections that were parked for another shard's answer and may go on:
    /// the io layer hands each its unconsumed input again (`handle_input`
    /// took none of it while parked, and its reading was paused).
    pub fn take_resumed(&mut self, into: &mut Vec<ConnId>) {
        into.append(&mut self.resumed);
    }

    /// Connections that have output since the last call.
    pub fn take_dirty(&mut self, into: &mut Vec<ConnId>) {
        for id in self.dirty.drain(..) {
            if let Some(c) = self.conns.get_mut(&id) {
                c.delist_output();
                into.push(id);
            }
        }
    }

    /// Swaps the connection's pending output with `buf` (which must be empty);
    /// returns false if the connection is unknown. Bodies in the output stay in
    /// their segment mappings (see `output`) until `buf` is cleared.
    /// Output held for a group commit (a durable declare's reply and what follows
    /// it) stays until the commit is done (see `confirm`).
    pub fn take_output(&mut self, id: ConnId, buf: &mut Output, now_ms: u64) -> bool {
        debug_assert!(buf.is_empty());
        let Some(c) = self.conns.get_mut(&id) else { return false };
        c.take_output(&mut self.sync, buf, now_ms);
        true
    }

    /// [`Self::take_output`] as plain bytes, bodies copied in (tests and tools).
    pub fn poll_output(&mut self, id: ConnId, buf: &mut Vec<u8>, now_ms: u64) -> bool {
        let mut out = Output::default();
        let known = self.take_output(id, &mut out, now_ms);
        out.copy_to(buf);
        known
    }

    /// Whether the io layer should close the socket once output is written.
    pub fn is_closed(&self, id: ConnId) -> bool {
        self.conns
            .get(&id)
            .is_none_or(|c| c.is_done() && !self.sync.holds_output(id))
    }

    /// Whether the io layer should wait for the peer to close the socket: we
    /// answered its connection.close, and the spec lets the receiver of close-ok
    /// close the socket.
    pub fn should_linger(&self, id: ConnId) -> bool {
        self.conns.get(&id).is_some_and(|c| c.close_ok_sent())
    }

    /// Negotiated heartbeat, for the io layer's tick timer.
    pub fn heartbeat_secs(&self, id: ConnId) -> u16 {
        self.conns.get(&id).map_or(0, |c| c.tuning().heartbeat_secs)
    }

    /// Whether work is waiting for another turn (a per-turn bound was hit, or
    /// timers are due that did not fit in the last turn).
    pub fn has_pending_work(&self) -> bool {
        !self.model.deliver_pending.is_empty()
            || !self.notices.is_empty()
            || !self.model.dead_letters.is_empty()
            || !self.model.expiry_pending.is_empty()
            || self.model.timers.due_len() > 0
    }

    /// Continues deferred work (deliveries, dead letters, expiry checks and due
    /// timers beyond their per-turn bounds), one bounded batch of each.
    pub fn run_pending(&mut self) {
        self.after_input();
    }

    pub(in crate::core) fn after_input(&mut self) {
        if std::mem::take(&mut self.model.disk_low) {
            self.handle_disk_alarm(true);
        }
        self.apply_notices();
        self.fire_due_timers();
        self.model.process_dead_letters();
        self.model.run_expiry_checks();
        self.deliver();
    }
}

/// The timers of the io contract.
impl Broker {
    /// When the next timer is due (ms since the epoch), for the io layer's sleep.
    /// After `handle_timeout(now)` this is always after `now`; timers that are
    /// due but not yet handled (the per-turn bound) are pending work instead
    /// ([`Broker::has_pending_work`]).
    pub fn poll_timeout(&self) -> Option<u64> {
        match (self.model.timers.first(), self.model.ack_flush.due_ms()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Fires the timers due at `now_ms` (at most `TIMERS_PER_TURN_MAX` of them;
    /// the rest are pending work for the next turns), then the work they made.
    /// Returns how many fired, for the io layer's stall report.
    pub fn handle_timeout(&mut self, now_ms: u64) -> usize {
        let now_ms = self.advance_clock(now_ms);
        self.model.flush_acks_if_due(now_ms);
        self.model.timers.take_due(now_ms);
        let fired = self.model.timers.due_len().min(TIMERS_PER_TURN_MAX);
        self.run_pending();
        debug_assert!(
            self.poll_timeout().is_none_or(|t| t > now_ms),
            "a timer was armed at or before now ({now_ms})"
        );
        fired
    }

    /// Runs one batch of due timers (part of every turn's pending work).
    pub(crate) fn fire_due_timers(&mut self) {
        if self.model.timers.due_len() == 0 {
            return;
        }
        for (vname, id, kind) in self.model.timers.pop_due_batch() {
            match kind {
                TimerKind::Head => self.model.expire_head(&vname, id),
                TimerKind::QueueExpires => {
                    if self.model.queue_expiry_due(&vname, id) {
                        self.delete_queue(&vname, id);
                    }
                }
                TimerKind::Delayed(x) => self.model.fire_delayed(&vname, &x),
                TimerKind::TakeRetry => self.model.deliver_pending.push((vname, id)),
            }
        }
    }
}
