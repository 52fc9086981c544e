//! Management operations (the HTTP API's writes), sans-IO and testable without
//! sockets.
//!
//! RabbitMQ's management plugin runs its declares, deletes and binds over an
//! internal AMQP connection opened as the HTTP user, so the API gets exactly the
//! AMQP checks (permissions, argument validation and equivalence, reserved
//! `amq.` names) and texts. We do the same: [`Broker::admin_run`] builds an
//! in-memory connection for the user and vhost, calls the same method handlers
//! the wire uses, and turns a channel exception into an [`AdminError`]. Nothing
//! here is duplicated from `queue_methods` / `exchange_methods`.

use ringmq_codec::ShortStr;
use std::sync::Arc;

use ringmq_codec::{
    ExchangeDeclare, ExchangeDelete, FieldTable, ProtocolError, QueueDeclare, QueueDelete, QueuePurge, ReplyCode, Table,
};

use crate::core::access::permissions::Access;
use crate::core::amqp::channel::Channel;
use crate::core::amqp::connection::{ConnState, Connection, Tuning};
use crate::core::amqp::error::{Exception, MethodResult};
use crate::core::broker::Broker;
use crate::core::model::ids::{ConnId, Dest, QueueId};
use crate::core::model::queue::dead_letter::DeathReason;
use crate::core::model::queue::take::read_named;

