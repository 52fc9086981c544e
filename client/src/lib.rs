//! ringmq-client: the workspace's AMQP 0-9-1 client, on tokio and
//! `ringmq-codec`. One [`Connection`] is one socket owned by one task: no
//! background reader, no channel objects; the hot paths (pre-encoded publishes
//! into `wbuf`, `fill`/`next_event`) are what `ringmqperf` measures with, and
//! the pieces a link inside the broker needs (a shovel's two ends) sit beside
//! them as small state machines the caller feeds.
//!
//! | module | what |
//! |---|---|
//! | [`connection`] | the connection: handshake, RPCs, events, publish templates, heartbeats on the wire |
//! | [`content`] | a delivery's whole message (exchange, key, properties, body), kept on request |
//! | [`confirms`] | publisher confirms: which publishes an ack / nack (multiple) settles |
//! | [`consumer`] | a consumer and its prefetch window (credit, settle by tag) |
//! | [`heartbeat`] | when to send ours and when the peer is dead, given `now` |
//! | [`reconnect`] | the first of a list of URIs that answers; rounds with a delay |
//! | [`uri`] | AMQP URI parsing (`amqp://`, `amqps://`) |
//! | [`tls`] | the byte stream: plain TCP or TLS (rustls) over it |
#![forbid(unsafe_code)]

pub mod confirms;
pub mod connection;
pub mod consumer;
pub mod content;
pub mod heartbeat;
pub mod reconnect;
pub mod tls;
pub mod uri;

pub use confirms::{Confirms, Outcome};
pub use connection::{
    sh, ClientError, ConnectOptions, Connection, Event, ExchangeOptions, Login, PublishTemplate, QueueOptions, Result,
    BROKER_INTERNAL_MECHANISM, FRAME_MAX,
};
pub use consumer::Consumer;
pub use content::Content;
pub use uri::Uri;
