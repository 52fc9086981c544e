//! The sans-IO broker core: frames and `now` in, frames and effects out.
//!
//! Nothing here opens a socket, reads the clock or spawns a thread. The io layer
//! feeds bytes into [`Broker::handle_input`] and drains each connection's
//! output with [`Broker::poll_output`]; fsync work comes out of
//! [`Broker::poll_sync`] and goes back in through `handle_sync_done`.
//!
//! | folder | what lives there |
//! |---|---|
//! | `contract` | the io contract: every call `src/io` makes (`handle_*` in, `take_*`/`poll_*` out) |
//! | [`config`], [`alarms`] | the settings the core needs; the disk and memory alarms' state (their effect on connections is `amqp::alarms`) |
//! | [`model`] | protocol-neutral, in one type (`model::Model`): vhosts, exchanges (one file per kind), queues (store, TTL, dead-lettering, limits, dedup), the group commit's state, timers, the policies applied to them, ids, stats, the error of operators' operations |
//! | [`amqp`] | the AMQP 0-9-1 session on the model, and [`Broker`] (`amqp/broker.rs`): the shard's state, the model with the connections, opened and recovered from the data directory, closed at shutdown; frame loop and errors, connection, handshake, channel, one file per command class, confirms and transactions, delivery to consumers, output |
//! | [`access`] | users and SASL, permissions, topic permissions |
//! | [`policy`] | policies and operator policies as operators write them: validation, files, put/delete/list over a vhost, re-applying to the model |
//! | [`definitions`] | the durable definitions log (over the model) and the JSON format: export, an import validated into a plan |
//! | [`mqtt`] | the MQTT 3.1.1 session: a client of the broker as RabbitMQ's MQTT plugin is, driving a connection with AMQP frames (PUBLISH to amq.topic, SUBSCRIBE as bindings of its own queue) |
//! | [`mgmt`] | the management seam: the commands the HTTP API and ringmqctl run, vhost operations, policies and definitions import/export on the broker, their errors' HTTP status |
//! | `testkit` | (tests only) the test kit over the io contract: fake clock, in-memory client, harness, power-loss disk, and the seeded simulation (confirms, transactions, timers, restarts, crashes) |
//!
//! The folders import downwards only, never in a circle (`tests/walls.rs`):
//! `model` imports none (nothing of the core but itself); `access`, `policy` and `definitions` the model (and
//! `definitions` the two others, for the JSON import); `amqp` those; `mgmt`
//! everything; `mqtt` the Broker and `mgmt`; `testkit` anything. The root's files are the io contract
//! (`contract`, over the `Broker`), the settings and the alarms' state; no root
//! file is imported by a folder that it imports (`Broker` lives in `amqp`, the
//! session's connections are its state).
//! `access`, `policy` and `definitions` (and `model`) are types and functions
//! over their own state and the model's: they name no `Broker` and nothing of
//! `amqp`, `mgmt`, `contract` or `alarms`, and hold no `impl Broker`; what
//! needs the whole broker is glue in `amqp` or `mgmt` that passes them what
//! they need.
pub mod access;
pub mod alarms;
pub mod amqp;
pub mod config;
mod contract;
pub mod definitions;
pub mod mgmt;
pub mod model;
pub mod mqtt;
pub mod policy;
#[cfg(test)]
pub(crate) mod testkit;

pub use amqp::broker::Broker;
pub use config::CoreConfig;

/// The hash map of the core: foldhash, randomly keyed per process, so
/// client-chosen names cannot be used to flood a bucket. Names are short and
/// hashed on every publish (exchange, queue by routing key, channel, vhost):
/// SipHash was 21% of the 1p1c broker CPU; against aHash's portable fallback
/// (a generic build has no AES instructions) foldhash took the broker from
/// 6,104 to 5,976 instructions per 16 B message (benches/callgrind.sh).
pub type Map<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;
/// The maps a publish looks up by a name from the wire (exchanges, queues by
/// name, direct bindings): [`Map`]'s hashing, and looked up with
/// [`model::ids::Name`], which compares without libc's `memcmp` (see
/// `ringmq_codec::short::names_eq` for why). `std`'s map compares through
/// `Borrow<str>`, i.e. `memcmp`; hashbrown's `Equivalent` lets the key decide.
pub type NameMap<K, V> = hashbrown::HashMap<K, V, foldhash::fast::RandomState>;
/// The hash set counterpart of [`Map`].
pub type Set<T> = std::collections::HashSet<T, foldhash::fast::RandomState>;
