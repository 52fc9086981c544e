//! exchange.declare / delete / bind / unbind, with RabbitMQ's checks and texts.

use ringmq_codec::ShortStr;

use ringmq_codec::{
    encode_method, ExchangeBindOk, ExchangeDeclare, ExchangeDeclareOk, ExchangeDelete, ExchangeDeleteOk,
    ExchangeUnbindOk, Method, ReplyCode, Table,
};

use crate::core::access::permissions::Access;
use crate::core::access::topic_permissions::TopicAccess;
use crate::core::amqp::broker::Broker;
use crate::core::amqp::connection::Connection;
use crate::core::amqp::dispatch::{check_access, precondition};
use crate::core::amqp::error::{channel_error, MethodResult};
use crate::core::amqp::meta::internal_error;
use crate::core::model::exchange::{validate_binding, validate_exchange_arguments};
use crate::core::model::ids::Dest;
use crate::core::model::meta::{BindingOp, ExchangeDecl, MetaOp};
use crate::core::model::vhost::VHost;

/// Text for a missing exchange, as RabbitMQ words it.
pub(crate) fn no_exchange(name: &str, vhost: &str) -> crate::core::amqp::error::Exception {
    channel_error(ReplyCode::NotFound, format!("no exchange '{name}' in vhost '{vhost}'"))
}

fn check_name(name: &str) -> MethodResult {
    if name.is_empty() {
        return Err(channel_error(
            ReplyCode::AccessRefused,
            "operation not permitted on the default exchange",
        ));
    }
    Ok(())
}

impl Broker {
    pub(crate) fn vhost_of(&mut self, conn: &Connection) -> &mut VHost {
        let name = conn.vhost.as_ref().expect("open connection has a vhost");
        self.model
            .vhosts
            .get_mut(name)
            .expect("vhost of an open connection exists")
    }

    pub(crate) fn exchange_declare(
        &mut self,
        conn: &mut Connection,
        channel: u16,
        m: ExchangeDeclare<'_>,
    ) -> MethodResult {
        let vhost = self.vhost_of(conn);
        let vname = vhost.name.clone();
        if m.passive {
            // RabbitMQ checks the default exchange before the lookup, passive too.
            check_name(&m.exchange)?;
            if !vhost.exchanges.contains_key(m.exchange.as_str()) {
                return Err(no_exchange(&m.exchange, &vname));
            }
        } else {
            check_name(&m.exchange)?;
            check_access(conn, Access::Configure, "exchange", &m.exchange)?;
            let arguments = m.arguments.to_owned_table();
            let (kind, delayed) = crate::core::model::exchange::delayed::resolve_type(&m.kind, &arguments)?;
            validate_exchange_arguments(kind, &arguments).map_err(precondition)?;
            crate::core::model::queue::dedup::DedupCache::from_arguments(&arguments).map_err(precondition)?;
            if let Some(x) = vhost.exchanges.get(m.exchange.as_str()) {
                let ineq = |arg: &str, got: &str, cur: &str| {
                    precondition(format!(
                        "inequivalent arg '{arg}' for exchange '{}' in vhost '{vname}': received '{got}' but current is '{cur}'",
                        m.exchange
                    ))
                };
                if x.kind != kind || x.is_delayed() != delayed {
                    return Err(ineq("type", &m.kind, x.type_name()));
                }
                if x.durable != m.durable {
                    return Err(ineq("durable", bool_str(m.durable), bool_str(x.durable)));
                }
                if x.auto_delete != m.auto_delete {
                    return Err(ineq("auto_delete", bool_str(m.auto_delete), bool_str(x.auto_delete)));
                }
                if x.internal != m.internal {
                    return Err(ineq("internal", bool_str(m.internal), bool_str(x.internal)));
                }
                if x.arguments.get("alternate-exchange") != arguments.get("alternate-exchange") {
                    return Err(precondition(format!(
                        "inequivalent arg 'alternate-exchange' for exchange '{}' in vhost '{vname}'",
                        m.exchange
                    )));
                }
            } else {
                if m.exchange.starts_with("amq.") {
                    return Err(channel_error(
                        ReplyCode::AccessRefused,
                        format!("exchange name '{}' contains reserved prefix 'amq.*'", m.exchange),
                    ));
                }
                // A durable delayed exchange gets a new folder generation:
                // replaying an earlier delete of the name must not touch this
                // one's held messages.
                let gen = if delayed && m.durable {
                    vhost.next_delayed_gen(m.exchange)
                } else {
                    0
                };
                let op = MetaOp::ExchangeDeclare(ExchangeDecl {
                    vhost: vname,
                    name: m.exchange.into(),
                    kind,
                    delayed,
                    durable: m.durable,
                    auto_delete: m.auto_delete,
                    internal: m.internal,
                    arguments,
                    gen,
                    recover: false,
                });
                self.apply_meta_for(conn, &op)
                    .map_err(|e| internal_error(format_args!("cannot create delayed exchange"), e))?;
            }
        }
        if !m.no_wait {
            encode_method(&mut conn.out, channel, &Method::ExchangeDeclareOk(ExchangeDeclareOk));
        }
        Ok(())
    }

