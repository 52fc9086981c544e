//! The session's side of a metadata op (`model::meta`): a declare, delete or
//! binding that a client's method (or a timer, or the connection's end)
//! decided is applied to the model, its record written to the definitions log
//! when it changed durable objects, and the consumers of a deleted queue are
//! cancelled on their channels.
//!
//! With several shards, ops also go through the shared [`MetaLog`]
//! (`model::meta::log`): an op is decided and applied inside a *metadata
//! section*, which holds the log's lock, first applies what other shards
//! appended, and appends this shard's ops at its end. With one shard there is
//! no log and a section costs nothing. The log carries [`LoggedOp`]s: the
//! routing ops and the access ops (users, permissions, vhosts, policies:
//! `amqp::meta_access`) in one order.

use crate::core::access::op::AccessOp;
use crate::core::amqp::broker::{Broker, Notice};
use crate::core::amqp::connection::Connection;
use crate::core::amqp::error::{channel_error, Exception};
use crate::core::definitions;
use crate::core::model::meta::apply::ApplyError;
use crate::core::model::meta::{Applied, MetaLog, MetaOp, Shards};
use crate::core::model::vhost_files::VhostFiles;
use ringmq_codec::ReplyCode;
use std::sync::Arc;

/// An entry of the shards' metadata log: one op, of the model's routing data
/// or of access (which the model does not hold).
#[derive(Debug, Clone, PartialEq)]
pub enum LoggedOp {
    Routing(MetaOp),
    Access(AccessOp),
    /// A routing op of the definitions log's replay at start (shard 0's):
    /// applied as the replay applies it (`Model::apply_logged`: no
    /// auto-delete follows from it), with the owners of its queues opening
    /// their folders.
    Replayed(MetaOp),
}

/// The log the shards of one broker share.
pub type ShardLog = MetaLog<LoggedOp>;

/// A shard's place in the metadata log.
pub(crate) struct MetaLink {
    log: Arc<ShardLog>,
    /// The position of the first op this shard has not applied.
    cursor: u64,
    /// A section is open: the lock is held by the caller of the section, and
    /// the model keeps the routing ops applied in it (`Model::meta_made`) to
    /// be appended at its end.
    in_section: bool,
    /// The ops made in the open section so far, in order, when an access op
    /// came between routing ops (see [`Broker::keep_made`]).
    made: Vec<LoggedOp>,
    /// The vhost folders the shards share (`model::vhost_files`).
    files: Arc<VhostFiles>,
    /// Applying another shard's ops (not making one): a vhost created is
    /// followed, not made, and a deleted one's folder is its maker's to remove.
    following: bool,
    /// The routing ops made now are the definitions log's replay at start.
    replaying: bool,
}

impl MetaLink {
    pub(crate) fn files(&self) -> &Arc<VhostFiles> {
        &self.files
    }

    pub(crate) fn following(&self) -> bool {
        self.following
    }
}

impl Broker {
    /// Applies an op decided by a method of `conn`: when it changed durable
    /// objects, the reply to that method waits for the group commit that syncs
    /// its record (so a declare-ok means the object survives a crash).
    pub(crate) fn apply_meta_for(&mut self, conn: &mut Connection, op: &MetaOp) -> Result<(), ApplyError> {
        self.assert_in_section(op);
        let applied = self.apply_meta_quietly(op)?;
        if let Some(w) = definitions::ops::record_op(&mut self.model, op, &applied) {
            self.definitions_written_by(op.vhost(), w, conn);
        }
        Ok(())
    }

    /// Applies an op no client's reply waits for (a queue deleted by x-expires,
    /// its last consumer or its connection's end): its record goes to the next
    /// group commit.
    pub(crate) fn apply_meta(&mut self, op: &MetaOp) -> Result<(), ApplyError> {
        self.assert_in_section(op);
        let applied = self.apply_meta_quietly(op)?;
        definitions::ops::record_op_written(&mut self.model, op, &applied);
        Ok(())
    }

    /// Joins the shards of one broker: this is shard `shards.me`, every op
    /// goes through `log`, and vhost folders are shared through `files`.
    /// Called once, when the broker opens (`broker::open`).
    pub(crate) fn join_shards(&mut self, shards: Shards, log: Arc<ShardLog>, files: Arc<VhostFiles>) {
        assert!(
            self.conns.is_empty() && self.meta.is_none(),
            "shards are joined at start"
        );
        self.model.shards = shards;
        self.set_conn_id_base(u64::from(shards.me.0) << CONN_ID_SHARD_SHIFT);
        // From where the log holds this shard (the start, for a new log): a
        // shard that joins after others made ops applies them first. (Taking
        // the head lost them: `testkit/meta_shards.rs` on threads found it.)
        let cursor = log.lock().cursor(shards.me);
        self.meta = Some(MetaLink {
            cursor,
            log,
            in_section: false,
            made: Vec::new(),
            files,
            following: false,
            replaying: false,
        });
    }

    /// Runs `f` in a metadata section: what `f` decides is decided on a copy
    /// that has every other shard's ops, and the ops it applies are appended
    /// in the order it applied them before any other shard can append. A
    /// section inside a section is the same section.
    pub(crate) fn in_meta_section<R>(&mut self, f: impl FnOnce(&mut Self) -> R) -> R {
        let log = match &self.meta {
            Some(link) if !link.in_section => Arc::clone(&link.log),
            _ => return f(self),
        };
        let mut guard = log.lock();
        // Logged there; the section decides on the copy as it is.
        let _ = self.apply_others_ops(&guard);
        self.meta.as_mut().expect("joined").in_section = true;
        self.model.meta_made = Some(Vec::new());
        let r = f(self);
        self.keep_made(None);
        self.model.meta_made = None;
        let link = self.meta.as_mut().expect("joined");
        link.in_section = false;
        let made = std::mem::take(&mut link.made);
        let appended = !made.is_empty();
        for op in made {
            link.cursor = guard.append(op);
        }
        guard.advance(self.model.shards.me, link.cursor);
        drop(guard);
        if appended {
            log.appended(self.model.shards.me);
        }
        r
    }

