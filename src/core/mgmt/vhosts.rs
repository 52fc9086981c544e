//! Vhosts on a running broker: create and delete, their metadata and limits
//! (`vhost.json` in each vhost's directory), and runtime parameters (per vhost
//! in `parameters.json`, global ones in the data directory's
//! `global_parameters.json`).
//!
//! Limits follow RabbitMQ: `max-connections` and `max-queues` per vhost; a
//! negative value means no limit, 0 refuses every new connection or queue.

use crate::core::model::ids::VhostName;

use serde_json::Value;

use crate::core::amqp::broker::Broker;
use crate::core::mgmt::error::{AdminError, AdminResult};
use crate::core::model::vhost::VHost;
pub use crate::core::model::vhost_meta::{
    parse_limit, GlobalParameter, Parameter, VhostLimits, VhostMeta, GLOBAL_PARAMETERS_FILE, PARAMETERS_FILE,
    PARAMETER_COMPONENTS, VHOST_META_FILE,
};
use crate::core::model::vhost_meta::{save_meta, save_parameters};

/// Bounds on names we store (RabbitMQ's are short strings too).
pub const VHOST_NAME_MAX: usize = 255;
pub const PARAMETERS_PER_VHOST_MAX: usize = 4096;

/// RabbitMQ keeps the cluster name in this global parameter (it shows in
/// `/api/global-parameters` and in definitions).
pub const CLUSTER_NAME_PARAMETER: &str = "cluster_name";

/// This node's name, in RabbitMQ's `name@host` form: the host name when first
/// asked (a node keeps its name, as RabbitMQ's does; and a connection.start
/// reads no file).
pub fn node_name() -> String {
    static NAME: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    NAME.get_or_init(|| {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_else(|_| "localhost".into());
        format!("ringmq@{}", host.trim())
    })
    .clone()
}

impl Broker {
    /// A vhost to change, or the management API's 404.
    pub(crate) fn vhost_mut(&mut self, vhost: &str) -> AdminResult<&mut VHost> {
        self.model
            .vhosts
            .get_mut(vhost)
            .ok_or_else(|| AdminError::NotFound(format!("no vhost '{vhost}'")))
    }

    /// The cluster name set through the API (or imported), else the node's name,
    /// as RabbitMQ: the management API, `/metrics` and `connection.start` say it.
    pub fn cluster_name(&self) -> String {
        (self.global_parameters.iter())
            .find(|p| p.name == CLUSTER_NAME_PARAMETER)
            .and_then(|p| p.value.as_str())
            .map_or_else(node_name, str::to_owned)
    }

    /// Creates a vhost, or updates the description and tags of an existing one
    /// (as RabbitMQ's PUT does). `grant_to` gets full permissions on a new vhost
    /// (RabbitMQ gives them to the user who created it through the API).
    /// Returns whether the vhost is new.
    pub fn create_vhost(&mut self, name: &str, meta: Option<VhostMeta>, grant_to: Option<&str>) -> AdminResult<bool> {
        // connection.open names the vhost in a short string: RabbitMQ's text for
        // one that cannot be (`vhost should be less than 255 bytes, actually was 300`).
        crate::core::model::error::short_name("vhost", name)?;
        if name.is_empty() {
            return Err(AdminError::BadRequest("vhost name must not be empty".into()));
        }
        if let Some(v) = self.model.vhosts.get_mut(name) {
            if let Some(mut m) = meta {
                m.limits = v.meta.limits.clone();
                let old = std::mem::replace(&mut v.meta, m);
                if let Err(e) = save_meta(v) {
                    v.meta = old;
                    return Err(e.into());
                }
            }
            return Ok(false);
        }
        self.open_vhost(name)?;
        let v = self.model.vhosts.get_mut(name).expect("just opened");
        if let Some(m) = meta {
            v.meta = m;
        }
        save_meta(v)?;
        tracing::info!(vhost = name, "vhost created");
        if let Some(user) = grant_to {
            if self.users.get(user).is_some() {
                self.permissions
                    .set(crate::core::access::permissions::PermissionDef {
                        user: user.to_owned(),
                        vhost: name.to_owned(),
                        configure: ".*".into(),
                        write: ".*".into(),
                        read: ".*".into(),
                    })
                    .expect("valid patterns");
                self.permissions.save(&self.config.data_dir)?;
            }
        }
        Ok(true)
    }