    pub(crate) fn exchange_delete(
        &mut self,
        conn: &mut Connection,
        channel: u16,
        m: ExchangeDelete<'_>,
    ) -> MethodResult {
        check_name(&m.exchange)?;
        check_access(conn, Access::Configure, "exchange", &m.exchange)?;
        let vhost = self.vhost_of(conn);
        let vname = vhost.name.clone();
        if let Some(x) = vhost.exchanges.get(m.exchange.as_str()) {
            if x.builtin {
                return Err(channel_error(
                    ReplyCode::AccessRefused,
                    format!(
                        "deletion of system exchange '{}' in vhost '{vname}' not allowed",
                        m.exchange
                    ),
                ));
            }
            let in_use = !x.bindings.is_empty() || x.bound_as_destination > 0;
            if m.if_unused && in_use {
                return Err(precondition(format!(
                    "exchange '{}' in vhost '{vname}' in use",
                    m.exchange
                )));
            }
            let op = MetaOp::ExchangeDelete {
                vhost: vname,
                name: m.exchange.into(),
                keep_files: false,
            };
            self.apply_meta_for(conn, &op)
                .map_err(|e| internal_error(format_args!("cannot delete exchange"), e))?;
        }
        // Deleting a missing exchange succeeds, as in RabbitMQ 3.x.
        if !m.no_wait {
            encode_method(&mut conn.out, channel, &Method::ExchangeDeleteOk(ExchangeDeleteOk));
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    pub(crate) fn exchange_bind(
        &mut self,
        conn: &mut Connection,
        channel: u16,
        destination: ShortStr<'_>,
        source: ShortStr<'_>,
        routing_key: ShortStr<'_>,
        arguments: Table<'_>,
        no_wait: bool,
        bind: bool,
    ) -> MethodResult {
        check_name(destination.as_str())?;
        check_name(source.as_str())?;
        check_access(conn, Access::Write, "exchange", destination.as_str())?;
        check_access(conn, Access::Read, "exchange", source.as_str())?;
        self.check_topic_access(conn, source.as_str(), routing_key.as_str(), TopicAccess::Read)?;
        let vhost = self.vhost_of(conn);
        let vname = vhost.name.clone();
        let dest = vhost.exchanges.get_key_value(destination.as_str());
        let dest = dest.map(|(name, x)| (name.clone(), x.durable));
        let (src, dest) = match (vhost.exchanges.get_mut(source.as_str()), dest) {
            (Some(src), Some(dest)) => (src, dest),
            // RabbitMQ: removing a binding is idempotent, so unbinding a source or
            // destination that is not there is done.
            _ if !bind => {
                if !no_wait {
                    encode_method(&mut conn.out, channel, &Method::ExchangeUnbindOk(ExchangeUnbindOk));
                }
                return Ok(());
            }
            (_, None) => return Err(no_exchange(destination.as_str(), &vname)),
            (None, _) => return Err(no_exchange(source.as_str(), &vname)),
        };
        let (dname, _) = dest;
        let args = arguments.to_owned_table();
        validate_binding(src.kind, routing_key.as_str(), &args).map_err(precondition)?;
        let op = MetaOp::Binding(BindingOp {
            vhost: vname,
            source: source.into(),
            dest: Dest::Exchange(dname),
            routing_key: routing_key.into(),
            arguments: args,
            add: bind,
        });
        self.apply_meta_for(conn, &op)
            .map_err(|e| internal_error(format_args!("cannot change binding"), e))?;
        if !no_wait {
            let ok = if bind {
                Method::ExchangeBindOk(ExchangeBindOk)
            } else {
                Method::ExchangeUnbindOk(ExchangeUnbindOk)
            };
            encode_method(&mut conn.out, channel, &ok);
        }
        Ok(())
    }
}

pub(crate) fn bool_str(b: bool) -> &'static str {
    if b {
        "true"
    } else {
        "false"
    }
}
