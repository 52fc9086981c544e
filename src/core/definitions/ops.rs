//! The log records of metadata ops: an applied [`MetaOp`] that changed durable
//! objects is written to its vhost's definitions log as the AMQP method that
//! says the same (the log's format, as it has always been), and a replayed or
//! imported method becomes an op again ([`op_of_method`]).

use ringmq_codec::{
    ExchangeBind, ExchangeDeclare, ExchangeDelete, ExchangeUnbind, Method, QueueBind, QueueDeclare, QueueDelete,
    QueueUnbind, ShortStr, ShortString, Table,
};

use super::log::{record_with_gen, written, Written};
use crate::core::model::exchange::delayed::{resolve_type, DELAYED_TYPE};
use crate::core::model::ids::{Dest, VhostName};
use crate::core::model::meta::{Applied, BindingOp, ExchangeDecl, MetaOp, QueueDecl};
use crate::core::model::Model;

/// Writes the record of `op` when applying it changed durable objects. The
/// caller hands the result to the group commit ([`super::log::written`]) or to
/// `Broker::definitions_written_by`, which holds a client's reply until it.
pub(crate) fn record_op(model: &mut Model, op: &MetaOp, applied: &Applied) -> Option<Written> {
    let vhost = model.vhosts.get_mut(op.vhost())?;
    // Durable auto-delete exchanges the op took with it: their deletes are
    // logged after the op's own record (replay derives them from the op too,
    // when their bindings were logged; these records cover the rest).
    let mut auto_deleted = applied.auto_deleted.iter().filter(|x| x.durable).peekable();
    let auto_written = auto_deleted.peek().is_some();
    let op_written = applied.changed && applied.durable;
    if !op_written && !auto_written {
        return None;
    }
    let mut written = if op_written { record_own(vhost, op) } else { None };
    for x in auto_deleted {
        let delete = Method::ExchangeDelete(ExchangeDelete {
            ticket: 0,
            exchange: x.name.as_short(),
            if_unused: false,
            no_wait: false,
        });
        written = record_with_gen(vhost, &delete, 0).or(written);
    }
    written
}

/// The record of the op itself.
fn record_own(vhost: &mut crate::core::model::vhost::VHost, op: &MetaOp) -> Option<Written> {
    // A queue binding's record names the queue; it is there (an unbind removes
    // bindings, never queues).
    let queue = match op {
        MetaOp::Binding(BindingOp {
            dest: Dest::Queue(id), ..
        }) => vhost.queues.get(id)?.name().clone(),
        _ => ShortString::default(),
    };
    let (args, gen) = match op {
        MetaOp::ExchangeDeclare(d) => (d.arguments.to_bytes(), d.gen),
        MetaOp::QueueDeclare(d) => (d.arguments.to_bytes(), d.gen),
        MetaOp::Binding(b) => (b.arguments.to_bytes(), 0),
        MetaOp::ExchangeDelete { .. } | MetaOp::QueueDelete { .. } => (Vec::new(), 0),
    };
    let arguments = Table::parse(&args).expect("a table the codec encoded");
    record_with_gen(vhost, &method_of(op, arguments, &queue), gen)
}

/// [`record_op`], then the group commit: for callers that sync before they
/// answer (the import) or that answer nobody (a queue deleted by a timer).
pub(crate) fn record_op_written(model: &mut Model, op: &MetaOp, applied: &Applied) {
    if let Some(w) = record_op(model, op, applied) {
        written(model, op.vhost(), w);
    }
}

