//! The sans-IO broker core: frames and `now` in, frames and effects out.
//!
//! Nothing here opens a socket, reads the clock or spawns a thread. The io layer
//! feeds bytes into [`broker::Broker::handle_input`] and drains each connection's
//! output with [`broker::Broker::poll_output`]; fsync work comes out of
//! [`broker::Broker::poll_sync`] and goes back in through `handle_sync_done`.
//!
//! | module | what |
//! |---|---|
//! | [`broker`] | the shard's state and its `handle_*`/`poll_*` API |
//! | [`dispatch`] | handshake, connection methods, per-channel frame routing |
//! | [`connection`], [`channel`] | per-connection and per-channel state |
//! | `exchange_methods`, `queue_methods`, `basic_methods` | one file per AMQP class |
//! | [`confirm`] | publisher confirms, transactions, group commit |
//! | `delivery` | queue → consumer delivery, releasing closed channels |
//! | [`output`] | a connection's pending frames, large bodies sent from the segment mapping |
//! | [`vhost`], [`queue`], [`exchange`] | exchanges, routing, queues, bindings |
//! | `definitions` | the durable definitions log |
//! | [`auth`] | SASL PLAIN/AMQPLAIN and users |
//! | [`permissions`], [`topic_permissions`] | configure/write/read and topic rights |
//! | [`admin`] | management operations (the HTTP API's writes) |
//! | [`stats`] | message counters and rates (computed on a timer) |
mod ack_flush;
pub mod admin;
pub mod admin_error;
pub mod auth;
mod basic_methods;
pub mod broker;
pub mod channel;
pub mod confirm;
pub mod connection;
mod dead_letter_hold;
pub mod dedup;
mod definitions;
pub mod definitions_json;
mod delayed;
mod delivery;
mod direct_reply;
pub mod dispatch;
pub mod exchange;
mod exchange_methods;
pub mod handshake;
pub mod ids;
pub mod json_table;
mod lifecycle;
pub mod output;
pub mod permissions;
pub mod policy;
pub mod policy_ops;
pub mod queue;
pub mod queue_args;
mod queue_methods;
pub mod stats;
pub mod topic_permissions;
pub mod vhost;
pub mod vhost_ops;

pub use broker::{Broker, CoreConfig};

/// The hash map of the core: aHash, about 4x faster than SipHash on our short
/// keys (the 1p1c profile had SipHash at 21% of broker CPU) and still randomly
/// keyed per process, so client-chosen names cannot be used to flood a bucket.
pub type Map<K, V> = std::collections::HashMap<K, V, ahash::RandomState>;
/// The hash set counterpart of [`Map`].
pub type Set<T> = std::collections::HashSet<T, ahash::RandomState>;

#[cfg(test)]
mod dead_letter_hold_tests;
#[cfg(test)]
mod sim_tests;
#[cfg(test)]
mod tx_tests;
