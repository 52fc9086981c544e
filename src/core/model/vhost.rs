//! A virtual host: its exchanges, queues and bindings, routing, and the durable
//! definitions log.
//!
//! Routing is one function ([`VHost::route`]) used by publish, exchange-to-exchange
//! bindings, alternate exchanges and CC/BCC alike (DESIGN.md: one copy of each truth).

use crate::core::model::ids::VhostName;
use ringmq_codec::{ShortStr, ShortString};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use ringmq_codec::FieldTable;
use ringmq_store::{LastStop, LeveledStore, StoreConfig};

use crate::core::model::vhost_files::VhostLog;

mod open;
use open::Marker;

use crate::core::model::exchange::{Bindings, ExchangeKind};
use crate::core::model::ids::{ConnId, Dest, QueueId};
use crate::core::model::queue::Queue;

pub const DEFAULT_EXCHANGE: &str = "";

/// The exchanges every vhost has, as RabbitMQ predeclares them.
pub const BUILTIN_EXCHANGES: &[(&str, ExchangeKind)] = &[
    ("", ExchangeKind::Direct),
    ("amq.direct", ExchangeKind::Direct),
    ("amq.fanout", ExchangeKind::Fanout),
    ("amq.topic", ExchangeKind::Topic),
    ("amq.headers", ExchangeKind::Headers),
    ("amq.match", ExchangeKind::Headers),
];

pub struct Exchange {
    pub name: ShortString,
    pub kind: ExchangeKind,
    pub durable: bool,
    pub auto_delete: bool,
    pub internal: bool,
    pub arguments: FieldTable,
    pub bindings: Bindings<Dest>,
    /// Predeclared: cannot be deleted or redeclared with other settings.
    pub builtin: bool,
    /// Exchange-to-exchange bindings that point at this exchange, counted so an
    /// auto-delete exchange knows when it is no longer a source or destination.
    pub bound_as_destination: usize,
    /// For `x-delayed-message` exchanges: the held messages. `kind` is then the
    /// `x-delayed-type` that routes them when due.
    pub delayed: Option<crate::core::model::exchange::delayed::DelayedStore>,
    /// A delayed exchange whose store is another shard's (`model::cross::delayed`):
    /// its messages go there.
    pub delayed_owner: Option<crate::core::model::meta::ShardId>,
    /// Which folder of this name a durable delayed exchange's store is, as for
    /// queues (`Queue::store_gen`), recorded with its declare.
    pub store_gen: u32,
    /// `x-message-deduplication`: drop messages whose dedup header was seen.
    pub dedup: Option<crate::core::model::queue::dedup::DedupCache>,
    /// publish_in / publish_out counters.
    pub stats: crate::core::model::stats::ObjStats,
    /// The policy that applies (for `alternate-exchange`).
    pub policy: Option<Arc<crate::core::model::policy::Policy>>,
}

impl Exchange {
    /// An `x-delayed-message` exchange, its store here or on another shard.
    pub fn is_delayed(&self) -> bool {
        self.delayed.is_some() || self.delayed_owner.is_some()
    }

    /// The type as clients declare it.
    pub fn type_name(&self) -> &'static str {
        if self.is_delayed() {
            crate::core::model::exchange::delayed::DELAYED_TYPE
        } else {
            self.kind.as_str()
        }
    }

    pub fn new(
        name: ShortString,
        kind: ExchangeKind,
        durable: bool,
        auto_delete: bool,
        internal: bool,
        arguments: FieldTable,
    ) -> Self {
        let bindings = Bindings::new_with_args(kind, &arguments).unwrap_or_else(|_| Bindings::new(kind));
        let dedup = crate::core::model::queue::dedup::DedupCache::from_arguments(&arguments)
            .ok()
            .flatten();
        Exchange {
            name,
            kind,
            durable,
            auto_delete,
            internal,
            arguments,
            // Arguments were validated at declare; an old log may hold ones we now
            // refuse, then the exchange routes with the defaults.
            bindings,
            dedup,
            builtin: false,
            bound_as_destination: 0,
            delayed: None,
            delayed_owner: None,
            store_gen: 0,
            policy: None,
            stats: Default::default(),
        }
    }

    /// The alternate exchange: the `alternate-exchange` argument, else the
    /// policy's (an argument wins over a policy, as in RabbitMQ).
    pub fn alternate_exchange(&self) -> Option<&str> {
        self.arguments
            .get("alternate-exchange")
            .and_then(|v| v.as_str())
            .or_else(|| self.policy.as_ref()?.alternate_exchange.as_deref())
    }
}

