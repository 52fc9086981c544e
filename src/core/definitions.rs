//! The durable definitions log: durable exchanges, queues and bindings recorded as
//! the AMQP methods that made them (encoded by the codec), replayed at start.
//!
//! Each record is a method payload (class id, method id, arguments). Replaying
//! them in order rebuilds the state; deletes and unbinds undo earlier records.
//! When dead records pile up the log is compacted to the live state.

use std::sync::Arc;

use ringmq_codec::{Method, Table};

use super::broker::Broker;
use super::ids::Dest;
use super::vhost::{Exchange, VHost};

/// Compact when the log holds this many records more than the live state needs.
pub const DEAD_RECORDS_COMPACT_MIN: u64 = 1_000;

/// Appends a durable change and syncs it. A failure is logged loudly: the change
/// is live in memory but may not survive a restart.
pub(crate) fn record(vhost: &mut VHost, method: &Method<'_>) {
    let mut buf = Vec::with_capacity(64);
    method.encode_payload(&mut buf);
    if let Err(e) = vhost.definitions.append(&buf) {
        tracing::error!(vhost = %vhost.name, error = %e, method = method.name(), "could not persist definition");
    }
    let live = live_records(vhost).len() as u64;
    if vhost.definitions.records_since_compaction() > live + DEAD_RECORDS_COMPACT_MIN {
        compact(vhost);
    }
}

/// The records that rebuild the current durable state.
fn live_records(vhost: &VHost) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut push = |m: Method<'_>| {
        let mut buf = Vec::new();
        m.encode_payload(&mut buf);
        out.push(buf);
    };
    let mut xs: Vec<&Exchange> = vhost.exchanges.values().filter(|x| x.durable && !x.builtin).collect();
    xs.sort_by(|a, b| a.name.cmp(&b.name));
    let mut arg_bufs = Vec::new();
    for x in &xs {
        arg_bufs.push(x.arguments.to_bytes());
    }
    for (x, args) in xs.iter().zip(&arg_bufs) {
        push(Method::ExchangeDeclare(ringmq_codec::ExchangeDeclare {
            ticket: 0,
            exchange: &x.name,
            kind: x.type_name(),
            passive: false,
            durable: true,
            auto_delete: x.auto_delete,
            internal: x.internal,
            no_wait: false,
            arguments: Table::parse(args).expect("own table"),
        }));
    }
    let mut qs: Vec<_> = vhost.queues.values().filter(|q| q.durable).collect();
    qs.sort_by(|a, b| a.name.cmp(&b.name));
    for q in &qs {
        let args = q.arguments.to_bytes();
        push(Method::QueueDeclare(ringmq_codec::QueueDeclare {
            ticket: 0,
            queue: &q.name,
            passive: false,
            durable: true,
            exclusive: false,
            auto_delete: q.auto_delete,
            no_wait: false,
            arguments: Table::parse(&args).expect("own table"),
        }));
    }
    for x in vhost.exchanges.values().filter(|x| x.durable) {
        for (dest, rk, args) in x.bindings.iter() {
            let args = args.to_bytes();
            let arguments = Table::parse(&args).expect("own table");
            match dest {
                Dest::Queue(id) => {
                    let Some(q) = vhost.queues.get(id).filter(|q| q.durable) else {
                        continue;
                    };
                    push(Method::QueueBind(ringmq_codec::QueueBind {
                        ticket: 0,
                        queue: &q.name,
                        exchange: &x.name,
                        routing_key: rk,
                        no_wait: false,
                        arguments,
                    }));
                }
                Dest::Exchange(d) => {
                    if !vhost.exchanges.get(d).is_some_and(|d| d.durable) {
                        continue;
                    }
                    push(Method::ExchangeBind(ringmq_codec::ExchangeBind {
                        ticket: 0,
                        destination: d,
                        source: &x.name,
                        routing_key: rk,
                        no_wait: false,
                        arguments,
                    }));
                }
            }
        }
    }
    out
}

fn compact(vhost: &mut VHost) {
    let live = live_records(vhost);
    if let Err(e) = vhost.definitions.compact(live.iter().map(|r| r.as_slice())) {
        tracing::error!(vhost = %vhost.name, error = %e, "definitions compaction failed");
    }
}

/// Rebuilds a vhost's durable state from its log records.
pub(crate) fn replay(broker: &mut Broker, vhost_name: &Arc<str>, records: &[Vec<u8>]) -> std::io::Result<()> {
    let mut skipped = 0usize;
    for rec in records {
        let method = match Method::decode(rec) {
            Ok(m) => m,
            Err(e) => {
                skipped += 1;
                tracing::warn!(vhost = %vhost_name, error = %e, "undecodable definitions record skipped");
                continue;
            }
        };
        apply(broker, vhost_name, method, Mode::Replay)?;
    }
    if skipped > 0 {
        tracing::warn!(vhost = %vhost_name, skipped, "definitions records skipped");
    }
    let vhost = broker.vhosts.get_mut(vhost_name).expect("vhost opened");
    compact(vhost);
    Ok(())
}

/// Why a declare is applied: replaying the log at start (durable objects that
/// exist on disk) or importing definitions (new objects, durable or not, whose
/// declares go into the log).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    Replay,
    Import,
}

