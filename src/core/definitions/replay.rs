//! Replaying the definitions log at start, and applying one declare, delete or
//! bind without a connection (the log's records at start, the JSON import).
//!
//! A durable queue's declare may carry the generation of its folder (see
//! [`super::log`]); replay checks every delete against the data it would remove.

use crate::core::model::ids::VhostName;
use std::collections::HashSet;

use ringmq_codec::Method;

use super::compact::compact;
use super::log::decode_record;
use super::ops::{op_of_method, record_op_written, FromMethod};
use crate::core::model::exchange::delayed::DELAYED_TYPE;
use crate::core::model::meta::apply::ApplyError;
use crate::core::model::meta::MetaOp;
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
    let mut gen = replayed.gen;
    if mode == Mode::Import {
        // Objects that exist are left as they are; a new durable queue or
        // delayed exchange gets the next generation of its name.
        let vhost = model.vhosts.get_mut(vhost_name).expect("vhost");
        match &method {
            Method::ExchangeDeclare(m) if vhost.exchanges.contains_key(m.exchange.as_str()) => return Ok(()),
            Method::QueueDeclare(m) if vhost.queue_id(&m.queue).is_some() => return Ok(()),
            Method::QueueDeclare(m) if m.durable => gen = vhost.next_store_gen(m.queue),
            Method::ExchangeDeclare(m) if m.durable && m.kind == DELAYED_TYPE => {
                gen = vhost.next_delayed_gen(m.exchange)
            }
            _ => {}
        }
    }
    let how = FromMethod {
        replay: mode == Mode::Replay,
        gen,
        keep_files: replayed.keep_files,
    };
    let Some(op) = op_of_method(model, vhost_name, &method, how) else {
        if !matches!(
            method,
            Method::QueueBind(_) | Method::QueueUnbind(_) | Method::ExchangeDeclare(_)
        ) {
            tracing::warn!(method = method.name(), "unexpected method in definitions log");
        }
        return Ok(());
    };
    if let (MetaOp::QueueDelete { name, .. }, false) = (&op, replayed.keep_files) {
        let vhost = model.vhosts.get(vhost_name).expect("vhost");
        if mode == Mode::Replay && vhost.queue_id(name).is_none() {
            // The queue is gone from the log's view; the files of an older
            // version's folder may remain if the delete was logged but the
            // removal did not finish.
            let _ = ringmq_store::changes::remove_dir_all(&vhost.queue_dir(name, true, 0));
            return Ok(());
        }
    }
    let applied = match mode {
        Mode::Replay => model.apply_logged(&op),
        Mode::Import => model.apply(&op),
    };
    let applied = applied.map_err(|e| match e {
        ApplyError::Store(e) => e,
        other => std::io::Error::other(other.to_string()),
    })?;
    if mode == Mode::Import {
        // The import's caller syncs before it answers.
        record_op_written(model, &op, &applied);
    }
    Ok(())
}
