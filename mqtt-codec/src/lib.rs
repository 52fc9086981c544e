//! ringmq-mqtt-codec: the MQTT 3.1, 3.1.1 and 5 wire codec (issue 23).
//!
//! Pure, as `ringmq-codec` is for AMQP: no I/O, no clock, no `unsafe`, no
//! allocation while decoding. Bytes in, borrowed values out ([`decode`]);
//! values in, bytes appended to a caller-owned `Vec<u8>` ([`encode`],
//! [`encode_publish`]).
//!
//! | module | what |
//! |---|---|
//! | [`packet`] | the fixed header, [`Packet`], [`decode`] (size limit checked from the header) and [`encode`] |
//! | [`connect`] | CONNECT (with the will, 3.1's `MQIsdp` to 5) and CONNACK, [`Version`] |
//! | [`publish`] | PUBLISH, [`QoS`], and the four acknowledgements ([`Ack`]) |
//! | [`subscribe`] | SUBSCRIBE, UNSUBSCRIBE (their lists iterated from checked bytes), SUBACK, UNSUBACK |
//! | [`control`] | DISCONNECT and AUTH |
//! | [`properties`] | MQTT 5 properties: typed, checked per packet, given once, in range |
//! | [`topic`] | topic names and filters, shared subscriptions, the AMQP routing key of a topic |
//! | [`wire`] | integers, variable byte integers, strings, binary data |
//! | [`error`] | [`DecodeError`]: incomplete, too large, malformed, protocol error, unsupported version |
//! | [`reason`] | MQTT 5 reason codes and 3.1.1 CONNACK return codes |
//!
//! Every length is checked against the bytes present before it is trusted,
//! and a packet's size against the caller's limit from its first bytes, so
//! no input can make the decoder panic, allocate, or wait for a body it
//! would refuse.
#![forbid(unsafe_code)]

pub mod connect;
pub mod control;
pub mod error;
pub mod packet;
pub mod properties;
pub mod publish;
pub mod reason;
pub mod subscribe;
pub mod topic;
pub mod wire;

#[cfg(test)]
mod tests;

pub use connect::{ConnAck, Connect, Version, Will};
pub use control::{Auth, Disconnect};
pub use error::DecodeError;
pub use packet::{decode, encode, encode_publish, Packet};
pub use properties::Properties;
pub use publish::{Ack, Publish, QoS};
pub use subscribe::{SubAck, SubOptions, Subscribe, Unsubscribe};