    /// Deletes a vhost: its connections are closed (320 CONNECTION_FORCED), its
    /// queues and exchanges go, its data is removed from disk, and the
    /// permissions on it are dropped.
    pub fn delete_vhost(&mut self, name: &str, now_ms: u64) -> AdminResult<()> {
        if !self.model.vhosts.contains_key(name) {
            return Err(AdminError::NotFound(format!("no vhost '{name}'")));
        }
        self.advance_clock(now_ms);
        self.force_close(|c| c.vhost() == Some(name), &format!("vhost '{name}' is deleted"));
        let v = self.model.vhosts.remove(name).expect("checked above");
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
        // Rename first so a crash mid-removal cannot leave a half vhost that
        // opens at the next start; the leftover is removed at the next start.
        let doomed = dir.with_extension("deleted");
        std::fs::rename(&dir, &doomed)?;
        if let Err(e) = std::fs::remove_dir_all(&doomed) {
            tracing::warn!(vhost = name, error = %e, "could not remove vhost files");
        }
        if self.permissions.remove_vhost(name) {
            self.permissions.save(&self.config.data_dir)?;
        }
        tracing::info!(vhost = name, "vhost deleted");
        self.run_pending();
        Ok(())
    }

    pub fn vhost_meta(&self, name: &str) -> AdminResult<&VhostMeta> {
        self.model
            .vhosts
            .get(name)
            .map(|v| &v.meta)
            .ok_or_else(|| AdminError::NotFound(format!("no vhost '{name}'")))
    }

    /// Sets (Some) or clears (None) one limit: `max-connections` or `max-queues`.
    pub fn set_vhost_limit(&mut self, vhost: &str, key: &str, value: Option<u64>) -> AdminResult<()> {
        let mut limits = self.vhost_mut(vhost)?.meta.limits.clone();
        limits.set(key, value)?;
        self.set_vhost_limits(vhost, limits)
    }

    /// Replaces all limits of a vhost (definitions import, `vhost-limits` parameter).
    pub fn set_vhost_limits(&mut self, vhost: &str, limits: VhostLimits) -> AdminResult<()> {
        let v = self.vhost_mut(vhost)?;
        let old = std::mem::replace(&mut v.meta.limits, limits);
        if let Err(e) = save_meta(v) {
            v.meta.limits = old;
            return Err(e.into());
        }
        Ok(())
    }

    /// Sets (Some) or clears (None) one user limit: `max-connections` or
    /// `max-channels`. Applies to new connections and channels.
    pub fn set_user_limit(&mut self, user: &str, key: &str, value: Option<u64>) -> AdminResult<()> {
        let Some(old) = self.users.get(user).cloned() else {
            return Err(AdminError::NotFound(format!("no user '{user}'")));
        };
        let mut u = old.clone();
        match key {
            "max-connections" => u.limits.max_connections = value,
            "max-channels" => u.limits.max_channels = value,
            other => {
                return Err(AdminError::BadRequest(format!(
                    "Validation failed\n\n{other} is not a user limit (max-connections, max-channels)\n"
                )))
            }
        }
        self.users.insert(u);
        if let Err(e) = self.users.save(&self.config.data_dir) {
            self.users.insert(old);
            return Err(e.into());
        }
        Ok(())
    }

    /// Open connections on a vhost (for its max-connections).
    pub(crate) fn vhost_connection_count(&self, vhost: &str) -> u64 {
        self.conns
            .values()
            .filter(|c| c.holds_slot() && c.vhost() == Some(vhost))
            .count() as u64
    }

    /// Open connections and channels of a user (for the user limits).
    pub(crate) fn user_usage(&self, user: &str) -> (u64, u64) {
        self.conns
            .values()
            .filter(|c| c.holds_slot() && c.vhost().is_some() && c.user() == Some(user))
            .fold((0, 0), |(n, ch), c| (n + 1, ch + c.channel_count() as u64))
    }

    // ---- parameters -----------------------------------------------------------

