//! The accept loop, the group-commit task, deferred work, and graceful shutdown.

use std::rc::Rc;
use std::time::Duration;

use super::IoBackend;
use crate::core::{Broker, CoreConfig};
/// The shard handle lives in `crate::shard` (shared with `http`); the
/// backends (`conn`, `uring`) name it here.
pub(crate) use crate::shard::Shared;
use crate::shard::{Services, ShardInfo};
use crate::sys::now_ms;

/// What SIGHUP runs (given by `main`, which owns the configuration and the
/// logger): re-applies what can change without a restart and says what it did,
/// or why nothing was applied.
pub type Reload = Rc<dyn Fn() -> Result<String, String>>;

/// Where and how to listen.
#[derive(Clone)]
pub struct ListenConfig {
    pub bind: String,
    pub amqp_port: u16,
    /// The AMQP listener requires a PROXY protocol header (`tcp_proxy_protocol`).
    pub amqp_proxy_protocol: bool,
    /// The AMQPS listener (same addresses as AMQP), if asked for.
    pub amqps: Option<AmqpsListen>,
    /// An AMQP listener on a Unix domain socket, if asked for.
    pub unix: Option<UnixListen>,
    /// The MQTT listener (`[mqtt]`), if asked for: shard 0's only.
    pub mqtt: Option<MqttListen>,
    pub tcp_nodelay: bool,
    /// Connections beyond this are refused at accept (closed at once).
    pub max_connections: usize,
    /// Watched for free space.
    pub data_dir: std::path::PathBuf,
    /// Below this many free bytes publishers are blocked.
    pub free_disk_min_bytes: u64,
    /// At or above this RSS publishers are blocked (0: never).
    pub mem_high_watermark_bytes: u64,
    /// The transport backend (`--io=uring|epoll|auto`); `Auto` tries io_uring.
    pub backend: super::IoBackend,
    /// Shard threads (`--shards`), each with its own loop and backend.
    pub shards: u16,
    /// Servers started beside AMQP once it listens (the binary passes the
    /// management API and metrics listeners); `None`: AMQP only.
    pub services: Option<Services>,
    /// systemd's `NOTIFY_SOCKET`, as `main` found it in the environment: where
    /// readiness is reported (see `notify`). `None` when not run by systemd.
    pub notify_socket: Option<std::ffi::OsString>,
    /// Run on SIGHUP; `None`: SIGHUP is logged and ignored (it never stops the
    /// broker, as its default action would).
    pub reload: Option<Reload>,
    /// A clustered leader's: confirms wait for the in-sync replicas
    /// (`shard::ConfirmGate`); `None` (clustering off): the local commit.
    pub confirm_gate: Option<crate::shard::ConfirmGate>,
}

/// `--amqps-port` and the TLS configuration its connections use.
#[derive(Debug, Clone)]
pub struct AmqpsListen {
    pub port: u16,
    pub acceptor: super::tls::TlsAcceptor,
    /// A PROXY protocol header comes before the TLS ClientHello (`tls_proxy_protocol`).
    pub proxy_protocol: bool,
}

/// `[mqtt]`: MQTT 3.1.1 on TCP. Served by shard 0 (its client ids are
/// one registry: a takeover sees the connection it takes over) on the
/// connection tasks of the epoll backend, whichever backend serves AMQP.
#[derive(Debug, Clone)]
pub struct MqttListen {
    pub bind: String,
    pub port: u16,
    pub settings: crate::core::mqtt::Settings,
}

/// `[amqp] unix_path`: AMQP on a Unix domain socket.
#[derive(Debug, Clone)]
pub struct UnixListen {
    pub path: std::path::PathBuf,
    /// A PROXY protocol header is required (`unix_proxy_protocol`).
    pub proxy_protocol: bool,
}

