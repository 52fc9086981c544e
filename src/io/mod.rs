//! The transport: sockets, the shard loop, and fsync off the loop.
//!
//! One shard thread runs a tokio current-thread runtime. The broker core lives in
//! an `Rc<RefCell<_>>` shared by the tasks of that one thread: no lock, no
//! cross-thread traffic on the hot path. The AMQP data path has two backends
//! behind the same three calls into the core (feed bytes in, take bytes out, run
//! sync jobs):
//!
//! - [`uring`]: the io_uring driver: one ring per shard, woken through an
//!   eventfd that tokio watches; multishot accept and receive into a provided
//!   buffer ring, one send per connection per loop turn, group commit as fsync
//!   SQEs. The only place with `unsafe` in the broker.
//! - `server` + `conn`, the `tokio::net` (epoll) backend: per connection a reader
//!   task (socket → `handle_input`) and a writer task (`poll_output` → socket),
//!   woken by a `Notify` when the core reports the connection dirty, so all
//!   frames of one loop turn go out in one `write`; fsync on a blocking thread.
//!   Used where io_uring is unavailable (Docker's default seccomp profile blocks
//!   it) or chosen with `--io=epoll`.

mod conn;
mod disk;
mod server;
mod uring;

pub use server::ListenConfig;

/// Which transport backend runs the data path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IoBackend {
    /// io_uring; falls back to epoll (with one log line) where it is unavailable.
    Uring,
    /// `tokio::net` on epoll.
    Epoll,
    /// io_uring where the kernel allows it, else epoll.
    #[default]
    Auto,
}

impl std::str::FromStr for IoBackend {
    type Err = String;
    fn from_str(s: &str) -> Result<IoBackend, String> {
        match s {
            "uring" | "io_uring" | "io-uring" => Ok(IoBackend::Uring),
            "epoll" | "tokio" => Ok(IoBackend::Epoll),
            "auto" => Ok(IoBackend::Auto),
            _ => Err(format!("unknown io backend '{s}' (expected uring, epoll or auto)")),
        }
    }
}

/// Runs the broker until SIGTERM or SIGINT on the backend `listen` asks for.
/// Returns once state is synced.
pub fn run(core: core_config::CoreConfig, listen: ListenConfig) -> std::io::Result<()> {
    let backend = selected_backend(&listen);
    if backend != IoBackend::Epoll {
        match uring::Ring::new() {
            Ok(ring) => return uring::run(core, listen, ring),
            Err(why) => {
                tracing::warn!("io_uring unavailable, using the epoll backend: {why}");
            }
        }
    }
    server::run(core, listen)
}

use crate::core as core_config;

/// Until `ListenConfig` carries the backend (wired from `--io` in main.rs), the
/// epoll backend stays the default.
fn selected_backend(_listen: &ListenConfig) -> IoBackend {
    IoBackend::Epoll
}

/// Milliseconds since the Unix epoch: the `now` the core is given.
pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
