//! queue.declare / bind / unbind / purge / delete, with RabbitMQ's checks and texts.

use crate::core::model::ids::VhostName;
use ringmq_codec::{ShortStr, ShortString};

use ringmq_codec::{
    encode_method, BasicCancel, FieldValue, Method, QueueBindOk, QueueDeclare, QueueDeclareOk, QueueDelete,
    QueueDeleteOk, QueuePurge, QueuePurgeOk, QueueUnbindOk, ReplyCode, Table,
};

use crate::core::access::permissions::Access;
use crate::core::access::topic_permissions::TopicAccess;
use crate::core::amqp::broker::{Broker, Notice};
use crate::core::amqp::connection::Connection;
use crate::core::amqp::dispatch::{chan, check_access, precondition};
use crate::core::amqp::error::{channel_error, Exception, MethodResult};
use crate::core::amqp::exchange::{bool_str, no_exchange};
use crate::core::amqp::meta::internal_error;
use crate::core::amqp::remote::{Pending, Redeclare};
use crate::core::model::cross::AskWhat;
use crate::core::model::exchange::validate_binding;
use crate::core::model::ids::{ConnId, Dest, QueueId};
use crate::core::model::meta::{BindingOp, MetaOp, QueueDecl};

/// A 404 from a lookup (the thing named is not there).
pub(crate) fn is_not_found(e: &Exception) -> bool {
    matches!(e, Exception::Channel(e) if e.code == ReplyCode::NotFound)
}

pub(crate) fn no_queue(name: &str, vhost: &str) -> Exception {
    channel_error(ReplyCode::NotFound, format!("no queue '{name}' in vhost '{vhost}'"))
}

fn locked(name: &str, vhost: &str) -> Exception {
    channel_error(
        ReplyCode::ResourceLocked,
        format!(
            "cannot obtain exclusive access to locked queue '{name}' in vhost '{vhost}'. It could be originally declared on another connection or the exclusive property value does not match that of the original declaration."
        ),
    )
}

/// Queue arguments whose values must match on redeclare (RabbitMQ's equivalence list).
const EQUIVALENT_ARGS: &[&str] = &[
    "x-message-ttl",
    "x-expires",
    "x-max-length",
    "x-max-length-bytes",
    "x-dead-letter-exchange",
    "x-dead-letter-routing-key",
    "x-max-priority",
    "x-overflow",
    "x-queue-mode",
    "x-queue-type",
    "x-single-active-consumer",
    "x-delivery-limit",
];

impl Broker {
    /// Resolves a queue name from a method ("" = the channel's last declared
    /// queue), checking exclusivity. Returns the queue id and its real name.
    pub(crate) fn resolve_queue(
        &mut self,
        conn: &mut Connection,
        channel: u16,
        name: ShortStr<'_>,
    ) -> Result<(QueueId, ShortString), Exception> {
        let name: ShortString = if name.is_empty() {
            match &chan(conn, channel).last_queue {
                Some(q) => q.clone(),
                None => return Err(channel_error(ReplyCode::NotFound, "no previously declared queue")),
            }
        } else {
            ShortString::from(name)
        };
        let conn_id = conn.id;
        let vhost = self.vhost_of(conn);
        let Some(id) = vhost.queue_id(&name) else {
            return Err(no_queue(&name, &vhost.name));
        };
        let q = &vhost.queues[&id];
        if q.is_exclusive_to_other(conn_id) {
            return Err(locked(&name, &vhost.name));
        }
        Ok((id, name))
    }

