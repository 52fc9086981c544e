//! The io_uring backend: the AMQP data path on one ring per shard thread.
//!
//! The ring lives inside the shard's tokio current-thread runtime: an eventfd is
//! registered with the ring (IORING_REGISTER_EVENTFD) and watched by tokio
//! (`AsyncFd`), so a completion wakes the same loop that runs timers, the
//! deferred-work and disk tasks (and, later, HTTP). One wake-up runs one driver
//! turn: a batch of completions, then one submit.
//!
//! `unsafe` lives only in this module (the driver, its buffer ring and its send
//! buffers), each block with a `// SAFETY:` comment.

mod bufring;
mod conn;
mod driver;

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::rc::Rc;
use std::time::Duration;

use io_uring::IoUring;
use tokio::io::unix::AsyncFd;

use self::bufring::BufRing;
use self::driver::{Driver, DriverConfig};
use super::server::{self, ListenConfig, Shared};
use crate::core::CoreConfig;

/// Submission queue entries (the completion queue gets [`CQ_ENTRIES`]).
const SQ_ENTRIES: u32 = 1024;
/// Multishot receives post many completions per submission: room for them.
const CQ_ENTRIES: u32 = 8192;
/// The receive buffer ring's group (its pool's size: `bufring::INC_POOL`).
const RECV_BGID: u16 = 0;
/// Oldest kernel with everything used here (multishot receive into a buffer ring).
const KERNEL_MIN: (u32, u32) = (6, 0);

/// A ring and its receive buffers, set up before the runtime starts so that a
/// kernel without io_uring falls back to epoll before anything else happens.
pub(crate) struct Ring {
    ring: IoUring,
    bufs: BufRing,
}

impl Ring {
    /// Creates the ring; the error says why io_uring cannot be used here.
    pub(crate) fn new() -> Result<Ring, String> {
        let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
        let version = parse_kernel_version(&release);
        if version.is_some_and(|v| v < KERNEL_MIN) {
            return Err(format!(
                "kernel {} is older than {}.{} (multishot receive)",
                release.trim(),
                KERNEL_MIN.0,
                KERNEL_MIN.1
            ));
        }
        let ring = IoUring::builder()
            .setup_cqsize(CQ_ENTRIES)
            .setup_single_issuer()
            .build(SQ_ENTRIES)
            .map_err(|e| match e.raw_os_error() {
                Some(libc::EPERM) => format!(
                    "io_uring_setup: {e} (kernel.io_uring_disabled or a seccomp profile such as Docker's default)"
                ),
                Some(libc::ENOSYS) => format!("io_uring_setup: {e} (kernel built without io_uring)"),
                _ => format!("io_uring_setup: {e}"),
            })?;
        if !ring.params().is_feature_nodrop() {
            return Err("the kernel lacks IORING_FEAT_NODROP".into());
        }
        let bufs =
            BufRing::setup(&ring.submitter(), RECV_BGID).map_err(|e| format!("IORING_REGISTER_PBUF_RING: {e}"))?;
        tracing::debug!(
            incremental = bufs.incremental(),
            bytes = bufs.pool_bytes(),
            "receive buffer pool"
        );
        Ok(Ring { ring, bufs })
    }
}

fn parse_kernel_version(release: &str) -> Option<(u32, u32)> {
    let mut it = release.trim().split(['.', '-']);
    let major = it.next()?.parse().ok()?;
    let minor = it.next()?.parse().ok()?;
    Some((major, minor))
}

/// Runs the broker on `ring` until SIGTERM or SIGINT.
pub(crate) fn run(core: CoreConfig, listen: ListenConfig, ring: Ring) -> std::io::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, serve(core, listen, ring))
}

