//! ringmqperf: an AMQP 0-9-1 load generator and broker comparison tool, on the
//! workspace's client (`ringmq-client`: connections, URIs, TLS).
//!
//! | module | what |
//! |---|---|
//! | [`args`] | command line (lavinmqperf's flag names) |
//! | [`stats`] | counters, rates, medians, latency histograms, RSS, CPU |
//! | [`streams`] | `--stream`: stream queues, offsets, filters (issue 20) |
//! | [`throughput`] | `throughput` (and the engine behind `latency`) |
//! | [`latency`] | `latency` at fixed rates |
//! | [`ops`] | `queue-count`, `connection-count` and the churn scenarios |
//! | [`compare`] | the same scenario against several brokers, A B A B |
//! | [`server`] | `sink` and `source`: a minimal broker to measure the tool itself |
//! | [`tasks`] | where client tasks run (thread per client, or a worker pool) |
#![forbid(unsafe_code)]

pub mod args;
pub mod cli;
pub mod compare;
pub mod latency;
pub mod ops;
pub mod server;
pub mod stats;
pub mod streams;
pub mod tasks;
pub mod throughput;
