//! Replaying the definitions log at start, and applying one declare, delete or
//! bind without a connection (the log's records at start, the JSON import).
//!
//! A durable queue's declare may carry the generation of its folder (see
//! [`super::log`]); replay checks every delete against the data it would remove.

use crate::core::model::ids::VhostName;
use std::collections::HashSet;

use ringmq_codec::{Method, ShortStr, ShortString, Table};

use super::compact::compact;
use super::log::{decode_record, record_with_gen, written};
use crate::core::model::ids::Dest;
use crate::core::model::vhost::Exchange;
use crate::core::model::Model;

/// Rebuilds a vhost's durable state from its log records.
///
/// Every delete is checked against the data it would remove: a queue delete
/// removes its generation's folder only if no later declare in the log names the
/// same folder (only plain declares of older versions can: they all name
/// generation 0, and the last of them owns what the folder holds now).
pub(crate) fn replay(model: &mut Model, vhost_name: &VhostName, records: &[Vec<u8>]) -> std::io::Result<()> {
    let mut skipped = 0usize;
    let mut decoded = Vec::with_capacity(records.len());
    for rec in records {
        match decode_record(rec) {
            Ok(x) => decoded.push(x),
            Err(e) => {
                skipped += 1;
                tracing::warn!(vhost = %vhost_name, error = %e, "undecodable definitions record skipped");
            }
        }
    }
    let keep_files = deletes_whose_folder_is_declared_again(&decoded);
    for (i, (method, gen)) in decoded.into_iter().enumerate() {
        let replayed = Replayed {
            gen,
            keep_files: keep_files.contains(&i),
        };
        apply_record(model, vhost_name, method, Mode::Replay, replayed)?;
    }
    if skipped > 0 {
        tracing::warn!(vhost = %vhost_name, skipped, "definitions records skipped");
    }
    let vhost = model.vhosts.get_mut(vhost_name).expect("vhost opened");
    let _logged = compact(vhost);
    Ok(())
}

/// Indexes of the queue deletes in `records` whose folder (name, generation) a
/// later declare opens again: replaying them must leave the files alone.
fn deletes_whose_folder_is_declared_again<'a>(records: &'a [(Method<'a>, u32)]) -> HashSet<usize> {
    // Queues and (delayed) exchanges have folders of their own: (is_exchange, name).
    let declared = |m: &Method<'a>| match m {
        Method::QueueDeclare(d) => Some((false, d.queue.as_str())),
        Method::ExchangeDeclare(d) => Some((true, d.exchange.as_str())),
        _ => None,
    };
    // Forward: the folder each delete removes (the live declare's generation).
    let mut live: std::collections::HashMap<(bool, &str), u32> = Default::default();
    let mut removes: std::collections::HashMap<usize, ((bool, &str), u32)> = Default::default();
    for (i, (m, gen)) in records.iter().enumerate() {
        let deleted = match m {
            Method::QueueDelete(d) => Some((false, d.queue.as_str())),
            Method::ExchangeDelete(d) => Some((true, d.exchange.as_str())),
            _ => None,
        };
        if let Some(key) = declared(m) {
            live.entry(key).or_insert(*gen);
        } else if let Some(key) = deleted {
            removes.insert(i, (key, live.remove(&key).unwrap_or(0)));
        }
    }
    // Backward: a delete whose folder a later declare names keeps its files.
    let mut declared_later: HashSet<((bool, &str), u32)> = HashSet::new();
    let mut keep = HashSet::new();
    for (i, (m, gen)) in records.iter().enumerate().rev() {
        if removes.get(&i).is_some_and(|folder| declared_later.contains(folder)) {
            keep.insert(i);
        }
        if let Some(key) = declared(m) {
            declared_later.insert((key, *gen));
        }
    }
    keep
}

