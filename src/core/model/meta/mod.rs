//! Metadata ops: every change to a vhost's routing data as a value, applied to a
//! [`Model`](crate::core::model::Model) by one function.
//!
//! This is step 1 of the shard design (`docs/shards.md`): a declare, delete, bind
//! or unbind is decided by a handler (the AMQP session, the definitions log's
//! replay, the JSON import), which validates it against the model and produces a
//! [`MetaOp`]; [`Model::apply`](crate::core::model::Model::apply) then makes the
//! change. With several shards, shard 0 will decide and every shard will apply
//! the same ops in the same order, so every shard's copy of the routing data is
//! equal; what follows from an op (an auto-delete exchange left without
//! bindings goes, bindings of a deleted queue go) is derived inside `apply`, the
//! same way on every shard, never sent as ops of its own.
//!
//! | module | what |
//! |---|---|
//! | [`op`] | the ops: exchange and queue declares and deletes, bindings |
//! | [`apply`] | applying one op to the model, and what it changed |
//! | [`shard`] | the shard that owns a queue: a stable hash of vhost and name |
//! | [`log`] | the log that orders the ops of every shard, so their copies stay equal |

pub mod apply;
pub mod log;
pub mod op;
pub mod shard;

pub use apply::Applied;
pub use log::MetaLog;
pub use op::{BindingOp, ExchangeDecl, MetaOp, QueueDecl};
pub use shard::{ShardId, Shards, SHARDS_MAX};
