//! Connections handed to their queues' shard (`docs/shards.md`, step 4).
//!
//! A connection belongs to the shard that accepted it: the kernel spreads
//! accepts over the shards' listeners, blind to what the client will do. One
//! whose work is all on another shard's queues crosses for every message: a
//! publisher's every publish is forwarded, a consumer's every delivery packed
//! and sent, its every ack settled from afar. Such a connection is handed to
//! that shard, between two frames, at the first moment nothing on this shard
//! names it:
//!
//! - a consumer, before its basic.consume of a queue another shard owns;
//! - a publisher, before its next basic.publish once [`LEAN_PUBLISHES`] in
//!   a row went all to queues of one other shard (those cross, the rest do
//!   not; one that alternates between shards' queues stays).
//!
//! "Nothing names it" ([`Broker::quiet`]): no consumer, no unacked delivery,
//! no confirm or commit-ok awaited (the owners' words would come back here),
//! no exclusive queue, no message half received, no output held for a group
//! commit, no question parked with another shard. A publisher in confirm
//! mode that always has confirms outstanding therefore stays; one that waits
//! for its confirms moves. A connection moves at most once per
//! [`HAND_OFF_EVERY_MS`], so a client whose channels use both shards cannot
//! make it bounce.
//!
//! The io layer says which connections may move at all
//! ([`Broker::allow_hand_off`]: plain TCP); it stops reading a
//! leaving one ([`Broker::take_leaving`]), and once its sends are done takes
//! it ([`Broker::hand_off`]) with its socket and unread input to the target,
//! whose broker gives it an id of its own ([`Broker::arrive`]). The rings
//! keep order: what it forwarded before it left is taken in before it
//! arrives, so its publishes reach each queue in order.

use ringmq_codec::{Frame, Method};

use crate::core::amqp::broker::Broker;
use crate::core::amqp::connection::{ConnState, Connection};
use crate::core::model::ids::ConnId;
use crate::core::model::meta::ShardId;

/// The least time between two moves of one connection.
pub const HAND_OFF_EVERY_MS: u64 = 60_000;
/// Publishes in a row that all went to one other shard's queues before a
/// publisher moves there: one that alternates between shards' queues stays.
pub const LEAN_PUBLISHES: u8 = 16;

/// A connection on its way to another shard (the io layer carries it, with
/// its socket, in the rings' batch for `to`).
pub struct Departing {
    conn: Box<Connection>,
    pub to: ShardId,
}

impl std::fmt::Debug for Departing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Departing({} to shard {})", self.conn.describe(), self.to.0)
    }
}

impl Connection {
    /// A publish of its went all to `to`'s queues (Some), or not all to
    /// another shard's (None).
    pub(in crate::core::amqp) fn lean(&mut self, to: Option<ShardId>) {
        match to {
            Some(s) if self.lean_to == Some(s) => self.lean_count = self.lean_count.saturating_add(1),
            _ => {
                self.lean_to = to;
                self.lean_count = u8::from(to.is_some());
            }
        }
    }
}

impl Broker {
    /// The io layer can carry connection `id` to another shard (with one
    /// shard there is nowhere to go).
    pub fn allow_hand_off(&mut self, id: ConnId) {
        if self.model.shards.count > 1 {
            if let Some(c) = self.conns.get_mut(&id) {
                c.movable = true;
            }
        }
    }

    /// Whether `conn` leaves for another shard before handling `frame`, and
    /// for which. One load and a branch for a connection that may not move.
    pub(in crate::core::amqp) fn leaves_before(
        &self,
        conn: &Connection,
        frame: &Frame<'_>,
        now_ms: u64,
    ) -> Option<ShardId> {
        if !conn.movable {
            return None;
        }
        let to = match frame {
            Frame::Method {
                method: Method::BasicPublish(_),
                ..
            } => conn.lean_to.filter(|_| conn.lean_count >= LEAN_PUBLISHES)?,
            Frame::Method {
                channel,
                method: Method::BasicConsume(c),
            } => self.owner_elsewhere(conn, *channel, c.queue.as_str())?,
            _ => return None,
        };
        self.quiet(conn, now_ms).then_some(to)
    }