/// The id of the in-memory connections the API uses (never in `conns`).
pub const ADMIN_CONN: ConnId = ConnId(0);
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
        let (vhost, _) = self.vhosts.get_key_value(ctx.vhost).ok_or(not_found())?;
        let tuning = Tuning {
            frame_max: self.config.frame_max,
            channel_max: 1,
            heartbeat_secs: 0,
        };
        let mut c = Connection::new(ADMIN_CONN, "management".into(), true, tuning, ctx.now_ms);
        c.state = ConnState::Open;
        c.user = Some(ctx.user.to_owned());
        c.vhost = Some(vhost.clone());
        c.permission = self.permissions.get(ctx.user, ctx.vhost);
        c.channels.insert(1, Channel::new(1));
        Ok(c)
    }

    /// Runs AMQP method handlers on the API's connection (channel 1), then lets
    /// deferred work (deliveries, auto-deletes) run as after any input.
    pub fn admin_run(
        &mut self,
        ctx: &AdminCtx<'_>,
        f: impl FnOnce(&mut Broker, &mut Connection) -> MethodResult,
    ) -> Result<(), AdminError> {
        let mut conn = self.admin_conn(ctx)?;
        self.now_ms = ctx.now_ms;
        let r = f(self, &mut conn);
        // Its counts belong to the vhost, as a closed channel's do.
        if let Some(ch) = conn.channels.get(&1) {
            self.retire_channel_stats(conn.vhost.as_ref(), &ch.stats);
        }
        self.run_pending();
        r.map_err(AdminError::from)
    }

    fn has_queue(&self, vhost: &str, name: &str) -> Result<Option<QueueId>, AdminError> {
        let v = self.vhosts.get(vhost).ok_or(not_found())?;
        Ok(v.queue_id(name))
    }

    pub fn admin_declare_queue(
        &mut self,
        ctx: &AdminCtx<'_>,
        name: &str,
        spec: &QueueSpec,
    ) -> Result<Declared, AdminError> {
        let name = short_name("queue", name)?;
        let existed = self.has_queue(ctx.vhost, &name)?.is_some();
        let args = spec.arguments.to_bytes();
        let m = QueueDeclare {
            ticket: 0,
            queue: name,
            passive: false,
            durable: spec.durable,
            exclusive: false,
            auto_delete: spec.auto_delete,
            no_wait: true,
            arguments: Table::parse(&args).expect("own table"),
        };
        self.admin_run(ctx, |b, c| b.queue_declare(c, 1, m))?;
        Ok(if existed { Declared::Existed } else { Declared::Created })
    }

    pub fn admin_delete_queue(
        &mut self,
        ctx: &AdminCtx<'_>,
        name: &str,
        if_unused: bool,
        if_empty: bool,
    ) -> Result<(), AdminError> {
        self.has_queue(ctx.vhost, name)?.ok_or(not_found())?;
        let name = short_name("queue", name)?;
        let m = QueueDelete {
            ticket: 0,
            queue: name,
            if_unused,
            if_empty,
            no_wait: true,
        };
        self.admin_run(ctx, |b, c| b.queue_delete(c, 1, m))
    }

    pub fn admin_purge_queue(&mut self, ctx: &AdminCtx<'_>, name: &str) -> Result<(), AdminError> {
        self.has_queue(ctx.vhost, name)?.ok_or(not_found())?;
        let name = short_name("queue", name)?;
        let m = QueuePurge {
            ticket: 0,
            queue: name,
            no_wait: true,
        };
        self.admin_run(ctx, |b, c| b.queue_purge(c, 1, m))
    }

    /// LavinMQ's pause/resume: a paused queue keeps its consumers and messages
    /// but delivers nothing until resumed.
    pub fn admin_pause_queue(&mut self, ctx: &AdminCtx<'_>, name: &str, paused: bool) -> Result<(), AdminError> {
        let id = self.has_queue(ctx.vhost, name)?.ok_or(not_found())?;
        let vname = self.vhosts.get_key_value(ctx.vhost).ok_or(not_found())?.0.clone();
        let q = self
            .vhosts
            .get_mut(&vname)
            .and_then(|v| v.queues.get_mut(&id))
            .ok_or(not_found())?;
        q.set_paused(paused)?;
        if !paused {
            self.deliver_pending.push((vname, id));
            self.run_pending();
        }
        Ok(())
    }

    pub fn admin_declare_exchange(
        &mut self,
        ctx: &AdminCtx<'_>,
        name: &str,
        spec: &ExchangeSpec,
    ) -> Result<Declared, AdminError> {
        let name = short_name("exchange", name)?;
        let kind = short_name("type", &spec.kind)?;
        let v = self.vhosts.get(ctx.vhost).ok_or(not_found())?;
        let existed = v.exchanges.contains_key(name.as_str());
        let args = spec.arguments.to_bytes();
        let m = ExchangeDeclare {
            ticket: 0,
            exchange: name,
            kind,
            passive: false,
            durable: spec.durable,
            auto_delete: spec.auto_delete,
            internal: spec.internal,
            no_wait: true,
            arguments: Table::parse(&args).expect("own table"),
        };
        self.admin_run(ctx, |b, c| b.exchange_declare(c, 1, m))?;
        Ok(if existed { Declared::Existed } else { Declared::Created })
    }

    pub fn admin_delete_exchange(&mut self, ctx: &AdminCtx<'_>, name: &str, if_unused: bool) -> Result<(), AdminError> {
        let v = self.vhosts.get(ctx.vhost).ok_or(not_found())?;
        if !v.exchanges.contains_key(name) {
            return Err(not_found());
        }
        let name = short_name("exchange", name)?;
        let m = ExchangeDelete {
            ticket: 0,
            exchange: name,
            if_unused,
            no_wait: true,
        };
        self.admin_run(ctx, |b, c| b.exchange_delete(c, 1, m))
    }

    /// Binds (or unbinds) `source` to a queue or exchange. Returns the binding's
    /// properties key.
    #[allow(clippy::too_many_arguments)]
    pub fn admin_bind(
        &mut self,
        ctx: &AdminCtx<'_>,
        source: &str,
        kind: DestKind,
        dest: &str,
        routing_key: &str,
        arguments: &FieldTable,
        bind: bool,
    ) -> Result<String, AdminError> {
        let routing_key = short_name("routing_key", routing_key)?;
        let v = self.vhosts.get(ctx.vhost).ok_or(not_found())?;
        let dest_exists = match kind {
            DestKind::Queue => v.queue_id(dest).is_some(),
            DestKind::Exchange => v.exchanges.contains_key(dest),
        };
        if !dest_exists || !v.exchanges.contains_key(source) {
            return Err(not_found());
        }
        // Both exist, so both are names the vhost holds: short strings already.
        let (source, dest) = (short_name("source", source)?, short_name("destination", dest)?);
        let args = arguments.to_bytes();
        let table = Table::parse(&args).expect("own table");
        self.admin_run(ctx, |b, c| match kind {
            DestKind::Queue => b.queue_bind(c, 1, dest, source, routing_key, table, true, bind),
            DestKind::Exchange => b.exchange_bind(c, 1, dest, source, routing_key, table, true, bind),
        })?;
        Ok(properties_key(&routing_key, arguments))
    }

    /// The bindings from `source` to `dest` (in a vhost), with their props keys.
    pub fn admin_find_binding(
        &self,
        vhost: &str,
        source: &str,
        kind: DestKind,
        dest: &str,
        props_key: &str,
    ) -> Option<(String, FieldTable)> {
        let v = self.vhosts.get(vhost)?;
        let d = match kind {
            DestKind::Queue => Dest::Queue(v.queue_id(dest)?),
            DestKind::Exchange => Dest::Exchange(v.exchanges.get_key_value(dest)?.0.clone()),
        };
        let x = v.exchanges.get(source)?;
        x.bindings
            .iter()
            .filter(|(bd, _, _)| **bd == d)
            .find(|(_, rk, args)| props_match(rk, args, props_key))
            .map(|(_, rk, args)| (rk.to_string(), args.clone()))
    }

    /// Publishes one message as the user would on a channel. Returns whether it
    /// was routed to a queue.
    pub fn admin_publish(
        &mut self,
        ctx: &AdminCtx<'_>,
        exchange: &str,
        routing_key: &str,
        properties: &[u8],
        body: &[u8],
    ) -> Result<bool, AdminError> {
        let exchange = short_name("exchange", exchange)?;
        let routing_key = short_name("routing_key", routing_key)?;
        if ringmq_codec::BasicProperties::decode(properties).is_err() {
            return Err(AdminError::BadRequest("invalid properties".into()));
        }
        let mut routed = false;
        self.admin_run(ctx, |b, c| {
            let outcome = b.publish(c, 1, exchange, routing_key, false, properties, body)?;
            c.channels.get_mut(&1).expect("admin channel").stats.c.publish += 1;
            routed = outcome.routed;
            Ok(())
        })?;
        Ok(routed)
    }

    /// Takes up to `count` messages as basic.get would, then settles them all
    /// by `mode` (requeued ones come back in order, marked redelivered).
    pub fn admin_get(
        &mut self,
        ctx: &AdminCtx<'_>,
        queue: &str,
        count: u32,
        mode: AckMode,
    ) -> Result<Vec<GotMessage>, AdminError> {
        let id = self.has_queue(ctx.vhost, queue)?.ok_or(not_found())?;
        let conn = self.admin_conn(ctx)?;
        crate::core::amqp::dispatch::check_access(&conn, Access::Read, "queue", queue)?;
        let vname: Arc<str> = conn.vhost.clone().expect("admin conn has a vhost");
        self.now_ms = ctx.now_ms;
        // A get through the API is a use of the queue (x-expires), as basic.get.
        self.touch_queue(&vname, id);
        let mut got = Vec::new();
        let mut taken = Vec::new();
        for _ in 0..count.min(GET_COUNT_MAX) {
            self.expire_head(&vname, id);
            let Some(q) = self.vhosts.get_mut(&vname).and_then(|v| v.queues.get_mut(&id)) else {
                break;
            };
            let Some(pos) = q.next_ready() else {
                // RabbitMQ counts get_empty only for a get that found nothing.
                q.stats.c.get_empty += u64::from(got.is_empty());
                break;
            };
            let redelivered = q.take_redelivered(pos);
            q.stats.c.get += 1;
            q.stats.c.redeliver += u64::from(redelivered);
            let message_count = q.message_count();
            let delivery_count = q.delivery_count_header(pos);
            let read = read_named(q.store.read(pos));
            match read {
                Ok((view, (exchange, routing_key))) => got.push(GotMessage {
                    exchange: exchange.to_string(),
                    routing_key: routing_key.to_string(),
                    redelivered,
                    message_count,
                    // With x-delivery-count, as basic.get shows it.
                    properties: crate::core::amqp::delivery::delivery_properties(view.properties, delivery_count)
                        .into_owned(),
                    payload: view.body.to_vec(),
                }),
                Err(e) => {
                    tracing::error!(queue, error = %e, "unreadable message dropped");
                    q.ack_position(pos);
                    continue;
                }
            }
            taken.push(pos);
        }
        let n = taken.len() as u64;
        // Requeue newest first, so the oldest ends up at the head again.
        for pos in taken.into_iter().rev() {
            match mode {
                AckMode::AckRequeueTrue | AckMode::RejectRequeueTrue => self.requeue_or_limit(&vname, id, pos),
                AckMode::AckRequeueFalse => {
                    if let Some(q) = self.vhosts.get_mut(&vname).and_then(|v| v.queues.get_mut(&id)) {
                        q.ack_position(pos);
                        q.stats.c.ack += 1;
                    }
                }
                AckMode::RejectRequeueFalse => self.discard_delivered(&vname, id, pos, DeathReason::Rejected),
            }
        }
        self.note_acks(&vname, id);
        let redelivered = got.iter().filter(|m| m.redelivered).count() as u64;
        let empty = u64::from(got.is_empty() && count > 0);
        self.count_admin(&vname, |c| {
            c.get += n;
            c.get_empty += empty;
            c.redeliver += redelivered;
            if mode == AckMode::AckRequeueFalse {
                c.ack += n;
            }
        });
        self.deliver_pending.push((vname, id));
        self.run_pending();
        Ok(got)
    }

    /// Closes every client connection `which` selects with 320 CONNECTION_FORCED.
    pub(crate) fn force_close(&mut self, which: impl Fn(&Connection) -> bool, reason: &str) {
        let ids: Vec<ConnId> = self.conns.values().filter(|c| which(c)).map(|c| c.id).collect();
        for id in ids {
            // Known to exist: collected just above, and nothing between removes one.
            let _ = self.admin_close_connection(id, reason, self.now_ms);
        }
    }

    /// Closes a client connection with 320 CONNECTION_FORCED and `reason` as the
    /// text, as RabbitMQ's management plugin does.
    pub fn admin_close_connection(&mut self, id: ConnId, reason: &str, now_ms: u64) -> Result<(), AdminError> {
        let mut conn = self.conns.remove(&id).ok_or(not_found())?;
        self.now_ms = now_ms;
        let e = ProtocolError::new(ReplyCode::ConnectionForced, reason.to_owned());
        self.close_connection(&mut conn, e, now_ms);
        self.mark_dirty(&mut conn);
        self.conns.insert(id, conn);
        self.run_pending();
        Ok(())
    }
}

