//! Applying one [`MetaOp`] to the model: the one place a vhost's exchanges,
//! queues and bindings change (the AMQP session's declares and deletes, the
//! definitions log's replay and the JSON import all come here).
//!
//! An op that finds nothing to do (an exchange or queue that exists, a binding
//! already there or not there, a delete of what is gone) changes nothing and
//! says so: declares and deletes are idempotent, as in RabbitMQ. What follows
//! from an op is done here, the same way for everyone who applies it: a deleted
//! queue's bindings go, and auto-delete exchanges left without bindings go in a
//! chain.

use crate::core::model::ids::Dest;
use crate::core::model::meta::{BindingOp, ExchangeDecl, MetaOp, QueueDecl};
use crate::core::model::queue::ConsumerRef;
use crate::core::model::vhost::{AutoDeleted, Exchange};
use crate::core::model::Model;

/// What applying an op did.
#[derive(Debug, Default)]
#[must_use = "a durable change must be logged, a deleted queue's consumers told"]
pub struct Applied {
    /// Whether the model changed.
    pub changed: bool,
    /// Whether the change is to durable objects (a declare of a durable exchange
    /// or queue, a delete of one, a binding whose two ends are durable): the
    /// definitions log must record it.
    pub durable: bool,
    /// The consumers of a deleted queue, to be cancelled on their channels.
    pub cancelled: Vec<ConsumerRef>,
    /// Auto-delete exchanges the op left without bindings, deleted with it: a
    /// durable one's delete is logged too, or a restart would bring it back.
    pub auto_deleted: Vec<AutoDeleted>,
}

impl Applied {
    fn unchanged() -> Applied {
        Applied::default()
    }

    fn changed(durable: bool) -> Applied {
        Applied {
            changed: true,
            durable,
            ..Applied::default()
        }
    }
}

/// Why an op could not be applied. Nothing changed then.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error("no vhost '{0}'")]
    NoVhost(String),
    /// The store of a new queue or delayed exchange could not be created or opened.
    #[error("{0}")]
    Store(#[from] std::io::Error),
    /// An access op whose content this shard refuses (a pattern that does
    /// not compile): the maker validated it, so another version made it.
    #[error("{0}")]
    Invalid(String),
}

impl From<ApplyError> for crate::core::model::error::AdminError {
    fn from(e: ApplyError) -> Self {
        use crate::core::model::error::AdminError;
        match e {
            ApplyError::NoVhost(v) => AdminError::NotFound(format!("no vhost '{v}'")),
            ApplyError::Store(e) => AdminError::Io(e),
            ApplyError::Invalid(e) => AdminError::BadRequest(e),
        }
    }
}

impl Model {
    /// Applies `op`: see the module's text. The op is kept for the metadata tap
    /// when one is on (see [`Model::tap_meta_ops`]).
    pub(crate) fn apply(&mut self, op: &MetaOp) -> Result<Applied, ApplyError> {
        self.apply_op(op, true)
    }

    /// Applies an op replayed from the definitions log: as [`Self::apply`],
    /// but an auto-delete exchange left without bindings stays. The live run
    /// decided that with bindings the log does not hold (to transient queues,
    /// say), and logged a delete of each durable exchange that went.
    pub(crate) fn apply_logged(&mut self, op: &MetaOp) -> Result<Applied, ApplyError> {
        self.apply_op(op, false)
    }

    fn apply_op(&mut self, op: &MetaOp, cascade: bool) -> Result<Applied, ApplyError> {
        let applied = match op {
            MetaOp::ExchangeDeclare(d) => self.declare_exchange(d),
            MetaOp::ExchangeDelete {
                vhost,
                name,
                keep_files,
            } => {
                let v = self.vhost_mut(vhost)?;
                let Some(x) = v.exchanges.get_mut(name.as_str()) else {
                    return Ok(Applied::unchanged());
                };
                let durable = x.durable;
                if *keep_files {
                    if let Some(Err(e)) = x.delayed.take().map(|d| d.close()) {
                        tracing::warn!(exchange = %name, error = %e, "could not close delayed messages");
                    }
                }
                let (_, auto_deleted) = v.delete_exchange(name, cascade).expect("the exchange is there");
                Ok(Applied {
                    auto_deleted,
                    ..Applied::changed(durable)
                })
            }
            MetaOp::QueueDeclare(d) => self.declare_queue(d),
            MetaOp::QueueDelete {
                vhost,
                name,
                keep_files,
            } => {
                let v = self.vhost_mut(vhost)?;
                let Some((q, auto_deleted)) = v.queue_id(name).and_then(|id| v.delete_queue(id, cascade)) else {
                    return Ok(Applied::unchanged());
                };
                let applied = Applied {
                    cancelled: q.consumers().to_vec(),
                    auto_deleted,
                    ..Applied::changed(q.is_durable())
                };
                let local = q.owner() == self.shards.me;
                let removed = if *keep_files { q.close() } else { q.delete(local) };
                if let Err(e) = removed {
                    tracing::warn!(queue = %name, error = %e, "could not close or remove queue files");
                }
                Ok(applied)
            }
            MetaOp::Binding(b) => self.set_binding(b, cascade),
        }?;
        if applied.changed {
            self.note_made(op);
        }
        Ok(applied)
    }

