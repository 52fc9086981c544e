//! The broker core: every vhost and connection of a shard, driven by the io layer.
//!
//! Inputs (`handle_*`): a connection opened, bytes received, output drained, a
//! timer tick, a group commit finished, a connection lost. Outputs (`poll_*` /
//! `take_*`): each connection's outgoing bytes, which connections have output,
//! which files need an fsync, whether a connection is done. `now` is always passed
//! in, so tests drive this deterministically without sockets or clocks.
//!
//! Order of work in one input: decode and handle every complete frame (methods may
//! queue deliveries and cross-connection notices), then run deliveries, then the
//! caller polls output. Deliveries therefore always follow the `*-ok` that enabled
//! them (consume-ok before the first deliver), as clients expect.

use ringmq_codec::{short, ShortStr, ShortString};
use std::path::PathBuf;
use std::sync::Arc;

use ringmq_codec::{
    check_protocol_header, encode_method, split_frame, ChannelClose, ConnectionClose, ConnectionStart, DecodeError,
    Frame, Method, ProtocolError, ReplyCode, Table, FRAME_MIN_SIZE, PROTOCOL_HEADER,
};
use ringmq_store::StoreConfig;

use crate::core::access::auth::{Users, MECHANISMS};
use crate::core::amqp::channel::ChannelState;
use crate::core::amqp::connection::{server_properties, ConnState, Connection, Tuning};
use crate::core::amqp::output::Output;
use crate::core::model::ids::{ConnId, QueueId};
use crate::core::model::vhost::VHost;

/// Frames handled per `handle_input` call before returning to the loop, so one
/// busy connection cannot starve the others (the rest stays in its buffer).
pub const FRAMES_PER_INPUT_MAX: usize = 4096;
/// Bytes of pending output past which a connection gets no more deliveries until
/// the socket drains: bounds memory per slow consumer.
pub const OUT_HIGH_WATER_BYTES: usize = 1 << 20;
/// How long we wait for close-ok after sending connection.close.
pub const CLOSE_TIMEOUT_MS: u64 = 3_000;

/// Broker-wide settings the core needs (the io layer owns the rest).
#[derive(Debug, Clone)]
pub struct CoreConfig {
    pub data_dir: PathBuf,
    pub frame_max: u32,
    pub channel_max: u16,
    pub heartbeat_secs: u16,
    pub max_message_bytes: u64,
    pub store: StoreConfig,
    /// false = `--no-sync`: confirm without waiting for fsync.
    pub sync: bool,
    /// The user created at start (RabbitMQ's guest): name, password, loopback only.
    pub default_user: (String, String, bool),
    /// Broker-wide consumer timeout (ms); `x-consumer-timeout` overrides it per
    /// queue. None: off, as LavinMQ (RabbitMQ's default is 30 minutes).
    pub consumer_timeout_ms: Option<u64>,
    /// `--load-definitions FILE`: a definitions JSON imported at every start
    /// (as RabbitMQ's `load_definitions`); a bad file stops the start.
    pub load_definitions: Option<PathBuf>,
    /// `max_consumers_per_channel` (LavinMQ's key): basic.consume beyond it is a
    /// channel error 506. None: only the hard bound `CONSUMERS_PER_CHANNEL_MAX`.
    pub max_consumers_per_channel: Option<std::num::NonZeroU32>,
    /// A connection must finish the handshake (up to connection.open-ok) within
    /// this or is closed (RabbitMQ's `handshake_timeout`).
    pub handshake_timeout_ms: u64,
}

/// RabbitMQ's default `handshake_timeout`.
pub const DEFAULT_HANDSHAKE_TIMEOUT_MS: u64 = 10_000;

impl CoreConfig {
    /// Small, fast settings for unit tests in `dir` (no fsync, 64 KiB segments).
    #[cfg(test)]
    pub(crate) fn for_tests(dir: &std::path::Path) -> CoreConfig {
        CoreConfig {
            data_dir: dir.to_path_buf(),
            frame_max: 131072,
            channel_max: 16,
            heartbeat_secs: 0,
            max_message_bytes: 1 << 20,
            store: StoreConfig {
                segment_bytes: 64 * 1024,
                ..Default::default()
            },
            sync: false,
            default_user: ("guest".into(), "guest".into(), true),
            consumer_timeout_ms: None,
            load_definitions: None,
            max_consumers_per_channel: None,
            handshake_timeout_ms: DEFAULT_HANDSHAKE_TIMEOUT_MS,
        }
    }
}