/// A user as `PUT /api/users/{name}` gives it.
#[derive(Debug, Clone, Default)]
pub struct UserSpec {
    pub password: Option<String>,
    pub password_hash: Option<String>,
    pub hashing_algorithm: Option<String>,
    pub tags: Vec<String>,
}

impl Broker {
    /// Creates or updates a user (RabbitMQ: a new user needs `password` or
    /// `password_hash`; an update without either keeps the password).
    pub fn admin_put_user(&mut self, name: &str, spec: &UserSpec) -> Result<Declared, AdminError> {
        if name.is_empty() {
            return Err(AdminError::BadRequest("user name must not be empty".into()));
        }
        let existing = self.users.get(name).cloned();
        let salt = (self.random_u64() as u32).to_le_bytes();
        let mut user = match (&spec.password, &spec.password_hash, &existing) {
            (Some(pw), _, _) => crate::core::access::auth::User::new(name, pw, salt, false),
            (None, Some(hash), _) => {
                let alg = spec
                    .hashing_algorithm
                    .clone()
                    .unwrap_or_else(|| crate::core::access::auth::HASH_SHA256.to_owned());
                crate::core::access::auth::validate_hash(&alg, hash).map_err(AdminError::BadRequest)?;
                let mut u = crate::core::access::auth::User::new(name, "", salt, false);
                u.password_hash = hash.clone();
                u.hashing_algorithm = alg;
                u
            }
            (None, None, Some(old)) => old.clone(),
            (None, None, None) => {
                return Err(AdminError::BadRequest(
                    "[{key_missing,password_or_password_hash}]".into(),
                ))
            }
        };
        if let Some(old) = &existing {
            user.loopback_only = old.loopback_only;
            user.limits = old.limits.clone();
        }
        user.tags = spec.tags.clone();
        self.users.insert(user);
        self.users.save(&self.config.data_dir)?;
        Ok(if existing.is_some() {
            Declared::Existed
        } else {
            Declared::Created
        })
    }

