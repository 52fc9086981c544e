//! The transport: sockets, the shard loop, and fsync off the loop.
//!
//! One shard thread runs a tokio current-thread runtime. The broker core lives in
//! an `Rc<RefCell<_>>` shared by the tasks of that one thread: no lock, no
//! cross-thread traffic on the hot path. Per connection there is a reader task
//! (socket → `handle_input`) and a writer task (`poll_output` → socket), woken by
//! a `Notify` when the core reports the connection dirty. So all frames the core
//! produced for a connection during one loop turn go out in one `write` — the
//! batching DESIGN.md asks for — and a slow socket never blocks the reader.
//!
//! This is the `tokio::net` (epoll) backend of the transport seam; the io_uring
//! backend plugs in at the same three calls: feed bytes in, take bytes out, run
//! sync jobs.

mod conn;
mod disk;
mod server;

pub use server::{run, ListenConfig};

/// Milliseconds since the Unix epoch: the `now` the core is given.
pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
