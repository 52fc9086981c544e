//! What a vhost carries besides its objects: description, tags, default queue
//! type and limits (`vhost.json` in its directory), and its runtime parameters
//! (`parameters.json`). Read when the vhost opens; written by management
//! commands (`mgmt::vhosts`).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::core::model::vhost::VHost;

pub const VHOST_META_FILE: &str = "vhost.json";
pub const PARAMETERS_FILE: &str = "parameters.json";
pub const GLOBAL_PARAMETERS_FILE: &str = "global_parameters.json";

/// Vhost limits; None = no limit.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct VhostLimits {
    #[serde(rename = "max-connections", default, skip_serializing_if = "Option::is_none")]
    pub max_connections: Option<u64>,
    #[serde(rename = "max-queues", default, skip_serializing_if = "Option::is_none")]
    pub max_queues: Option<u64>,
}

/// What a vhost carries besides its objects.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct VhostMeta {
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_queue_type: Option<String>,
    #[serde(default)]
    pub limits: VhostLimits,
}

/// A runtime parameter (federation upstreams, shovels, ...): component, name,
/// JSON value, as RabbitMQ stores them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Parameter {
    pub component: String,
    pub name: String,
    pub value: Value,
}

pub(crate) fn load_meta(vhost: &mut VHost) -> std::io::Result<()> {
    if let Some(m) = ringmq_store::meta::read_json(&vhost.dir.join(VHOST_META_FILE))? {
        vhost.meta = m;
    }
    if let Some(p) = ringmq_store::meta::read_json(&vhost.dir.join(PARAMETERS_FILE))? {
        vhost.parameters = p;
    }
    Ok(())
}

pub(crate) fn save_meta(vhost: &VHost) -> std::io::Result<()> {
    ringmq_store::meta::write_json_atomic(&vhost.dir.join(VHOST_META_FILE), &vhost.meta)
}

pub(crate) fn save_parameters(vhost: &VHost) -> std::io::Result<()> {
    ringmq_store::meta::write_json_atomic(&vhost.dir.join(PARAMETERS_FILE), &vhost.parameters)
}