/// An auto-delete exchange that went because an op left it without bindings
/// (RabbitMQ deletes it then, and a durable one stays deleted after a restart).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AutoDeleted {
    pub name: ShortString,
    pub durable: bool,
}

pub struct VHost {
    pub name: VhostName,
    pub dir: PathBuf,
    pub exchanges: crate::core::NameMap<ShortString, Exchange>,
    /// Boxed: a map grown by doubling holds up to twice its entries' size, and
    /// a queue was ~600 bytes then (100,000 queues took 2.0 KiB each unboxed; 208 now).
    pub queues: crate::core::Map<QueueId, Box<Queue>>,
    pub queue_names: crate::core::NameMap<ShortString, QueueId>,
    /// Shared with the broker's other shards (`model::vhost_files`).
    pub definitions: VhostLog,
    /// Policies and operator policies (`policies.json` in the vhost's directory).
    pub policies: crate::core::model::policy::PolicySet,
    pub operator_policies: crate::core::model::policy::PolicySet,
    /// Description, tags and limits (`vhost.json`).
    pub meta: crate::core::model::vhost_meta::VhostMeta,
    /// Runtime parameters (`parameters.json`).
    pub parameters: Vec<crate::core::model::vhost_meta::Parameter>,
    pub store_config: StoreConfig,
    /// The vhost's folder and store config, shared by its unopened queues
    /// (an unopened store until the first message), which open their stores with it.
    store_home: Arc<crate::core::model::queue::StoreHome>,
    /// Scratch for routing, reused so a publish allocates nothing here.
    pub(super) route_work: Vec<ShortString>,
    pub(super) route_dests: Vec<Dest>,
    /// Aggregated message stats with history (management API).
    pub stats: crate::core::model::stats::VhostStats,
    /// Queues created and deleted since the last stats tick (churn rates).
    pub queue_churn: (u64, u64),
    /// The highest store generation each durable queue name has had here (in the
    /// definitions log or since start): the next declare of the name gets a
    /// higher one, so it never opens the folder of a deleted incarnation.
    store_gens: crate::core::Map<ShortString, u32>,
    /// The same for durable delayed exchanges (their folders are under `delayed/`).
    delayed_gens: crate::core::Map<ShortString, u32>,
    /// The `running` marker, held while the vhost is open (`ringmq_store::running`);
    /// released by a clean close ([`Self::release_running`]). None once released.
    running: Option<Marker>,
    /// How the vhost was last stopped (the marker was there at open): after an
    /// unclean stop every recovered message counts as delivered before.
    pub last_stop: LastStop,
}

/// Folders of transient queues from an earlier run, waiting to be removed.
const TRASH_PREFIX: &str = "transient.trash.";

/// Creates the folder of a queue's or delayed exchange's store under
/// `parent`: durable ones with fsyncs (generation `gen`), transient ones
/// without (their folder is wiped at start).
fn create_store_dir(parent: &std::path::Path, name: &str, durable: bool, gen: u32) -> std::io::Result<PathBuf> {
    if durable {
        ringmq_store::layout::create_queue_dir_gen(parent, name, gen)
    } else {
        ringmq_store::layout::create_transient_dir(parent, name)
    }
}

impl VHost {
    /// Whether the broker's shards share the vhost's folder: its transient
    /// files are then removed at the next start, not at a shard's close
    /// (another shard's may still be open).
    pub fn shared_by_shards(&self) -> bool {
        matches!(self.running, Some(Marker::Shared(..)))
    }

    /// The last step of a clean close, once every store of the vhost closed
    /// (synced): the `running` marker goes, so the next open is clean.
    pub fn release_running(&mut self) -> std::io::Result<()> {
        match self.running.take() {
            None => Ok(()),
            Some(Marker::Own(r)) => r.release(),
            Some(Marker::Shared(files, share)) => files.closed_cleanly(&share),
        }
    }

    /// Moves `transient/` (the transient queues' files, which never outlive the
    /// process) aside as `transient.trash.N`, and returns every such folder in the
    /// vhost, this one and any an earlier run left, for the io layer to remove.
    ///
    /// A rename is one syscall however many files the folder holds; removing them
    /// is not (100,000 transient queues left 200,011 files, 28 s of removal before
    /// the listeners opened, issue 15 defect 8), so removal happens later, off
    /// the start path.
    pub fn retire_transient(&self) -> std::io::Result<Vec<PathBuf>> {
        let transient = self.dir.join("transient");
        if transient.exists() {
            let mut n = 0u32;
            let mut trash = self.dir.join(format!("{TRASH_PREFIX}{n}"));
            while trash.exists() {
                n += 1;
                trash = self.dir.join(format!("{TRASH_PREFIX}{n}"));
            }
            std::fs::rename(&transient, &trash)?;
        }
        let mut all = Vec::new();
        for entry in std::fs::read_dir(&self.dir)? {
            let entry = entry?;
            if entry.file_name().to_string_lossy().starts_with(TRASH_PREFIX) {
                all.push(entry.path());
            }
        }
        Ok(all)
    }