/// The method a record of `op` holds; `queue` names a queue binding's queue.
fn method_of<'a>(op: &'a MetaOp, arguments: Table<'a>, queue: &'a ShortString) -> Method<'a> {
    match op {
        MetaOp::ExchangeDeclare(d) => Method::ExchangeDeclare(ExchangeDeclare {
            ticket: 0,
            exchange: d.name.as_short(),
            kind: ShortStr::lit(if d.delayed { DELAYED_TYPE } else { d.kind.as_str() }),
            passive: false,
            durable: d.durable,
            auto_delete: d.auto_delete,
            internal: d.internal,
            no_wait: false,
            arguments,
        }),
        MetaOp::ExchangeDelete { name, .. } => Method::ExchangeDelete(ExchangeDelete {
            ticket: 0,
            exchange: name.as_short(),
            if_unused: false,
            no_wait: false,
        }),
        MetaOp::QueueDeclare(d) => Method::QueueDeclare(QueueDeclare {
            ticket: 0,
            queue: d.name.as_short(),
            passive: false,
            durable: d.durable,
            exclusive: false,
            auto_delete: d.auto_delete,
            no_wait: false,
            arguments,
        }),
        MetaOp::QueueDelete { name, .. } => Method::QueueDelete(QueueDelete {
            ticket: 0,
            queue: name.as_short(),
            if_unused: false,
            if_empty: false,
            no_wait: false,
        }),
        MetaOp::Binding(b) => {
            let (source, routing_key) = (b.source.as_short(), b.routing_key.as_short());
            match (&b.dest, b.add) {
                (Dest::Queue(_), true) => Method::QueueBind(QueueBind {
                    ticket: 0,
                    queue: queue.as_short(),
                    exchange: source,
                    routing_key,
                    no_wait: false,
                    arguments,
                }),
                (Dest::Queue(_), false) => Method::QueueUnbind(QueueUnbind {
                    ticket: 0,
                    queue: queue.as_short(),
                    exchange: source,
                    routing_key,
                    arguments,
                }),
                (Dest::Exchange(dest), true) => Method::ExchangeBind(ExchangeBind {
                    ticket: 0,
                    destination: dest.as_short(),
                    source,
                    routing_key,
                    no_wait: false,
                    arguments,
                }),
                (Dest::Exchange(dest), false) => Method::ExchangeUnbind(ExchangeUnbind {
                    ticket: 0,
                    destination: dest.as_short(),
                    source,
                    routing_key,
                    no_wait: false,
                    arguments,
                }),
            }
        }
    }
}

/// What a replayed or imported method becomes.
pub(crate) struct FromMethod {
    /// Replayed at start: the objects' folders hold their data (`recover`), and
    /// declares are durable whatever they say (only durable ones are logged).
    pub replay: bool,
    /// The store generation the record carries, or the next one (import).
    pub gen: u32,
    /// A replayed delete whose folder a later declare opens again.
    pub keep_files: bool,
}

/// The op a method of the definitions log (or of an import) stands for; None for
/// a method that is not one (logged and skipped by the caller), a binding whose
/// queue is not there, or an exchange type this version does not know.
pub(crate) fn op_of_method(
    model: &mut Model,
    vhost: &VhostName,
    method: &Method<'_>,
    how: FromMethod,
) -> Option<MetaOp> {
    let binding = |source: ShortStr<'_>, dest: Dest, routing_key: ShortStr<'_>, args: &Table<'_>, add: bool| {
        MetaOp::Binding(BindingOp {
            vhost: vhost.clone(),
            source: source.into(),
            dest,
            routing_key: routing_key.into(),
            arguments: args.to_owned_table(),
            add,
        })
    };
    let queue = |model: &Model, name: &str| Some(Dest::Queue(model.vhosts.get(vhost)?.queue_id(name)?));
    let op = match method {
        Method::ExchangeDeclare(m) => {
            let arguments = m.arguments.to_owned_table();
            let (kind, delayed) = resolve_type(&m.kind, &arguments).ok()?;
            MetaOp::ExchangeDeclare(ExchangeDecl {
                vhost: vhost.clone(),
                name: m.exchange.into(),
                kind,
                delayed,
                durable: how.replay || m.durable,
                auto_delete: m.auto_delete,
                internal: m.internal,
                arguments,
                gen: how.gen,
                recover: how.replay,
            })
        }
        Method::ExchangeDelete(m) => MetaOp::ExchangeDelete {
            vhost: vhost.clone(),
            name: m.exchange.into(),
            keep_files: how.keep_files,
        },
        Method::QueueDeclare(m) => MetaOp::QueueDeclare(QueueDecl {
            vhost: vhost.clone(),
            id: model.new_queue_id(),
            name: m.queue.into(),
            owner: model.shards.owner_of_queue(vhost, m.queue.as_str()),
            durable: how.replay || m.durable,
            auto_delete: m.auto_delete,
            exclusive: None,
            arguments: m.arguments.to_owned_table(),
            gen: how.gen,
            recover: how.replay,
        }),
        Method::QueueDelete(m) => MetaOp::QueueDelete {
            vhost: vhost.clone(),
            name: m.queue.into(),
            keep_files: how.keep_files,
        },
        Method::QueueBind(m) => binding(m.exchange, queue(model, &m.queue)?, m.routing_key, &m.arguments, true),
        Method::QueueUnbind(m) => binding(m.exchange, queue(model, &m.queue)?, m.routing_key, &m.arguments, false),
        Method::ExchangeBind(m) => binding(
            m.source,
            Dest::Exchange(m.destination.into()),
            m.routing_key,
            &m.arguments,
            true,
        ),
        Method::ExchangeUnbind(m) => binding(
            m.source,
            Dest::Exchange(m.destination.into()),
            m.routing_key,
            &m.arguments,
            false,
        ),
        _ => return None,
    };
    Some(op)
}