    /// Deletes a user and its permissions, and closes its connections (RabbitMQ's
    /// 320 "user '...' is deleted").
    pub fn admin_delete_user(&mut self, name: &str) -> Result<(), AdminError> {
        self.users.remove(name).ok_or_else(not_found)?;
        self.force_close(
            |c| c.user.as_deref() == Some(name),
            &format!("user '{name}' is deleted"),
        );
        self.users.save(&self.config.data_dir)?;
        if self.permissions.remove_user(name) {
            self.permissions.save(&self.config.data_dir)?;
        }
        Ok(())
    }

    /// Sets a user's permissions in a vhost (both must exist).
    pub fn admin_set_permission(
        &mut self,
        def: crate::core::access::permissions::PermissionDef,
    ) -> Result<Declared, AdminError> {
        if self.users.get(&def.user).is_none() || !self.vhosts.contains_key(def.vhost.as_str()) {
            // RabbitMQ 3.10's answer (400, not 404).
            return Err(AdminError::BadRequest("vhost_or_user_not_found".into()));
        }
        let existed = self.permissions.get(&def.user, &def.vhost).is_some();
        self.permissions.set(def).map_err(AdminError::BadRequest)?;
        self.permissions.save(&self.config.data_dir)?;
        Ok(if existed { Declared::Existed } else { Declared::Created })
    }

