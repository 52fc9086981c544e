//! What the broker's AMQP links share: shovels (`crate::shovel`) and
//! federation (`crate::federation`) are both clients inside the broker, on
//! shard 0's loop, over the workspace's client.
//!
//! | file | what |
//! |---|---|
//! | `connect.rs` | a link's URIs as client URIs (`amqp://` with no host is this broker), connecting to the first that answers |
//! | `shown.rs` | what the status APIs show: URIs without credentials, RabbitMQ's timestamps |

pub mod connect;
pub mod shown;