    /// Sets what the shards' metadata log calls after a shard appended (the
    /// io layer wakes the other shards); once per log. No-op on one shard.
    pub fn set_meta_append_hook(&self, hook: crate::core::model::meta::log::AppendHook) {
        if let Some(link) = &self.meta {
            link.log.set_on_append(hook);
        }
    }

    /// Applies what the other shards appended since this one last looked: one
    /// atomic load when there is nothing (the io layer calls this before each
    /// input, so a client that got a bind-ok through one shard finds the
    /// binding on every other).
    pub fn catch_up_meta(&mut self) {
        let _ = self.catch_up_meta_or_fail();
    }

    /// [`Self::catch_up_meta`], returning the first op that could not be
    /// applied (logged either way): a shard's start fails on it, as a broker
    /// of one shard does when a queue's folder cannot be opened.
    pub(crate) fn catch_up_meta_or_fail(&mut self) -> Result<(), ApplyError> {
        match &self.meta {
            Some(link) if !link.in_section && link.cursor < link.log.head() => {}
            _ => return Ok(()),
        }
        let log = Arc::clone(&self.meta.as_ref().expect("joined").log);
        let mut guard = log.lock();
        let failed = self.apply_others_ops(&guard);
        let cursor = self.meta.as_ref().expect("joined").cursor;
        guard.advance(self.model.shards.me, cursor);
        failed.map_or(Ok(()), Err)
    }

    /// Runs `f`, the definitions log's replay at start, in the open section:
    /// the routing ops it applies are kept as [`LoggedOp::Replayed`].
    pub(crate) fn replaying<R>(&mut self, f: impl FnOnce(&mut Self) -> R) -> R {
        if self.meta.is_none() {
            return f(self);
        }
        self.keep_made(None);
        self.meta.as_mut().expect("joined").replaying = true;
        let r = f(self);
        self.keep_made(None);
        self.meta.as_mut().expect("joined").replaying = false;
        r
    }

    /// Keeps what the open section made, in the order it was made: the
    /// routing ops the model applied since the last call, then `access`.
    /// Without a section (one shard) nothing is kept.
    pub(crate) fn keep_made(&mut self, access: Option<AccessOp>) {
        let Some(link) = self.meta.as_mut().filter(|l| l.in_section) else {
            return;
        };
        let routing = self.model.meta_made.as_mut().map(std::mem::take).unwrap_or_default();
        let as_logged = if link.replaying {
            LoggedOp::Replayed
        } else {
            LoggedOp::Routing
        };
        link.made.extend(routing.into_iter().map(as_logged));
        link.made.extend(access.map(LoggedOp::Access));
    }

    /// Applies the ops other shards appended since this one last looked;
    /// returns the first that failed (each is logged, and the rest applied).
    fn apply_others_ops(
        &mut self,
        guard: &crate::core::model::meta::log::MetaLogGuard<'_, LoggedOp>,
    ) -> Option<ApplyError> {
        let cursor = self.meta.as_ref().expect("joined").cursor;
        let ops = guard.since(cursor);
        self.meta.as_mut().expect("joined").following = true;
        let mut failed = None;
        for op in &ops {
            // The shard that made the op logged its record (or saved the file
            // of an access op); a copy that cannot make the store of a queue
            // it owns (disk) says so and goes on.
            if let Err(e) = self.apply_logged_op(op) {
                tracing::error!(error = %e, ?op, "could not apply another shard's metadata op");
                failed.get_or_insert(e);
            }
        }
        let link = self.meta.as_mut().expect("joined");
        link.following = false;
        link.cursor = cursor + ops.len() as u64;
        failed
    }

    /// With several shards, an op is made in a section or other shards never
    /// see it.
    fn assert_in_section(&self, op: &MetaOp) {
        if let Some(link) = &self.meta {
            assert!(link.in_section, "a metadata op outside a section: {op:?}");
        }
    }

    /// Applies a routing op of the log, saving nothing: returns whether it
    /// changed the copy.
    pub(crate) fn apply_meta_routing(&mut self, op: &MetaOp) -> Result<bool, ApplyError> {
        self.apply_meta_quietly(op).map(|a| a.changed)
    }

    fn apply_meta_quietly(&mut self, op: &MetaOp) -> Result<Applied, ApplyError> {
        let applied = self.model.apply(op)?;
        for c in &applied.cancelled {
            self.notices.push(Notice::CancelConsumer {
                conn: c.conn,
                channel: c.channel,
                tag: c.tag.clone(),
            });
        }
        Ok(applied)
    }
}

/// Where a shard's connection ids start (`shard << 48`): ids stay unique
/// across shards, so an exclusive queue's owner names one connection in every
/// shard's copy.
pub(crate) const CONN_ID_SHARD_SHIFT: u32 = crate::core::model::ids::ConnId::SHARD_SHIFT;

/// A 541 for an op that could not be applied: what the client sees when a
/// queue's or delayed exchange's folder cannot be made.
pub(crate) fn internal_error(what: std::fmt::Arguments<'_>, e: ApplyError) -> Exception {
    channel_error(ReplyCode::InternalError, format!("{what}: {e}"))
}
