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
//! - `server` + `conn`, the `tokio::net` (epoll) backend: per connection one
//!   task, a reader (socket → `handle_input`) beside a writer (`poll_output` →
//!   socket) woken by a `Notify` when the core reports the connection dirty, so
//!   all frames of one loop turn go out in one `write`; one ticker task for the
//!   heartbeats of all; fsync on a blocking thread.
//!   Used where io_uring is unavailable (Docker's default seccomp profile blocks
//!   it) or chosen with `--io=epoll`.
//!
//! - [`rings`]: what crosses between shards (step 2 of `docs/shards.md`): a
//!   bounded single-producer single-consumer ring of batches per ordered pair of
//!   shards, and an eventfd per shard that peers write after a turn that pushed.
//!
//! Both accept on tokio's side ([`accept`]: TCP, TLS and Unix socket listeners),
//! where a listener that requires one reads the PROXY protocol header first
//! ([`proxy`]), before the backend takes the socket.

mod accept;
mod conn;
pub mod memory;
mod notify;
mod proxy;
// The rings between shards: each `unsafe` block has a `// SAFETY:` comment.
#[allow(unsafe_code)]
pub mod rings;
mod server;
pub(crate) mod shards;
pub mod tls;
// The io_uring backend: each `unsafe` block has a `// SAFETY:` comment.
#[allow(unsafe_code)]
mod uring;

/// The clock and the listeners live in `crate::sys` (shared with `http`); the
/// backends name them here.
pub(crate) use crate::sys::{listeners, now_ms};
pub use server::{AmqpsListen, ListenConfig, MqttListen, Reload, UnixListen};

/// Which transport backend runs the data path: one type, shared with the
/// configuration (`--io=uring|epoll|auto`).
pub use crate::config::IoBackend;

/// Runs the broker until SIGTERM or SIGINT on the backend `listen` asks for.
/// Returns once state is synced.
pub fn run(core: crate::core::CoreConfig, listen: ListenConfig) -> std::io::Result<()> {
    // A clustered leader's confirms wait for its replicas in the epoll
    // backend's group commit only (`shard::ConfirmGate`).
    let backend = if listen.confirm_gate.is_some() {
        IoBackend::Epoll
    } else {
        listen.backend
    };
    match backend {
        IoBackend::Epoll => {}
        // Asked for by name: falling back would run what the user did not ask for.
        IoBackend::Uring => {
            let ring = uring::Ring::new()
                .map_err(|why| std::io::Error::other(format!("--io=uring, but io_uring is unavailable: {why}")))?;
            return uring::run(core, listen, ring);
        }
        // Docker's default seccomp profile refuses io_uring_setup (EPERM), as do
        // kernels with io_uring disabled (io_uring_disabled=2, ENOSYS on old ones):
        // normal setups, so one INFO line, not a warning.
        IoBackend::Auto => match uring::Ring::new() {
            Ok(ring) => return uring::run(core, listen, ring),
            Err(why) => tracing::info!("io_uring unavailable ({why}); using the epoll backend"),
        },
    }
    server::run(core, listen)
}
