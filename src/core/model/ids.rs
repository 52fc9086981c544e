//! Small typed ids, so a connection id cannot be passed where a queue id goes.

/// A connection, unique for the life of the process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(pub u64);

/// The id of the in-memory connections the management API runs AMQP methods
/// on (`mgmt::commands`): never a client's, never in the broker's `conns`.
pub const ADMIN_CONN: ConnId = ConnId(0);

/// A queue, unique for the life of the process: a queue deleted and declared again
/// under the same name gets a new id, so stale acks cannot reach the new queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct QueueId(pub u64);

/// A binding destination inside a vhost.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Dest {
    Queue(QueueId),
    Exchange(ringmq_codec::ShortString),
}
