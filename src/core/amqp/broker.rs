//! The broker core's state: every vhost and connection of a shard, opened and
//! recovered from the data directory, closed at shutdown. What the io layer
//! calls is in `contract`.

use crate::core::model::ids::VhostName;
use ringmq_codec::ShortString;

use crate::core::access::auth::Users;
use crate::core::alarms::Alarms;
use crate::core::amqp::connection::Connection;
use crate::core::config::CoreConfig;
use crate::core::model::ids::{ConnId, QueueId};

mod open;

/// Frames handled per `handle_input` call before returning to the loop, so one
/// busy connection cannot starve the others (the rest stays in its buffer).
pub const FRAMES_PER_INPUT_MAX: usize = 4096;
/// Bytes of pending output past which a connection gets no more deliveries until
/// the socket drains: bounds memory per slow consumer.
pub const OUT_HIGH_WATER_BYTES: usize = 1 << 20;
/// How long we wait for close-ok after sending connection.close.
pub const CLOSE_TIMEOUT_MS: u64 = 3_000;

/// A notice for another connection, applied after the current input is handled
/// (that connection may be the one being handled, which is out of the map then).
#[derive(Debug)]
pub enum Notice {
    /// Server-sent basic.cancel: the queue of this consumer is gone.
    CancelConsumer {
        conn: ConnId,
        channel: u16,
        tag: ShortString,
    },
    /// Close a connection with 320 CONNECTION_FORCED: its user or vhost was
    /// deleted (an access op, applied while the metadata log's lock is held).
    ForceClose { conn: ConnId, reason: String },
}

pub struct Broker {
    pub(in crate::core) config: CoreConfig,
    pub(in crate::core) users: Users,
    pub(in crate::core) permissions: crate::core::access::permissions::Permissions,
    /// The protocol-neutral state: vhosts, timers, dead letters, pending work.
    pub(in crate::core) model: crate::core::model::Model,
    pub(in crate::core) conns: crate::core::Map<ConnId, Box<Connection>>,
    /// Connections not yet opened, oldest first (see `handshake.rs`).
    pub(in crate::core) handshakes: crate::core::amqp::handshake::Handshakes,
    /// See [`Broker::take_trash`].
    trash: Vec<std::path::PathBuf>,
    /// Connections closed for not finishing the handshake in time, or evicted
    /// by a newer one at the bound; logged in batches, not one line each.
    handshake_drops: u64,
    handshake_drops_logged_ms: u64,
    next_conn_id: u64,
    /// Connections with output to write, in the order they got it.
    pub(in crate::core) dirty: Vec<ConnId>,
    pub(in crate::core) notices: Vec<Notice>,
    pub(in crate::core) sync: crate::core::amqp::confirm::SyncState,
    /// The resource alarms (free disk, memory) and their limits.
    pub(in crate::core) alarms: Alarms,
    /// The batches for another shard past their bound (`io::shards::cross`):
    /// connections whose publishes go to other shards' queues are not read
    /// (credit flow, as RabbitMQ's "flow" state), the others go on.
    pub(in crate::core) cross_flow: bool,
    started: bool,
    /// Seed-driven generator for server-named queues and consumer tags.
    rng: u64,
    /// Global runtime parameters (`global_parameters.json`).
    pub(in crate::core) global_parameters: Vec<crate::core::model::vhost_meta::GlobalParameter>,
    /// Node-wide message totals and history (management API, metrics).
    pub(in crate::core) node_stats: crate::core::model::stats::NodeStats,
    /// Counts of channels gone since the last stats tick, per vhost.
    pub(in crate::core) retired_stats: crate::core::Map<VhostName, crate::core::model::stats::MsgCounters>,
    /// With several shards, this shard's place in the metadata log (see
    /// `amqp::meta`); None with one shard.
    pub(in crate::core) meta: Option<crate::core::amqp::meta::MetaLink>,
    /// Parked connections whose answer came: their input is to be handed in
    /// again (`take_resumed`).
    pub(in crate::core) resumed: Vec<ConnId>,
    /// Connections stopped to move to another shard (`hand_off`), for the
    /// io layer.
    pub(in crate::core) leaving: Vec<ConnId>,
    /// The MQTT sessions' client ids, (vhost, client id): the connection
    /// that holds each (a second CONNECT takes it over, `core::mqtt`).
    pub(in crate::core) mqtt_clients: crate::core::Map<(String, String), ConnId>,
}