/// A client error, by scope: closes the channel or the whole connection.
#[derive(Debug)]
pub enum Exception {
    Channel(ProtocolError),
    Connection(ProtocolError),
}

pub type MethodResult = Result<(), Exception>;

pub fn channel_error(code: ReplyCode, text: impl Into<String>) -> Exception {
    Exception::Channel(ProtocolError::new(code, text.into()))
}

pub fn connection_error(code: ReplyCode, text: impl Into<String>) -> Exception {
    Exception::Connection(ProtocolError::new(code, text.into()))
}

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
}

pub struct Broker {
    pub config: CoreConfig,
    pub users: Users,
    pub permissions: crate::core::access::permissions::Permissions,
    pub vhosts: super::Map<Arc<str>, VHost>,
    pub conns: super::Map<ConnId, Connection>,
    /// Connections not yet opened, oldest first (see `handshake.rs`).
    pub(crate) handshakes: crate::core::amqp::handshake::Handshakes,
    /// See [`Broker::take_trash`].
    trash: Vec<std::path::PathBuf>,
    /// Connections closed for not finishing the handshake in time, or evicted
    /// by a newer one at the bound; logged in batches, not one line each.
    handshake_drops: u64,
    handshake_drops_logged_ms: u64,
    next_conn_id: u64,
    next_queue_id: u64,
    /// Connections with output to write, in the order they got it.
    pub(crate) dirty: Vec<ConnId>,
    pub(crate) notices: Vec<Notice>,
    /// Queues that may be able to deliver (new messages, new credit, new consumer).
    pub(crate) deliver_pending: Vec<(Arc<str>, QueueId)>,
    pub(crate) sync: crate::core::amqp::confirm::SyncState,
    /// The time of the input being handled (ms since the Unix epoch).
    pub(crate) now_ms: u64,
    pub(crate) route_scratch: Vec<QueueId>,
    /// The resource alarms (free disk, memory) and their limits.
    pub alarms: Alarms,
    /// Store errors on publish, logged once with a count.
    pub(crate) store_errors: crate::core::model::queue::append::RepeatedErrors,
    started: bool,
    pub(crate) dead_letters: crate::core::model::queue::dead_letter::DeadLetterQueue,
    /// At-least-once dead letters' originals, until their copies are synced.
    pub(crate) held_dead_letters: crate::core::model::queue::dead_letter_hold::HeldDeadLetters,
    pub(crate) expiry_pending: Vec<(Arc<str>, QueueId)>,
    pub(crate) timers: crate::core::model::timers::Timers,
    pub(crate) ack_flush: crate::core::model::queue::ack_flush::AckFlush,
    /// Seed-driven generator for server-named queues and consumer tags.
    rng: u64,
    /// Global runtime parameters (`global_parameters.json`).
    pub global_parameters: Vec<crate::core::mgmt::vhosts::GlobalParameter>,
    /// Node-wide message totals and history (management API, metrics).
    pub node_stats: crate::core::model::stats::NodeStats,
    /// Counts of channels gone since the last stats tick, per vhost.
    pub(crate) retired_stats: super::Map<Arc<str>, crate::core::model::stats::MsgCounters>,
}

/// The resource alarms, as RabbitMQ has them: while one is on, publishers are
/// blocked. Set by the io layer (which measures) and by the store (which sees
/// free space where it takes it); read by the management API.
#[derive(Debug, Clone, Copy, Default)]
pub struct Alarms {
    /// Free disk below `disk_free_limit`.
    pub disk: bool,
    /// Resident memory at or above `mem_limit`.
    pub mem: bool,
    /// The free-disk floor in bytes (0: none).
    pub disk_free_limit: u64,
    /// The memory high watermark in bytes (0: none).
    pub mem_limit: u64,
}

impl Alarms {
    /// Whether publishers are blocked.
    pub fn blocking(&self) -> bool {
        self.disk || self.mem
    }
}

