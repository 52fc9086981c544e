//! Durable definitions: the binary log every durable declare, bind and delete is
//! appended to ([`log`], made durable by the broker's group commit), replayed from
//! at start ([`replay`]) and compacted to the live state ([`compact`]); and the
//! RabbitMQ-shaped JSON export and import ([`json`]).
//!
//! Functions over a vhost, the model ([`Model`](crate::core::model::Model):
//! its vhosts and its commit state), the users and the permissions; nothing
//! here names `Broker` (`tests/walls.rs`). Who calls them with the broker's
//! state: the AMQP session (records of a client's declares, the group commit's
//! job, `amqp::confirm`), the shard at open (replay) and shutdown (sync), and
//! the management seam (import, export: `mgmt::definitions`). The tests that
//! need a whole broker are in `testkit` (`definitions_commit`, `old_layout`)
//! and `mgmt::definitions`.

pub mod compact;
pub mod json;
pub mod log;
pub mod ops;
pub mod replay;
