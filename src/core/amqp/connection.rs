//! Per-connection state and the connection-class handshake.
//!
//! ```text
//! AwaitingHeader --AMQP0091--> (start sent) AwaitingStartOk --start-ok--> (tune sent)
//! AwaitingTuneOk --tune-ok--> AwaitingOpen --open--> Open --close--> Closed
//! any state --exception--> Closing (close sent, wait for close-ok) --> Closed
//! ```
//!
//! `Connection`'s fields are the AMQP session's (`pub(in crate::core::amqp)`,
//! a wall in `tests/walls.rs`): the rest of the core reads them through the
//! accessors below and changes them through methods named for what they do
//! (`conn_io.rs`: what the io contract and the output list do;
//! [`Connection::for_admin`]: the management API's connection). `Tuning` and
//! `ClientCapabilities` are plain data with public fields.

use crate::core::model::ids::VhostName;
use ringmq_codec::{short, ShortStr};
use std::sync::Arc;

use ringmq_codec::{FieldTable, FieldValue, FieldValueRef, Table};

use crate::core::access::permissions::Permission;
use crate::core::amqp::channel::Channel;
use crate::core::model::ids::ConnId;
use crate::core::model::stats::ConnStats;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnState {
    AwaitingHeader,
    AwaitingStartOk,
    AwaitingTuneOk,
    AwaitingOpen,
    Open,
    /// We sent connection.close; only close-ok (or close) is processed now.
    Closing,
    /// Done: the io layer writes what is left in `out`, then closes the socket.
    Closed,
}

/// Negotiated connection parameters.
#[derive(Debug, Clone, Copy)]
pub struct Tuning {
    pub frame_max: u32,
    pub channel_max: u16,
    pub heartbeat_secs: u16,
}

/// What the client announced in its `capabilities` client property.
#[derive(Debug, Clone, Copy, Default)]
pub struct ClientCapabilities {
    pub consumer_cancel_notify: bool,
    pub authentication_failure_close: bool,
    pub connection_blocked: bool,
}

impl ClientCapabilities {
    pub fn from_client_properties(props: &Table<'_>) -> Self {
        let mut caps = ClientCapabilities::default();
        if let Some(FieldValueRef::Table(t)) = props.get("capabilities") {
            let flag = |k: &str| matches!(t.get(k), Some(FieldValueRef::Bool(true)));
            caps.consumer_cancel_notify = flag("consumer_cancel_notify");
            caps.authentication_failure_close = flag("authentication_failure_close");
            caps.connection_blocked = flag("connection.blocked");
        }
        caps
    }
}

pub struct Connection {
    pub(in crate::core::amqp) id: ConnId,
    pub(in crate::core::amqp) state: ConnState,
    pub(in crate::core::amqp) peer: String,
    pub(in crate::core::amqp) peer_is_loopback: bool,
    pub(in crate::core::amqp) user: Option<String>,
    pub(in crate::core::amqp) vhost: Option<VhostName>,
    pub(in crate::core::amqp) tuning: Tuning,
    pub(in crate::core::amqp) client_properties: Box<[u8]>,
    pub(in crate::core::amqp) capabilities: ClientCapabilities,
    pub(in crate::core::amqp) channels: crate::core::Map<u16, Box<Channel>>,
    /// Frames waiting for the socket, appended by the core, drained by the io layer.
    pub(in crate::core::amqp) out: crate::core::amqp::output::Output,
    /// Set while `out` is in the dirty list, so it is listed once.
    pub(in crate::core::amqp) dirty: bool,
    pub(in crate::core::amqp) last_recv_ms: u64,
    pub(in crate::core::amqp) last_send_ms: u64,
    pub(in crate::core::amqp) closing_since_ms: u64,
    /// connection.blocked was sent and not yet unblocked.
    pub(in crate::core::amqp) blocked_sent: bool,
    /// We answered the peer's connection.close; it closes the socket.
    pub(in crate::core::amqp) close_ok_sent: bool,
    /// Sent at least one basic.publish: subject to flow control on disk alarm.
    pub(in crate::core::amqp) has_published: bool,
    /// A publish of its was forwarded to another shard's queue: subject to
    /// flow control when the batches for other shards back up.
    pub(in crate::core::amqp) forwards: bool,
    /// Confirms that need no fsync were made ready in this input: they go out at
    /// its end, coalesced into `multiple` acks (see `confirm::flush_ready_confirms`).
    pub(in crate::core::amqp) confirms_ready: bool,
    /// Channels opened so far: each channel's serial, so a confirm another
    /// shard sends for a closed channel is not taken by the next channel of
    /// its number (`model::cross`).
    pub(in crate::core::amqp) channels_opened: u32,
    /// The user's permission in the connection's vhost (set at connection.open).
    pub(in crate::core::amqp) permission: Option<Arc<Permission>>,
    /// The last exchange this connection was allowed to publish to: the
    /// permission check on the publish path is one string compare, not a regex.
    pub(in crate::core::amqp) publish_allowed: Option<String>,
    /// The output last taken by the io layer was at the high-water mark, so
    /// deliveries may have been held back until it is written.
    pub(in crate::core::amqp) output_was_full: bool,
    /// Bytes in and out, for the management API.
    pub(in crate::core::amqp) stats: ConnStats,
    pub(in crate::core::amqp) connected_at_ms: u64,
    /// A refused login: its reply is held in `held_out` until this time, so a
    /// password guesser gets one answer per [`LOGIN_FAILURE_DELAY_MS`].
    /// Counted in the broker's handshakes (accepted, not yet opened).
    pub(in crate::core::amqp) in_handshake: bool,
    pub(in crate::core::amqp) release_at_ms: Option<u64>,
    pub(in crate::core::amqp) held_out: crate::core::amqp::output::Output,
    /// What the TLS client certificate offers SASL EXTERNAL (the io layer
    /// says, before the first byte of AMQP).
    pub(in crate::core::amqp) cert_identity: crate::core::access::auth::CertIdentity,
    /// The SASL mechanism the client logged in with (the API's `auth_mechanism`).
    pub(in crate::core::amqp) auth_mechanism: &'static str,
    /// Waiting for another shard's answer (`remote`): no frame is handled
    /// until it comes.
    pub(in crate::core::amqp) parked: Option<crate::core::amqp::remote::Parked>,
    /// Where it goes, and whether it may (`hand_off`): the io layer allows
    /// it; a publish that went all to one other shard's queues points there;
    /// it stopped before a frame to go there; when it came here (0: it was
    /// accepted here).
    pub(in crate::core::amqp) movable: bool,
    pub(in crate::core::amqp) lean_to: Option<crate::core::model::meta::ShardId>,
    /// Publishes in a row that went all to `lean_to`'s queues.
    pub(in crate::core::amqp) lean_count: u8,
    pub(in crate::core::amqp) leaving: Option<crate::core::model::meta::ShardId>,
    pub(in crate::core::amqp) arrived_ms: u64,
    /// It declared an exclusive queue (which names it): it stays.
    pub(in crate::core::amqp) owns_exclusive: bool,
}

