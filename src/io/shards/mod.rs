//! Shards on threads (`docs/shards.md`, step 3): with `--shards N`, shard 0
//! runs on the main thread with the signals, systemd's notifications and the
//! services beside AMQP (the HTTP API and metrics); shards 1..N each run on a
//! thread of their own with their own tokio current-thread runtime, backend
//! (io_uring or epoll, as shard 0), timers and group commit. Every shard
//! listens on the AMQP (and AMQPS) port with `SO_REUSEPORT`, so the kernel
//! spreads accepts; the Unix socket and the services' byte streams (AMQP over
//! WebSocket) are shard 0's.
//!
//! What crosses between them goes through the rings ([`cross`]); the crew
//! ([`Crew`]) is what they share besides: the stop flag, the first failure,
//! the broker-wide connection count.

pub(crate) mod cross;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use self::cross::{Batch, CrossPort, RING_SLOTS};
use super::rings::{self, wake::Wake, Links};
use super::server::{AmqpsListen, ListenConfig};
use super::IoBackend;
use crate::core::{Broker, CoreConfig};
use crate::shard::peers::{PeerJob, PeerSender};
use crate::shard::Shared;

// Shard 0's thread opens every broker (`Broker::open_shards`) and moves each
// to its shard's thread, with its ends of the rings: they must be `Send`.
const _: () = {
    const fn send<T: Send>() {}
    send::<Broker>();
    send::<Links<Batch>>();
    send::<Jobs>();
    send::<PeerListen>();
};

/// What every shard of one broker shares.
pub(crate) struct Crew {
    stop: AtomicBool,
    failure: Mutex<Option<String>>,
    wakes: Arc<[Wake]>,
    /// Open connections of every shard (`max_connections` is broker-wide).
    pub connections: Arc<AtomicUsize>,
}

impl Crew {
    /// Asks every shard to stop (each runs its shutdown).
    pub(crate) fn stop_all(&self) {
        self.stop.store(true, Ordering::Release);
        for w in self.wakes.iter() {
            if let Err(e) = w.wake() {
                tracing::error!(error = %e, "cannot wake a shard to stop it");
            }
        }
    }

    pub(crate) fn stopping(&self) -> bool {
        self.stop.load(Ordering::Acquire)
    }

    /// A shard failed (an error, or a panic): every shard stops, and the
    /// process ends with the first failure.
    pub(crate) fn fail(&self, why: String) {
        tracing::error!("{why}");
        let mut f = self.failure.lock().unwrap_or_else(|e| e.into_inner());
        f.get_or_insert(why);
        drop(f);
        self.stop_all();
    }