impl std::fmt::Debug for ListenConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ListenConfig")
            .field("bind", &self.bind)
            .field("amqp_port", &self.amqp_port)
            .field("amqp_proxy_protocol", &self.amqp_proxy_protocol)
            .field("amqps_port", &self.amqps.as_ref().map(|a| a.port))
            .field("unix", &self.unix)
            .field("mqtt", &self.mqtt)
            .field("backend", &self.backend)
            .field("services", &self.services.is_some())
            .field("reload", &self.reload.is_some())
            .finish_non_exhaustive()
    }
}

/// How often free disk space is checked.
const DISK_CHECK_EVERY: Duration = Duration::from_millis(1_000);

/// How long shutdown waits for connections to take their connection.close.
pub(crate) const SHUTDOWN_FLUSH: Duration = Duration::from_millis(2_000);
/// Timer resolution for heartbeats and close timeouts. Half a second: the
/// shortest heartbeat interval (1 s) wants a frame every half interval, and
/// with a 1 s tick a peer whose handshake ended late in a tick got only one
/// heartbeat before being dropped (the heartbeats test caught it on a loaded
/// machine). A tick costs O(1) per connection.
pub(crate) const TICK: Duration = Duration::from_millis(500);

/// Runs the broker on the epoll backend until SIGTERM or SIGINT. Returns once
/// state is synced.
pub(crate) fn run(core: CoreConfig, listen: ListenConfig) -> std::io::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, serve(core, listen))
}

async fn serve(core: CoreConfig, listen: ListenConfig) -> std::io::Result<()> {
    let _lock = lock_data_dir(&core.data_dir)?;
    let notify = super::notify::Notifier::new(listen.notify_socket.as_deref());
    // Opening checks every stored record: minutes for a big data directory.
    notify.status(OPENING_STATUS);
    let header_timeout = Duration::from_millis(core.handshake_timeout_ms);
    let (mut broker, port, mut team) = super::shards::open(core, listen.shards)?;
    let listeners = match super::accept::AmqpListeners::bind(&listen, "epoll", None) {
        Ok(l) => l,
        Err(e) => {
            close_unserved(&mut broker);
            team.iter_mut().for_each(super::shards::Team::close_unserved);
            return Err(e);
        }
    };
    let (amqp_addr, amqps_addr) = (listeners.amqp_addr, listeners.amqps_addr);
    if let Some(team) = &mut team {
        if let Err(e) = team.start(&listen, listeners.addrs(), IoBackend::Epoll, header_timeout) {
            close_unserved(&mut broker);
            return Err(e);
        }
    }
    let shared = Rc::new(Shared::new(broker, false).with_cross(port));
    tokio::task::spawn_local(sync_task(shared.clone(), listen.confirm_gate.clone()));
    let mut http = match spawn_common_tasks(&shared, &listen, amqp_addr, amqps_addr, true).await {
        Ok(bound) => bound,
        Err(e) => {
            if let Some(team) = team {
                let _ = team.stop_and_join();
            }
            return Err(e);
        }
    };
    if let Some(a) = amqps_addr {
        http.insert(0, ("AMQPS", a));
    }
    let stopper = super::shards::Stopper::new(true)?;
    // Only now: every listener is bound and SIGTERM is ours to handle.
    notify.ready(&ready_status(amqp_addr, "epoll", &http));
    let served = serve_until_stopped(&shared, &listen, listeners, stopper, header_timeout, Some(&notify)).await;
    // The other shards were asked to stop with this one; their threads end
    // once each has shut down.
    let joined = team.map_or(Ok(()), super::shards::Team::stop_and_join);
    served.and(joined)
}

/// A shard thread on either backend, set up to serve: its broker caught up
/// with the metadata log, listening on shard 0's ports, the tasks every loop
/// runs spawned.
pub(crate) struct PeerServing {
    pub shared: Rc<Shared>,
    pub listeners: super::accept::AmqpListeners,
    pub listen: ListenConfig,
    pub header_timeout: Duration,
    /// Told once the loop is about to serve.
    pub ready: std::sync::mpsc::Sender<()>,
}

