//! The sans-IO broker core: frames and `now` in, frames and effects out.
//!
//! Nothing here opens a socket, reads the clock or spawns a thread. The io layer
//! feeds bytes into [`broker::Broker::handle_input`] and drains each connection's
//! output with `poll_*` calls.
pub mod exchange;