    pub(crate) fn queue_declare(&mut self, conn: &mut Connection, channel: u16, m: QueueDeclare<'_>) -> MethodResult {
        self.node_stats
            .churn
            .bump(crate::core::model::stats::Churn::QUEUE_DECLARED);
        let conn_id = conn.id;
        let generated;
        let name: ShortStr<'_> = if m.queue.is_empty() && !m.passive {
            generated = self.generated_name("amq.gen-");
            generated.as_short()
        } else {
            m.queue
        };
        if crate::core::amqp::direct_reply::is_reply_queue(name.as_str()) && m.passive {
            if !m.no_wait {
                let ok = QueueDeclareOk {
                    queue: name,
                    message_count: 0,
                    consumer_count: 0,
                };
                encode_method(&mut conn.out, channel, &Method::QueueDeclareOk(ok));
            }
            return Ok(());
        }
        let vhost = self.vhost_of(conn);
        let vname = vhost.name.clone();
        let (message_count, consumer_count) = if let Some(id) = vhost.queue_id(name.as_str()) {
            let q = vhost.queues.get(&id).expect("named queue exists");
            if q.is_exclusive_to_other(conn_id) {
                return Err(locked(name.as_str(), &vname));
            }
            if !m.passive {
                let ineq = |arg: &str, got: &str, cur: &str| {
                    precondition(format!(
                        "inequivalent arg '{arg}' for queue '{name}' in vhost '{vname}': received '{got}' but current is '{cur}'"
                    ))
                };
                // RabbitMQ's assert_equivalence checks exclusivity first, strictly:
                // an exclusive flag that does not match is 405 (its text says so),
                // on the owning connection too.
                if q.exclusive_owner().is_some() != m.exclusive {
                    return Err(locked(name.as_str(), &vname));
                }
                // Exclusive queues are transient whatever the flag says, so only
                // shared queues compare it (as RabbitMQ does).
                if q.exclusive_owner().is_none() && q.is_durable() != m.durable {
                    return Err(ineq("durable", bool_str(m.durable), bool_str(q.is_durable())));
                }
                if q.is_auto_delete() != m.auto_delete {
                    return Err(ineq(
                        "auto_delete",
                        bool_str(m.auto_delete),
                        bool_str(q.is_auto_delete()),
                    ));
                }
                let args = m.arguments.to_owned_table();
                for key in EQUIVALENT_ARGS {
                    if !arg_equivalent(args.get(key), q.arguments().get(key)) {
                        let (got, cur) = describe_arg_pair(args.get(key), q.arguments().get(key));
                        return Err(precondition(format!(
                            "inequivalent arg '{key}' for queue '{name}' in vhost '{vname}': received {got} but current is {cur}"
                        )));
                    }
                }
            }
            let counts = (q.declare_ok_count(), q.consumer_count());
            let owner = q.owner();
            let vhost_name = conn.vhost.clone().expect("open");
            if owner != self.model.shards.me {
                // The counts, and the lease's renewal, are the owner's.
                chan(conn, channel).last_queue = Some(name.into());
                let again = (!m.passive).then(|| {
                    Box::new(Redeclare {
                        durable: m.durable,
                        exclusive: m.exclusive,
                        auto_delete: m.auto_delete,
                        arguments: m.arguments.to_owned_table().to_bytes(),
                    })
                });
                let reply = Pending::Declare {
                    queue: name.into(),
                    again,
                };
                self.ask_owner(conn, channel, &vhost_name, id, owner, AskWhat::Counts, reply, m.no_wait);
                return Ok(());
            }
            // A declare of an existing queue is a use for x-expires (RabbitMQ:
            // "redeclaring renews the lease").
            self.model.touch_queue(&vhost_name, id);
            counts
        } else {
            if m.passive {
                return Err(no_queue(name.as_str(), &vname));
            }
            if name.starts_with("amq.") && m.queue == name {
                return Err(channel_error(
                    ReplyCode::AccessRefused,
                    format!("queue name '{name}' contains reserved prefix 'amq.*'"),
                ));
            }
            check_access(conn, Access::Configure, "queue", name.as_str())?;
            let owner = m.exclusive.then_some(conn_id);
            conn.owns_exclusive |= m.exclusive; // it names the connection: it stays (`hand_off`)
            let args = m.arguments.to_owned_table();
            let settings =
                crate::core::model::queue::args::parse(&args, name.as_str(), &vname).map_err(precondition)?;
            crate::core::model::queue::args::check_new_declare(&args, name.as_str(), &vname).map_err(precondition)?;
            (settings.check_properties(m.durable, m.exclusive, m.auto_delete, name.as_str(), &vname))
                .map_err(precondition)?;
            crate::core::model::queue::dedup::DedupCache::from_arguments(&args).map_err(precondition)?;
            let id = self.model.new_queue_id();
            let vhost = self.vhost_of(conn);
            if let Some(limit) = vhost.meta.limits.max_queues {
                if vhost.queues.len() as u64 >= limit {
                    return Err(precondition(format!(
                        "cannot declare queue '{name}': queue limit in vhost '{vname}' ({limit}) is reached"
                    )));
                }
            }
            // Exclusive queues are never durable on disk: they die with the connection.
            let durable = m.durable && !m.exclusive;
            let gen = if durable { vhost.next_store_gen(name) } else { 0 };
            let owner_shard = self.model.shards.owner_of_queue(&vname, name.as_str());
            let op = MetaOp::QueueDeclare(QueueDecl {
                vhost: vname,
                id,
                name: name.into(),
                owner: owner_shard,
                durable,
                auto_delete: m.auto_delete,
                exclusive: owner,
                arguments: args,
                gen,
                recover: false,
            });
            self.apply_meta_for(conn, &op)
                .map_err(|e| internal_error(format_args!("cannot create queue '{name}'"), e))?;
            (0, 0)
        };
        chan(conn, channel).last_queue = Some(name.into());
        if !m.no_wait {
            let ok = QueueDeclareOk {
                queue: name,
                message_count,
                consumer_count,
            };
            encode_method(&mut conn.out, channel, &Method::QueueDeclareOk(ok));
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    pub(crate) fn queue_bind(
        &mut self,
        conn: &mut Connection,
        channel: u16,
        queue: ShortStr<'_>,
        exchange: ShortStr<'_>,
        routing_key: ShortStr<'_>,
        arguments: Table<'_>,
        no_wait: bool,
        bind: bool,
    ) -> MethodResult {
        let resolved = self.resolve_queue(conn, channel, queue);
        if !bind && !queue.is_empty() && resolved.as_ref().is_err_and(is_not_found) {
            // RabbitMQ: removing a binding is idempotent, so unbinding from a queue
            // that is not there is done (clients' clean-up code unbinds blindly).
            check_access(conn, Access::Write, "queue", queue.as_str())?;
            check_access(conn, Access::Read, "exchange", exchange.as_str())?;
            self.check_topic_access(conn, exchange.as_str(), routing_key.as_str(), TopicAccess::Read)?;
            encode_method(&mut conn.out, channel, &Method::QueueUnbindOk(QueueUnbindOk));
            return Ok(());
        }
        let (id, qname) = resolved?;
        // RabbitMQ: binding needs write on the queue and read on the exchange.
        check_access(conn, Access::Write, "queue", &qname)?;
        check_access(conn, Access::Read, "exchange", exchange.as_str())?;
        // An empty routing key with an empty queue name means "the current queue's name".
        let routing_key = if queue.is_empty() && routing_key.is_empty() {
            qname.as_short()
        } else {
            routing_key
        };
        if exchange.is_empty() {
            return Err(channel_error(
                ReplyCode::AccessRefused,
                "operation not permitted on the default exchange",
            ));
        }
        self.check_topic_access(conn, exchange.as_str(), routing_key.as_str(), TopicAccess::Read)?;
        let vhost = self.vhost_of(conn);
        let vname = vhost.name.clone();
        let Some(x) = vhost.exchanges.get_mut(exchange.as_str()) else {
            if bind {
                return Err(no_exchange(exchange.as_str(), &vname));
            }
            // Idempotent unbind, as above: a missing exchange has no bindings.
            encode_method(&mut conn.out, channel, &Method::QueueUnbindOk(QueueUnbindOk));
            return Ok(());
        };
        let args = arguments.to_owned_table();
        validate_binding(x.kind, &routing_key, &args).map_err(precondition)?;
        let op = MetaOp::Binding(BindingOp {
            vhost: vname,
            source: exchange.into(),
            dest: Dest::Queue(id),
            routing_key: routing_key.into(),
            arguments: args,
            add: bind,
        });
        self.apply_meta_for(conn, &op)
            .map_err(|e| internal_error(format_args!("cannot change binding"), e))?;
        if bind && !no_wait {
            encode_method(&mut conn.out, channel, &Method::QueueBindOk(QueueBindOk));
        } else if !bind {
            encode_method(&mut conn.out, channel, &Method::QueueUnbindOk(QueueUnbindOk));
        }
        Ok(())
    }

    pub(crate) fn queue_purge(&mut self, conn: &mut Connection, channel: u16, m: QueuePurge<'_>) -> MethodResult {
        let (id, qname) = self.resolve_queue(conn, channel, m.queue)?;
        check_access(conn, Access::Read, "queue", &qname)?;
        let me = self.model.shards.me;
        let vhost = self.vhost_of(conn);
        let q = vhost.queues.get_mut(&id).expect("resolved queue");
        if q.is_stream() {
            return Err(crate::core::amqp::stream::not_for_streams(
                "queue.purge",
                &qname,
                &vhost.name,
            ));
        }
        let owner = q.owner();
        if owner != me {
            let vname = conn.vhost.clone().expect("open");
            self.ask_owner(
                conn,
                channel,
                &vname,
                id,
                owner,
                AskWhat::Purge,
                Pending::Purge,
                m.no_wait,
            );
            return Ok(());
        }
        let purged = q
            .purge()
            .map_err(|e| channel_error(ReplyCode::InternalError, format!("purge failed: {e}")))?;
        let vname = conn.vhost.clone().expect("open");
        self.model.note_acks(&vname, id);
        if !m.no_wait {
            let ok = QueuePurgeOk {
                message_count: u32::try_from(purged).unwrap_or(u32::MAX),
            };
            encode_method(&mut conn.out, channel, &Method::QueuePurgeOk(ok));
        }
        Ok(())
    }

    pub(crate) fn queue_delete(&mut self, conn: &mut Connection, channel: u16, m: QueueDelete<'_>) -> MethodResult {
        let name = if m.queue.is_empty() {
            chan(conn, channel).last_queue.clone()
        } else {
            Some(m.queue.into())
        };
        if let Some(n) = name.as_deref() {
            check_access(conn, Access::Configure, "queue", n)?;
        }
        let me = self.model.shards.me;
        let vhost = self.vhost_of(conn);
        let vname = vhost.name.clone();
        let mut message_count = 0;
        if let Some(id) = name.as_deref().and_then(|n| vhost.queue_id(n)) {
            let q = &vhost.queues[&id];
            let qname = q.name().clone();
            if q.is_exclusive_to_other(conn.id) {
                return Err(locked(&qname, &vname));
            }
            let owner = q.owner();
            if owner != me {
                // The conditions, the count and the delete are the owner's.
                let what = AskWhat::Delete {
                    if_unused: m.if_unused,
                    if_empty: m.if_empty,
                };
                self.ask_owner(conn, channel, &vname, id, owner, what, Pending::Delete, m.no_wait);
                return Ok(());
            }
            if m.if_unused && q.consumer_count() > 0 {
                return Err(precondition(format!("queue '{qname}' in vhost '{vname}' in use")));
            }
            if m.if_empty && q.message_count() > 0 {
                return Err(precondition(format!("queue '{qname}' in vhost '{vname}' not empty")));
            }
            message_count = q.message_count();
            let durable = q.is_durable();
            let vhost_name = conn.vhost.clone().expect("open");
            self.delete_queue(&vhost_name, id);
            if durable {
                // delete-ok once the delete's record is synced, as a declare-ok.
                self.hold_reply_for_definitions(conn);
            }
        }
        // Deleting a missing queue succeeds with a zero count, as in RabbitMQ 3.x.
        if !m.no_wait {
            encode_method(
                &mut conn.out,
                channel,
                &Method::QueueDeleteOk(QueueDeleteOk { message_count }),
            );
        }
        Ok(())
    }

    /// Deletes a queue: its consumers are cancelled (basic.cancel to clients that
    /// asked for it), its bindings and files removed, its delete logged if durable.
    pub(crate) fn delete_queue(&mut self, vhost_name: &VhostName, id: QueueId) {
        self.in_meta_section(|b| b.delete_queue_now(vhost_name, id));
    }

    fn delete_queue_now(&mut self, vhost_name: &VhostName, id: QueueId) {
        let Some(q) = self.model.vhosts.get(vhost_name).and_then(|v| v.queues.get(&id)) else {
            return;
        };
        let name = q.name().clone();
        let op = MetaOp::QueueDelete {
            vhost: vhost_name.clone(),
            name: name.clone(),
            keep_files: false,
        };
        if let Err(e) = self.apply_meta(&op) {
            tracing::warn!(queue = %name, error = %e, "could not delete queue");
        }
    }

    /// Exclusive queues die with their connection.
    pub(crate) fn delete_exclusive_queues(&mut self, vhost_name: &VhostName, owner: ConnId) {
        let Some(vhost) = self.model.vhosts.get(vhost_name) else {
            return;
        };
        let ids: Vec<QueueId> = vhost
            .queues
            .values()
            .filter(|q| q.exclusive_owner() == Some(owner))
            .map(|q| q.id())
            .collect();
        for id in ids {
            self.delete_queue(vhost_name, id);
        }
    }

    /// Applies cross-connection notices gathered while handling input.
    pub(crate) fn apply_notices(&mut self) {
        for notice in std::mem::take(&mut self.notices) {
            match notice {
                Notice::CancelConsumer { conn, channel, tag } => {
                    let Some(c) = self.conns.get_mut(&conn) else { continue };
                    let notify = c.capabilities.consumer_cancel_notify;
                    let Some(ch) = c.channels.get_mut(&channel) else {
                        continue;
                    };
                    if ch.consumers.remove(&tag).is_some() && notify {
                        let cancel = BasicCancel {
                            consumer_tag: tag.as_short(),
                            no_wait: true,
                        };
                        encode_method(&mut c.out, channel, &Method::BasicCancel(cancel));
                        self.mark_dirty_id(conn);
                    }
                }
                Notice::ForceClose { conn, reason } => {
                    let Some(mut c) = self.conns.remove(&conn) else {
                        continue;
                    };
                    let e = ringmq_codec::ProtocolError::new(ringmq_codec::ReplyCode::ConnectionForced, reason);
                    self.close_connection(&mut c, e, self.model.now_ms);
                    self.mark_dirty(&mut c);
                    self.conns.insert(conn, c);
                }
            }
        }
    }
}

/// Integer arguments are equal across integer types (clients pick different
/// ones for the same number); everything else compares by type and value.
fn arg_equivalent(a: Option<&FieldValue>, b: Option<&FieldValue>) -> bool {
    match (a, b) {
        (Some(x), Some(y)) => match (x.as_i64(), y.as_i64()) {
            (Some(i), Some(j)) => i == j,
            _ => x == y,
        },
        (None, None) => true,
        _ => false,
    }
}

/// RabbitMQ's wording: "received '20' but current is '10'" when both are set;
/// "received none but current is the value '10' of type 'signedint'" otherwise.
fn describe_arg_pair(got: Option<&FieldValue>, cur: Option<&FieldValue>) -> (String, String) {
    let short = |v: &FieldValue| match (v.as_i64(), v.as_str()) {
        (Some(n), _) => format!("'{n}'"),
        (None, Some(s)) => format!("'{s}'"),
        _ => format!("'{v:?}'"),
    };
    let long = |v: Option<&FieldValue>| match v {
        None => "none".to_string(),
        Some(v) => format!("the value {} of type '{}'", short(v), v.type_name()),
    };
    match (got, cur) {
        (Some(g), Some(c)) => (short(g), short(c)),
        _ => (long(got), long(cur)),
    }
}