/// Sets a shard thread up (`io::shards`) on the io_uring backend or, without
/// `uring`, on epoll: no signals and no services, those are shard 0's.
pub(crate) async fn start_peer(start: super::shards::PeerStart, uring: bool) -> std::io::Result<PeerServing> {
    let super::shards::PeerStart {
        mut broker,
        port,
        at,
        listen,
        header_timeout,
        ready,
    } = start;
    // What shard 0 recovered into the metadata log (the owner opens its
    // queues' stores as it applies them), before this shard serves anyone.
    broker.catch_up_meta();
    let backend = if uring { "io_uring" } else { "epoll" };
    let listeners = match super::accept::AmqpListeners::bind(&listen, backend, Some(&at)) {
        Ok(l) => l,
        Err(e) => {
            close_unserved(&mut broker);
            return Err(e);
        }
    };
    let (amqp_addr, amqps_addr) = (listeners.amqp_addr, listeners.amqps_addr);
    let shared = Rc::new(Shared::new(broker, uring).with_cross(Some(port)));
    spawn_common_tasks(&shared, &listen, amqp_addr, amqps_addr, false).await?;
    Ok(PeerServing {
        shared,
        listeners,
        listen,
        header_timeout,
        ready,
    })
}

/// A shard thread's loop on the epoll backend.
pub(crate) async fn serve_peer(start: super::shards::PeerStart) -> std::io::Result<()> {
    let PeerServing {
        shared,
        listeners,
        listen,
        header_timeout,
        ready,
    } = start_peer(start, false).await?;
    tokio::task::spawn_local(sync_task(shared.clone(), None));
    let stopper = super::shards::Stopper::new(false)?;
    let _ = ready.send(());
    serve_until_stopped(&shared, &listen, listeners, stopper, header_timeout, None).await
}