impl Broker {
    /// Opens the data directory and recovers durable state.
    pub fn open(config: CoreConfig, seed: u64) -> std::io::Result<Broker> {
        std::fs::create_dir_all(&config.data_dir)?;
        // users.json holds the users once the broker has started once; the first
        // start creates the configured default user (RabbitMQ's guest) in it.
        let mut first_start = false;
        let users = match Users::load(&config.data_dir)? {
            Some(u) => u,
            None => {
                first_start = true;
                let salt = (seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 32) as u32;
                let (name, password, loopback) = &config.default_user;
                let u = Users::with_default_user(name, password, *loopback, salt.to_le_bytes());
                u.save(&config.data_dir)?;
                u
            }
        };
        // The default user gets everything on "/" the first time (as RabbitMQ's
        // guest); a data directory from before permissions existed gets the same.
        let permissions = match crate::core::access::permissions::Permissions::load(&config.data_dir)? {
            Some(p) if !first_start => p,
            _ => {
                let mut p = crate::core::access::permissions::Permissions::default();
                p.set(crate::core::access::permissions::PermissionDef {
                    user: config.default_user.0.clone(),
                    vhost: "/".into(),
                    configure: ".*".into(),
                    write: ".*".into(),
                    read: ".*".into(),
                })
                .expect("valid patterns");
                p.save(&config.data_dir)?;
                p
            }
        };
        let mut b = Broker {
            config,
            users,
            permissions,
            vhosts: Default::default(),
            conns: Default::default(),
            handshakes: Default::default(),
            trash: Vec::new(),
            handshake_drops: 0,
            handshake_drops_logged_ms: 0,
            next_conn_id: 1,
            next_queue_id: 1,
            dirty: Vec::new(),
            notices: Vec::new(),
            deliver_pending: Vec::new(),
            sync: Default::default(),
            rng: seed | 1,
            now_ms: 0,
            route_scratch: Vec::new(),
            alarms: Alarms::default(),
            store_errors: Default::default(),
            started: false,
            dead_letters: Default::default(),
            held_dead_letters: Default::default(),
            expiry_pending: Vec::new(),
            timers: Default::default(),
            ack_flush: Default::default(),
            global_parameters: Vec::new(),
            node_stats: Default::default(),
            retired_stats: Default::default(),
        };
        b.global_parameters = ringmq_store::meta::read_json(
            &b.config
                .data_dir
                .join(crate::core::mgmt::vhosts::GLOBAL_PARAMETERS_FILE),
        )?
        .unwrap_or_default();
        // Every vhost directory is a vhost (its name is in its name file); the
        // first start creates "/". A deleted vhost is renamed before removal:
        // finish removing what a crash left.
        let root = b.config.data_dir.clone();
        for entry in std::fs::read_dir(&root)? {
            let path = entry?.path();
            if path.extension().is_some_and(|e| e == "deleted") && path.is_dir() {
                tracing::info!(dir = %path.display(), "removing a vhost deleted before a crash");
                std::fs::remove_dir_all(&path)?;
            }
        }
        let existing = ringmq_store::layout::list_vhosts(&root)?;
        if first_start {
            b.open_vhost("/")?;
        }
        for (name, _) in existing {
            b.open_vhost(&name)?;
        }
        if let Some(path) = b.config.load_definitions.clone() {
            b.load_definitions_file(&path)?;
        }
        Ok(b)
    }

    pub fn open_vhost(&mut self, name: &str) -> std::io::Result<()> {
        if self.vhosts.contains_key(name) {
            return Ok(());
        }
        let (vhost, records) = VHost::open(&self.config.data_dir, name, self.config.store)?;
        // Transient queues never outlive the process: whatever an earlier run left
        // goes aside now and is removed once the broker serves.
        self.trash.extend(vhost.retire_transient()?);
        let key: Arc<str> = Arc::from(name);
        self.vhosts.insert(key.clone(), vhost);
        crate::core::definitions::log::replay(self, &key, &records)?;
        Ok(())
    }

