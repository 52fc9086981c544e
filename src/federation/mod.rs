//! Federation (RabbitMQ's `rabbitmq_federation`): an exchange or queue whose
//! policy names an upstream (`federation-upstream`) or a set of them
//! (`federation-upstream-set`, `all`) receives what is published to the
//! upstream's exchange, or fetches from its queue while it has consumers,
//! through a link per upstream: a client inside the broker, on shard 0's
//! tokio runtime beside the HTTP API and the shovels.
//!
//! | file | what |
//! |---|---|
//! | `supervisor.rs` | one per broker: reads the model, starts, restarts and stops the links, sends them their bindings and run/pause |
//! | `upstreams.rs` | a policy's upstreams: one, a set's entries over their upstreams, or `all` |
//! | `link.rs` | what both kinds of link share: their context, the local and upstream connections |
//! | `exchange_link.rs` | one run of an exchange link: the upstream queue and helper exchange, bindings kept in sync |
//! | `bindings.rs` | the downstream's bindings as the upstream gets them (`x-bound-from`, hops) |
//! | `queue_link.rs` | one run of a queue link: consume upstream only while the local queue wants messages |
//! | `pump.rs` | what the shared pump (`links::pump`) does with a delivery: republished locally with its hop, or dropped by the downstream loop check |
//! | `headers.rs` | `x-received-from` (and a queue link's visit count), `user_id` unless trusted |
//! | `status.rs` | each link's state for `GET /api/federation-links` (RabbitMQ's shape) |
//!
//! The upstreams' values are checked in the core (`core::model::federation`),
//! the `x-federation-upstream` exchange type that stops loops on an upstream
//! is the core's too (`core::model::exchange::federation_upstream`): a
//! RabbitMQ link to this broker declares one.

mod bindings;
mod exchange_link;
mod headers;
mod link;
mod pump;
mod queue_link;
pub mod status;
mod supervisor;
mod upstreams;

/// The federation supervisor as a shard service (shard 0 only, started once
/// AMQP listens, so links find this broker's listener). `login` is how the
/// links log in here (the default user).
pub fn services(login: crate::links::connect::InternalLogin) -> crate::shard::Services {
    crate::shard::Services::new(move |shared, info| {
        tokio::task::spawn_local(supervisor::supervise(shared, info.amqp_addr, login.clone()));
        Box::pin(async { Ok(Vec::new()) })
    })
}