/// Accepts until the shard is told to stop, then shuts it down: every
/// connection gets its close, and state is synced.
async fn serve_until_stopped(
    shared: &Rc<Shared>,
    listen: &ListenConfig,
    mut listeners: super::accept::AmqpListeners,
    mut stopper: super::shards::Stopper,
    header_timeout: Duration,
    notify: Option<&super::notify::Notifier>,
) -> std::io::Result<()> {
    loop {
        tokio::select! {
            accepted = listeners.accept() => accepted_one(shared, listen, accepted, header_timeout).await,
            _ = stopper.wait(shared) => break,
        }
    }
    if let Some(notify) = notify {
        notify.stopping(STOPPING_STATUS);
    }
    tracing::info!("shutting down");
    listeners.close();
    shared.stop_adopting_streams();
    shared.broker.borrow_mut().handle_shutdown(now_ms());
    shared.after_core_call();
    let deadline = tokio::time::Instant::now() + SHUTDOWN_FLUSH;
    while shared.open_connections.get() > 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Wait for a running group commit, then sync everything that is left.
    while shared.broker.borrow().sync_running() {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    if shared.open_connections.get() > 0 {
        tracing::warn!(
            open = shared.open_connections.get(),
            "connections still open at shutdown"
        );
    }
    if let Some(port) = &shared.cross {
        port.log_stats();
    }
    shared.broker.borrow_mut().close()?;
    remove_transient_files_at_shutdown(shared);
    tracing::info!("shutdown complete");
    Ok(())
}

/// Starts serving an accepted connection (after its PROXY header, on a
/// listener that requires one), or refuses it at max_connections.
async fn accepted_one(
    shared: &Rc<Shared>,
    listen: &ListenConfig,
    accepted: std::io::Result<super::accept::Incoming>,
    header_timeout: Duration,
) {
    use super::accept::{after_header, next_step, Next};
    let incoming = match accepted {
        Ok(x) => x,
        Err(e) => return crate::sys::listeners::accept_failed(&e).await,
    };
    if !below_max_connections(shared, listen.max_connections) {
        return;
    }
    match next_step(incoming) {
        Next::Ready(acc) => {
            tokio::task::spawn_local(super::conn::serve_connection(shared.clone(), acc));
        }
        Next::Header(incoming) => {
            let (shared, max) = (shared.clone(), listen.max_connections);
            tokio::task::spawn_local(async move {
                if let Some(acc) = after_header(incoming, header_timeout).await {
                    if below_max_connections(&shared, max) {
                        super::conn::serve_connection(shared, acc).await;
                    }
                }
            });
        }
        Next::Refused => {}
    }
}

/// Whether one more connection may be served; logs a refusal.
fn below_max_connections(shared: &Shared, max: usize) -> bool {
    let below = shared.below_max_connections(max);
    if !below {
        tracing::warn!(max, "connection refused: max_connections reached");
    }
    below
}

/// systemd's status line while the data directory is opened (recovery).
pub(crate) const OPENING_STATUS: &str = "Starting: opening the data directory, checking stored records";

/// systemd's status line while shutting down.
pub(crate) const STOPPING_STATUS: &str = "Stopping: closing connections, syncing to disk";

/// systemd's status line once ready (`systemctl status ringmq` shows it).
pub(crate) fn ready_status(amqp: std::net::SocketAddr, io: &str, http: &[(&str, std::net::SocketAddr)]) -> String {
    let mut s = format!("Ready: AMQP on {amqp} ({io})");
    for (what, addr) in http {
        s.push_str(&format!(", {what} on {addr}"));
    }
    s
}

/// The tasks both backends run beside the data path: deferred deliveries, the
/// free-disk watch, and the other services (the HTTP listeners), which are bound when this returns
/// (the bound ones are returned, for the readiness status; one that cannot bind is an error,
/// and the broker does not start).
pub(crate) async fn spawn_common_tasks(
    shared: &Rc<Shared>,
    listen: &ListenConfig,
    amqp_addr: std::net::SocketAddr,
    amqps_addr: Option<std::net::SocketAddr>,
    first: bool,
) -> std::io::Result<Vec<(&'static str, std::net::SocketAddr)>> {
    if shared.cross.is_some() {
        tokio::task::spawn_local(super::shards::cross::cross_task(shared.clone()));
        super::shards::cross::serve_jobs(shared);
    }
    tokio::task::spawn_local(timer_task(shared.clone()));
    tokio::task::spawn_local(work_task(shared.clone()));
    tokio::task::spawn_local(disk_task(
        shared.clone(),
        listen.data_dir.clone(),
        listen.free_disk_min_bytes,
        listen.mem_high_watermark_bytes,
    ));
    tokio::task::spawn_local(stats_task(shared.clone()));
    // The heartbeat timer of the connection tasks (see `conn::tick_task`).
    tokio::task::spawn_local(super::conn::tick_task(shared.clone()));
    // Byte streams from the services (AMQP over WebSocket) are served by the
    // epoll backend's connection tasks on either backend, and count towards
    // max_connections with the sockets.
    let max = listen.max_connections;
    *shared.stream_server.borrow_mut() = Some(Rc::new(move |shared, conn| {
        if !below_max_connections(&shared, max) {
            return false;
        }
        tokio::task::spawn_local(super::conn::serve_stream(shared, conn));
        true
    }));
    // Signals are shard 0's (a shard thread's runtime would take them too).
    if first {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
            Ok(hup) => {
                tokio::task::spawn_local(reload_task(hup, listen.reload.clone()));
            }
            Err(e) => tracing::warn!(error = %e, "cannot handle SIGHUP"),
        }
    }
    let bound = match &listen.services {
        Some(services) => {
            let info = ShardInfo {
                amqp_addr,
                amqps_addr,
                data_dir: listen.data_dir.clone(),
            };
            match services.start(shared.clone(), info).await {
                Ok(bound) => bound,
                Err(e) => {
                    close_unserved(&mut shared.broker.borrow_mut());
                    return Err(e);
                }
            }
        }
        None => Vec::new(),
    };
    // Every listener is up: now the files of an earlier run's transient queues go,
    // on a blocking thread, however many there are.
    let trash = shared.broker.borrow_mut().take_trash();
    if !trash.is_empty() {
        tokio::task::spawn_blocking(move || {
            let started = std::time::Instant::now();
            let (removed, _) = crate::sys::disk::remove_trash(&trash, None);
            tracing::info!(
                queues = removed,
                secs = started.elapsed().as_secs_f64(),
                "removed the files of transient queues from an earlier run"
            );
        });
    }
    Ok(bound)
}

