//! The session's side of an access op (`access::op`): users,
//! permissions, vhosts, policies and parameters change here, on every shard,
//! in the metadata log's order.
//!
//! [`Broker::make_access`] is what a management command or an import calls
//! once it has decided: in a metadata section it applies the op to this
//! shard, keeps it for the log, and saves the file the op changed (once, by
//! the shard that made it). Other shards apply it in `catch_up_meta` through
//! [`Broker::apply_logged_op`] and save nothing. What follows from an op is
//! derived by [`Broker::apply_access`] on each shard: a deleted user's or
//! vhost's permissions go, the connections on this shard of a deleted user or
//! vhost are closed (a notice, run after the log's lock is let go), a policy
//! is re-applied to the vhost's queues and exchanges.

use crate::core::access::op::AccessOp;
use crate::core::amqp::broker::{Broker, Notice};
use crate::core::amqp::meta::LoggedOp;
use crate::core::model::error::AdminResult;
use crate::core::model::ids::ConnId;
use crate::core::model::meta::apply::ApplyError;
use crate::core::model::vhost_meta::{save_meta, save_parameters, GLOBAL_PARAMETERS_FILE};
use crate::core::policy::apply as policy;
use crate::core::policy::Policy;

impl Broker {
    /// Makes `op` on this shard: applies it, appends it to the metadata log
    /// (inside a section, so it is ordered with every other shard's ops), and
    /// saves what it changed. Returns whether it changed anything. The caller
    /// validated it; a save that fails is the caller's 500, the change stays
    /// made (in memory, on every shard).
    pub(crate) fn make_access(&mut self, op: AccessOp) -> AdminResult<bool> {
        self.in_meta_section(|b| {
            let changed = b.apply_access(&op)?;
            if changed {
                // Applied here, so logged for the other shards even when the
                // save failed: the copies stay equal (the caller's 500 says
                // the file is behind; the change is not rolled back).
                let saved = b.save_access(&op);
                b.keep_made(Some(op));
                saved?;
            }
            Ok(changed)
        })
    }

    /// Applies an op another shard made (or, in tests, an op of the log fed
    /// to a broker of one shard): routing ops to the model, access ops here.
    /// Nothing is saved: the maker did that.
    pub(crate) fn apply_logged_op(&mut self, op: &LoggedOp) -> Result<bool, ApplyError> {
        match op {
            LoggedOp::Routing(op) => self.apply_meta_routing(op),
            LoggedOp::Access(a) => self.apply_access(a),
            LoggedOp::Replayed(op) => Ok(self.model.apply_logged(op)?.changed),
        }
    }

    /// Applies an access op to this shard's copy, with what follows from it;
    /// returns whether it changed anything.
    pub(crate) fn apply_access(&mut self, op: &AccessOp) -> Result<bool, ApplyError> {
        let no_vhost = |v: &str| ApplyError::NoVhost(v.to_owned());
        Ok(match op {
            AccessOp::UserPut(u) => {
                let changed = self.users.get(&u.name) != Some(u);
                self.users.insert(u.clone());
                changed
            }
            AccessOp::UserDelete { name } => {
                if self.users.remove(name).is_none() {
                    return Ok(false);
                }
                self.permissions.remove_user(name);
                self.close_conns_of(|c| c.user() == Some(name.as_str()), format!("user '{name}' is deleted"));
                true
            }
            AccessOp::PermissionSet(def) => {
                self.permissions.set(def.clone()).map_err(ApplyError::Invalid)?;
                true
            }
            AccessOp::PermissionDelete { user, vhost } => self.permissions.remove(user, vhost),
            AccessOp::TopicPermissionSet(def) => {
                self.permissions.topic.set(def.clone()).map_err(ApplyError::Invalid)?;
                true
            }
            AccessOp::TopicPermissionClear { user, vhost, exchange } => {
                self.permissions.topic.remove(user, vhost, exchange.as_deref())
            }
            AccessOp::VhostCreate { name, meta } => {
                if self.model.vhosts.contains_key(name) {
                    return Ok(false);
                }
                self.open_vhost(name)?;
                self.model.vhosts.get_mut(name).expect("just opened").meta = meta.clone();
                tracing::info!(vhost = %name, "vhost created");
                true
            }
            AccessOp::VhostMeta { name, meta } => {
                let v = self.model.vhosts.get_mut(name).ok_or_else(|| no_vhost(name))?;
                let changed = v.meta != *meta;
                v.meta = meta.clone();
                changed
            }
            AccessOp::VhostDelete { name } => self.remove_vhost(name),
            AccessOp::PolicyPut { vhost, def, kind } => {
                let p = Policy::compile(def.clone(), *kind).map_err(ApplyError::Invalid)?;
                let v = self.model.vhosts.get_mut(vhost).ok_or_else(|| no_vhost(vhost))?;
                policy::set(v, p, *kind);
                policy::reapply(&mut self.model, vhost);
                true
            }
            AccessOp::PolicyDelete { vhost, name, kind } => {
                let v = self.model.vhosts.get_mut(vhost).ok_or_else(|| no_vhost(vhost))?;
                let changed = policy::remove(v, name, *kind);
                policy::reapply(&mut self.model, vhost);
                changed
            }
            AccessOp::ParameterPut { vhost, parameter } => {
                let v = self.model.vhosts.get_mut(vhost).ok_or_else(|| no_vhost(vhost))?;
                let same = |x: &&mut crate::core::model::vhost_meta::Parameter| {
                    x.component == parameter.component && x.name == parameter.name
                };
                match v.parameters.iter_mut().find(same) {
                    Some(x) => *x = parameter.clone(),
                    None => v.parameters.push(parameter.clone()),
                }
                true
            }
            AccessOp::ParameterDelete { vhost, component, name } => {
                let v = self.model.vhosts.get_mut(vhost).ok_or_else(|| no_vhost(vhost))?;
                let before = v.parameters.len();
                v.parameters.retain(|x| !(x.component == *component && x.name == *name));
                before != v.parameters.len()
            }
            AccessOp::GlobalParameterPut(g) => {
                match self.global_parameters.iter_mut().find(|p| p.name == g.name) {
                    Some(p) => p.value = g.value.clone(),
                    None => self.global_parameters.push(g.clone()),
                }
                self.global_parameters.sort_by(|a, b| a.name.cmp(&b.name));
                true
            }
            AccessOp::GlobalParameterDelete { name } => {
                let before = self.global_parameters.len();
                self.global_parameters.retain(|p| p.name != *name);
                before != self.global_parameters.len()
            }
        })
    }