/// What the log says beside a replayed method.
#[derive(Debug, Clone, Copy, Default)]
struct Replayed {
    /// The store generation of a declare.
    gen: u32,
    /// A delete whose folder a later declare opens again: forget the queue, keep
    /// its files.
    keep_files: bool,
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
pub(crate) fn apply(model: &mut Model, vhost_name: &VhostName, method: Method<'_>, mode: Mode) -> std::io::Result<()> {
    apply_record(model, vhost_name, method, mode, Replayed::default())
}

fn apply_record(
    model: &mut Model,
    vhost_name: &VhostName,
    method: Method<'_>,
    mode: Mode,
    replayed: Replayed,
) -> std::io::Result<()> {
    // A new durable queue from an import gets the next generation of its name.
    let mut gen = replayed.gen;
    if mode == Mode::Import {
        let vhost = model.vhosts.get_mut(vhost_name).expect("vhost");
        let x_durable = |n: &str| vhost.exchanges.get(n).is_some_and(|x| x.durable);
        // A binding is logged when both ends are durable (as in declare handlers).
        let durable = match &method {
            Method::ExchangeDeclare(m) => m.durable,
            Method::QueueDeclare(m) => m.durable,
            Method::QueueBind(m) => {
                x_durable(&m.exchange)
                    && vhost
                        .queue_id(&m.queue)
                        .and_then(|id| vhost.queues.get(&id))
                        .is_some_and(|q| q.is_durable())
            }
            Method::ExchangeBind(m) => x_durable(&m.source) && x_durable(&m.destination),
            _ => false,
        };
        let exists = match &method {
            Method::ExchangeDeclare(m) => vhost.exchanges.contains_key(m.exchange.as_str()),
            Method::QueueDeclare(m) => vhost.queue_id(&m.queue).is_some(),
            _ => false,
        };
        if exists {
            return Ok(());
        }
        if let Method::QueueDeclare(m) = &method {
            if m.durable {
                gen = vhost.next_store_gen(m.queue);
            }
        }
        if let Method::ExchangeDeclare(m) = &method {
            if m.durable && m.kind == crate::core::model::exchange::delayed::DELAYED_TYPE {
                gen = vhost.next_delayed_gen(m.exchange);
            }
        }
        if durable {
            if let Some(w) = record_with_gen(vhost, &method, gen) {
                // The import's caller syncs before it answers.
                written(model, vhost_name, w);
            }
        }
    }
    let durable = match &method {
        Method::ExchangeDeclare(m) => mode == Mode::Replay || m.durable,
        Method::QueueDeclare(m) => mode == Mode::Replay || m.durable,
        _ => true,
    };
    match method {
        Method::ExchangeDeclare(m) => {
            let Ok((kind, delayed)) =
                crate::core::model::exchange::delayed::resolve_type(&m.kind, &m.arguments.to_owned_table())
            else {
                return Ok(());
            };
            let vhost = model.vhosts.get_mut(vhost_name).expect("vhost");
            let name = ShortString::from(m.exchange);
            let mut x = Exchange::new(
                name.clone(),
                kind,
                durable,
                m.auto_delete,
                m.internal,
                m.arguments.to_owned_table(),
            );
            if delayed && !vhost.exchanges.contains_key(m.exchange.as_str()) {
                x.delayed = Some(vhost.open_delayed_store(m.exchange, durable, gen, mode == Mode::Replay)?);
                x.store_gen = gen;
            }
            if !vhost.exchanges.contains_key(name.as_str()) {
                vhost.add_exchange(x);
            }
        }
        Method::ExchangeDelete(m) => {
            let vhost = model.vhosts.get_mut(vhost_name).expect("vhost");
            if replayed.keep_files {
                // A later declare (of an older version's log) opens this folder.
                let held = vhost
                    .exchanges
                    .get_mut(m.exchange.as_str())
                    .and_then(|x| x.delayed.take());
                if let Some(Err(e)) = held.map(|d| d.close()) {
                    tracing::warn!(exchange = %m.exchange, error = %e, "could not close delayed messages");
                }
            }
            vhost.delete_exchange(&m.exchange);
        }
        Method::QueueDeclare(m) => {
            let id = model.new_queue_id();
            let vhost = model.vhosts.get_mut(vhost_name).expect("vhost");
            if vhost.queue_id(&m.queue).is_none() {
                vhost.create_queue(
                    id,
                    m.queue,
                    durable,
                    m.auto_delete,
                    None,
                    m.arguments.to_owned_table(),
                    mode == Mode::Replay,
                    gen,
                )?;
                if mode == Mode::Import {
                    model.touch_queue(vhost_name, id);
                }
            }
        }
        Method::QueueDelete(m) => {
            let vhost = model.vhosts.get_mut(vhost_name).expect("vhost");
            if let Some(id) = vhost.queue_id(&m.queue) {
                if let Some(q) = vhost.delete_queue(id) {
                    let r = if replayed.keep_files { q.close() } else { q.delete() };
                    if let Err(e) = r {
                        tracing::warn!(queue = %m.queue, error = %e, "could not close or remove queue files");
                    }
                }
            } else if !replayed.keep_files {
                // The queue is gone from the log's view; the files of an older
                // version's folder may remain if the delete was logged but the
                // removal did not finish.
                let _ = std::fs::remove_dir_all(vhost.queue_dir(&m.queue, true, 0));
            }
        }
        Method::QueueBind(m) => bind(
            model,
            vhost_name,
            &m.exchange,
            Target::Queue(&m.queue),
            m.routing_key,
            m.arguments,
            true,
        ),
        Method::QueueUnbind(m) => bind(
            model,
            vhost_name,
            &m.exchange,
            Target::Queue(&m.queue),
            m.routing_key,
            m.arguments,
            false,
        ),
        Method::ExchangeBind(m) => bind(
            model,
            vhost_name,
            &m.source,
            Target::Exchange(&m.destination),
            m.routing_key,
            m.arguments,
            true,
        ),
        Method::ExchangeUnbind(m) => bind(
            model,
            vhost_name,
            &m.source,
            Target::Exchange(&m.destination),
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
    model: &mut Model,
    vhost_name: &VhostName,
    source: &str,
    target: Target<'_>,
    rk: ShortStr<'_>,
    args: Table<'_>,
    add: bool,
) {
    let vhost = model.vhosts.get_mut(vhost_name).expect("vhost");
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