/// A start that failed after the data directory was opened (a listener that
/// cannot bind): nothing was served, so the stores close cleanly and the next
/// start is not taken for one after a crash (which flags every recovered
/// message redelivered).
pub(crate) fn close_unserved(broker: &mut Broker) {
    if let Err(e) = broker.close() {
        tracing::warn!(error = %e, "could not close the data directory cleanly");
    }
}

/// How long shutdown spends removing transient queue files; what is left is
/// removed in the background at the next start. Shutdown must stay well inside
/// Docker's and systemd's stop timeouts (10 s and 30 s).
const TRASH_AT_SHUTDOWN: Duration = Duration::from_secs(3);

/// The last step of shutdown, after the broker closed its stores.
pub(crate) fn remove_transient_files_at_shutdown(shared: &Shared) {
    let trash = shared.broker.borrow_mut().take_trash();
    if trash.is_empty() {
        return;
    }
    let (removed, all) = crate::sys::disk::remove_trash(&trash, Some(std::time::Instant::now() + TRASH_AT_SHUTDOWN));
    if all {
        tracing::info!(queues = removed, "removed transient queue files");
    } else {
        tracing::info!(
            queues = removed,
            "removed transient queue files; the rest go at the next start"
        );
    }
}

/// SIGHUP: reload what can be reloaded and keep serving. Handling the signal at
/// all matters: its default action ends the process without a clean shutdown.
async fn reload_task(mut hup: tokio::signal::unix::Signal, reload: Option<Reload>) {
    while hup.recv().await.is_some() {
        match reload.as_deref().map(|r| r()) {
            Some(Ok(done)) => tracing::info!("SIGHUP: {done}"),
            Some(Err(why)) => tracing::error!("SIGHUP: nothing reloaded: {why}"),
            None => tracing::info!("SIGHUP: nothing to reload"),
        }
    }
}

/// Recomputes message rates every `STATS_INTERVAL_MS` (never per message).
async fn stats_task(shared: Rc<Shared>) {
    let every = Duration::from_millis(crate::core::model::stats::STATS_INTERVAL_MS);
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    loop {
        tick.tick().await;
        let t = shared.turns.start();
        shared.broker.borrow_mut().handle_stats_tick(now_ms());
        shared.turns.end(t, "stats tick", 1);
    }
}

/// Takes an exclusive lock on the data directory for the life of the process: two
/// brokers writing the same segment files would corrupt them (and the mmap code's
/// safety argument assumes one writer).
pub(crate) fn lock_data_dir(dir: &std::path::Path) -> std::io::Result<std::fs::File> {
    std::fs::create_dir_all(dir)?;
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join(".lock"))?;
    match f.try_lock() {
        Ok(()) => Ok(f),
        Err(std::fs::TryLockError::WouldBlock) => Err(std::io::Error::new(
            std::io::ErrorKind::AddrInUse,
            format!("data directory {} is in use by another ringmq", dir.display()),
        )),
        Err(std::fs::TryLockError::Error(e)) => Err(e),
    }
}

/// Runs group commits one at a time, off the loop: while one runs, new durable
/// publishes gather for the next, so the fsync rate adapts to the disk.
/// With a [`crate::shard::ConfirmGate`] (a clustered leader) a commit is
/// reported done only once the in-sync replicas hold it too.
async fn sync_task(shared: Rc<Shared>, gate: Option<crate::shard::ConfirmGate>) {
    loop {
        shared.sync_kick.notified().await;
        loop {
            let job = shared.broker.borrow_mut().poll_sync();
            let Some(job) = job else { break };
            let mark = gate.as_ref().map(|g| g.mark());
            let joined = tokio::task::spawn_blocking(move || {
                let r = job.run_blocking();
                (job, r)
            })
            .await;
            let Ok((job, result)) = joined else {
                tracing::error!("sync thread panicked");
                return;
            };
            if let (Some(g), Some(mark)) = (&gate, mark) {
                g.wait(mark).await;
            }
            let t = shared.turns.start();
            shared.broker.borrow_mut().handle_sync_done(job, result);
            shared.after_core_call();
            shared.turns.end(t, "sync done", 1);
        }
    }
}