    /// Saves the file `op` changed: by the shard that made the op only.
    fn save_access(&mut self, op: &AccessOp) -> std::io::Result<()> {
        let dir = &self.config.data_dir;
        let vhosts = &self.model.vhosts;
        let vhost = |name: &str| vhosts.get(name);
        match op {
            AccessOp::UserPut(_) => self.users.save(dir),
            AccessOp::UserDelete { .. } => {
                self.users.save(dir)?;
                self.permissions.save(dir)
            }
            AccessOp::PermissionSet(_) | AccessOp::PermissionDelete { .. } | AccessOp::VhostDelete { .. } => {
                self.permissions.save(dir)
            }
            AccessOp::TopicPermissionSet(_) | AccessOp::TopicPermissionClear { .. } => self.permissions.topic.save(dir),
            AccessOp::VhostCreate { name, .. } | AccessOp::VhostMeta { name, .. } => {
                vhost(name).map_or(Ok(()), save_meta)
            }
            AccessOp::PolicyPut { vhost: name, .. } | AccessOp::PolicyDelete { vhost: name, .. } => {
                vhost(name).map_or(Ok(()), policy::save)
            }
            AccessOp::ParameterPut { vhost: name, .. } | AccessOp::ParameterDelete { vhost: name, .. } => {
                vhost(name).map_or(Ok(()), save_parameters)
            }
            AccessOp::GlobalParameterPut(_) | AccessOp::GlobalParameterDelete { .. } => {
                ringmq_store::meta::write_json_atomic(&dir.join(GLOBAL_PARAMETERS_FILE), &self.global_parameters)
            }
        }
    }

    /// Removes a vhost from this shard: its queues (the files of those this
    /// shard owns) and exchanges, its folder, the permissions on it; its
    /// connections here are closed. Returns whether it was there.
    fn remove_vhost(&mut self, name: &str) -> bool {
        let Some(v) = self.model.vhosts.remove(name) else {
            return false;
        };
        self.close_conns_of(|c| c.vhost() == Some(name), format!("vhost '{name}' is deleted"));
        let dir = v.dir.clone();
        for (_, x) in v.exchanges {
            if let Some(d) = x.delayed {
                let _ = d.close();
            }
        }
        for (_, q) in v.queues {
            let queue = q.name().clone();
            let local = q.owner() == self.model.shards.me;
            if let Err(e) = q.delete(local) {
                tracing::warn!(vhost = name, %queue, error = %e, "could not remove queue files");
            }
        }
        // With several shards the folder is the maker's to remove (this
        // shard's queue folders in it went above): another shard applying the
        // delete later must not remove a folder made again meanwhile.
        match &self.meta {
            Some(link) if link.following() => {
                self.permissions.remove_vhost(name);
                tracing::info!(vhost = name, "vhost deleted");
                return true;
            }
            Some(link) => link.files().unregister(&v.name),
            None => {}
        }
        // Rename first so a crash mid-removal cannot leave a half vhost that
        // opens at the next start; the leftover is removed at the next start.
        let doomed = dir.with_extension("deleted");
        let removed =
            ringmq_store::changes::rename(&dir, &doomed).and_then(|()| ringmq_store::changes::remove_dir_all(&doomed));
        if let Err(e) = removed {
            tracing::warn!(vhost = name, error = %e, "could not remove vhost files");
        }
        self.permissions.remove_vhost(name);
        tracing::info!(vhost = name, "vhost deleted");
        true
    }

    /// Closes (320 CONNECTION_FORCED, after the op is applied and the log's
    /// lock let go) this shard's connections that `which` selects.
    fn close_conns_of(&mut self, which: impl Fn(&crate::core::amqp::connection::Connection) -> bool, reason: String) {
        let ids: Vec<ConnId> = self.conns.values().filter(|c| which(c)).map(|c| c.id()).collect();
        for conn in ids {
            self.notices.push(Notice::ForceClose {
                conn,
                reason: reason.clone(),
            });
        }
    }
}