impl Broker {
    /// A broker with `users` and `permissions` and no vhost yet (see `open`).
    fn unopened(
        config: CoreConfig,
        seed: u64,
        users: Users,
        permissions: crate::core::access::permissions::Permissions,
    ) -> Broker {
        let model = crate::core::model::Model::new(config.sync);
        Broker {
            config,
            users,
            permissions,
            model,
            conns: Default::default(),
            handshakes: Default::default(),
            trash: Vec::new(),
            handshake_drops: 0,
            handshake_drops_logged_ms: 0,
            next_conn_id: 1,
            dirty: Vec::new(),
            notices: Vec::new(),
            sync: Default::default(),
            rng: seed | 1,
            alarms: Alarms::default(),
            cross_flow: false,
            started: false,
            global_parameters: Vec::new(),
            node_stats: Default::default(),
            retired_stats: Default::default(),
            meta: None,
            resumed: Vec::new(),
            leaving: Vec::new(),
            mqtt_clients: Default::default(),
        }
    }

    /// An open connection's session state, read-only (the fuzz targets' checks;
    /// the management API reads through `mgmt`'s views).
    pub fn connection(&self, id: ConnId) -> Option<&Connection> {
        self.conns.get(&id).map(|c| &**c)
    }

    /// Every connection's session state, read-only (see [`Broker::connection`]).
    pub fn connections(&self) -> impl Iterator<Item = &Connection> {
        self.conns.values().map(|c| &**c)
    }

    /// The protocol-neutral state, read-only.
    pub fn model(&self) -> &crate::core::model::Model {
        &self.model
    }

    /// Connection ids count from `base` + 1 (a shard's range, `amqp::meta`).
    pub(crate) fn set_conn_id_base(&mut self, base: u64) {
        self.next_conn_id = base + 1;
    }

    pub(crate) fn new_conn_id(&mut self) -> ConnId {
        let id = ConnId(self.next_conn_id);
        self.next_conn_id += 1;
        id
    }