    pub fn admin_delete_permission(&mut self, user: &str, vhost: &str) -> Result<(), AdminError> {
        if !self.permissions.remove(user, vhost) {
            return Err(not_found());
        }
        self.permissions.save(&self.config.data_dir)?;
        Ok(())
    }
}

/// A name or key from a management request as the short string AMQP carries,
/// or 400 with RabbitMQ's text (`queue should be less than 255 bytes, actually
/// was 256`): the edge where API, import and ctl input becomes a name the
/// broker can encode (issue 15, defect 3).
pub fn short_name<'a>(what: &str, s: &'a str) -> Result<ShortStr<'a>, AdminError> {
    ShortStr::new(s).map_err(|e| AdminError::BadRequest(e.text(what)))
}

/// RabbitMQ's binding properties key: the routing key alone when there are no
/// arguments (`~` for an empty key), else `key~` and a short hash of the
/// arguments. The hash is ours (RabbitMQ's is Erlang's phash2), so keys are
/// stable here but not equal to RabbitMQ's for bindings with arguments.
pub fn properties_key(routing_key: &str, arguments: &FieldTable) -> String {
    let key = quote_key(routing_key);
    if arguments.is_empty() {
        return if key.is_empty() { "~".into() } else { key };
    }
    use base64::Engine;
    use sha2::Digest;
    let h = sha2::Sha256::digest(arguments.to_bytes());
    let tail = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&h[..4]);
    format!("{key}~{tail}")
}

/// Whether a URL's properties key names this binding. As RabbitMQ, the key part is
/// unquoted rather than compared as text, so a client that sends the routing key
/// decoded (rabbitmqadmin sends `a.%23` in the URL for `a.#`, which arrives as
/// `a.#`) finds it as well as one that sends the `Location` it was given.
pub fn props_match(routing_key: &str, arguments: &FieldTable, props: &str) -> bool {
    let expected = properties_key(routing_key, arguments);
    if props == expected {
        return true;
    }
    let (key, tail) = props.rsplit_once('~').unwrap_or((props, ""));
    let expected_tail = if arguments.is_empty() {
        ""
    } else {
        expected.rsplit_once('~').map_or("", |(_, t)| t)
    };
    let key = key.replace('+', " ");
    let key = percent_encoding::percent_decode_str(&key).decode_utf8_lossy();
    key == routing_key && tail == expected_tail
}

