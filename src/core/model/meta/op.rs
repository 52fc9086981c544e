//! The metadata ops: a change to a vhost's exchanges, queues or bindings as a
//! value (owned, so it can be logged, sent to another shard, compared).
//!
//! An op carries what was decided, never what is to be checked: ids, store
//! generations and the owner shard are chosen by whoever produced it, so that
//! applying the same ops in the same order gives the same model everywhere.

use ringmq_codec::{FieldTable, ShortString};

use crate::core::model::exchange::ExchangeKind;
use crate::core::model::ids::{ConnId, Dest, QueueId, VhostName};
use crate::core::model::meta::ShardId;

/// One change to a vhost's routing data.
#[derive(Debug, Clone, PartialEq)]
pub enum MetaOp {
    ExchangeDeclare(ExchangeDecl),
    /// Removes the exchange, its bindings both ways, and the auto-delete
    /// exchanges that this leaves without bindings.
    ExchangeDelete {
        vhost: VhostName,
        name: ShortString,
        /// Forget the exchange but keep its delayed messages' folder: the
        /// definitions log's replay of an older version's log, where a later
        /// declare opens the same folder again.
        keep_files: bool,
    },
    QueueDeclare(QueueDecl),
    /// Removes the queue, its bindings, its files, and the auto-delete exchanges
    /// this leaves without bindings.
    QueueDelete {
        vhost: VhostName,
        name: ShortString,
        /// As for [`MetaOp::ExchangeDelete`]: forget the queue, keep its folder.
        keep_files: bool,
    },
    Binding(BindingOp),
}

impl MetaOp {
    /// The vhost the op changes.
    pub fn vhost(&self) -> &VhostName {
        match self {
            MetaOp::ExchangeDeclare(d) => &d.vhost,
            MetaOp::ExchangeDelete { vhost, .. } | MetaOp::QueueDelete { vhost, .. } => vhost,
            MetaOp::QueueDeclare(d) => &d.vhost,
            MetaOp::Binding(b) => &b.vhost,
        }
    }
}

/// A new exchange (an existing one of the name is left as it is).
#[derive(Debug, Clone, PartialEq)]
pub struct ExchangeDecl {
    pub vhost: VhostName,
    pub name: ShortString,
    pub kind: ExchangeKind,
    /// `x-delayed-message`: messages are held in a store of the exchange's own.
    pub delayed: bool,
    pub durable: bool,
    pub auto_delete: bool,
    pub internal: bool,
    pub arguments: FieldTable,
    /// The store generation of a durable delayed exchange's folder (0 otherwise).
    pub gen: u32,
    /// Open the delayed messages found in the folder (the log's replay at start)
    /// rather than a fresh, empty store.
    pub recover: bool,
}

/// A new queue (an existing one of the name is left as it is).
#[derive(Debug, Clone, PartialEq)]
pub struct QueueDecl {
    pub vhost: VhostName,
    /// Chosen by the producer of the op, so every shard names the queue alike.
    pub id: QueueId,
    pub name: ShortString,
    /// The shard whose thread holds the queue's store and consumers.
    pub owner: ShardId,
    pub durable: bool,
    pub auto_delete: bool,
    /// The connection an exclusive queue belongs to.
    pub exclusive: Option<ConnId>,
    pub arguments: FieldTable,
    /// The store generation of a durable queue's folder (0 for transient ones).
    pub gen: u32,
    /// Open the messages found in the folder (the log's replay at start) rather
    /// than a fresh, empty store.
    pub recover: bool,
}

/// A binding added or removed: `source` exchange to `dest`.
#[derive(Debug, Clone, PartialEq)]
pub struct BindingOp {
    pub vhost: VhostName,
    pub source: ShortString,
    pub dest: Dest,
    pub routing_key: ShortString,
    pub arguments: FieldTable,
    /// Bind (true) or unbind (false). An unbind that leaves an auto-delete
    /// source without bindings deletes it.
    pub add: bool,
}