    /// The shard that owns queue `name` (the channel's last declared for an
    /// empty name), if not this one.
    fn owner_elsewhere(&self, conn: &Connection, channel: u16, name: &str) -> Option<ShardId> {
        let name = match name {
            "" => conn.channels.get(&channel)?.last_queue.as_ref()?.as_str(),
            n => n,
        };
        let vhost = self.model.vhosts.get(conn.vhost_key()?)?;
        let owner = vhost.queues.get(&vhost.queue_id(name)?)?.owner();
        (owner != self.model.shards.me).then_some(owner)
    }

    /// Nothing on this shard names `conn`, and it did not move in the last
    /// [`HAND_OFF_EVERY_MS`].
    pub(in crate::core::amqp) fn quiet(&self, conn: &Connection, now_ms: u64) -> bool {
        conn.state == ConnState::Open
            && conn.parked.is_none()
            && conn.leaving.is_none()
            && !conn.owns_exclusive
            && conn.release_at_ms.is_none()
            && (conn.arrived_ms == 0 || now_ms.saturating_sub(conn.arrived_ms) >= HAND_OFF_EVERY_MS)
            && !self.sync.waiting.contains(&conn.id)
            && !self.sync.holds_output(conn.id)
            && conn.channels.values().all(|c| c.is_quiet())
    }

    /// `conn` stops before the frame it was about to handle, to move to `to`.
    pub(in crate::core::amqp) fn start_leaving(&mut self, conn: &mut Connection, to: ShardId) {
        conn.leaving = Some(to);
        self.leaving.push(conn.id);
    }

    /// Whether connection `id` stopped before a frame to move (the epoll
    /// backend's reader asks after each input).
    pub fn is_leaving(&self, id: ConnId) -> bool {
        self.conns.get(&id).is_some_and(|c| c.leaving.is_some())
    }

    /// Connections that stopped to move since the last call: the io layer
    /// stops reading them and, once their sends are done, calls
    /// [`Broker::hand_off`].
    pub fn take_leaving(&mut self, out: &mut Vec<ConnId>) {
        out.append(&mut self.leaving);
    }

    /// Takes connection `id` off this shard, for the io layer to carry to
    /// its target. None if it is not leaving any more: it closed meanwhile
    /// (then it stays, and is read again to finish its close).
    pub fn hand_off(&mut self, id: ConnId) -> Option<Departing> {
        let conn = self.conns.get_mut(&id)?;
        let to = conn.leaving.take()?;
        if conn.state != ConnState::Open {
            return None;
        }
        let conn = self.conns.remove(&id).expect("looked up above");
        tracing::debug!(conn = %conn.describe(), to = to.0, "connection handed to its queues' shard");
        Some(Departing { conn, to })
    }

    /// A connection another shard handed over: it gets an id of this
    /// shard's, its vhost name and permission as this shard has them, and
    /// its output (replies made before it left) is listed to be sent.
    pub fn arrive(&mut self, d: Departing, now_ms: u64) -> ConnId {
        let mut conn = d.conn;
        let id = self.new_conn_id();
        conn.id = id;
        conn.arrived_ms = now_ms.max(1);
        conn.lean(None);
        conn.forwards = false;
        conn.dirty = false;
        if let Some(v) = conn.vhost.take() {
            // The sender's allocation of the name would be shared by both
            // threads' refcounts (`Vhosts::localize` says why not).
            conn.vhost = Some(self.model.local_vhost(&v).unwrap_or(v));
        }
        if let (Some(user), Some(vhost)) = (conn.user.as_deref(), conn.vhost.as_deref()) {
            if let Some(p) = self.permissions.get(user, vhost) {
                conn.permission = Some(p);
            }
        }
        if conn.has_output() {
            self.mark_dirty(&mut conn);
        }
        self.conns.insert(id, conn);
        id
    }
}
