//! Vhosts on a running broker: create and delete, their metadata and limits
//! (`vhost.json` in each vhost's directory), and runtime parameters (per vhost
//! in `parameters.json`, global ones in the data directory's
//! `global_parameters.json`).
//!
//! Every change is checked here on a current copy (a metadata section) and
//! made as an access op that every shard applies (`amqp::meta_access`).
//!
//! Limits follow RabbitMQ: `max-connections` and `max-queues` per vhost; a
//! negative value means no limit, 0 refuses every new connection or queue.

use crate::core::model::ids::VhostName;

use serde_json::Value;

use crate::core::access::op::AccessOp;
use crate::core::amqp::broker::Broker;
use crate::core::mgmt::error::{AdminError, AdminResult};
use crate::core::model::vhost::VHost;
pub use crate::core::model::vhost_meta::{
    parse_limit, GlobalParameter, Parameter, VhostLimits, VhostMeta, GLOBAL_PARAMETERS_FILE, PARAMETERS_FILE,
    PARAMETER_COMPONENTS, VHOST_META_FILE,
};

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
    /// Returns whether the vhost is new. Ops for every shard (`access::op`).
    pub fn create_vhost(&mut self, name: &str, meta: Option<VhostMeta>, grant_to: Option<&str>) -> AdminResult<bool> {
        // connection.open names the vhost in a short string: RabbitMQ's text for
        // one that cannot be (`vhost should be less than 255 bytes, actually was 300`).
        crate::core::model::error::short_name("vhost", name)?;
        if name.is_empty() {
            return Err(AdminError::BadRequest("vhost name must not be empty".into()));
        }
        let key = VhostName::new(name).map_err(|e| AdminError::BadRequest(format!("vhost {name:?}: {e}")))?;
        self.in_meta_section(|b| {
            if let Some(v) = b.model.vhosts.get(name) {
                if let Some(mut m) = meta {
                    m.limits = v.meta.limits.clone();
                    b.make_access(AccessOp::VhostMeta { name: key, meta: m })?;
                }
                return Ok(false);
            }
            let meta = meta.unwrap_or_default();
            b.make_access(AccessOp::VhostCreate { name: key, meta })?;
            if let Some(user) = grant_to.filter(|u| b.users.get(u).is_some()) {
                b.make_access(AccessOp::PermissionSet(
                    crate::core::access::permissions::PermissionDef {
                        user: user.to_owned(),
                        vhost: name.to_owned(),
                        configure: ".*".into(),
                        write: ".*".into(),
                        read: ".*".into(),
                    },
                ))?;
            }
            Ok(true)
        })
    }

    /// Deletes a vhost: its connections are closed (320 CONNECTION_FORCED), its
    /// queues and exchanges go, its data is removed from disk, and the
    /// permissions on it are dropped, on every shard.
    pub fn delete_vhost(&mut self, name: &str, now_ms: u64) -> AdminResult<()> {
        self.advance_clock(now_ms);
        self.in_meta_section(|b| {
            let Some((key, _)) = b.model.vhosts.get_key_value(name) else {
                return Err(AdminError::NotFound(format!("no vhost '{name}'")));
            };
            let name = key.clone();
            b.make_access(AccessOp::VhostDelete { name }).map(drop)
        })?;
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
        self.in_meta_section(|b| {
            let v = b.vhost_mut(vhost)?;
            let meta = VhostMeta {
                limits,
                ..v.meta.clone()
            };
            let name = v.name.clone();
            b.make_access(AccessOp::VhostMeta { name, meta }).map(drop)
        })
    }

    /// Sets (Some) or clears (None) one user limit: `max-connections` or
    /// `max-channels`. Applies to new connections and channels.
    pub fn set_user_limit(&mut self, user: &str, key: &str, value: Option<u64>) -> AdminResult<()> {
        self.in_meta_section(|b| b.set_user_limit_now(user, key, value))
    }

    fn set_user_limit_now(&mut self, user: &str, key: &str, value: Option<u64>) -> AdminResult<()> {
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
        self.make_access(AccessOp::UserPut(u)).map(drop)
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
        crate::core::model::terms::check_parameter(&p.component, &p.name, &p.value)
            .map_err(|e| AdminError::BadRequest(e.to_string()))?;
        self.in_meta_section(|b| {
            let v = b.vhost_mut(vhost)?;
            let known = (v.parameters.iter()).any(|x| x.component == p.component && x.name == p.name);
            if !known && v.parameters.len() >= PARAMETERS_PER_VHOST_MAX {
                return Err(AdminError::Conflict(format!(
                    "vhost '{vhost}' has {PARAMETERS_PER_VHOST_MAX} parameters, the most allowed"
                )));
            }
            let vhost = v.name.clone();
            b.make_access(AccessOp::ParameterPut { vhost, parameter: p }).map(drop)
        })
    }

    pub fn delete_parameter(&mut self, vhost: &str, component: &str, name: &str) -> AdminResult<()> {
        self.in_meta_section(|b| {
            let v = b.vhost_mut(vhost)?;
            if !(v.parameters.iter()).any(|x| x.component == component && x.name == name) {
                return Err(AdminError::NotFound(format!(
                    "no parameter '{name}' of component '{component}' in vhost '{vhost}'"
                )));
            }
            let vhost = v.name.clone();
            b.make_access(AccessOp::ParameterDelete {
                vhost,
                component: component.to_owned(),
                name: name.to_owned(),
            })
            .map(drop)
        })
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
        let p = GlobalParameter {
            name: name.to_owned(),
            value,
        };
        self.make_access(AccessOp::GlobalParameterPut(p)).map(drop)
    }

    pub fn delete_global_parameter(&mut self, name: &str) -> AdminResult<()> {
        self.in_meta_section(|b| {
            if !b.global_parameters.iter().any(|p| p.name == name) {
                return Err(AdminError::NotFound(format!("no global parameter '{name}'")));
            }
            b.make_access(AccessOp::GlobalParameterDelete { name: name.to_owned() })
                .map(drop)
        })
    }
}