/// RabbitMQ's `quote_binding`: form encoding (letters, digits and `_.-` kept,
/// space as `+`, every other byte `%XX`), with `~`, which separates the key from
/// the hash, as `%7E`. The URL layer percent-encodes the result once more (a
/// `Location` of `k%2Bk%252F` for the key `k k/`, as RabbitMQ 3.10 sends).
fn quote_key(k: &str) -> String {
    let mut out = String::with_capacity(k.len());
    for b in k.bytes() {
        match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'_' | b'.' | b'-' => out.push(b as char),
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn properties_keys_follow_rabbitmq_shape() {
        let empty = FieldTable::default();
        assert_eq!(properties_key("", &empty), "~");
        assert_eq!(properties_key("a.b", &empty), "a.b");
        assert_eq!(properties_key("a~b", &empty), "a%7Eb");
        // Checked against RabbitMQ 3.10's properties_key.
        assert_eq!(properties_key("k k/%", &empty), "k+k%2F%25");
        assert_eq!(properties_key("a~b.c_d-e", &empty), "a%7Eb.c_d-e");
        assert_eq!(properties_key("é", &empty), "%C3%A9");
        // Found by its key, or by the routing key sent decoded (rabbitmqadmin).
        assert!(props_match("a.#", &empty, "a.%23"));
        assert!(props_match("a.#", &empty, "a.#"));
        assert!(props_match("k k/%", &empty, "k+k%2F%25"));
        assert!(props_match("", &empty, "~"));
        assert!(!props_match("a.b", &empty, "a.c"));
        let mut args = FieldTable::default();
        args.insert(ringmq_codec::short!("x"), ringmq_codec::FieldValue::I64(1));
        let k = properties_key("a.b", &args);
        assert!(k.starts_with("a.b~") && k.len() == "a.b~".len() + 6, "{k}");
        assert_eq!(k, properties_key("a.b", &args), "stable");
    }

    fn broker(dir: &std::path::Path) -> Broker {
        let cfg = crate::core::CoreConfig::for_tests(dir);
        Broker::open(cfg, 7).expect("open")
    }

    fn props() -> Vec<u8> {
        let mut out = Vec::new();
        ringmq_codec::BasicProperties::default().encode(&mut out);
        out
    }

    fn ready(b: &Broker, q: &str) -> u64 {
        let v = &b.vhosts["/"];
        v.queues[&v.queue_id(q).unwrap()].store.ready_count()
    }

    /// The API's operations without sockets: declare, publish, get in each
    /// ack mode, bind/unbind by props key, purge, delete, permission checks.
    #[test]
    fn admin_operations_on_a_core_broker() {
        let dir = tempfile::tempdir().unwrap();
        let mut b = broker(dir.path());
        let ctx = AdminCtx {
            user: "guest",
            vhost: "/",
            now_ms: 1_000,
        };
        let durable = QueueSpec {
            durable: true,
            ..Default::default()
        };
        assert_eq!(b.admin_declare_queue(&ctx, "q", &durable).unwrap(), Declared::Created);
        assert_eq!(b.admin_declare_queue(&ctx, "q", &durable).unwrap(), Declared::Existed);
        let e = b.admin_declare_queue(&ctx, "q", &QueueSpec::default()).unwrap_err();
        assert!(
            matches!(e, AdminError::BadRequest(ref s) if s.starts_with("inequivalent arg 'durable'")),
            "{e}"
        );
        let missing_vhost = AdminCtx { vhost: "nope", ..ctx };
        assert!(matches!(
            b.admin_declare_queue(&missing_vhost, "q", &durable),
            Err(AdminError::NotFound(_))
        ));
        let stranger = AdminCtx {
            user: "stranger",
            ..ctx
        };
        assert!(matches!(
            b.admin_declare_queue(&stranger, "s", &durable),
            Err(AdminError::AccessRefused(_))
        ));
        assert!(matches!(
            b.admin_get(&stranger, "q", 1, AckMode::AckRequeueTrue),
            Err(AdminError::AccessRefused(_))
        ));

        let p = props();
        assert!(b.admin_publish(&ctx, "", "q", &p, b"one").unwrap());
        assert!(b.admin_publish(&ctx, "", "q", &p, b"two").unwrap());
        assert!(!b.admin_publish(&ctx, "amq.direct", "nowhere", &p, b"x").unwrap());
        let e = b.admin_publish(&ctx, "missing", "", &p, b"x").unwrap_err();
        assert!(
            matches!(e, AdminError::BadRequest(ref s) if s == "404 NOT_FOUND - no exchange 'missing' in vhost '/'")
        );

        let got = b.admin_get(&ctx, "q", 1, AckMode::AckRequeueTrue).unwrap();
        assert_eq!(
            (got[0].payload.as_slice(), got[0].redelivered, got[0].message_count),
            (&b"one"[..], false, 1)
        );
        let got = b.admin_get(&ctx, "q", 5, AckMode::RejectRequeueTrue).unwrap();
        let bodies: Vec<&[u8]> = got.iter().map(|m| m.payload.as_slice()).collect();
        assert_eq!(bodies, [&b"one"[..], &b"two"[..]], "requeued in order");
        assert!(got[0].redelivered && !got[1].redelivered);
        let got = b.admin_get(&ctx, "q", 1, AckMode::AckRequeueFalse).unwrap();
        assert_eq!(got[0].payload, b"one");
        assert_eq!(ready(&b, "q"), 1);

        let e = b.admin_delete_queue(&ctx, "q", false, true).unwrap_err();
        assert!(matches!(e, AdminError::BadRequest(ref s) if s == "queue 'q' in vhost '/' not empty"));
        b.admin_purge_queue(&ctx, "q").unwrap();
        assert_eq!(ready(&b, "q"), 0);
        assert!(b.admin_get(&ctx, "q", 3, AckMode::AckRequeueTrue).unwrap().is_empty());

        let topic = ExchangeSpec {
            kind: "topic".into(),
            durable: true,
            ..Default::default()
        };
        assert_eq!(b.admin_declare_exchange(&ctx, "x", &topic).unwrap(), Declared::Created);
        let mut args = FieldTable::default();
        args.insert(ringmq_codec::short!("k"), ringmq_codec::FieldValue::I64(1));
        let key = b
            .admin_bind(&ctx, "x", DestKind::Queue, "q", "a.*", &args, true)
            .unwrap();
        assert_eq!(
            b.admin_find_binding("/", "x", DestKind::Queue, "q", &key),
            Some(("a.*".into(), args.clone()))
        );
        assert!(b.admin_publish(&ctx, "x", "a.b", &p, b"m").unwrap());
        b.admin_bind(&ctx, "x", DestKind::Queue, "q", "a.*", &args, false)
            .unwrap();
        assert!(!b.admin_publish(&ctx, "x", "a.b", &p, b"m").unwrap());
        assert!(matches!(
            b.admin_bind(&ctx, "x", DestKind::Queue, "missing", "", &args, true),
            Err(AdminError::NotFound(_))
        ));
        assert!(matches!(
            b.admin_delete_exchange(&ctx, "amq.direct", false),
            Err(AdminError::AccessRefused(_))
        ));
        b.admin_delete_exchange(&ctx, "x", false).unwrap();

        // The API's work counts in the vhost once the stats tick runs.
        b.handle_stats_tick(6_000);
        let t = &b.vhosts["/"].stats.totals;
        assert_eq!((t.publish, t.get, t.ack), (5, 4, 1));
        let q = &b.vhosts["/"].queues[&b.vhosts["/"].queue_id("q").unwrap()];
        assert_eq!((q.stats.c.publish, q.stats.c.get, q.stats.c.get_empty), (3, 4, 1));

        b.admin_pause_queue(&ctx, "q", true).unwrap();
        assert!(matches!(
            b.admin_close_connection(crate::core::model::ids::ConnId(99), "x", 1),
            Err(AdminError::NotFound(_))
        ));
        b.admin_delete_queue(&ctx, "q", false, false).unwrap();
        assert!(matches!(
            b.admin_delete_queue(&ctx, "q", false, false),
            Err(AdminError::NotFound(_))
        ));
    }

    #[test]
    fn exceptions_map_to_api_errors() {
        let e = crate::core::amqp::error::channel_error(ReplyCode::PreconditionFailed, "inequivalent arg 'durable'");
        assert!(matches!(AdminError::from(e), AdminError::BadRequest(s) if s == "inequivalent arg 'durable'"));
        let e = crate::core::amqp::error::channel_error(ReplyCode::NotFound, "no exchange 'x' in vhost '/'");
        assert!(
            matches!(AdminError::from(e), AdminError::BadRequest(s) if s == "404 NOT_FOUND - no exchange 'x' in vhost '/'")
        );
        let e = crate::core::amqp::error::channel_error(ReplyCode::AccessRefused, "no");
        assert!(matches!(AdminError::from(e), AdminError::AccessRefused(_)));
    }
}
