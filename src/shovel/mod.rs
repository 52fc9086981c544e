//! Dynamic shovels (RabbitMQ's `shovel` runtime parameters): a link inside
//! the broker that consumes from a queue or exchange on one broker and
//! publishes to another (or this one), using the workspace's AMQP client for
//! both ends. Everything runs on shard 0's tokio runtime, beside the HTTP API.
//!
//! | file | what |
//! |---|---|
//! | `supervisor.rs` | one per broker: a task per parameter, started, restarted, stopped as parameters change |
//! | `link.rs` | one run of a shovel: connect, declare, move messages (ack modes, confirms, delete-after) |
//! | `http_dest.rs` | an `http://` destination: each message POSTed, a 2xx acks it, others retried |
//! | `message.rs` | what a shovel changes in a message's properties (forward and timestamp headers) |
//! | `status.rs` | each shovel's state and last error for `GET /api/shovels` (RabbitMQ's shape) |
//!
//! The parameter's value is checked (and parsed) in the core,
//! `core::model::shovel`, so the API, definitions and ringmqctl refuse the
//! same values.

mod http_dest;
mod link;
mod message;
pub mod status;
mod supervisor;

/// The shovel supervisor as a shard service (shard 0 only, started once AMQP
/// listens, so a shovel to `amqp://` finds this broker's listener).
pub fn services(login: crate::links::connect::InternalLogin) -> crate::shard::Services {
    crate::shard::Services::new(move |shared, info| {
        tokio::task::spawn_local(supervisor::supervise(shared, info.amqp_addr, login.clone()));
        Box::pin(async { Ok(Vec::new()) })
    })
}