    fn failure(&self) -> Option<String> {
        self.failure.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// A shard's ends of the management API's job channels (`shard::peers`).
pub(crate) struct Jobs {
    mine: tokio::sync::mpsc::UnboundedReceiver<PeerJob>,
    /// The other shards' senders, in shard order.
    others: Vec<PeerSender>,
}

/// Every shard's [`Jobs`], index = shard.
fn job_channels(shards: u16) -> Vec<Jobs> {
    let (senders, receivers): (Vec<_>, Vec<_>) = (0..shards).map(|_| crate::shard::peers::channel()).unzip();
    (receivers.into_iter().enumerate())
        .map(|(k, mine)| Jobs {
            mine,
            others: (senders.iter().enumerate())
                .filter(|&(i, _)| i != k)
                .map(|(_, s)| s.clone())
                .collect(),
        })
        .collect()
}

/// What shard 0 keeps of the other shards until it has started them, then
/// their threads.
pub(crate) struct Team {
    crew: Arc<Crew>,
    seeds: Vec<(Broker, Links<Batch>, Jobs)>,
    threads: Vec<(u16, std::thread::JoinHandle<()>)>,
}

/// Opens every shard's broker (shard 0's first) and, with more than one
/// shard, the rings between them: shard 0's broker and port, and the rest for
/// [`Team::start`].
pub(crate) fn open(core: CoreConfig, shards: u16) -> std::io::Result<(Broker, Option<CrossPort>, Option<Team>)> {
    let seed = super::now_ms() ^ (std::process::id() as u64) << 32;
    let shards = shards.max(1);
    let mut brokers = Broker::open_shards(core, seed, shards)?;
    if shards == 1 {
        return Ok((brokers.remove(0), None, None));
    }
    let mut links = rings::mesh::<Batch>(shards, RING_SLOTS)?;
    let wakes = links[0].wakes();
    let crew = Arc::new(Crew {
        stop: AtomicBool::new(false),
        failure: Mutex::new(None),
        wakes: wakes.clone(),
        connections: Arc::new(AtomicUsize::new(0)),
    });
    // A section that appended ops wakes every other shard, so one without
    // input applies them too (`cross_task` catches up on every wake).
    brokers[0].set_meta_append_hook(Box::new(move |by| {
        for (i, w) in wakes.iter().enumerate() {
            if i != usize::from(by.0) {
                let _ = w.wake();
            }
        }
    }));
    let first = brokers.remove(0);
    let mut jobs = job_channels(shards);
    let port = CrossPort::new(links.remove(0), crew.clone(), shards, jobs.remove(0));
    let team = Team {
        crew,
        seeds: (brokers.into_iter().zip(links).zip(jobs))
            .map(|((b, l), j)| (b, l, j))
            .collect(),
        threads: Vec::new(),
    };
    Ok((first, Some(port), Some(team)))
}

/// Where shard 0's AMQP listeners are bound: the other shards bind the same
/// addresses and ports (port 0 asked for one; it is known now).
#[derive(Debug, Clone)]
pub(crate) struct ShardAddrs {
    pub amqp: Vec<SocketAddr>,
    pub amqps: Option<Vec<SocketAddr>>,
}

/// What a shard thread needs of the listen settings (`ListenConfig` holds the
/// services and the reload, which stay on shard 0's thread).
struct PeerListen {
    at: ShardAddrs,
    amqp_proxy_protocol: bool,
    amqps: Option<AmqpsListen>,
    tcp_nodelay: bool,
    max_connections: usize,
    data_dir: std::path::PathBuf,
    free_disk_min_bytes: u64,
    mem_high_watermark_bytes: u64,
    shards: u16,
    header_timeout: Duration,
}

impl PeerListen {
    fn listen_config(&self, backend: IoBackend) -> ListenConfig {
        ListenConfig {
            bind: String::new(),
            amqp_port: 0,
            amqp_proxy_protocol: self.amqp_proxy_protocol,
            amqps: self.amqps.clone(),
            unix: None,
            mqtt: None,
            tcp_nodelay: self.tcp_nodelay,
            max_connections: self.max_connections,
            data_dir: self.data_dir.clone(),
            free_disk_min_bytes: self.free_disk_min_bytes,
            mem_high_watermark_bytes: self.mem_high_watermark_bytes,
            backend,
            shards: self.shards,
            services: None,
            notify_socket: None,
            reload: None,
            confirm_gate: None,
        }
    }
}

/// A shard thread's start: its broker, its port on the rings, where to listen.
pub(crate) struct PeerStart {
    pub broker: Broker,
    pub port: CrossPort,
    pub at: ShardAddrs,
    pub listen: ListenConfig,
    pub header_timeout: Duration,
    /// Told once the shard listens (or dropped if it could not start).
    pub ready: std::sync::mpsc::Sender<()>,
}

impl Team {
    /// Starts shards 1.. on their threads on `backend` (`Epoll` or `Uring`,
    /// as shard 0 runs), listening at `at`; returns once each listens, or the
    /// first shard's failure to start (the started ones are stopped then).
    pub(crate) fn start(
        &mut self,
        listen: &ListenConfig,
        at: ShardAddrs,
        backend: IoBackend,
        header_timeout: Duration,
    ) -> std::io::Result<()> {
        let mut waits = Vec::new();
        for (broker, links, jobs) in std::mem::take(&mut self.seeds) {
            let k = links.shard().0;
            let pl = PeerListen {
                at: at.clone(),
                amqp_proxy_protocol: listen.amqp_proxy_protocol,
                amqps: listen.amqps.clone(),
                tcp_nodelay: listen.tcp_nodelay,
                max_connections: listen.max_connections,
                data_dir: listen.data_dir.clone(),
                free_disk_min_bytes: listen.free_disk_min_bytes,
                mem_high_watermark_bytes: listen.mem_high_watermark_bytes,
                shards: listen.shards,
                header_timeout,
            };
            let crew = self.crew.clone();
            let (tx, rx) = std::sync::mpsc::channel();
            let thread = std::thread::Builder::new()
                .name(format!("ringmq-shard-{k}"))
                .spawn(move || peer_main(k, (broker, links, jobs), crew, pl, backend, tx))?;
            self.threads.push((k, thread));
            waits.push(rx);
        }
        for rx in waits {
            if rx.recv().is_err() {
                // Its thread says why once it has ended: join first.
                self.crew.stop_all();
                self.join_threads();
                let why = self.crew.failure().unwrap_or_else(|| "a shard did not start".into());
                return Err(std::io::Error::other(why));
            }
        }
        Ok(())
    }

    /// Stops every shard (if not yet), waits for their threads, and returns
    /// the first failure of any shard as an error.
    pub(crate) fn stop_and_join(mut self) -> std::io::Result<()> {
        self.crew.stop_all();
        self.join_threads();
        match self.crew.failure() {
            Some(why) => Err(std::io::Error::other(why)),
            None => Ok(()),
        }
    }

    fn join_threads(&mut self) {
        for (k, t) in self.threads.drain(..) {
            if t.join().is_err() {
                self.crew.fail(format!("shard {k}'s thread panicked"));
            }
        }
    }

    /// A start that failed before the other shards ran: their brokers close.
    pub(crate) fn close_unserved(&mut self) {
        for (b, _, _) in &mut self.seeds {
            super::server::close_unserved(b);
        }
    }
}

/// A shard thread: runs its shard until the crew stops; a failure or a panic
/// stops every shard, and shard 0 ends the process with it.
fn peer_main(
    k: u16,
    (broker, links, jobs): (Broker, Links<Batch>, Jobs),
    crew: Arc<Crew>,
    pl: PeerListen,
    backend: IoBackend,
    ready: std::sync::mpsc::Sender<()>,
) {
    let shards = pl.shards;
    let run = || -> std::io::Result<()> {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        let local = tokio::task::LocalSet::new();
        let start = PeerStart {
            broker,
            port: CrossPort::new(links, crew.clone(), shards, jobs),
            at: pl.at.clone(),
            listen: pl.listen_config(backend),
            header_timeout: pl.header_timeout,
            ready,
        };
        match backend {
            IoBackend::Uring => {
                let ring = super::uring::Ring::new()
                    .map_err(|why| std::io::Error::other(format!("io_uring unavailable: {why}")))?;
                local.block_on(&rt, super::uring::serve_peer(start, ring))
            }
            _ => local.block_on(&rt, super::server::serve_peer(start)),
        }
    };
    caught(k, &crew, run);
}

/// Runs shard `k`'s thread body: an error or a panic stops every shard, and
/// is the process's error.
fn caught(k: u16, crew: &Crew, run: impl FnOnce() -> std::io::Result<()>) {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(run)) {
        Ok(Ok(())) => {}
        Ok(Err(e)) => crew.fail(format!("shard {k}: {e}")),
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            crew.fail(format!("shard {k} panicked: {what}"));
        }
    }
}

