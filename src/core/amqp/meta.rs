//! The session's side of a metadata op (`model::meta`): a declare, delete or
//! binding that a client's method (or a timer, or the connection's end)
//! decided is applied to the model, its record written to the definitions log
//! when it changed durable objects, and the consumers of a deleted queue are
//! cancelled on their channels.

use crate::core::amqp::broker::{Broker, Notice};
use crate::core::amqp::connection::Connection;
use crate::core::amqp::error::{channel_error, Exception};
use crate::core::definitions;
use crate::core::model::meta::apply::ApplyError;
use crate::core::model::meta::{Applied, MetaOp};
use ringmq_codec::ReplyCode;

impl Broker {
    /// Applies an op decided by a method of `conn`: when it changed durable
    /// objects, the reply to that method waits for the group commit that syncs
    /// its record (so a declare-ok means the object survives a crash).
    pub(crate) fn apply_meta_for(&mut self, conn: &mut Connection, op: &MetaOp) -> Result<(), ApplyError> {
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
        let applied = self.apply_meta_quietly(op)?;
        definitions::ops::record_op_written(&mut self.model, op, &applied);
        Ok(())
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

/// A 541 for an op that could not be applied: what the client sees when a
/// queue's or delayed exchange's folder cannot be made.
pub(crate) fn internal_error(what: std::fmt::Arguments<'_>, e: ApplyError) -> Exception {
    channel_error(ReplyCode::InternalError, format!("{what}: {e}"))
}
