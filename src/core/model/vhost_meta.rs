//! What a vhost carries besides its objects: description, tags, default queue
//! type and limits (`vhost.json` in its directory), and its runtime parameters
//! (`parameters.json`); and the broker's global parameters (their type; kept in
//! the data directory's `global_parameters.json`). Read when the vhost opens;
//! written by management commands (`mgmt::vhosts`) and definitions import.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::core::model::error::{AdminError, AdminResult};
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

impl VhostLimits {
    pub fn is_empty(&self) -> bool {
        self.max_connections.is_none() && self.max_queues.is_none()
    }

    /// Sets one limit by its RabbitMQ name.
    pub fn set(&mut self, key: &str, value: Option<u64>) -> AdminResult<()> {
        match key {
            "max-connections" => self.max_connections = value,
            "max-queues" => self.max_queues = value,
            other => {
                return Err(AdminError::BadRequest(format!(
                    "Validation failed\n\n{other} is not a vhost limit (max-connections, max-queues)\n"
                )))
            }
        }
        Ok(())
    }
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

/// Components we accept. Operator policies and vhost limits have their own
/// calls; these are stored for the features that read them.
pub const PARAMETER_COMPONENTS: &[&str] = &["federation-upstream", "federation-upstream-set", "shovel"];

/// Parses a limit value as RabbitMQ does: an integer; negative means none.
pub fn parse_limit(name: &str, v: &Value) -> AdminResult<Option<u64>> {
    match v.as_i64() {
        Some(n) if n < 0 => Ok(None),
        Some(n) => Ok(Some(n as u64)),
        None => Err(AdminError::BadRequest(format!(
            "Validation failed\n\n{name} must be an integer, got {v}\n"
        ))),
    }
}

/// A global parameter, as RabbitMQ exports it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GlobalParameter {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_parse_as_rabbitmq_does() {
        assert_eq!(parse_limit("max-queues", &Value::from(-1)).unwrap(), None);
        assert_eq!(parse_limit("max-queues", &Value::from(0)).unwrap(), Some(0));
        assert_eq!(parse_limit("max-queues", &Value::from(7)).unwrap(), Some(7));
        assert!(parse_limit("max-queues", &Value::from("x")).is_err());
        let l = VhostLimits {
            max_connections: Some(3),
            max_queues: None,
        };
        assert_eq!(
            serde_json::to_value(&l).unwrap(),
            serde_json::json!({"max-connections": 3})
        );
    }
}
