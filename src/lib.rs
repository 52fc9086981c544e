//! ringmq: an AMQP 0-9-1 broker.
//!
//! | module | what |
//! |---|---|
//! | [`config`] | flags and the INI file, with defaults |
//! | [`core`] | sans-IO broker state: connections, channels, vhosts, exchanges, queues |
//! | [`http`] | management API, Prometheus metrics, the embedded web UI |
//! | [`io`] | the transport: sockets, the shard loop, group-commit fsync |
pub mod config;
pub mod core;
pub mod http;
pub mod io;