/// Applies one declare, delete or bind to a vhost, without a connection and
/// without permission checks (the caller validated it). Objects that exist are
/// left as they are, as RabbitMQ's definitions import does.
pub(crate) fn apply(broker: &mut Broker, vhost_name: &Arc<str>, method: Method<'_>, mode: Mode) -> std::io::Result<()> {
    if mode == Mode::Import {
        let vhost = broker.vhosts.get_mut(vhost_name).expect("vhost");
        let x_durable = |n: &str| vhost.exchanges.get(n).is_some_and(|x| x.durable);
        // A binding is logged when both ends are durable (as in declare handlers).
        let durable = match &method {
            Method::ExchangeDeclare(m) => m.durable,
            Method::QueueDeclare(m) => m.durable,
            Method::QueueBind(m) => {
                x_durable(m.exchange)
                    && vhost
                        .queue_id(m.queue)
                        .and_then(|id| vhost.queues.get(&id))
                        .is_some_and(|q| q.durable)
            }
            Method::ExchangeBind(m) => x_durable(m.source) && x_durable(m.destination),
            _ => false,
        };
        let exists = match &method {
            Method::ExchangeDeclare(m) => vhost.exchanges.contains_key(m.exchange),
            Method::QueueDeclare(m) => vhost.queue_id(m.queue).is_some(),
            _ => false,
        };
        if exists {
            return Ok(());
        }
        if durable {
            record(vhost, &method);
        }
    }
    let durable = match &method {
        Method::ExchangeDeclare(m) => mode == Mode::Replay || m.durable,
        Method::QueueDeclare(m) => mode == Mode::Replay || m.durable,
        _ => true,
    };
    match method {
        Method::ExchangeDeclare(m) => {
            let Ok((kind, delayed)) = super::delayed::resolve_type(m.kind, &m.arguments.to_owned_table()) else {
                return Ok(());
            };
            let vhost = broker.vhosts.get_mut(vhost_name).expect("vhost");
            let name: Arc<str> = Arc::from(m.exchange);
            let mut x = Exchange::new(
                name.clone(),
                kind,
                durable,
                m.auto_delete,
                m.internal,
                m.arguments.to_owned_table(),
            );
            if delayed && !vhost.exchanges.contains_key(m.exchange) {
                x.delayed = Some(vhost.open_delayed_store(m.exchange, durable)?);
            }
            if !vhost.exchanges.contains_key(&name) {
                vhost.add_exchange(x);
            }
        }
        Method::ExchangeDelete(m) => {
            let vhost = broker.vhosts.get_mut(vhost_name).expect("vhost");
            vhost.delete_exchange(m.exchange);
        }
        Method::QueueDeclare(m) => {
            let id = broker.new_queue_id();
            let vhost = broker.vhosts.get_mut(vhost_name).expect("vhost");
            if vhost.queue_id(m.queue).is_none() {
                vhost.create_queue(
                    id,
                    m.queue,
                    durable,
                    m.auto_delete,
                    None,
                    m.arguments.to_owned_table(),
                    mode == Mode::Replay,
                )?;
                if mode == Mode::Import {
                    broker.touch_queue(vhost_name, id);
                }
            }
        }
        Method::QueueDelete(m) => {
            let vhost = broker.vhosts.get_mut(vhost_name).expect("vhost");
            if let Some(id) = vhost.queue_id(m.queue) {
                if let Some(q) = vhost.delete_queue(id) {
                    let _ = q.store.delete();
                }
            } else {
                // The queue is gone from the log's view; its files may remain if
                // the delete was logged but the removal did not finish.
                let _ = std::fs::remove_dir_all(vhost.queue_dir(m.queue, true));
            }
        }
        Method::QueueBind(m) => bind(
            broker,
            vhost_name,
            m.exchange,
            Target::Queue(m.queue),
            m.routing_key,
            m.arguments,
            true,
        ),
        Method::QueueUnbind(m) => bind(
            broker,
            vhost_name,
            m.exchange,
            Target::Queue(m.queue),
            m.routing_key,
            m.arguments,
            false,
        ),
        Method::ExchangeBind(m) => bind(
            broker,
            vhost_name,
            m.source,
            Target::Exchange(m.destination),
            m.routing_key,
            m.arguments,
            true,
        ),
        Method::ExchangeUnbind(m) => bind(
            broker,
            vhost_name,
            m.source,
            Target::Exchange(m.destination),
            m.routing_key,
            m.arguments,
            false,
        ),
        other => tracing::warn!(method = other.name(), "unexpected method in definitions log"),
    }
    Ok(())
}

enum Target<'a> {
    Queue(&'a str),
    Exchange(&'a str),
}

fn bind(
    broker: &mut Broker,
    vhost_name: &Arc<str>,
    source: &str,
    target: Target<'_>,
    rk: &str,
    args: Table<'_>,
    add: bool,
) {
    let vhost = broker.vhosts.get_mut(vhost_name).expect("vhost");
    let dest = match target {
        Target::Queue(q) => match vhost.queue_id(q) {
            Some(id) => Dest::Queue(id),
            None => return,
        },
        Target::Exchange(x) => match vhost.exchanges.get_key_value(x) {
            Some((k, _)) => Dest::Exchange(k.clone()),
            None => return,
        },
    };
    vhost.set_binding(source, dest, rk, &args.to_owned_table(), add);
}
