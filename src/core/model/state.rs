//! The model's state: what the broker holds that is not an AMQP session.
//!
//! [`Model`] owns the vhosts (their exchanges, queues and stores) and the work the
//! model does between inputs: timers, dead letters waiting to be routed or held
//! for a commit, queues to expire or to deliver from, buffered acks. The AMQP
//! session (`crate::core::amqp`) and the io contract (`crate::core::contract`)
//! hold a `Model` inside `Broker`, beside the connections; MQTT and the shovel and
//! federation links are meant to sit beside AMQP over the same model.
//!
//! `now_ms` is the time of the input being handled, set only through
//! `Broker::advance_clock` (never read from a clock here, never going back).

use crate::core::model::ids::VhostName;

use crate::core::model::commit::Commit;
use crate::core::model::ids::QueueId;
use crate::core::model::queue::{ack_flush::AckFlush, append::RepeatedErrors};
use crate::core::model::queue::{dead_letter::DeadLetterQueue, dead_letter_hold::HeldDeadLetters};
use crate::core::model::timers::Timers;
use crate::core::model::vhost::VHost;

/// The protocol-neutral state of one shard's broker.
#[derive(Default)]
pub struct Model {
    pub(crate) vhosts: crate::core::Map<VhostName, VHost>,
    /// The time of the input being handled (ms since the Unix epoch).
    pub(crate) now_ms: u64,
    pub(crate) timers: Timers,
    /// Queues that may be able to deliver (new messages, new credit, new consumer).
    pub(crate) deliver_pending: Vec<(VhostName, QueueId)>,
    /// Queues whose `x-expires` or message TTL is due, checked at the end of the input.
    pub(crate) expiry_pending: Vec<(VhostName, QueueId)>,
    pub(crate) dead_letters: DeadLetterQueue,
    /// At-least-once dead letters' originals, until their copies are synced.
    pub(crate) held_dead_letters: HeldDeadLetters,
    pub(crate) ack_flush: AckFlush,
    /// Store errors on publish, logged once with a count.
    pub(crate) store_errors: RepeatedErrors,
    /// The queues a publish routes to, reused from one publish to the next.
    pub(crate) route_scratch: Vec<QueueId>,
    /// What the next group commit covers, and how far commits have come.
    pub(crate) commit: Commit,
    /// A store said free space is below its margin: the session raises the
    /// disk alarm (blocks publishers) when the input is handled.
    pub(crate) disk_low: bool,
    /// The id the next queue gets (ids start at 1; 0 names no queue, as the
    /// delayed exchanges' timers use it).
    next_queue_id: u64,
    /// The metadata ops applied since the tap was turned on (`meta::apply`);
    /// None, and nothing kept, unless someone reads them.
    pub(crate) meta_tap: Option<Vec<crate::core::model::meta::MetaOp>>,
    /// In a metadata section of a broker with several shards: every op applied
    /// that changed the model, for the shared log (`amqp::meta`); None outside.
    pub(crate) meta_made: Option<Vec<crate::core::model::meta::MetaOp>>,
    /// Messages for other shards' queues and their confirms (`model::cross`).
    pub(crate) cross: crate::core::model::cross::Cross,
    /// Which shard's model this is: its own queues have stores and timers,
    /// the other shards' are copies for routing.
    pub(crate) shards: crate::core::model::meta::Shards,
}

impl Model {
    /// An empty model; `sync` false is `--no-sync` (see [`Commit::enabled`]).
    pub(crate) fn new(sync: bool) -> Model {
        Model {
            commit: Commit::new(sync),
            next_queue_id: 1,
            ..Default::default()
        }
    }

    /// A new queue's id: the session's declares, the definitions log's replay
    /// and the JSON import take them from one counter.
    pub(crate) fn new_queue_id(&mut self) -> QueueId {
        let id = QueueId(self.next_queue_id);
        self.next_queue_id += 1;
        id
    }

    /// An op made elsewhere named queue `id`: ids handed out here stay above it.
    pub(crate) fn saw_queue_id(&mut self, id: QueueId) {
        self.next_queue_id = self.next_queue_id.max(id.0 + 1);
    }

    /// Every vhost with its name, for readers outside the core's folders (the
    /// fuzz targets' invariant checks); the management API reads through `mgmt`.
    pub fn vhosts(&self) -> impl Iterator<Item = (&VhostName, &VHost)> {
        self.vhosts.iter()
    }

    /// This shard's own name of the vhost `name` names (another shard's
    /// allocation of it, say), if it has the vhost: see `cross::packed`.
    pub(crate) fn local_vhost(&self, name: &VhostName) -> Option<VhostName> {
        self.vhosts.get_key_value(name.as_str()).map(|(k, _)| k.clone())
    }
}
