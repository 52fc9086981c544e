//! What the broker's AMQP links share: shovels (`crate::shovel`) and
//! federation (`crate::federation`) are both clients inside the broker, on
//! shard 0's loop, over the workspace's client.
//!
//! | file | what |
//! |---|---|
//! | `connect.rs` | a link's URIs as client URIs (`amqp://` with no host is this broker), connecting to the first that answers |
//! | `pump.rs` | deliveries from the source republished on the destination, acked at the source by the ack mode; what each becomes is the link's |
//! | `shown.rs` | what the status APIs show: URIs without credentials, RabbitMQ's timestamps |

pub mod connect;
pub mod pump;
pub mod shown;

use ringmq_client::Event;

/// What a link's consumer event is to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Consumed {
    /// A message (its delivery tag): the content is in the connection.
    Delivery(u64),
    /// basic.cancel from the broker: the queue consumed was deleted.
    Cancelled,
    /// Anything else (the link ignores it here).
    Other,
}

pub fn consumed(ev: &Event) -> Consumed {
    match *ev {
        Event::Delivery { delivery_tag, .. } => Consumed::Delivery(delivery_tag),
        Event::Method {
            class_id: 60,
            method_id: 30,
            ..
        } => Consumed::Cancelled,
        _ => Consumed::Other,
    }
}