    /// Opens the store of a delayed exchange (durable ones under the vhost, one
    /// folder per generation of the name as for queues; transient ones under
    /// `transient/`, wiped at start): the one found in the folder (`recover`) or
    /// a fresh one.
    pub fn open_delayed_store(
        &mut self,
        exchange: ShortStr<'_>,
        durable: bool,
        gen: u32,
        recover: bool,
    ) -> std::io::Result<crate::core::model::exchange::delayed::DelayedStore> {
        let (base, gen) = if durable {
            (self.dir.join("delayed"), gen)
        } else {
            (self.dir.join("transient").join("delayed"), 0)
        };
        std::fs::create_dir_all(&base)?;
        let dir = ringmq_store::layout::queue_dir_gen(&base, &exchange, gen);
        if !recover && dir.exists() {
            // Left by a crash between creating the folder and logging the declare.
            ringmq_store::changes::remove_dir_all(&dir)?;
        }
        let dir = create_store_dir(&base, &exchange, durable, gen)?;
        if durable {
            self.note_delayed_gen(exchange, gen);
        }
        let last_stop = if recover { self.last_stop } else { LastStop::Clean };
        crate::core::model::exchange::delayed::DelayedStore::open(&dir, self.store_config, last_stop)
    }

    /// The store generation for a new declare of durable delayed exchange `name`
    /// (see [`Self::next_store_gen`]).
    pub fn next_delayed_gen(&mut self, name: ShortStr<'_>) -> u32 {
        let g = self.delayed_gens.entry(ShortString::from(name)).or_insert(0);
        *g = g.checked_add(1).expect("2^32 generations of one exchange name");
        *g
    }

    /// Adds an exchange, with the policy that applies to it: the one way
    /// exchanges enter a vhost (declare, log replay, management API, import).
    pub fn add_exchange(&mut self, mut x: Exchange) -> &mut Exchange {
        x.policy = self.policies.for_exchange(&x.name).cloned();
        self.exchanges.entry(x.name.clone()).or_insert(x)
    }

    pub fn queue_id(&self, name: &str) -> Option<QueueId> {
        self.queue_names.get(name).copied()
    }

    pub fn queue_by_name(&mut self, name: &str) -> Option<&mut Queue> {
        let id = self.queue_names.get(name)?;
        self.queues.get_mut(id).map(|q| &mut **q)
    }

    /// Where a queue's segments live: durable queues under the vhost (one folder
    /// per generation of the name), transient ones under `transient/`, which is
    /// wiped at start.
    pub fn queue_dir(&self, name: &str, durable: bool, gen: u32) -> PathBuf {
        self.store_home.queue_dir(name, durable, gen)
    }

    /// The store generation for a new declare of durable queue `name`: above
    /// every generation the name had in this vhost's log or since start.
    pub fn next_store_gen(&mut self, name: ShortStr<'_>) -> u32 {
        let g = self.store_gens.entry(ShortString::from(name)).or_insert(0);
        *g = g.checked_add(1).expect("2^32 generations of one queue name");
        *g
    }

    /// A durable delayed exchange of generation `gen` was declared (here, or
    /// on the shard that holds its store): the next declare's is above it.
    pub fn note_delayed_gen(&mut self, name: ShortStr<'_>, gen: u32) {
        let g = self.delayed_gens.entry(ShortString::from(name)).or_insert(0);
        *g = (*g).max(gen);
    }

    fn note_store_gen(&mut self, name: &ShortString, gen: u32) {
        let g = self.store_gens.entry(name.clone()).or_insert(0);
        *g = (*g).max(gen);
    }