    pub(crate) fn new_queue_id(&mut self) -> QueueId {
        let id = QueueId(self.next_queue_id);
        self.next_queue_id += 1;
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

    // ---- inputs -------------------------------------------------------------

    /// A TCP connection was accepted.
    pub fn handle_connect(&mut self, peer: String, peer_is_loopback: bool, now_ms: u64) -> ConnId {
        self.ensure_started(now_ms);
        let id = ConnId(self.next_conn_id);
        self.next_conn_id += 1;
        self.node_stats
            .churn
            .bump(crate::core::model::stats::Churn::CONNECTION_CREATED);
        let tuning = Tuning {
            frame_max: FRAME_MIN_SIZE,
            channel_max: self.config.channel_max,
            heartbeat_secs: 0,
        };
        let mut conn = Connection::new(id, peer, peer_is_loopback, tuning, now_ms);
        conn.in_handshake = true;
        self.conns.insert(id, conn);
        self.handshakes.started(id);
        if self.handshakes.count() > crate::core::amqp::handshake::HANDSHAKING_MAX {
            let conns = &self.conns;
            let oldest = self
                .handshakes
                .evict_oldest(|c| conns.get(&c).is_some_and(|c| c.in_handshake));
            if let Some(old) = oldest {
                self.drop_in_handshake(old, now_ms, "evicted: too many connections in the handshake");
            }
        }
        id
    }

    /// Closes a connection that has not finished the handshake (the io layer sees
    /// it closed at its next turn or tick and drops the socket).
    fn drop_in_handshake(&mut self, id: ConnId, now_ms: u64, why: &str) {
        let Some(conn) = self.conns.get_mut(&id) else { return };
        conn.state = ConnState::Closed;
        conn.in_handshake = false;
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

    /// Bytes arrived. Returns how many were consumed; the caller keeps the rest
    /// (an incomplete frame) and passes it again with more bytes appended.
    pub fn handle_input(&mut self, id: ConnId, input: &[u8], now_ms: u64) -> usize {
        let Some(mut conn) = self.conns.remove(&id) else {
            return input.len();
        };
        conn.last_recv_ms = now_ms;
        self.now_ms = now_ms;
        let used = if conn.release_at_ms.is_some() {
            input.len() // a refused login: nothing more is read
        } else {
            self.process_frames(&mut conn, input, now_ms)
        };
        crate::core::amqp::confirm::flush_ready_confirms(&mut conn, self.sync.synced);
        conn.stats.recv_oct += used as u64;
        conn.stats.recv_cnt += 1;
        if conn.release_at_ms.is_some() {
            let out = std::mem::take(&mut conn.out);
            conn.held_out.append(out);
        }
        if !conn.out.is_empty() {
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
        if !std::mem::take(&mut conn.output_was_full) {
            return;
        }
        if let Some(conn) = self.conns.get(&id) {
            if let Some(vhost) = &conn.vhost {
                let vhost = vhost.clone();
                let queues: Vec<QueueId> = conn
                    .channels
                    .values()
                    .flat_map(|ch| ch.consumers.values().map(|c| c.queue))
                    .collect();
                for q in queues {
                    self.deliver_pending.push((vhost.clone(), q));
                }
            }
        }
        self.after_input();
    }

    /// Timer tick: heartbeats out, dead peers and stuck closes detected.
    pub fn handle_tick(&mut self, id: ConnId, now_ms: u64) {
        let Some(mut conn) = self.conns.remove(&id) else { return };
        if let Some(at) = conn.release_at_ms {
            if now_ms >= at {
                conn.release_at_ms = None;
                conn.out = std::mem::take(&mut conn.held_out);
                conn.state = ConnState::Closed;
                self.mark_dirty(&mut conn);
            }
            self.conns.insert(id, conn);
            return;
        }
        if conn.in_handshake && now_ms.saturating_sub(conn.connected_at_ms) > self.config.handshake_timeout_ms {
            self.conns.insert(id, conn);
            self.drop_in_handshake(id, now_ms, "handshake_timeout");
            return;
        }
        let hb_ms = conn.tuning.heartbeat_secs as u64 * 1000;
        if self.alarms.blocking() && conn.has_published {
            // We are not reading this socket (flow control): its silence is ours.
            conn.last_recv_ms = now_ms;
        }
        match conn.state {
            ConnState::Open if hb_ms > 0 => {
                if now_ms.saturating_sub(conn.last_recv_ms) > 2 * hb_ms {
                    tracing::warn!(conn = %conn.describe(), "missed heartbeats from client, closing");
                    conn.state = ConnState::Closed;
                } else if now_ms.saturating_sub(conn.last_send_ms) >= hb_ms / 2 {
                    ringmq_codec::encode_heartbeat(&mut conn.out);
                    conn.last_send_ms = now_ms;
                }
            }
            ConnState::Closing if now_ms.saturating_sub(conn.closing_since_ms) > CLOSE_TIMEOUT_MS => {
                conn.state = ConnState::Closed;
            }
            _ => {}
        }
        if conn.state == ConnState::Open {
            let late: Vec<(u16, u64)> = conn
                .channels
                .iter()
                .filter(|(_, ch)| ch.state == ChannelState::Open)
                .filter_map(|(id, ch)| ch.timed_out(now_ms).map(|t| (*id, t)))
                .collect();
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
        if !conn.out.is_empty() {
            self.mark_dirty(&mut conn);
        }
        self.conns.insert(id, conn);
    }

    /// The socket is gone (EOF, error, or we closed it): release everything the
    /// connection held. Unacked messages go back to their queues.
    pub fn handle_disconnect(&mut self, id: ConnId) {
        let Some(mut conn) = self.conns.remove(&id) else { return };
        if std::mem::take(&mut conn.in_handshake) {
            self.handshakes.finished();
        }
        self.node_stats
            .churn
            .bump(crate::core::model::stats::Churn::CONNECTION_CLOSED);
        if conn.user.is_some() {
            tracing::info!(conn = %conn.describe(), "connection closed");
        }
        let channels: Vec<u16> = conn.channels.keys().copied().collect();
        for ch in channels {
            self.release_channel(&mut conn, ch);
            self.drop_channel(&mut conn, ch);
        }
        if let Some(vhost) = conn.vhost.clone() {
            self.delete_exclusive_queues(&vhost, id);
        }
        self.after_input();
    }

    /// The broker is stopping: every open connection gets connection.close 320
    /// CONNECTION_FORCED, as RabbitMQ sends it, and is then considered closed.
    pub fn handle_shutdown(&mut self, now_ms: u64) {
        let ids: Vec<ConnId> = self.conns.keys().copied().collect();
        for id in ids {
            let Some(mut conn) = self.conns.remove(&id) else {
                continue;
            };
            if conn.state == ConnState::Open {
                let e = ProtocolError::new(
                    ReplyCode::ConnectionForced,
                    "broker forced connection closure with reason 'shutdown'",
                );
                self.close_connection(&mut conn, e, now_ms);
            }
            conn.state = ConnState::Closed;
            self.mark_dirty(&mut conn);
            self.conns.insert(id, conn);
        }
    }

    /// The free-disk alarm changed. While it (or the memory alarm) is on, clients
    /// that announced the `connection.blocked` capability are told, and the io
    /// layer stops reading from connections that publish (RabbitMQ's flow
    /// control), so publishers cannot fill the disk.
    pub fn handle_disk_alarm(&mut self, on: bool) {
        if self.alarms.disk == on {
            return;
        }
        if on {
            tracing::warn!(
                limit = self.alarms.disk_free_limit,
                "free disk space below the limit: blocking publishers"
            );
        } else {
            tracing::info!("free disk space back above the limit");
        }
        let was = self.alarms.blocking();
        self.alarms.disk = on;
        self.alarm_changed(was, short!("low on disk"));
    }

    /// The memory alarm changed (RSS at or above the high watermark): publishers
    /// are blocked as for the disk alarm, with RabbitMQ's reason "low on memory".
    pub fn handle_mem_alarm(&mut self, on: bool) {
        if self.alarms.mem == on {
            return;
        }
        if on {
            tracing::warn!(
                limit = self.alarms.mem_limit,
                "memory use above the high watermark: blocking publishers"
            );
        } else {
            tracing::info!("memory use back below the high watermark");
        }
        let was = self.alarms.blocking();
        self.alarms.mem = on;
        self.alarm_changed(was, short!("low on memory"));
    }

    /// Tells connections when publishers become blocked or free (not when a
    /// second alarm joins or one of two clears).
    fn alarm_changed(&mut self, was: bool, reason: ShortStr<'static>) {
        let on = self.alarms.blocking();
        if on == was {
            return;
        }
        if !on {
            tracing::info!("no resource alarm: unblocking publishers");
        }
        let ids: Vec<ConnId> = self.conns.keys().copied().collect();
        for id in ids {
            let Some(mut conn) = self.conns.remove(&id) else {
                continue;
            };
            if conn.state == ConnState::Open && conn.capabilities.connection_blocked && conn.blocked_sent != on {
                let m = if on {
                    Method::ConnectionBlocked(ringmq_codec::ConnectionBlocked { reason })
                } else {
                    Method::ConnectionUnblocked(ringmq_codec::ConnectionUnblocked)
                };
                encode_method(&mut conn.out, 0, &m);
                conn.blocked_sent = on;
                self.mark_dirty(&mut conn);
            }
            self.conns.insert(id, conn);
        }
    }

    /// A connection publishes for the first time while publishers are blocked:
    /// it is told now (RabbitMQ sends connection.blocked when a connection would
    /// publish under an alarm, not only when the alarm starts).
    pub(crate) fn tell_blocked_on_publish(&self, conn: &mut Connection) {
        if self.alarms.blocking() && conn.capabilities.connection_blocked && !conn.blocked_sent {
            let reason = if self.alarms.disk {
                short!("low on disk")
            } else {
                short!("low on memory")
            };
            let m = Method::ConnectionBlocked(ringmq_codec::ConnectionBlocked { reason });
            encode_method(&mut conn.out, 0, &m);
            conn.blocked_sent = true;
        }
    }

    /// Whether the io layer should stop reading from this connection: a resource
    /// alarm is on and the connection publishes.
    pub fn should_pause_reading(&self, id: ConnId) -> bool {
        self.alarms.blocking() && self.conns.get(&id).is_some_and(|c| c.has_published)
    }

    /// Syncs and closes every store: the last step of a clean shutdown.
    pub fn close(&mut self) -> std::io::Result<()> {
        let mut first_err = None;
        for (_, mut vhost) in self.vhosts.drain() {
            for (_, x) in std::mem::take(&mut vhost.exchanges) {
                if let Some(d) = x.delayed {
                    if let Err(e) = d.close() {
                        first_err.get_or_insert(e);
                    }
                }
            }
            for (_, q) in std::mem::take(&mut vhost.queues) {
                if let Err(e) = q.store.close() {
                    tracing::error!(queue = %q.name, error = %e, "closing queue store failed");
                    first_err.get_or_insert(e);
                }
            }
            // The transient queues are gone with the process: their files go too
            // (the io layer removes what `take_trash` gives, within its shutdown time).
            match vhost.retire_transient() {
                Ok(t) => self.trash.extend(t),
                Err(e) => tracing::warn!(vhost = %vhost.name, error = %e, "cannot move transient queue files aside"),
            }
        }
        first_err.map_or(Ok(()), Err)
    }

    /// Folders of transient queue files that are no longer used: the io layer
    /// removes them in the background once the listeners are up, and at shutdown.
    pub fn take_trash(&mut self) -> Vec<std::path::PathBuf> {
        std::mem::take(&mut self.trash)
    }

    pub fn sync_running(&self) -> bool {
        self.sync.running.is_some()
    }

    // ---- outputs ------------------------------------------------------------

    /// Connections that have output since the last call.
    pub fn take_dirty(&mut self, into: &mut Vec<ConnId>) {
        for id in self.dirty.drain(..) {
            if let Some(c) = self.conns.get_mut(&id) {
                c.dirty = false;
                into.push(id);
            }
        }
    }

    /// Swaps the connection's pending output with `buf` (which must be empty);
    /// returns false if the connection is unknown. Bodies in the output stay in
    /// their segment mappings (see `output`) until `buf` is cleared.
    pub fn take_output(&mut self, id: ConnId, buf: &mut Output, now_ms: u64) -> bool {
        debug_assert!(buf.is_empty());
        let Some(c) = self.conns.get_mut(&id) else { return false };
        if !c.out.is_empty() {
            c.last_send_ms = now_ms;
        }
        std::mem::swap(&mut c.out, buf);
        c.stats.send_oct += buf.len() as u64;
        c.stats.send_cnt += u64::from(!buf.is_empty());
        c.output_was_full = buf.len() >= OUT_HIGH_WATER_BYTES;
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
            .is_none_or(|c| c.state == ConnState::Closed && c.release_at_ms.is_none())
    }

    /// Whether the io layer should wait for the peer to close the socket: we
    /// answered its connection.close, and the spec lets the receiver of close-ok
    /// close the socket.
    pub fn should_linger(&self, id: ConnId) -> bool {
        self.conns.get(&id).is_some_and(|c| c.close_ok_sent)
    }

    /// Negotiated heartbeat, for the io layer's tick timer.
    pub fn heartbeat_secs(&self, id: ConnId) -> u16 {
        self.conns.get(&id).map_or(0, |c| c.tuning.heartbeat_secs)
    }

    /// Whether work is waiting for another turn (a per-turn bound was hit, or
    /// timers are due that did not fit in the last turn).
    pub fn has_pending_work(&self) -> bool {
        !self.deliver_pending.is_empty()
            || !self.dead_letters.is_empty()
            || !self.expiry_pending.is_empty()
            || self.timers.due_len() > 0
    }

    /// Continues deferred work (deliveries, dead letters, expiry checks and due
    /// timers beyond their per-turn bounds), one bounded batch of each.
    pub fn run_pending(&mut self) {
        self.after_input();
    }

    // ---- internals ----------------------------------------------------------

    /// The first input after open: arm the timers of recovered queues (their
    /// x-expires period and TTL heads) and delayed exchanges, which needs a `now`,
    /// and trim queues recovered over their length limit.
    pub(crate) fn ensure_started(&mut self, now_ms: u64) {
        if self.started {
            return;
        }
        self.started = true;
        self.now_ms = now_ms;
        let all: Vec<(Arc<str>, QueueId)> = self
            .vhosts
            .iter()
            .flat_map(|(v, vh)| vh.queues.keys().map(move |q| (v.clone(), *q)))
            .collect();
        for (v, q) in all {
            self.touch_queue(&v, q);
            self.expiry_pending.push((v, q));
        }
        let mut delayed = Vec::new();
        for (v, vh) in &self.vhosts {
            for (name, x) in &vh.exchanges {
                if let Some(due) = x.delayed.as_ref().and_then(|d| d.next_due()) {
                    delayed.push((v.clone(), name.clone(), due));
                }
            }
        }
        for (v, x, due) in delayed {
            self.timers.add(
                due,
                now_ms,
                &v,
                QueueId(0),
                crate::core::model::timers::TimerKind::Delayed(x),
            );
        }
        self.enforce_lengths_at_start();
        self.run_pending();
    }

    pub(crate) fn mark_dirty(&mut self, conn: &mut Connection) {
        if !conn.dirty {
            conn.dirty = true;
            self.dirty.push(conn.id);
        }
    }

    pub(crate) fn mark_dirty_id(&mut self, id: ConnId) {
        if let Some(c) = self.conns.get_mut(&id) {
            if !c.dirty && !c.out.is_empty() {
                c.dirty = true;
                self.dirty.push(id);
            }
        }
    }

    fn after_input(&mut self) {
        self.apply_notices();
        self.fire_due_timers();
        self.process_dead_letters();
        self.run_expiry_checks();
        self.deliver();
    }

    fn process_frames(&mut self, conn: &mut Connection, input: &[u8], now_ms: u64) -> usize {
        let mut pos = 0;
        if conn.state == ConnState::AwaitingHeader {
            match check_protocol_header(input) {
                Ok(()) => {
                    pos = PROTOCOL_HEADER.len();
                    self.send_start(conn);
                }
                Err(DecodeError::Incomplete(_)) => return 0,
                Err(DecodeError::Malformed(_)) => {
                    // The spec: answer with the header we support, then close.
                    conn.out.extend_from_slice(&PROTOCOL_HEADER);
                    conn.state = ConnState::Closed;
                    return input.len();
                }
            }
        }
        for _ in 0..FRAMES_PER_INPUT_MAX {
            if matches!(conn.state, ConnState::Closed) {
                return input.len();
            }
            let frame_max = conn.tuning.frame_max;
            let (raw, used) = match split_frame(&input[pos..], frame_max) {
                Ok(x) => x,
                Err(DecodeError::Incomplete(_)) => break,
                Err(DecodeError::Malformed(e)) => {
                    // The stream cannot be resynchronised after a framing error.
                    self.close_connection(conn, e, now_ms);
                    conn.state = ConnState::Closed;
                    return input.len();
                }
            };
            pos += used;
            let frame = match raw.decode() {
                Ok(f) => f,
                Err(e) => {
                    self.close_connection(conn, e, now_ms);
                    continue;
                }
            };
            self.handle_frame(conn, frame, now_ms);
        }
        pos
    }

    fn handle_frame(&mut self, conn: &mut Connection, frame: Frame<'_>, now_ms: u64) {
        if let Frame::Heartbeat = frame {
            return;
        }
        match conn.state {
            ConnState::Closing => {
                // Only the end of the close handshake matters now.
                if let Frame::Method { channel: 0, method } = frame {
                    match method {
                        Method::ConnectionCloseOk(_) => conn.state = ConnState::Closed,
                        Method::ConnectionClose(_) => {
                            encode_method(
                                &mut conn.out,
                                0,
                                &Method::ConnectionCloseOk(ringmq_codec::ConnectionCloseOk),
                            );
                            conn.close_ok_sent = true;
                            conn.state = ConnState::Closed;
                        }
                        _ => {}
                    }
                }
                return;
            }
            ConnState::Closed | ConnState::AwaitingHeader => return,
            ConnState::Open => {}
            _ => {
                let cause = cause_of(conn, &frame);
                let r = self.handle_handshake(conn, frame, now_ms);
                if let Err(e) = r {
                    let e = match e {
                        Exception::Channel(e) | Exception::Connection(e) => e,
                    };
                    self.close_connection(conn, attribute(e, cause), now_ms);
                }
                return;
            }
        }
        let channel = frame.channel();
        let cause = cause_of(conn, &frame);
        let result = if channel == 0 {
            self.handle_connection_method(conn, frame)
        } else {
            self.handle_channel_frame(conn, channel, frame)
        };
        match result {
            Ok(()) => {}
            Err(Exception::Channel(e)) => self.close_channel(conn, channel, attribute(e, cause)),
            Err(Exception::Connection(e)) => self.close_connection(conn, attribute(e, cause), now_ms),
        }
    }

    fn send_start(&mut self, conn: &mut Connection) {
        let props = server_properties(&self.cluster_name()).to_bytes();
        let start = ConnectionStart {
            version_major: 0,
            version_minor: 9,
            server_properties: Table::parse(&props).expect("own table"),
            mechanisms: MECHANISMS,
            locales: b"en_US",
        };
        encode_method(&mut conn.out, 0, &Method::ConnectionStart(start));
        conn.state = ConnState::AwaitingStartOk;
    }

    /// Sends connection.close and waits for close-ok; a hard error ends the
    /// connection, so channels are released now.
    pub(crate) fn close_connection(&mut self, conn: &mut Connection, e: ProtocolError, now_ms: u64) {
        if matches!(conn.state, ConnState::Closing | ConnState::Closed) {
            return;
        }
        tracing::info!(conn = %conn.describe(), error = %e, "closing connection on error");
        let text = e.reply_text();
        let text = truncate_shortstr(&text);
        let close = ConnectionClose {
            reply_code: e.code.code(),
            reply_text: text,
            class_id: e.class_id,
            method_id: e.method_id,
        };
        encode_method(&mut conn.out, 0, &Method::ConnectionClose(close));
        let was_open = conn.state == ConnState::Open;
        conn.state = ConnState::Closing;
        conn.closing_since_ms = now_ms;
        if was_open {
            let channels: Vec<u16> = conn.channels.keys().copied().collect();
            for ch in channels {
                self.release_channel(conn, ch);
            }
        } else if e.code == ReplyCode::AccessRefused || e.code == ReplyCode::NotAllowed {
            // Handshake refusals: nothing to wait for.
            conn.state = ConnState::Closed;
        }
    }

    /// Sends channel.close for a soft error and releases the channel's state;
    /// the channel stays (in Closing) until the client's close-ok.
    pub(crate) fn close_channel(&mut self, conn: &mut Connection, channel: u16, e: ProtocolError) {
        tracing::debug!(conn = %conn.describe(), channel, error = %e, "closing channel on error");
        // Publishes accepted before the error are confirmed before the close.
        crate::core::amqp::confirm::flush_confirms(conn, channel, self.sync.synced);
        let text = e.reply_text();
        let close = ChannelClose {
            reply_code: e.code.code(),
            reply_text: truncate_shortstr(&text),
            class_id: e.class_id,
            method_id: e.method_id,
        };
        encode_method(&mut conn.out, channel, &Method::ChannelClose(close));
        self.release_channel(conn, channel);
        if let Some(ch) = conn.channels.get_mut(&channel) {
            ch.state = ChannelState::Closing;
        }
    }
}

/// The method a frame's error is blamed on in the close's class and method ids, as
/// RabbitMQ does: a frame that arrives while a publish's content is being assembled
/// belongs to that basic.publish (60/40), whatever it is; otherwise a method frame is
/// its own cause; a stray content frame has none (0/0).
fn cause_of(conn: &Connection, frame: &Frame<'_>) -> (u16, u16) {
    let channel = frame.channel();
    let publishing = channel != 0 && conn.channels.get(&channel).is_some_and(|c| c.incoming.is_some());
    match frame {
        _ if publishing => (BASIC_PUBLISH.0, BASIC_PUBLISH.1),
        Frame::Method { method, .. } => (method.class_id(), method.method_id()),
        _ => (0, 0),
    }
}

const BASIC_PUBLISH: (u16, u16) = (60, 40);

/// Names the cause in an error that does not name one already.
fn attribute(e: ProtocolError, (class_id, method_id): (u16, u16)) -> ProtocolError {
    if e.class_id == 0 && e.method_id == 0 {
        e.in_method(class_id, method_id)
    } else {
        e
    }
}

/// Reply texts are short strings: cut at 255 bytes on a char boundary.
pub(crate) fn truncate_shortstr(s: &str) -> ShortStr<'_> {
    ShortStr::truncate(s)
}
