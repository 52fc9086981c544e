//! Storing a routed message (publish or dead-lettering) in each queue it routes
//! to, and the one log line for repeated store errors.

use crate::core::model::ids::VhostName;
use ringmq_codec::ShortStr;

use ringmq_codec::BasicProperties;
use ringmq_store::MessageRef;

use crate::core::model::ids::QueueId;
use crate::core::model::queue::args::Overflow;
use crate::core::model::queue::dead_letter::{make_dead_letter, DeathReason};
use crate::core::model::route::PublishOutcome;
use crate::core::model::Model;

/// A message on its way into queues (publish or dead-lettering).
pub(crate) struct StoredMessage<'a> {
    pub exchange: ShortStr<'a>,
    pub routing_key: ShortStr<'a>,
    pub properties: &'a [u8],
    pub body: &'a [u8],
    pub persistent: bool,
    pub expiration_ms: Option<u64>,
    /// The `priority` property (0 when absent); used by priority queues.
    pub priority: u8,
    /// A copy of it may have reached a consumer already (a delayed message
    /// routed again after an unclean stop): its copies are flagged redelivered.
    pub maybe_delivered: bool,
}

impl Model {
    /// Appends a routed message to each queue, applying length limits; records
    /// what the publisher must be told in `outcome`.
    pub(crate) fn store_routed(
        &mut self,
        vhost_name: &VhostName,
        queues: &[QueueId],
        msg: &StoredMessage<'_>,
        outcome: &mut PublishOutcome,
    ) {
        let mut disk_full = false;
        // Other shards' queues get the message through `model::cross`.
        let local;
        let queues = match self.shards.count > 1 {
            true => {
                local = self.forward_to_owners(vhost_name, queues, msg, outcome);
                local.as_deref().unwrap_or(queues)
            }
            false => queues,
        };
        self.store_routed_to(vhost_name, queues, msg, outcome, &mut disk_full);
        if disk_full {
            // Publishers are blocked at the end of this input, before the disk
            // is full (`Broker::after_input`); the disk task clears the alarm
            // once there is room again.
            self.disk_low = true;
        }
    }