    /// Creates a queue: with a fresh, empty store, or (`recover`) with the store
    /// found in the folder of generation `gen` (durable queues only).
    #[allow(clippy::too_many_arguments)]
    pub fn create_queue(
        &mut self,
        id: QueueId,
        name: ShortStr<'_>,
        durable: bool,
        auto_delete: bool,
        exclusive_owner: Option<ConnId>,
        arguments: FieldTable,
        recover: bool,
        gen: u32,
        owner: crate::core::model::meta::ShardId,
        local: bool,
    ) -> std::io::Result<&mut Queue> {
        let short = name;
        let name: &str = short.as_str();
        let gen = if durable { gen } else { 0 };
        let dir = self.queue_dir(name, durable, gen);
        // Another shard's queue is a copy for routing here: its folder is the
        // owner's alone (`docs/shards.md`).
        let recover = recover && local;
        if local && !recover && dir.exists() {
            // A queue that is declared anew has no messages: anything there is left
            // from a crash between creating the folder and logging the declare, or
            // between logging a delete and removing the files.
            ringmq_store::changes::remove_dir_all(&dir)?;
        }
        // A durable queue's folder and name file are made at declare: recovery
        // finds the queue by them. A transient queue's folder waits for its
        // first message (`Queue::open_store`).
        let dir = if durable && local {
            let parent = dir.parent().expect("queue dir has a parent").to_path_buf();
            create_store_dir(&parent, name, durable, gen)?
        } else {
            dir
        };
        // The store is opened now only if there is one to recover: a queue that
        // never stored a message has no store until its first (issue 18).
        let settings = crate::core::model::queue::args::parse(&arguments, name, &self.name).unwrap_or_default();
        let storage = if settings.kind == crate::core::model::queue::args::QueueType::Stream && local {
            // A stream's log is opened at declare: its index and offsets are
            // the queue's state, not something its first message brings.
            let s = crate::core::model::queue::stream::Stream::open(&dir, self.store_config, &settings)?;
            crate::core::model::queue::QueueStorage::Stream(Box::new(s))
        } else if recover && ringmq_store::layout::holds_store_files(&dir)? {
            crate::core::model::queue::QueueStorage::Classic(self.recover_store(&dir, name, &arguments)?)
        } else {
            crate::core::model::queue::QueueStorage::Classic(LeveledStore::unopened())
        };
        let name = ShortString::from(short);
        if !recover {
            self.queue_churn.0 += 1;
        }
        if durable {
            // Every copy tracks generations: any shard may decide the next declare.
            self.note_store_gen(&name, gen);
        }
        let q = Queue::new(
            id,
            name.clone(),
            durable,
            auto_delete,
            exclusive_owner,
            arguments,
            storage,
            self.store_home.clone(),
            gen,
            recover,
            owner,
        );
        self.queue_names.insert(name, id);
        let q = self.queues.entry(id).or_insert(Box::new(q));
        crate::core::model::policy::apply_queue_policy(&self.policies, &self.operator_policies, q);
        Ok(q)
    }