/// How a shard's main loop learns it should stop: SIGTERM or SIGINT on shard
/// 0, the crew's stop (shard 0 asked, or a shard failed) on every shard.
pub(crate) struct Stopper {
    signals: Option<(tokio::signal::unix::Signal, tokio::signal::unix::Signal)>,
}

impl Stopper {
    /// On shard 0 (`signals`): SIGTERM and SIGINT are handled from now on.
    pub(crate) fn new(signals: bool) -> std::io::Result<Stopper> {
        use tokio::signal::unix::{signal, SignalKind};
        let signals = match signals {
            true => Some((signal(SignalKind::terminate())?, signal(SignalKind::interrupt())?)),
            false => None,
        };
        Ok(Stopper { signals })
    }

    /// Resolves when the shard should stop; on shard 0 every other shard is
    /// asked to stop too.
    pub(crate) async fn wait(&mut self, shared: &Shared) {
        let crew = async {
            match &shared.cross {
                Some(p) => p.stop.notified().await,
                None => std::future::pending().await,
            }
        };
        match &mut self.signals {
            Some((term, int)) => tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
                _ = crew => {}
            },
            None => crew.await,
        }
        if let Some(p) = &shared.cross {
            p.crew.stop_all();
        }
    }
}

#[cfg(test)]
mod tests;
