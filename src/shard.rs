//! The shard handle: what the tasks of one shard thread share (the broker core,
//! the wake-ups of its writers and background tasks, loop-turn timing). The
//! transport (`io`) creates it and drives the core through it; the management
//! API (`http`) borrows the broker through it between two of the loop's turns.
//! Both use this module; neither imports the other.
//!
//! [`Services`] is how the binary hands the transport the servers that run on
//! the shard beside AMQP (the HTTP API and metrics) without `io` naming them.
//! [`StreamConn`] goes the other way: a server beside AMQP (the HTTP
//! listeners' AMQP over WebSocket) hands the transport a byte stream to serve
//! as an AMQP connection, through the handler the transport registered
//! ([`Shared::adopt_stream`]).

use std::cell::RefCell;
use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::rc::Rc;

use tokio::sync::Notify;

use crate::core::model::ids::ConnId;
use crate::core::Broker;

pub(crate) mod peers;

/// What the tasks of the shard share.
pub(crate) struct Shared {
    pub broker: RefCell<Broker>,
    pub writers: RefCell<HashMap<ConnId, Rc<Notify>>>,
    pub sync_kick: Notify,
    pub work_kick: Notify,
    /// This shard's open connections (shutdown waits for them).
    pub open_connections: std::cell::Cell<usize>,
    /// Every shard's open connections (`max_connections` is broker-wide).
    pub all_connections: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    /// With several shards: this shard's port on the rings between shards
    /// (`io::shards`); None with one.
    pub cross: Option<crate::io::shards::cross::CrossPort>,
    /// Woken when the disk alarm clears, so paused readers resume.
    pub unblocked: Notify,
    /// Wakes every connection task (`io::conn`): the connection ticker's call
    /// when a tick closed a connection (its task ends it) or readers are paused
    /// (they look again).
    pub conn_wake: Notify,
    /// Wakes the timer task when a core call armed an earlier deadline.
    pub timer_kick: Notify,
    /// The deadline the timer task sleeps until (u64::MAX: none).
    pub timer_armed: std::cell::Cell<u64>,
    /// On the io_uring backend: wakes the driver, which takes the dirty
    /// connections and sync jobs itself (`sync_kick` is unused, and `writers`
    /// holds only the byte streams of [`StreamConn`], woken by the driver).
    pub driver_kick: Option<Notify>,
    /// How long the loop's turns take (stall warnings, the longest-turn metric).
    pub turns: crate::sys::stall::TurnWatch,
    /// The TLS connections past their handshake (the io layer adds and removes
    /// them; the management API shows them). The core does not know about TLS.
    pub tls_conns: RefCell<HashMap<ConnId, TlsInfo>>,
    /// The connections that came as a [`StreamConn`] (AMQP over WebSocket),
    /// for the management API (the transport adds and removes them).
    pub stream_conns: RefCell<HashMap<ConnId, StreamVia>>,
    /// Serves a [`StreamConn`] as an AMQP connection: registered by the
    /// transport before the services start (`None`: no transport to take one).
    pub stream_server: RefCell<Option<StreamServer>>,
    /// The other shards, for jobs of the management API ([`peers`]): empty
    /// with one shard.
    peers: RefCell<Vec<peers::PeerSender>>,
    /// The shovels' statuses and requests (shard 0: its supervisor writes,
    /// the API reads).
    pub shovels: RefCell<crate::shovel::status::Registry>,
    /// The federation links' statuses and restarts (shard 0, as `shovels`).
    pub federation: RefCell<crate::federation::status::Registry>,
}

/// An AMQP byte stream handed to the transport by another server on the
/// shard: the AMQP bytes in both directions, as a socket would carry them
/// (the other end is that server's, which frames them for its protocol).
#[derive(Debug)]
pub struct StreamConn {
    pub stream: tokio::io::DuplexStream,
    /// The client as the core and the API name it (`203.0.113.7:50412`).
    pub peer: String,
    /// For the default user's loopback rule.
    pub loopback: bool,
    pub via: StreamVia,
}