    /// An op that changed this shard's copy: kept for the section to append
    /// (when one is open) and for the tap (when on).
    pub(crate) fn note_made(&mut self, op: &MetaOp) {
        if let Some(made) = self.meta_made.as_mut() {
            made.push(op.clone());
        }
        if let Some(tap) = self.meta_tap.as_mut() {
            tap.push(op.clone());
        }
    }

    /// Starts (or stops) keeping every op that changed the model, in order:
    /// what shard 0 will broadcast to the other shards (`docs/shards.md`), and
    /// what the simulation replays to check that ops alone rebuild the model.
    /// Only the tests read it until the shards' rings do.
    #[cfg(test)]
    pub(crate) fn tap_meta_ops(&mut self, on: bool) {
        self.meta_tap = on.then(Vec::new);
    }

    /// The ops kept since the tap was turned on, oldest first.
    #[cfg(test)]
    pub(crate) fn take_meta_ops(&mut self) -> Vec<crate::core::model::meta::MetaOp> {
        self.meta_tap.as_mut().map(std::mem::take).unwrap_or_default()
    }

    fn vhost_mut(
        &mut self,
        name: &crate::core::model::ids::VhostName,
    ) -> Result<&mut crate::core::model::vhost::VHost, ApplyError> {
        self.vhosts
            .get_mut(name)
            .ok_or_else(|| ApplyError::NoVhost(name.to_string()))
    }

    fn declare_exchange(&mut self, d: &ExchangeDecl) -> Result<Applied, ApplyError> {
        // A delayed exchange's store is on one shard (`model::cross::delayed`).
        let owner = self.shards.owner_of_queue(d.vhost.as_str(), d.name.as_str());
        let here = owner == self.shards.me;
        let v = self.vhost_mut(&d.vhost)?;
        if v.exchanges.contains_key(d.name.as_str()) {
            return Ok(Applied::unchanged());
        }
        let mut x = Exchange::new(
            d.name.clone(),
            d.kind,
            d.durable,
            d.auto_delete,
            d.internal,
            d.arguments.clone(),
        );
        if d.delayed && here {
            x.delayed = Some(v.open_delayed_store(d.name.as_short(), d.durable, d.gen, d.recover)?);
            x.store_gen = d.gen;
        } else if d.delayed {
            x.delayed_owner = Some(owner);
            x.store_gen = d.gen;
            if d.durable {
                v.note_delayed_gen(d.name.as_short(), d.gen);
            }
        }
        v.add_exchange(x);
        Ok(Applied::changed(d.durable))
    }

    fn declare_queue(&mut self, d: &QueueDecl) -> Result<Applied, ApplyError> {
        // Ids are chosen by whoever made the op: never hand out one again here.
        self.saw_queue_id(d.id);
        let local = d.owner == self.shards.me;
        let v = self.vhost_mut(&d.vhost)?;
        if v.queue_id(&d.name).is_some() {
            return Ok(Applied::unchanged());
        }
        v.create_queue(
            d.id,
            d.name.as_short(),
            d.durable,
            d.auto_delete,
            d.exclusive,
            d.arguments.clone(),
            d.recover,
            d.gen,
            d.owner,
            local,
        )?;
        if !d.recover && local {
            // A new queue's x-expires lease starts now; recovered ones are
            // armed when the vhost opens.
            self.touch_queue(&d.vhost, d.id);
        }
        Ok(Applied::changed(d.durable))
    }

    fn set_binding(&mut self, b: &BindingOp, cascade: bool) -> Result<Applied, ApplyError> {
        let v = self.vhost_mut(&b.vhost)?;
        let Some(source_durable) = v.exchanges.get(b.source.as_str()).map(|x| x.durable) else {
            return Ok(Applied::unchanged());
        };
        let dest_durable = match &b.dest {
            Dest::Queue(id) => v.queues.get(id).map(|q| q.is_durable()),
            Dest::Exchange(name) => v.exchanges.get(name.as_str()).map(|x| x.durable),
        };
        let Some(dest_durable) = dest_durable else {
            return Ok(Applied::unchanged());
        };
        if !v.set_binding(&b.source, b.dest.clone(), b.routing_key.as_short(), &b.arguments, b.add) {
            return Ok(Applied::unchanged());
        }
        let auto_deleted = if b.add || !cascade {
            Vec::new()
        } else {
            v.maybe_auto_delete_exchange(&b.source)
        };
        Ok(Applied {
            auto_deleted,
            ..Applied::changed(source_durable && dest_durable)
        })
    }
}
