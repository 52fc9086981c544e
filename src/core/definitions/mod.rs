//! Durable definitions: the binary log every durable declare, bind and delete is
//! appended to and replayed from at start ([`log`]), and the RabbitMQ-shaped JSON
//! export and import ([`json`]).

pub mod json;
pub mod log;