/// Fires the core's timers (message TTL at queue heads, x-expires, delayed
/// messages): sleeps until the earliest deadline the core reports, and is woken
/// early when a core call arms an earlier one (see `Shared::after_core_call`).
///
/// This loop must always make progress (issue 15: a TTL-0 head re-armed at `now`
/// spun it forever and the broker ignored even SIGTERM). The core promises that
/// after `handle_timeout(now)` its next deadline is after `now` (due timers that
/// did not fit in the turn are pending work, run by `work_task`); this loop also
/// never passes the same `now` twice, and yields to the runtime after every
/// firing, so signals, sockets and the other tasks get their turn whatever the
/// core does.
async fn timer_task(shared: Rc<Shared>) {
    let mut last_fired = 0u64;
    loop {
        let next = shared.broker.borrow().poll_timeout();
        shared.timer_armed.set(next.unwrap_or(u64::MAX));
        match next {
            None => shared.timer_kick.notified().await,
            Some(at) => {
                if at <= last_fired {
                    // The core broke its promise: a deadline at or before a `now` it
                    // was already given. Never spin on it: wait for the next ms.
                    tracing::error!(at, last_fired, "core re-armed a timer that was due; deferring it");
                }
                let at = at.max(last_fired + 1);
                let now = now_ms();
                if at > now {
                    let sleep = tokio::time::sleep(Duration::from_millis(at - now));
                    tokio::select! {
                        _ = sleep => {}
                        _ = shared.timer_kick.notified() => continue,
                    }
                }
                let now = now_ms().max(at);
                last_fired = now;
                let t = shared.turns.start();
                let fired = shared.broker.borrow_mut().handle_timeout(now);
                shared.after_core_call();
                shared.turns.end(t, "timers", fired);
                tokio::task::yield_now().await;
            }
        }
    }
}
/// Checks free disk space and memory use, and raises or clears the alarms.
/// The store also raises the disk alarm where it takes space (segment creation
/// and growth), so a fast publisher cannot fill the disk between two checks.
async fn disk_task(shared: Rc<Shared>, dir: std::path::PathBuf, min_bytes: u64, mem_limit: u64) {
    {
        let mut b = shared.broker.borrow_mut();
        b.set_alarm_limits(min_bytes, mem_limit);
    }
    let mut tick = tokio::time::interval(DISK_CHECK_EVERY);
    loop {
        tick.tick().await;
        let disk = match crate::sys::disk::free_bytes(&dir) {
            Ok(free) => Some(free < min_bytes),
            Err(e) => {
                tracing::warn!(error = %e, "cannot read free disk space");
                None
            }
        };
        let mem = mem_limit > 0 && super::memory::rss_bytes() >= mem_limit;
        let blocking = {
            let mut b = shared.broker.borrow_mut();
            if let Some(alarm) = disk {
                b.handle_disk_alarm(alarm);
            }
            b.handle_mem_alarm(mem);
            b.alarms().blocking()
        };
        if !blocking {
            shared.unblocked.notify_waiters();
        }
        shared.after_core_call();
    }
}

/// Continues work that hit a per-turn bound (deliveries, dead letters, expiry,
/// due timers), one bounded batch per turn, after other tasks had a turn: the
/// yield lets the runtime poll sockets and signals between batches, so a core
/// that always has more to do still sees SIGTERM.
async fn work_task(shared: Rc<Shared>) {
    loop {
        shared.work_kick.notified().await;
        while shared.broker.borrow().has_pending_work() {
            tokio::task::yield_now().await;
            let t = shared.turns.start();
            shared.broker.borrow_mut().run_pending();
            shared.after_core_call();
            shared.turns.end(t, "pending work", 1);
        }
    }
}
