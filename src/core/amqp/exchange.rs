//! exchange.declare / delete / bind / unbind, with RabbitMQ's checks and texts.

use ringmq_codec::{ShortStr, ShortString};

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
use crate::core::definitions;
use crate::core::model::exchange::{validate_binding, validate_exchange_arguments};
use crate::core::model::ids::Dest;
use crate::core::model::vhost::{Exchange, VHost};

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
                if x.kind != kind || x.delayed.is_some() != delayed {
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
                let name = ShortString::from(m.exchange);
                let mut x = Exchange::new(name.clone(), kind, m.durable, m.auto_delete, m.internal, arguments);
                if delayed {
                    // A new folder generation: replaying an earlier delete of the
                    // name must not touch this one's held messages.
                    let gen = if m.durable {
                        vhost.next_delayed_gen(m.exchange)
                    } else {
                        0
                    };
                    let store = vhost
                        .open_delayed_store(m.exchange, m.durable, gen, false)
                        .map_err(|e| {
                            channel_error(ReplyCode::InternalError, format!("cannot create delayed exchange: {e}"))
                        })?;
                    x.delayed = Some(store);
                    x.store_gen = gen;
                }
                let gen = x.store_gen;
                vhost.add_exchange(x);
                if m.durable {
                    if let Some(w) = definitions::log::record_with_gen(vhost, &Method::ExchangeDeclare(m), gen) {
                        self.definitions_written_by(&vname, w, conn);
                    }
                }
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
            let durable = x.durable;
            vhost.delete_exchange(&m.exchange);
            if durable {
                if let Some(w) = definitions::log::record(vhost, &Method::ExchangeDelete(m)) {
                    self.definitions_written_by(&vname, w, conn);
                }
            }
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
        let (dname, ddurable) = dest;
        let args = arguments.to_owned_table();
        validate_binding(src.kind, routing_key.as_str(), &args).map_err(precondition)?;
        let durable = src.durable && ddurable;
        let changed = vhost.set_binding(source.as_str(), Dest::Exchange(dname), routing_key, &args, bind);
        if changed {
            if durable {
                let method = if bind {
                    Method::ExchangeBind(ringmq_codec::ExchangeBind {
                        ticket: 0,
                        destination,
                        source,
                        routing_key,
                        no_wait: false,
                        arguments,
                    })
                } else {
                    Method::ExchangeUnbind(ringmq_codec::ExchangeUnbind {
                        ticket: 0,
                        destination,
                        source,
                        routing_key,
                        no_wait: false,
                        arguments,
                    })
                };
                if let Some(w) = definitions::log::record(vhost, &method) {
                    self.definitions_written_by(&vname, w, conn);
                }
            }
            if !bind {
                self.vhost_of(conn).maybe_auto_delete_exchange(source.as_str());
            }
        }
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
