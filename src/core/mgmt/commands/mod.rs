//! Management operations (the HTTP API's writes), sans-IO and testable without
//! sockets.
//!
//! RabbitMQ's management plugin runs its declares, deletes and binds over an
//! internal AMQP connection opened as the HTTP user, so the API gets exactly the
//! AMQP checks (permissions, argument validation and equivalence, reserved
//! `amq.` names) and texts. We do the same: [`Broker::admin_run`] builds an
//! in-memory connection for the user and vhost, calls the same method handlers
//! the wire uses, and turns a channel exception into an [`AdminError`]. Nothing
//! here is duplicated from `amqp::queue` / `amqp::exchange`.
//!
//! | file | what |
//! |---|---|
//! | `mod.rs` | the request types, [`Broker::admin_run`], closing connections |
//! | `queues.rs` | declare, delete, purge, pause; publish and get through the API |
//! | `exchanges.rs` | declare and delete exchanges, bind and unbind, properties keys |
//! | `users.rs` | users and permissions |

mod exchanges;
mod queues;
#[cfg(test)]
mod tests;
mod users;

pub use exchanges::{properties_key, props_match};
pub use users::UserSpec;

use ringmq_codec::{FieldTable, ProtocolError, ReplyCode};

use crate::core::amqp::broker::Broker;
use crate::core::amqp::connection::{Connection, Tuning};
use crate::core::amqp::error::{Exception, MethodResult};
use crate::core::model::ids::{ConnId, ADMIN_CONN};

/// Messages one `/get` request may take (RabbitMQ has no bound; we need one).
pub const GET_COUNT_MAX: u32 = 10_000;

pub use crate::core::mgmt::error::AdminError;

impl From<Exception> for AdminError {
    fn from(e: Exception) -> Self {
        let (Exception::Channel(e) | Exception::Connection(e)) = e;
        match e.code {
            ReplyCode::AccessRefused => AdminError::AccessRefused(e.text.into_owned()),
            // RabbitMQ's API gives precondition texts bare, other codes prefixed.
            ReplyCode::PreconditionFailed => AdminError::BadRequest(e.text.into_owned()),
            code => AdminError::BadRequest(format!("{} {}", code.code(), e.reply_text())),
        }
    }
}

fn not_found() -> AdminError {
    AdminError::NotFound("Not Found".into())
}

/// Who acts, where, and when.
#[derive(Debug, Clone, Copy)]
pub struct AdminCtx<'a> {
    pub user: &'a str,
    pub vhost: &'a str,
    pub now_ms: u64,
}

/// Whether a PUT created the object (201) or found it (204).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Declared {
    Created,
    Existed,
}

#[derive(Debug, Clone, Default)]
pub struct QueueSpec {
    pub durable: bool,
    pub auto_delete: bool,
    pub arguments: FieldTable,
}

#[derive(Debug, Clone, Default)]
pub struct ExchangeSpec {
    pub kind: String,
    pub durable: bool,
    pub auto_delete: bool,
    pub internal: bool,
    pub arguments: FieldTable,
}

/// A binding's destination as the URL names it (`q` or `e`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DestKind {
    Queue,
    Exchange,
}

/// RabbitMQ's `ackmode` for `/get`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AckMode {
    AckRequeueTrue,
    AckRequeueFalse,
    RejectRequeueTrue,
    RejectRequeueFalse,
}

impl std::str::FromStr for AckMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "ack_requeue_true" => AckMode::AckRequeueTrue,
            "ack_requeue_false" => AckMode::AckRequeueFalse,
            "reject_requeue_true" => AckMode::RejectRequeueTrue,
            "reject_requeue_false" => AckMode::RejectRequeueFalse,
            _ => return Err(format!("unknown ackmode '{s}'")),
        })
    }
}

/// One message taken by `/get`.
#[derive(Debug, Clone)]
pub struct GotMessage {
    pub exchange: String,
    pub routing_key: String,
    pub redelivered: bool,
    /// Ready messages left in the queue after this one was taken.
    pub message_count: u32,
    /// The encoded basic properties.
    pub properties: Vec<u8>,
    pub payload: Vec<u8>,
}

impl Broker {
    /// Builds the API's connection for `ctx` (open, channel 1, the user's
    /// permission in the vhost). NotFound when the vhost does not exist.
    fn admin_conn(&self, ctx: &AdminCtx<'_>) -> Result<Connection, AdminError> {
        let (vhost, _) = self.model.vhosts.get_key_value(ctx.vhost).ok_or(not_found())?;
        let tuning = Tuning {
            frame_max: self.config.frame_max,
            channel_max: 1,
            heartbeat_secs: 0,
        };
        let permission = self.permissions.get(ctx.user, ctx.vhost);
        Ok(Connection::for_admin(
            ADMIN_CONN,
            tuning,
            ctx.now_ms,
            ctx.user,
            vhost.clone(),
            permission,
        ))
    }

    /// Runs AMQP method handlers on the API's connection (channel 1), then lets
    /// deferred work (deliveries, auto-deletes) run as after any input.
    pub fn admin_run(
        &mut self,
        ctx: &AdminCtx<'_>,
        f: impl FnOnce(&mut Broker, &mut Connection) -> MethodResult,
    ) -> Result<(), AdminError> {
        let mut conn = self.admin_conn(ctx)?;
        self.advance_clock(ctx.now_ms);
        // A section: what it declares is decided on a current copy (`amqp::meta`).
        let r = self.in_meta_section(|b| f(b, &mut conn));
        // The API answers when this returns: what it declared must be on disk.
        crate::core::definitions::log::sync_now(&mut self.model);
        // Its counts belong to the vhost, as a closed channel's do.
        if let Some(ch) = conn.channel(1) {
            self.retire_channel_stats(conn.vhost_key(), ch.stats());
        }
        self.run_pending();
        r.map_err(AdminError::from)
    }

    /// Closes a client connection with 320 CONNECTION_FORCED and `reason` as the
    /// text, as RabbitMQ's management plugin does.
    pub fn admin_close_connection(&mut self, id: ConnId, reason: &str, now_ms: u64) -> Result<(), AdminError> {
        let mut conn = self.conns.remove(&id).ok_or(not_found())?;
        let now_ms = self.advance_clock(now_ms);
        let e = ProtocolError::new(ReplyCode::ConnectionForced, reason.to_owned());
        self.close_connection(&mut conn, e, now_ms);
        self.mark_dirty(&mut conn);
        self.conns.insert(id, conn);
        self.run_pending();
        Ok(())
    }
}
