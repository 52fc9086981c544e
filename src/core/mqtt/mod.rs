//! The MQTT 3.1.1 (and 3.1) session on top of the broker (issue 23, step 2 of
//! `docs/mqtt.md`): sans-IO, as the AMQP session beside it.
//!
//! A session is a client of the broker as RabbitMQ's MQTT plugin is one: its
//! PUBLISHes go to the `[mqtt] exchange` (amq.topic) with the topic as the
//! routing key (`/` and `.` swapped, `+` as `*`), its SUBSCRIBEs are bindings
//! of a queue of its own (`mqtt-subscription-{client id}qos0` / `qos1`), and
//! what that queue delivers goes out as PUBLISHes. It drives a connection of
//! the broker's with the AMQP 0-9-1 frames an AMQP client would send
//! (`amqp`), and reads what the broker answers (`translate`): permissions,
//! topic permissions, limits, alarms, the group commit and publisher
//! confirms, routing and delivery are the broker's one path, not a copy.
//!
//! The io layer calls, for a connection of the MQTT listener:
//! [`Session::handle_input`] (bytes in), [`Session::take_output`] (bytes
//! out, when the broker lists the connection dirty or after input),
//! [`Session::handle_tick`] (keepalive) and [`Session::handle_disconnect`]
//! (the socket is gone: the will, then the broker forgets the connection).
//!
//! | module | what |
//! |---|---|
//! | `session` | the state, the packet loop, closing, keepalive, the will |
//! | `connect` | CONNECT: credentials, vhost, client id, takeover, CONNACK |
//! | `subscribe` | PUBLISH in, SUBSCRIBE, UNSUBSCRIBE, PUBACK in |
//! | `translate` | the broker's answers: CONNACK, SUBACK / UNSUBACK, PUBACK, deliveries as PUBLISH |
//! | `amqp` | the AMQP frames the session sends its connection |

mod amqp;
mod connect;
mod session;
mod subscribe;
#[cfg(test)]
mod tests;
mod translate;

pub use session::Session;

/// The `[mqtt]` settings a session needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// Where PUBLISHes go and SUBSCRIBEs bind (RabbitMQ's `mqtt.exchange`).
    pub exchange: String,
    /// The vhost of a user name without one (RabbitMQ's `mqtt.vhost`).
    pub vhost: String,
    /// The largest packet accepted once connected, fixed header included.
    pub max_packet_bytes: usize,
    /// The largest keepalive a client may ask for, seconds (0: no limit).
    pub keepalive_max_secs: u16,
}

/// The largest packet MQTT can carry (a remaining length of 268,435,455).
pub const PACKET_BYTES_MAX: usize = 268_435_455 + 5;

/// The largest packet before CONNECT is accepted: an unauthenticated
/// client cannot make the broker buffer more (RabbitMQ's
/// `mqtt.max_packet_size_unauthenticated`).
pub const UNAUTHENTICATED_PACKET_BYTES_MAX: usize = 65_536;

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            exchange: "amq.topic".into(),
            vhost: "/".into(),
            max_packet_bytes: PACKET_BYTES_MAX,
            keepalive_max_secs: u16::MAX,
        }
    }
}
