//! ringmqperf: an AMQP 0-9-1 load generator and broker comparison tool.
//!
//! | module | what |
//! |---|---|
//! | [`client`] | the lean AMQP client (tokio + `ringmq-codec`), reusable by tests |
//! | [`args`] | command line (lavinmqperf's flag names) |
//! | [`stats`] | counters, rates, medians, latency histograms, RSS, CPU |
//! | [`streams`] | `--stream`: stream queues, offsets, filters (issue 20) |
//! | [`throughput`] | `throughput` (and the engine behind `latency`) |
//! | [`latency`] | `latency` at fixed rates |
//! | [`ops`] | `queue-count`, `connection-count` and the churn scenarios |
//! | [`compare`] | the same scenario against several brokers, A B A B |
//! | [`server`] | `sink` and `source`: a minimal broker to measure the tool itself |
//! | [`uri`] | AMQP URI parsing (`amqp://`, `amqps://`) |
//! | [`tls`] | the client's stream: plain TCP or TLS (rustls) over it |
//! | [`tasks`] | where client tasks run (thread per client, or a worker pool) |
#![forbid(unsafe_code)]

pub mod args;
pub mod cli;
pub mod client;
pub mod compare;
pub mod latency;
pub mod ops;
pub mod server;
pub mod stats;
pub mod streams;
pub mod tasks;
pub mod throughput;
pub mod tls;
pub mod uri;
