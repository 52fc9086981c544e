//! ringmq: an AMQP 0-9-1 broker.
//!
//! | module | what |
//! |---|---|
//! | [`config`] | flags and the INI file, with defaults |
//! | [`core`] | sans-IO broker state: connections, channels, vhosts, exchanges, queues |
//! | [`federation`] | federation links: a supervisor and a task per federated exchange or queue and upstream, on shard 0 (a service) |
//! | [`http`] | management API, Prometheus metrics, the embedded web UI |
//! | [`io`] | the transport: sockets, the shard loop, group-commit fsync |
//! | [`shard`] | the shard handle `io` and `http` share, and the services `io` starts for `main` |
//! | [`shovel`] | dynamic shovels: a supervisor and a task per `shovel` parameter, on shard 0 (a service) |
//! | `links` | what shovels and federation share: connecting (this broker for `amqp://`), URIs and times as shown |
//! | `sys` | clock, disk, listeners and loop-turn timing, shared by `io` and `http` |
//!
//! `io` and `http` do not import each other: both use `shard` and `sys`, and
//! `main` hands the HTTP server to the transport as a [`shard::Services`].
// `unsafe` is refused by the compiler everywhere but where the io layer opens
// it: the io_uring backend (io/mod.rs) and statvfs (sys/mod.rs).
#![deny(unsafe_code)]

pub mod cluster;
pub mod config;
pub mod core;
pub mod federation;
pub mod http;
pub mod io;
pub mod links;
pub mod shard;
pub mod shovel;
mod sys;
pub mod tls;