    /// Opens the store found in a durable queue's folder at start, keeping only
    /// its persistent messages (RabbitMQ semantics: a durable queue keeps only
    /// its persistent messages across a restart).
    fn recover_store(&self, dir: &Path, name: &str, arguments: &FieldTable) -> std::io::Result<LeveledStore> {
        // Arguments were validated when the queue was declared; a log written by
        // another version may hold values we now refuse: run with defaults then.
        let settings = crate::core::model::queue::args::parse(arguments, name, &self.name).unwrap_or_else(|e| {
            tracing::warn!(queue = name, error = %e, "ignoring invalid queue arguments");
            Default::default()
        });
        let keep_persistent = |m: &ringmq_store::MessageView<'_>| {
            ringmq_codec::BasicProperties::decode(m.properties).map_or(true, |p| p.is_persistent())
        };
        let levels = settings.max_priority.unwrap_or(0);
        let (store, report) =
            LeveledStore::open_recovering(dir, self.store_config, levels, &keep_persistent, self.last_stop)?;
        if report.corrupt() {
            // The store logged each segment with its path; this names the queue.
            tracing::warn!(
                vhost = %self.name, queue = name, messages = report.messages_recovered,
                records_kept_after_damage = report.records_kept_after_damage(),
                records_unreadable = report.records_dropped(), bytes_set_aside = report.bytes_dropped(),
                report = ?report, "queue recovered from damaged segments"
            );
        } else {
            tracing::info!(vhost = %self.name, queue = name, report = ?report, "queue recovered");
        }
        Ok(store)
    }

    /// Removes a queue and its bindings (its files are the caller's). Returns
    /// the queue and the auto-delete exchanges this left without bindings, which
    /// went too.
    ///
    /// `cascade` false leaves the auto-delete exchanges alone: the definitions
    /// log's replay, whose records name every exchange that went that way
    /// (the live run decided with bindings the log does not hold).
    pub fn delete_queue(&mut self, id: QueueId, cascade: bool) -> Option<(Queue, Vec<AutoDeleted>)> {
        let q = self.queues.remove(&id)?;
        self.queue_churn.1 += 1;
        self.queue_names.remove(q.name());
        let emptied = self.unbind_destination(&Dest::Queue(id));
        let emptied = if cascade { emptied } else { Vec::new() };
        Some((*q, self.auto_delete_chain(emptied)))
    }

    /// Removes every binding to `dest`; returns the auto-delete exchanges that this
    /// left without bindings as a source.
    fn unbind_destination(&mut self, dest: &Dest) -> Vec<ShortString> {
        let mut emptied = Vec::new();
        for x in self.exchanges.values_mut() {
            if x.bindings.remove_destination(dest) > 0 && x.auto_delete && x.bindings.is_empty() {
                emptied.push(x.name.clone());
            }
        }
        emptied
    }

    /// Deletes auto-delete exchanges left without bindings, and those that their
    /// deletion leaves without bindings in turn, as RabbitMQ does (a chain of
    /// exchange-to-exchange bindings goes as a whole). A work list, not recursion:
    /// bindings may form long chains or cycles.
    fn auto_delete_chain(&mut self, mut emptied: Vec<ShortString>) -> Vec<AutoDeleted> {
        let mut deleted = Vec::new();
        while let Some(name) = emptied.pop() {
            if self
                .exchanges
                .get(&*name)
                .is_some_and(|x| x.auto_delete && x.bindings.is_empty() && !x.builtin)
            {
                if let Some((x, more)) = self.unlink_exchange(&name) {
                    deleted.push(AutoDeleted {
                        name: x.name,
                        durable: x.durable,
                    });
                    emptied.extend(more);
                }
            }
        }
        deleted
    }

    /// Adds (`add`) or removes a binding of `source` to `dest`, keeping the
    /// destination exchange's count of incoming bindings right. Returns whether
    /// anything changed (binding twice or unbinding a missing one does not).
    /// The one place bindings change: declare handlers and log replay use it.
    pub fn set_binding(
        &mut self,
        source: &str,
        dest: Dest,
        routing_key: ShortStr<'_>,
        args: &FieldTable,
        add: bool,
    ) -> bool {
        let Some(x) = self.exchanges.get_mut(source) else {
            return false;
        };
        let target = match &dest {
            Dest::Exchange(n) => Some(n.clone()),
            Dest::Queue(_) => None,
        };
        let changed = if add {
            x.bindings.bind(dest, routing_key, args)
        } else {
            x.bindings.unbind(&dest, &routing_key, args)
        };
        if changed {
            if let Some(d) = target.and_then(|n| self.exchanges.get_mut(&*n)) {
                if add {
                    d.bound_as_destination += 1;
                } else {
                    d.bound_as_destination = d.bound_as_destination.saturating_sub(1);
                }
            }
        }
        changed
    }

    /// Deletes an auto-delete exchange that has no bindings left as a source (and
    /// the chain that this empties: see `auto_delete_chain`). Returns what went.
    pub fn maybe_auto_delete_exchange(&mut self, name: &str) -> Vec<AutoDeleted> {
        let Some(name) = self.exchanges.get_key_value(name).map(|(k, _)| k.clone()) else {
            return Vec::new();
        };
        self.auto_delete_chain(vec![name])
    }

    /// Removes an exchange and every binding to or from it. Returns it and the
    /// auto-delete exchanges this left without bindings, which went too
    /// (`cascade` false: see [`Self::delete_queue`]).
    pub fn delete_exchange(&mut self, name: &str, cascade: bool) -> Option<(Exchange, Vec<AutoDeleted>)> {
        let (x, emptied) = self.unlink_exchange(name)?;
        let emptied = if cascade { emptied } else { Vec::new() };
        Some((x, self.auto_delete_chain(emptied)))
    }

    /// Removes one exchange and its bindings; returns it and the auto-delete
    /// exchanges left without bindings as a source.
    fn unlink_exchange(&mut self, name: &str) -> Option<(Exchange, Vec<ShortString>)> {
        let mut x = self.exchanges.remove(name)?;
        if let Some(d) = x.delayed.take() {
            if let Err(e) = d.delete() {
                tracing::warn!(exchange = name, error = %e, "could not remove delayed messages");
            }
        }
        let emptied = self.unbind_destination(&Dest::Exchange(x.name.clone()));
        for (d, _, _) in x.bindings.iter() {
            if let Dest::Exchange(n) = d {
                if let Some(dx) = self.exchanges.get_mut(&**n) {
                    dx.bound_as_destination = dx.bound_as_destination.saturating_sub(1);
                }
            }
        }
        Some((x, emptied))
    }
}
