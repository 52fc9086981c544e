//! Durable definitions: the binary log every durable declare, bind and delete is
//! appended to ([`log`], made durable by the broker's group commit), replayed from
//! at start ([`replay`]) and compacted to the live state ([`compact`]); and the
//! RabbitMQ-shaped JSON export and import ([`json`]).

pub mod compact;
pub mod json;
pub mod log;
pub mod replay;

#[cfg(test)]
mod commit_tests;