    /// xorshift64*: deterministic for a seed, good enough for unique-looking names.
    pub(crate) fn random_u64(&mut self) -> u64 {
        let mut x = self.rng;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A RabbitMQ-style generated name: `prefix` + 22 url-safe base64 characters.
    pub(crate) fn generated_name(&mut self, prefix: &str) -> ShortString {
        const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let (a, b) = (self.random_u64(), self.random_u64());
        let mut s = String::with_capacity(prefix.len() + 22);
        s.push_str(prefix);
        for i in 0..22 {
            let bits = if i < 11 { a >> (i * 6) } else { b >> ((i - 11) * 6) };
            s.push(ALPHABET[(bits & 63) as usize] as char);
        }
        // Our prefixes are short literals: a cut here would hand out a name other
        // than the one a client is told.
        ShortString::try_from(s).expect("a short prefix and 22 characters")
    }

    /// Clean shutdown. Per vhost: the queues close first (synced), then the
    /// delayed exchanges' stores (a routed copy is durable before the ack of
    /// its original, see `delayed`), and only when all of that worked does the
    /// `running` marker go: otherwise the next open counts as after a crash.
    pub fn close(&mut self) -> std::io::Result<()> {
        let mut first_err = None;
        for (_, mut vhost) in self.model.vhosts.drain() {
            let mut vhost_err = None;
            if let Err(e) = vhost.definitions.sync() {
                tracing::error!(vhost = %vhost.name, error = %e, "syncing definitions failed");
                vhost_err.get_or_insert(e);
            }
            for (_, q) in std::mem::take(&mut vhost.queues) {
                let name = q.name().clone();
                if let Err(e) = q.close() {
                    tracing::error!(queue = %name, error = %e, "closing queue store failed");
                    vhost_err.get_or_insert(e);
                }
            }
            for (_, x) in std::mem::take(&mut vhost.exchanges) {
                if let Some(d) = x.delayed {
                    if let Err(e) = d.close() {
                        tracing::error!(exchange = %x.name, error = %e, "closing delayed store failed");
                        vhost_err.get_or_insert(e);
                    }
                }
            }
            // The transient queues are gone with the process: their files go too
            // (the io layer removes what `take_trash` gives, within its shutdown time).
            // With several shards, another's may still be open: the next start does it.
            let retired = if vhost.shared_by_shards() {
                Ok(Vec::new())
            } else {
                vhost.retire_transient()
            };
            match retired {
                Ok(t) => self.trash.extend(t),
                Err(e) => tracing::warn!(vhost = %vhost.name, error = %e, "cannot move transient queue files aside"),
            }
            if vhost_err.is_none() {
                if let Err(e) = vhost.release_running() {
                    tracing::error!(vhost = %vhost.name, error = %e, "cannot remove the running marker");
                    vhost_err = Some(e);
                }
            }
            if let Some(e) = vhost_err {
                first_err.get_or_insert(e);
            }
        }
        first_err.map_or(Ok(()), Err)
    }

    /// Folders of transient queue files that are no longer used: the io layer
    /// removes them in the background once the listeners are up, and at shutdown.
    pub fn take_trash(&mut self) -> Vec<std::path::PathBuf> {
        std::mem::take(&mut self.trash)
    }

    // ---- internals ----------------------------------------------------------

    /// Every entry point's time: the core's `now` moves forward only. The io
    /// layer's clock is monotonic (`sys::now_ms`), but callers such as tests and
    /// the management API pass their own; a time before the last one seen is
    /// taken as the last one, so a timer never fires twice and an age is never
    /// negative. Returns the core's `now`, for the caller to go on with.
    pub(crate) fn advance_clock(&mut self, now_ms: u64) -> u64 {
        self.model.now_ms = self.model.now_ms.max(now_ms);
        self.model.now_ms
    }

    /// The first input after open: arm the timers of recovered queues (their
    /// x-expires period and TTL heads) and delayed exchanges, which needs a `now`,
    /// and trim queues recovered over their length limit.
    pub(crate) fn ensure_started(&mut self, now_ms: u64) {
        if self.started {
            return;
        }
        self.started = true;
        let now_ms = self.advance_clock(now_ms);
        let all: Vec<(VhostName, QueueId)> = self
            .model
            .vhosts
            .iter()
            .flat_map(|(v, vh)| vh.queues.keys().map(move |q| (v.clone(), *q)))
            .collect();
        for (v, q) in all {
            self.model.touch_queue(&v, q);
            self.model.expiry_pending.push((v, q));
        }
        let mut delayed = Vec::new();
        for (v, vh) in &mut self.model.vhosts {
            for (name, x) in &mut vh.exchanges {
                let Some(d) = x.delayed.as_mut() else { continue };
                d.started(now_ms);
                if let Some(due) = d.next_due() {
                    delayed.push((v.clone(), name.clone(), due));
                }
            }
        }
        for (v, x, due) in delayed {
            self.model.timers.add(
                due,
                now_ms,
                &v,
                QueueId(0),
                crate::core::model::timers::TimerKind::Delayed(x),
            );
        }
        self.model.enforce_lengths_at_start();
        self.run_pending();
    }

    pub(crate) fn mark_dirty(&mut self, conn: &mut Connection) {
        if conn.enlist_output() {
            self.dirty.push(conn.id());
        }
    }

    pub(crate) fn mark_dirty_id(&mut self, id: ConnId) {
        if let Some(c) = self.conns.get_mut(&id) {
            if c.has_output() && c.enlist_output() {
                self.dirty.push(id);
            }
        }
    }

    /// Closes a connection that has not finished the handshake (the io layer sees
    /// it closed at its next turn or tick and drops the socket).
    pub(in crate::core) fn drop_in_handshake(&mut self, id: ConnId, now_ms: u64, why: &str) {
        let Some(conn) = self.conns.get_mut(&id) else { return };
        conn.abort_handshake();
        self.handshakes.finished();
        self.handshake_drops += 1;
        // One line per 10 s at most: a flood must not become a log flood.
        if now_ms.saturating_sub(self.handshake_drops_logged_ms) >= 10_000 {
            tracing::warn!(
                peer = %conn.describe(),
                dropped_since_last_line = self.handshake_drops,
                in_handshake = self.handshakes.count(),
                "connection closed before finishing the handshake ({why})"
            );
            self.handshake_drops = 0;
            self.handshake_drops_logged_ms = now_ms;
        }
        let mut conn = self.conns.remove(&id).expect("present");
        self.mark_dirty(&mut conn);
        self.conns.insert(id, conn);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The core's clock moves forward only, whichever entry point brings an
    /// older time (a test's or the management API's clock).
    #[test]
    fn the_core_clock_never_goes_back() {
        let dir = tempfile::tempdir().unwrap();
        let mut b = Broker::open(CoreConfig::for_tests(&dir.path().join("data")), 1).unwrap();
        b.handle_timeout(5_000);
        assert_eq!(b.model.now_ms, 5_000);
        b.handle_timeout(1_000);
        assert_eq!(b.model.now_ms, 5_000);
        b.delete_vhost("no-such-vhost", 2_000).unwrap_err();
        b.handle_timeout(7_000);
        assert_eq!(b.model.now_ms, 7_000);
    }
}