    /// One vhost lookup for all the queues (a fanout stores in many): the
    /// loop borrows the vhost and the broker's other fields apart. A queue over
    /// its drop-head limit is trimmed after the loop (`enforce_length` needs
    /// the whole broker); each queue is independent of the others, so the
    /// order between them does not matter.
    // Inlined into its one caller, as it was before the shards' split made
    // the compiler call it: the call cost 34 instructions a message
    // (benches/callgrind.sh).
    #[inline(always)]
    fn store_routed_to(
        &mut self,
        vhost_name: &VhostName,
        queues: &[QueueId],
        msg: &StoredMessage<'_>,
        outcome: &mut PublishOutcome,
        disk_full: &mut bool,
    ) {
        let now_ms = self.now_ms;
        let sync_enabled = self.commit.enabled();
        let Some(vhost) = self.vhosts.get_mut(vhost_name) else {
            return;
        };
        let mut over_limit: Vec<QueueId> = Vec::new();
        for id in queues {
            let Some(q) = vhost.queues.get_mut(id).map(|q| &mut **q) else {
                continue;
            };
            if let Some(d) = q.tuning.dedup_mut() {
                let headers = BasicProperties::decode(msg.properties).ok().and_then(|p| p.headers);
                if d.is_duplicate(headers, now_ms) {
                    continue;
                }
            }
            if q.settings().overflow != Overflow::DropHead && q.is_full_for(msg.body.len() as u64) {
                // reject-publish: the publisher hears basic.nack (with confirms).
                outcome.failed = true;
                if q.settings().overflow == Overflow::RejectPublishDlx {
                    let props = BasicProperties::decode(msg.properties).expect("validated");
                    if let Some(dl) = make_dead_letter(
                        vhost_name,
                        q,
                        &props,
                        msg.exchange,
                        msg.routing_key,
                        msg.body,
                        DeathReason::MaxLen,
                        now_ms,
                    ) {
                        self.dead_letters.push_back(dl);
                    }
                }
                continue;
            }
            let pos = q.append(
                MessageRef {
                    timestamp_ms: now_ms,
                    exchange: msg.exchange.as_bytes(),
                    routing_key: msg.routing_key.as_bytes(),
                    properties: msg.properties,
                    body: msg.body,
                },
                msg.priority,
                msg.persistent,
            );
            let pos = match pos {
                Ok(pos) => pos,
                Err(e) => {
                    *disk_full |= matches!(e, ringmq_store::StoreError::DiskFull { .. });
                    self.store_errors.note(&q.name, &e, now_ms);
                    outcome.failed = true;
                    continue;
                }
            };
            if msg.maybe_delivered {
                if let Err(e) = q.storage.note_maybe_delivered(pos) {
                    tracing::error!(queue = %q.name, error = %e, "cannot flag a copy redelivered");
                }
            }
            // Space is checked where it is taken (segment creation and growth).
            *disk_full |= q.storage.take_space_low();
            self.store_errors.cleared();
            q.counters.count().publish += 1;
            if msg.expiration_ms.is_some() {
                q.may_expire = true;
            }
            // A stream keeps every message, persistent or not (as RabbitMQ's).
            if (msg.persistent || q.is_stream()) && q.durable && sync_enabled {
                outcome.needs_sync = true;
                self.commit.mark_dirty(vhost_name, *id);
            }
            // Checked on the queue in hand: the common case costs no lookup.
            if q.needs_drop_head() {
                over_limit.push(*id);
                continue;
            }
            if q.may_expire || q.settings().message_ttl_ms.is_some() {
                self.expiry_pending.push((vhost_name.clone(), *id));
            }
            if q.consumer_count() > 0 {
                self.deliver_pending.push((vhost_name.clone(), *id));
            }
        }
        for id in over_limit {
            self.enforce_length(vhost_name, id);
            let Some(q) = self.vhosts.get(vhost_name).and_then(|v| v.queues.get(&id)) else {
                continue;
            };
            if q.may_expire || q.settings().message_ttl_ms.is_some() {
                self.expiry_pending.push((vhost_name.clone(), id));
            }
            if q.consumer_count() > 0 {
                self.deliver_pending.push((vhost_name.clone(), id));
            }
        }
    }
}

/// Store errors on publish, logged once with a count instead of once per message:
/// a full disk gave 60-125 k ERROR lines a second (issue 15, defect 4).
#[derive(Debug, Default)]
pub(crate) struct RepeatedErrors {
    /// Errors since the last line logged.
    suppressed: u64,
    /// When the last line was logged; `None` while appends succeed.
    logged_ms: Option<u64>,
}

/// At most one line per this long while store errors repeat.
const REPEATED_ERRORS_LOG_MS: u64 = 10_000;

impl RepeatedErrors {
    /// One more error: logged if none was in the last [`REPEATED_ERRORS_LOG_MS`],
    /// else counted for the next line.
    pub(crate) fn note(&mut self, queue: &str, e: &ringmq_store::StoreError, now_ms: u64) {
        match self.logged_ms {
            Some(t) if now_ms.saturating_sub(t) < REPEATED_ERRORS_LOG_MS => self.suppressed += 1,
            _ => {
                tracing::error!(
                    queue,
                    error = %e,
                    not_logged_before = self.suppressed,
                    "could not store message (repeats are counted, one line per 10 s)"
                );
                self.suppressed = 0;
                self.logged_ms = Some(now_ms);
            }
        }
    }

    /// An append succeeded: if errors were being counted, say how many and stop.
    pub(crate) fn cleared(&mut self) {
        if self.logged_ms.take().is_some() {
            tracing::info!(
                not_logged = self.suppressed,
                "storing messages works again (after the errors above)"
            );
            self.suppressed = 0;
        }
    }
}