/// How a [`StreamConn`] reached the broker, as the management API shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamVia {
    /// As the API's `protocol` field says it: `"Web AMQP 0-9-1"`.
    pub protocol: &'static str,
    /// The listener's port (the API's `port`); None on a Unix socket.
    pub port: Option<u16>,
    /// Over TLS (HTTPS).
    pub tls: bool,
}

/// Takes a [`StreamConn`] and starts serving it; false if it was refused
/// (max_connections), and the stream is dropped.
pub(crate) type StreamServer = Rc<dyn Fn(Rc<Shared>, StreamConn) -> bool>;

/// What the management API shows of a TLS connection (RabbitMQ's `ssl_*`
/// and `peer_cert_*`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsInfo {
    /// `"tlsv1.2"` or `"tlsv1.3"`, as RabbitMQ's `ssl_protocol`.
    pub protocol: &'static str,
    /// rustls's name of the suite, e.g. `TLS13_AES_256_GCM_SHA384`.
    pub cipher_suite: &'static str,
    /// The client's certificate, verified against `tls_ca_cert` (rustls ends
    /// the handshake of a client whose certificate does not verify); None when
    /// it sent none.
    pub peer_cert: Option<std::sync::Arc<crate::tls::CertFacts>>,
}

impl Shared {
    pub fn new(broker: Broker, uring: bool) -> Shared {
        Shared {
            broker: RefCell::new(broker),
            writers: RefCell::new(HashMap::new()),
            sync_kick: Notify::new(),
            work_kick: Notify::new(),
            open_connections: std::cell::Cell::new(0),
            all_connections: Default::default(),
            cross: None,
            unblocked: Notify::new(),
            conn_wake: Notify::new(),
            timer_kick: Notify::new(),
            timer_armed: std::cell::Cell::new(u64::MAX),
            driver_kick: uring.then(Notify::new),
            turns: Default::default(),
            tls_conns: RefCell::new(HashMap::new()),
            stream_conns: RefCell::new(HashMap::new()),
            stream_server: RefCell::new(None),
            peers: RefCell::new(Vec::new()),
            shovels: RefCell::new(Default::default()),
            federation: RefCell::new(Default::default()),
        }
    }

    /// With several shards: this shard's port on the rings, and the count
    /// of connections shared by all shards.
    pub(crate) fn with_cross(mut self, port: Option<crate::io::shards::cross::CrossPort>) -> Shared {
        if let Some(p) = &port {
            self.all_connections = p.crew.connections.clone();
        }
        self.cross = port;
        self
    }

