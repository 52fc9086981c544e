//! The broker's model, protocol-neutral: what AMQP today (and MQTT, shovels and
//! federation later) publish into, route through and consume from.
//!
//! | module | what |
//! |---|---|
//! | [`commit`] | what the next group commit covers (dirty queues, delayed stores, definitions logs), its epochs |
//! | [`state`] | [`Model`]: the vhosts and the model's pending work (timers, dead letters, expiry, delivery, buffered acks) |
//! | [`vhost`] | a virtual host: its exchanges, queues and bindings |
//! | [`route_graph`] | which queues a message goes to: the exchange graph walk of a vhost |
//! | [`exchange`] | binding tables and matchers, one file per kind; the delayed exchange |
//! | [`queue`] | a queue: its store, consumers order, arguments, TTL, dead-lettering, limits, dedup |
//! | [`cross`] | what crosses between shards on the data path: messages for another shard's queues, and its word that they were stored |
//! | [`meta`] | metadata ops: a declare, delete or binding as a value, applied by one function; the shard that owns a queue |
//! | [`ids`] | the small ids that name connections, queues and destinations |
//! | [`error`] | the error of an operator's operation on the model (API, import, ctl, policies), the name check at its edge |
//! | [`policy`] | a vhost's policies, which one applies to an object, a queue's effective settings from its arguments and policies |
//! | [`stats`] | message counters and rates (computed on a timer) |
//! | [`shovel`] | a dynamic shovel's parameter value, checked (RabbitMQ's keys and texts) and parsed |

pub(in crate::core) mod commit;
pub mod cross;
pub mod error;
pub mod exchange;
pub mod federation;
pub mod ids;
pub mod meta;
pub mod policy;
pub mod queue;
pub(in crate::core) mod route;
pub mod route_graph;
pub mod shovel;
pub mod state;
pub mod stats;
pub mod terms;
pub(in crate::core) mod timers;
pub mod vhost;
pub mod vhost_files;
pub mod vhost_meta;

pub use state::Model;