/// How long the answer to a failed login is held back.
pub const LOGIN_FAILURE_DELAY_MS: u64 = 1_000;

impl Connection {
    /// What was negotiated (channel-max, frame-max, heartbeat).
    pub fn tuning(&self) -> &Tuning {
        &self.tuning
    }

    /// The vhost, once connection.open named one.
    pub fn vhost(&self) -> Option<&str> {
        self.vhost.as_deref()
    }

    /// Whether it counts against connection limits: not once it is closed
    /// (close-ok sent or received), though the io layer may not have closed
    /// its socket yet; the client may already be connecting again.
    pub(crate) fn holds_slot(&self) -> bool {
        !matches!(self.state, ConnState::Closed)
    }

    /// The open channels, read-only (the fuzz targets' checks).
    pub fn channels(&self) -> impl Iterator<Item = &Channel> {
        self.channels.values().map(|c| &**c)
    }

    pub fn new(id: ConnId, peer: String, peer_is_loopback: bool, tuning: Tuning, now_ms: u64) -> Self {
        Connection {
            id,
            state: ConnState::AwaitingHeader,
            peer,
            peer_is_loopback,
            user: None,
            vhost: None,
            tuning,
            client_properties: Box::default(),
            capabilities: ClientCapabilities::default(),
            channels: Default::default(),
            out: Default::default(),
            dirty: false,
            last_recv_ms: now_ms,
            last_send_ms: now_ms,
            closing_since_ms: 0,
            blocked_sent: false,
            close_ok_sent: false,
            has_published: false,
            forwards: false,
            confirms_ready: false,
            channels_opened: 0,
            permission: None,
            publish_allowed: None,
            output_was_full: false,
            stats: Default::default(),
            connected_at_ms: now_ms,
            in_handshake: false,
            release_at_ms: None,
            held_out: Default::default(),
            cert_identity: Default::default(),
            auth_mechanism: "PLAIN",
            parked: None,
            movable: false,
            lean_to: None,
            lean_count: 0,
            leaving: None,
            arrived_ms: 0,
            owns_exclusive: false,
        }
    }

    /// A name for logs: `peer (user)`.
    pub fn describe(&self) -> String {
        format!("{} ({})", self.peer, self.user.as_deref().unwrap_or("-"))
    }

    /// The management API's connection: open, logged in as `user` on `vhost`
    /// with `permission`, with channel 1 open.
    pub(in crate::core) fn for_admin(
        id: ConnId,
        tuning: Tuning,
        now_ms: u64,
        user: &str,
        vhost: VhostName,
        permission: Option<Arc<Permission>>,
    ) -> Self {
        let mut c = Connection::new(id, "management".into(), true, tuning, now_ms);
        c.state = ConnState::Open;
        c.user = Some(user.to_owned());
        c.vhost = Some(vhost);
        c.permission = permission;
        c.channels.insert(1, Box::new(Channel::new(1)));
        c
    }
}