    /// A connection is served from now on.
    pub fn conn_opened(&self) {
        self.open_connections.set(self.open_connections.get() + 1);
        self.all_connections.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// A connection served here ended.
    pub fn conn_closed(&self) {
        self.open_connections.set(self.open_connections.get() - 1);
        self.all_connections.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// Whether one more connection may be served (`max_connections` counts
    /// every shard's).
    pub fn below_max_connections(&self, max: usize) -> bool {
        self.all_connections.load(std::sync::atomic::Ordering::Relaxed) < max
    }

    /// At shutdown, as the AMQP listeners close: no more byte streams are
    /// taken (the services' listeners stay open until the process ends).
    pub fn stop_adopting_streams(&self) {
        self.stream_server.borrow_mut().take();
    }

    /// Hands `conn` to the transport to serve as an AMQP connection; false if
    /// refused (max_connections, shutting down, or no transport registered).
    pub fn adopt_stream(self: &Rc<Self>, conn: StreamConn) -> bool {
        let server = self.stream_server.borrow().clone();
        server.is_some_and(|serve| serve(self.clone(), conn))
    }

    /// Wakes the timer task when the core's next deadline moved earlier.
    pub fn rearm_timer(&self) {
        if self
            .broker
            .borrow()
            .poll_timeout()
            .is_some_and(|t| t < self.timer_armed.get())
        {
            self.timer_kick.notify_one();
        }
    }

    /// After every core call: wake the writers of connections with output, the
    /// sync task, and the deferred-work task when there is work for them.
    pub fn after_core_call(&self) {
        self.rearm_timer();
        if let Some(kick) = &self.driver_kick {
            kick.notify_one();
            return;
        }
        let mut dirty = Vec::new();
        let mut unblocked = false;
        let pending = {
            let mut b = self.broker.borrow_mut();
            // Connections leaving for other shards: their readers see it
            // after the input that made them leave (`io::conn`).
            b.take_leaving(&mut dirty);
            dirty.clear();
            b.take_dirty(&mut dirty);
            if let Some(port) = &self.cross {
                // A parked connection whose answer came: waking its task
                // hands its kept input to the core again (`io::conn`).
                b.take_resumed(&mut dirty);
                unblocked = port.pump(&mut b);
            }
            b.has_pending_work()
        };
        if unblocked {
            self.unblocked.notify_waiters();
        }
        let writers = self.writers.borrow();
        for id in dirty {
            if let Some(n) = writers.get(&id) {
                n.notify_one();
            }
        }
        self.sync_kick.notify_one();
        if pending {
            self.work_kick.notify_one();
        }
    }
}

/// What a shard tells the servers it starts beside AMQP.
#[derive(Debug, Clone)]
pub struct ShardInfo {
    /// `host:port` of the AMQP listener (connection names end with it).
    pub amqp_addr: SocketAddr,
    /// `host:port` of the AMQPS listener, if there is one.
    pub amqps_addr: Option<SocketAddr>,
    /// The data directory (its free space is shown).
    pub data_dir: std::path::PathBuf,
}

/// The listeners a service bound, named for the readiness status
/// (`("HTTP API", addr)`).
pub type Bound = Vec<(&'static str, SocketAddr)>;

/// Servers started on the shard once AMQP listens (the binary passes the HTTP
/// API's). The future resolves when their listeners are bound; the servers
/// themselves run as tasks on the shard's `LocalSet`.
#[derive(Clone)]
pub struct Services(Rc<ServicesFn>);

type ServicesFn = dyn Fn(Rc<Shared>, ShardInfo) -> Pin<Box<dyn Future<Output = std::io::Result<Bound>>>>;

impl Services {
    pub(crate) fn new(
        start: impl Fn(Rc<Shared>, ShardInfo) -> Pin<Box<dyn Future<Output = std::io::Result<Bound>>>> + 'static,
    ) -> Self {
        Services(Rc::new(start))
    }

    /// These services, then `other`'s (what both bound).
    pub fn and(self, other: Services) -> Services {
        Services::new(move |shared, info| {
            let (a, b) = (self.clone(), other.clone());
            Box::pin(async move {
                let mut bound = a.start(shared.clone(), info.clone()).await?;
                bound.extend(b.start(shared, info).await?);
                Ok(bound)
            })
        })
    }

    /// Starts the services; returns what they bound, or why one could not
    /// bind (the broker does not start then).
    pub(crate) async fn start(&self, shared: Rc<Shared>, info: ShardInfo) -> std::io::Result<Bound> {
        (self.0)(shared, info).await
    }
}

impl std::fmt::Debug for Services {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Services(..)")
    }
}

/// Holds a group commit's confirms (and `tx.commit-ok`s) until the cluster's
/// in-sync replicas hold its changes (`cluster::node`, on a clustered leader).
/// The transport takes a mark of the replication log right after it takes a
/// group commit, and waits on it once the commit's fsyncs are done; without a
/// gate (clustering off) neither happens.
#[derive(Clone)]
pub struct ConfirmGate {
    mark: Rc<dyn Fn() -> u64>,
    wait: Rc<WaitFn>,
}

type WaitFn = dyn Fn(u64) -> Pin<Box<dyn Future<Output = ()>>>;

impl ConfirmGate {
    pub fn new(
        mark: impl Fn() -> u64 + 'static,
        wait: impl Fn(u64) -> Pin<Box<dyn Future<Output = ()>>> + 'static,
    ) -> ConfirmGate {
        ConfirmGate {
            mark: Rc::new(mark),
            wait: Rc::new(wait),
        }
    }

    /// Where the replication log is once a group commit was taken.
    pub fn mark(&self) -> u64 {
        (self.mark)()
    }

    /// Resolves once every in-sync replica holds the changes up to `mark`.
    pub async fn wait(&self, mark: u64) {
        (self.wait)(mark).await
    }
}

impl std::fmt::Debug for ConfirmGate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ConfirmGate(..)")
    }
}