async fn serve(core: CoreConfig, listen: ListenConfig, ring: Ring) -> std::io::Result<()> {
    let _lock = server::lock_data_dir(&core.data_dir)?;
    let notify = super::notify::Notifier::new(listen.notify_socket.as_deref());
    // Opening checks every stored record: minutes for a big data directory.
    notify.status(server::OPENING_STATUS);
    let header_timeout = Duration::from_millis(core.handshake_timeout_ms);
    let (mut broker, port, mut team) = super::shards::open(core, listen.shards)?;
    // Accept runs on tokio's epoll side, not as a multishot accept SQE: an SQE
    // holds a reference to the listening socket that outlives the process by
    // the ring's asynchronous teardown (measured ~6 ms after kill -9 here), and
    // meanwhile the dead broker's port still completes handshakes that nobody
    // serves and a restarted broker cannot bind it. Accept is not on the hot path.
    // A PROXY header is read there too, by a task per connection, which hands
    // the connection over through `proxied` once the header is in.
    let listeners = match super::accept::AmqpListeners::bind(&listen, "io_uring", None) {
        Ok(l) => l,
        Err(e) => {
            server::close_unserved(&mut broker);
            team.iter_mut().for_each(super::shards::Team::close_unserved);
            return Err(e);
        }
    };
    if let Some(team) = &mut team {
        let at = listeners.addrs();
        if let Err(e) = team.start(&listen, at, super::IoBackend::Uring, header_timeout) {
            server::close_unserved(&mut broker);
            return Err(e);
        }
    }
    let shared = Rc::new(Shared::new(broker, true).with_cross(port));
    let (amqp_addr, amqps_addr) = (listeners.amqp_addr, listeners.amqps_addr);
    let mut http = match server::spawn_common_tasks(&shared, &listen, amqp_addr, amqps_addr, true).await {
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
    let started = Started {
        listeners,
        stopper,
        header_timeout,
        max_connections: listen.max_connections,
    };
    let served = drive(&shared, ring, started, Some((&notify, &http))).await;
    // The other shards were asked to stop with this one; their threads end
    // once each has shut down.
    let joined = team.map_or(Ok(()), super::shards::Team::stop_and_join);
    served.and(joined)
}

/// A shard thread's loop on the io_uring backend (`server::start_peer`).
pub(crate) async fn serve_peer(start: super::shards::PeerStart, ring: Ring) -> std::io::Result<()> {
    let server::PeerServing {
        shared,
        listeners,
        listen,
        header_timeout,
        ready,
    } = server::start_peer(start, true).await?;
    let started = Started {
        listeners,
        stopper: super::shards::Stopper::new(false)?,
        header_timeout,
        max_connections: listen.max_connections,
    };
    let _ = ready.send(());
    drive(&shared, ring, started, None).await
}

/// A shard's listeners and how it learns to stop, for [`drive`].
struct Started {
    listeners: super::accept::AmqpListeners,
    stopper: super::shards::Stopper,
    header_timeout: Duration,
    max_connections: usize,
}

/// Runs the driver until the shard is told to stop, then shuts it down.
/// `ready`: on shard 0, systemd's notifier and the services' listeners.
async fn drive(
    shared: &Rc<Shared>,
    ring: Ring,
    started: Started,
    ready: Option<(&super::notify::Notifier, &crate::shard::Bound)>,
) -> std::io::Result<()> {
    let Started {
        mut listeners,
        mut stopper,
        header_timeout,
        max_connections,
    } = started;
    let amqp_addr = listeners.amqp_addr;
    let (proxied_tx, mut proxied) = tokio::sync::mpsc::unbounded_channel();
    let efd = eventfd()?;
    ring.ring.submitter().register_eventfd(efd.as_raw_fd())?;
    // SAFETY: `efd` is an `OwnedFd`: open, and the same descriptor, for as long
    // as the AsyncFd that owns it.
    let efd =
        unsafe { AsyncFd::register_with_interest(efd, tokio::io::Interest::READABLE) }.map_err(|e| e.into_parts().1)?;
    let cfg = DriverConfig { max_connections };
    let mut d = Driver::new(ring.ring, ring.bufs, shared.clone(), cfg);
    let kick = shared.driver_kick.as_ref().expect("uring mode");

    let mut tick = tokio::time::interval(server::TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut stop_at: Option<tokio::time::Instant> = None;
    // Only now: every listener is bound, the driver is set up, and SIGTERM is
    // ours to handle.
    if let Some((notify, http)) = ready {
        notify.ready(&server::ready_status(amqp_addr, "io_uring", http));
    }
    loop {
        let t = shared.turns.start();
        let cqes = d.stats.cqes;
        d.turn(crate::io::now_ms());
        shared
            .turns
            .end(t, "io_uring turn (completions)", (d.stats.cqes - cqes) as usize);
        if let Some(at) = stop_at {
            let drained = shared.open_connections.get() == 0 || tokio::time::Instant::now() >= at;
            if drained && !d.sync_running() && !shared.broker.borrow().sync_running() {
                break;
            }
        }
        if d.has_ready() {
            // Completions left after the per-turn bound: let other tasks run first.
            tokio::task::yield_now().await;
            continue;
        }
        tokio::select! {
            r = efd.readable() => {
                // The eventfd's counter is never read: with epoll's edge trigger every
                // write the kernel makes to it (one per completion batch) is a new
                // event, so clearing tokio's readiness is enough and saves a read(2)
                // per wake-up. Clearing before the turn reaps means a completion
                // posted after the reap wakes us again.
                r?.clear_ready();
            }
            _ = kick.notified() => {}
            accepted = listeners.accept() => adopt(&mut d, accepted, &proxied_tx, header_timeout).await,
            Some(acc) = proxied.recv(), if stop_at.is_none() => d.adopt(acc, crate::io::now_ms()),
            _ = tick.tick() => d.tick_all(crate::io::now_ms()),
            _ = stopper.wait(shared), if stop_at.is_none() => {
                listeners.close();
                stop_at = Some(begin_shutdown(shared, ready.map(|r| r.0)));
            }
            _ = tokio::time::sleep(Duration::from_millis(10)), if stop_at.is_some() => {}
        }
    }
    if shared.open_connections.get() > 0 {
        tracing::warn!(
            open = shared.open_connections.get(),
            "connections still open at shutdown"
        );
    }
    d.finish(crate::io::now_ms());
    let s = &d.stats;
    tracing::info!(
        turns = s.turns,
        completions = s.cqes,
        enters = s.enters,
        sends = s.sends,
        direct_recvs = s.direct_recvs,
        sq_full = s.sq_full,
        cq_overflow = s.cq_overflow,
        "io_uring driver stopped"
    );
    drop(d);
    if let Some(port) = &shared.cross {
        port.log_stats();
    }
    shared.broker.borrow_mut().close()?;
    server::remove_transient_files_at_shutdown(shared);
    tracing::info!("shutdown complete");
    Ok(())
}

/// Hands an accepted socket to the driver, or to a task that reads its PROXY
/// header first and then sends it to `proxied`.
async fn adopt(
    d: &mut Driver,
    accepted: std::io::Result<super::accept::Incoming>,
    proxied: &tokio::sync::mpsc::UnboundedSender<super::accept::Accepted>,
    header_timeout: Duration,
) {
    use super::accept::{after_header, next_step, Next};
    let incoming = match accepted {
        Ok(x) => x,
        Err(e) => return crate::sys::listeners::accept_failed(&e).await,
    };
    match next_step(incoming) {
        Next::Ready(acc) => d.adopt(acc, crate::io::now_ms()),
        Next::Header(incoming) => {
            let proxied = proxied.clone();
            tokio::task::spawn_local(async move {
                if let Some(acc) = after_header(incoming, header_timeout).await {
                    // Fails only once the loop is gone (shutdown): the socket closes.
                    let _ = proxied.send(acc);
                }
            });
        }
        Next::Refused => {}
    }
}

fn begin_shutdown(shared: &Shared, notify: Option<&super::notify::Notifier>) -> tokio::time::Instant {
    if let Some(notify) = notify {
        notify.stopping(server::STOPPING_STATUS);
    }
    tracing::info!("shutting down");
    shared.stop_adopting_streams();
    shared.broker.borrow_mut().handle_shutdown(crate::io::now_ms());
    tokio::time::Instant::now() + server::SHUTDOWN_FLUSH
}

pub(in crate::io) fn eventfd() -> std::io::Result<OwnedFd> {
    // SAFETY: eventfd takes no pointers; a non-negative result is a new fd we own.
    let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `fd` was just created by eventfd and is owned by nothing else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

#[cfg(test)]
mod tests {
    #[test]
    fn kernel_versions() {
        assert_eq!(super::parse_kernel_version("6.18.44-fc-v657\n"), Some((6, 18)));
        assert_eq!(super::parse_kernel_version("5.15.0"), Some((5, 15)));
        assert_eq!(super::parse_kernel_version("garbage"), None);
    }
}