/// Read access for the rest of the core (management views, limits, the io
/// contract): the fields themselves are the AMQP session's.
impl Connection {
    #[inline]
    pub fn id(&self) -> ConnId {
        self.id
    }
    /// The peer's `host:port`.
    #[inline]
    pub fn peer(&self) -> &str {
        &self.peer
    }
    /// What the TLS client certificate offers SASL EXTERNAL (the io contract's
    /// `handle_peer_certificate` sets it).
    pub(in crate::core) fn set_cert_identity(&mut self, id: crate::core::access::auth::CertIdentity) {
        self.cert_identity = id;
    }
    /// The SASL mechanism of the login (`PLAIN`, `AMQPLAIN`, `EXTERNAL`).
    #[inline]
    pub fn auth_mechanism(&self) -> &'static str {
        self.auth_mechanism
    }
    /// The logged-in user, past the login.
    #[inline]
    pub fn user(&self) -> Option<&str> {
        self.user.as_deref()
    }
    /// The vhost as the model keys it, once connection.open named one.
    #[inline]
    pub(in crate::core) fn vhost_key(&self) -> Option<&VhostName> {
        self.vhost.as_ref()
    }
    #[inline]
    pub fn state(&self) -> ConnState {
        self.state
    }
    #[inline]
    pub fn is_open(&self) -> bool {
        self.state == ConnState::Open
    }
    #[inline]
    pub fn connected_at_ms(&self) -> u64 {
        self.connected_at_ms
    }
    #[inline]
    /// The output buffer's capacity (tests: idle connections give it back).
    #[cfg(test)]
    pub fn output_capacity(&self) -> usize {
        self.out.capacity()
    }

    pub fn client_properties(&self) -> Table<'_> {
        // Validated when connection.start-ok was decoded.
        Table::parse(&self.client_properties).unwrap_or(Table::EMPTY)
    }
    /// Bytes in and out, for the management API.
    #[inline]
    pub fn stats(&self) -> &ConnStats {
        &self.stats
    }
    /// Bytes waiting to be sent.
    #[inline]
    pub fn pending_bytes(&self) -> usize {
        self.out.len()
    }
    /// Whether there is output waiting for the socket.
    #[inline]
    pub(in crate::core) fn has_output(&self) -> bool {
        !self.out.is_empty()
    }
    /// Whether connection.blocked was sent (and not yet unblocked).
    #[inline]
    pub fn is_blocked(&self) -> bool {
        self.blocked_sent
    }
    /// Accepted, and connection.open not yet done.
    #[inline]
    pub(in crate::core) fn in_handshake(&self) -> bool {
        self.in_handshake
    }
    /// We answered the peer's connection.close; it closes the socket.
    #[inline]
    pub(in crate::core) fn close_ok_sent(&self) -> bool {
        self.close_ok_sent
    }
    /// A refused login whose answer is held back.
    #[inline]
    pub(in crate::core) fn login_refused(&self) -> bool {
        self.release_at_ms.is_some()
    }
    /// Closed, with nothing held back: the io layer may close the socket once
    /// its output is written.
    #[inline]
    pub(in crate::core) fn is_done(&self) -> bool {
        self.state == ConnState::Closed && self.release_at_ms.is_none()
    }
    #[inline]
    pub fn channel_count(&self) -> usize {
        self.channels.len()
    }
    #[inline]
    pub fn channel(&self, number: u16) -> Option<&Channel> {
        self.channels.get(&number).map(|c| &**c)
    }
    /// The numbers of the open channels.
    pub(in crate::core) fn channel_numbers(&self) -> Vec<u16> {
        self.channels.keys().copied().collect()
    }
}

/// The server properties sent in connection.start, with a truthful capabilities
/// table: every flag here is a feature this broker implements.
/// What connection.start tells clients about the server (`cluster_name` as the
/// management API has it).
pub fn server_properties(cluster_name: &str) -> FieldTable {
    let caps: FieldTable = [
        "publisher_confirms",
        "exchange_exchange_bindings",
        "basic.nack",
        "consumer_cancel_notify",
        "connection.blocked",
        "consumer_priorities",
        "authentication_failure_close",
        "per_consumer_qos",
        "direct_reply_to",
    ]
    .into_iter()
    .map(|k| (ShortStr::lit(k), FieldValue::Bool(true)))
    .collect();
    let mut p = FieldTable::new();
    p.insert(short!("capabilities"), FieldValue::Table(caps));
    p.insert(short!("product"), "ringmq");
    p.insert(short!("version"), env!("CARGO_PKG_VERSION"));
    p.insert(short!("platform"), "Rust");
    p.insert(
        short!("cluster_name"),
        FieldValue::LongString(cluster_name.as_bytes().to_vec()),
    );
    p.insert(short!("copyright"), "ringmq authors");
    p.insert(short!("information"), "AMQP 0-9-1 broker, see README.md");
    p
}