    pub fn put_parameter(&mut self, vhost: &str, p: Parameter) -> AdminResult<()> {
        if !PARAMETER_COMPONENTS.contains(&p.component.as_str()) {
            return Err(AdminError::NotFound(format!(
                "no such component: '{}' (known: {})",
                p.component,
                PARAMETER_COMPONENTS.join(", ")
            )));
        }
        if p.name.is_empty() || p.name.len() > VHOST_NAME_MAX {
            return Err(AdminError::BadRequest(format!(
                "parameter name must be 1 to {VHOST_NAME_MAX} bytes"
            )));
        }
        let v = self.vhost_mut(vhost)?;
        let at = v
            .parameters
            .iter()
            .position(|x| x.component == p.component && x.name == p.name);
        if at.is_none() && v.parameters.len() >= PARAMETERS_PER_VHOST_MAX {
            return Err(AdminError::Conflict(format!(
                "vhost '{vhost}' has {PARAMETERS_PER_VHOST_MAX} parameters, the most allowed"
            )));
        }
        let old = match at {
            Some(i) => Some(std::mem::replace(&mut v.parameters[i], p)),
            None => {
                v.parameters.push(p);
                None
            }
        };
        if let Err(e) = save_parameters(v) {
            match (at, old) {
                (Some(i), Some(o)) => v.parameters[i] = o,
                _ => {
                    v.parameters.pop();
                }
            }
            return Err(e.into());
        }
        Ok(())
    }

    pub fn delete_parameter(&mut self, vhost: &str, component: &str, name: &str) -> AdminResult<()> {
        let v = self.vhost_mut(vhost)?;
        let Some(i) = v
            .parameters
            .iter()
            .position(|x| x.component == component && x.name == name)
        else {
            return Err(AdminError::NotFound(format!(
                "no parameter '{name}' of component '{component}' in vhost '{vhost}'"
            )));
        };
        let old = v.parameters.remove(i);
        if let Err(e) = save_parameters(v) {
            v.parameters.insert(i, old);
            return Err(e.into());
        }
        Ok(())
    }

    /// Parameters of one vhost or all, as (vhost, parameter), sorted.
    pub fn list_parameters(&self, vhost: Option<&str>, component: Option<&str>) -> Vec<(VhostName, Parameter)> {
        let mut out: Vec<(VhostName, Parameter)> = self
            .model
            .vhosts
            .iter()
            .filter(|(n, _)| vhost.is_none_or(|v| v == &***n))
            .flat_map(|(n, v)| v.parameters.iter().map(move |p| (n.clone(), p.clone())))
            .filter(|(_, p)| component.is_none_or(|c| c == p.component))
            .collect();
        out.sort_by(|a, b| (&a.0, &a.1.component, &a.1.name).cmp(&(&b.0, &b.1.component, &b.1.name)));
        out
    }

    pub fn put_global_parameter(&mut self, name: &str, value: Value) -> AdminResult<()> {
        if name.is_empty() || name.len() > VHOST_NAME_MAX {
            return Err(AdminError::BadRequest(format!(
                "parameter name must be 1 to {VHOST_NAME_MAX} bytes"
            )));
        }
        let mut next = self.global_parameters.clone();
        match next.iter_mut().find(|p| p.name == name) {
            Some(p) => p.value = value,
            None => next.push(GlobalParameter {
                name: name.to_owned(),
                value,
            }),
        }
        next.sort_by(|a, b| a.name.cmp(&b.name));
        ringmq_store::meta::write_json_atomic(&self.config.data_dir.join(GLOBAL_PARAMETERS_FILE), &next)?;
        self.global_parameters = next;
        Ok(())
    }

    pub fn delete_global_parameter(&mut self, name: &str) -> AdminResult<()> {
        let mut next = self.global_parameters.clone();
        let before = next.len();
        next.retain(|p| p.name != name);
        if next.len() == before {
            return Err(AdminError::NotFound(format!("no global parameter '{name}'")));
        }
        ringmq_store::meta::write_json_atomic(&self.config.data_dir.join(GLOBAL_PARAMETERS_FILE), &next)?;
        self.global_parameters = next;
        Ok(())
    }
}
