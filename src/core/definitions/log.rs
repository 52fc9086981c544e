//! The durable definitions log: durable exchanges, queues and bindings recorded as
//! the AMQP methods that made them (encoded by the codec), replayed at start.
//!
//! Each record is a method payload (class id, method id, arguments). Replaying
//! them in order rebuilds the state; deletes and unbinds undo earlier records.
//! When dead records pile up the log is compacted to the live state
//! ([`super::compact`]); replay at start is in [`super::replay`].
//!
//! Durability is a group commit, as for message data: [`record_with_gen`] writes the
//! record (no fsync), and the caller hands it to the model's commit state with
//! [`written`]; the next sync job (`Broker::poll_sync`) fdatasyncs the log off
//! the loop, once for all records of the turn, and the AMQP session holds the
//! reply to a client's durable declare, bind or delete until that job is done
//! (`amqp::confirm`), so a declare-ok always means the object survives a
//! crash. A log whose sync failed is rewritten ([`rewrite`]); callers that
//! answer synchronously sync at once ([`sync_now`]). Counting the
//! live records to decide on compaction is done every so often, not per record
//! (`DefinitionsLog::live_check_due`), so a record costs O(1) amortised.
//!
//! A durable queue's declare also records the generation of its folder
//! (`layout::queue_dir_gen`), as `[0xFF 0x01][u32 BE generation][payload]`
//! (0xFF01 is no AMQP class). A queue deleted and declared again gets a new
//! generation, so replaying declare, delete, declare opens, removes and opens
//! two different folders (issue 15: with one folder per name the replayed delete
//! wiped the new queue's confirmed messages). Plain declares, as older versions
//! wrote them, are generation 0, the old folder; a log of such records that
//! declares a name again after deleting it replays the delete without touching
//! the folder, which the later declare owns (see [`super::replay`]).

use crate::core::model::ids::VhostName;
use ringmq_codec::{Method, ProtocolError};

use super::compact::{compact, live_count};
use crate::core::model::vhost::VHost;
use crate::core::model::Model;

/// Compact when the log holds this many records more than the live state needs.
pub const DEAD_RECORDS_COMPACT_MIN: u64 = 1_000;

/// The tag of a declare record that carries a store generation.
const GEN_TAG: [u8; 2] = [0xFF, 0x01];

/// Encodes a log record: the method payload, behind the generation tag when the
/// object has a store generation above 0.
pub(super) fn encode_record(method: &Method<'_>, gen: u32, out: &mut Vec<u8>) {
    if gen > 0 {
        out.extend_from_slice(&GEN_TAG);
        out.extend_from_slice(&gen.to_be_bytes());
    }
    method.encode_payload(out);
}

/// Decodes a log record: the method and its store generation (0 when untagged).
pub(super) fn decode_record(rec: &[u8]) -> Result<(Method<'_>, u32), ProtocolError> {
    match rec.strip_prefix(&GEN_TAG) {
        Some(rest) if rest.len() >= 4 => {
            let gen = u32::from_be_bytes(rest[..4].try_into().expect("4 bytes"));
            Ok((Method::decode(&rest[4..])?, gen))
        }
        _ => Ok((Method::decode(rec)?, 0)),
    }
}

/// A record was written to a vhost's log and needs the group commit: pass it to
/// [`written`].
#[must_use = "a written record must be handed to the group commit (definitions::log::written)"]
#[derive(Debug)]
pub(crate) struct Written(());

/// Appends a durable change to the log (written, not yet synced), for an object
/// whose data lives in the folder of store generation `gen` (0: none, or the
/// old layout). A failure is logged loudly: the change is live in memory but may
/// not survive a restart. Records are made from metadata ops ([`super::ops`]).
pub(crate) fn record_with_gen(vhost: &mut VHost, method: &Method<'_>, gen: u32) -> Option<Written> {
    let mut buf = Vec::with_capacity(64);
    encode_record(method, gen, &mut buf);
    if let Err(e) = vhost.definitions.append(&buf) {
        tracing::error!(vhost = %vhost.name, error = %e, method = method.name(), "could not persist definition");
        return None;
    }
    // Counting the live state is O(live): done after as many records as were
    // live at the last count, never per record.
    if vhost.definitions.live_check_due() {
        let live = live_count(vhost);
        vhost.definitions.live_checked(live, DEAD_RECORDS_COMPACT_MIN);
        if vhost.definitions.records_since_compaction() > live + DEAD_RECORDS_COMPACT_MIN {
            let _logged = compact(vhost);
        }
    }
    Some(Written(()))
}

/// A record of `vhost` was written: the next group commit syncs its log.
/// Returns whether the vhost is open, i.e. whether a reply may wait for that
/// commit (`Broker::definitions_written_by`, for a client's method).
pub(crate) fn written(model: &mut Model, vhost: &str, written: Written) -> bool {
    let Written(()) = written;
    let Some((vhost, _)) = model.vhosts.get_key_value(vhost) else {
        return false;
    };
    model.commit.definitions_dirty(vhost);
    true
}

/// A sync of `vhost`'s log failed. After a failed fsync the kernel may have
/// dropped the pages that did not reach the disk and the next fsync of the
/// file reports success anyway ("fsyncgate", see `ringmq_store::sync`), so
/// the log is not trusted again: it is rewritten from the state in memory
/// (compaction: a new file, fsynced, renamed over it). If that fails too,
/// the vhost is listed and tried again before the next group commit.
pub(crate) fn rewrite(model: &mut Model, vhost: &VhostName) {
    let Some(v) = model.vhosts.get_mut(vhost) else {
        model.commit.definitions_rewrite.remove(vhost);
        return;
    };
    if compact(v) {
        tracing::info!(vhost = %v.name, "definitions log rewritten after a failed sync");
        model.commit.definitions_rewrite.remove(vhost);
    } else {
        model.commit.definitions_rewrite.insert(vhost.clone());
    }
}

/// Syncs every log with written records now, on this thread: for callers that
/// answer synchronously (the management API, definitions import, shutdown).
pub(crate) fn sync_now(model: &mut Model) {
    for vhost in model.commit.take_definitions_dirty() {
        let Some(v) = model.vhosts.get_mut(&vhost) else {
            continue;
        };
        if let Err(e) = v.definitions.sync() {
            tracing::error!(vhost = %v.name, error = %e, "could not sync definitions");
            if model.shards.count > 1 {
                // Rewritten from a copy that has every shard's ops: in a
                // section, by the next group commit (`Broker::poll_sync`).
                model.commit.definitions_rewrite.insert(vhost);
            } else {
                rewrite(model, &vhost);
            }
        }
    }
}
