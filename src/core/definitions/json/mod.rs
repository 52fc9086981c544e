//! Definitions import and export in RabbitMQ's JSON format: users, vhosts,
//! permissions, topic permissions, parameters (vhost limits and operator
//! policies among them, as RabbitMQ exports them), global parameters,
//! policies, queues, exchanges and bindings; for the whole broker or one vhost.
//!
//! Import is all or nothing as far as validation goes: every entry is checked
//! against the model, the users and the rest of the file first, and the first bad entry is
//! named in the error with nothing applied. Then entries are applied in
//! dependency order (vhosts, users, permissions and topic permissions, limits,
//! policies, exchanges, queues, bindings). Objects that exist are kept as they are, as RabbitMQ does;
//! users, permissions, policies and parameters are replaced.
//!
//! Where: the file's types here ([`Definitions`] and its entries); building an
//! export from the model, users and permissions in [`export`]; validating an
//! import into a plan, and declaring its exchanges, queues and bindings into
//! the model, in [`import`]; AMQP field tables as JSON in [`table`] (arguments
//! here, and in the HTTP API). Applying a plan (vhosts, users, permissions,
//! limits, parameters, policies through the management commands, then one
//! sync) and the `Broker` calls the API and `--load-definitions` make are
//! `mgmt::definitions`, which also holds this format's tests.

pub(crate) mod export;
pub(crate) mod import;
pub mod table;

// What the types here, the export and the import use (the latter two take it
// with `use super::*`: one list for one format).

use ringmq_codec::{ExchangeBind, ExchangeDeclare, Method, QueueBind, QueueDeclare, ShortStr, Table};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::core::access::auth::{self, User, UserLimits, Users};
use crate::core::access::permissions::{Permission, PermissionDef, Permissions};
use crate::core::access::topic_permissions::{TopicPermissionDef, TopicPermissions};
use crate::core::definitions::json::table::{table_from_json, table_to_json};
use crate::core::definitions::replay::{self, Mode};
use crate::core::model::error::{short_name, AdminError, AdminResult};
use crate::core::model::vhost_meta::{
    parse_limit, GlobalParameter, Parameter, VhostLimits, VhostMeta, PARAMETER_COMPONENTS,
};
use crate::core::model::Model;
use crate::core::policy::{Policy, PolicyDef, PolicyKind};

/// The version we say we are in exports (RabbitMQ tools read `rabbit_version`).
pub const EXPORT_RABBIT_VERSION: &str = "3.13.0";
/// Entries one import may hold: a bound on the work one request can cause.
pub const IMPORT_ENTRIES_MAX: usize = 1_000_000;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Definitions {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rabbit_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rabbitmq_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub product_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub product_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub users: Option<Vec<UserDef>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vhosts: Option<Vec<VhostDef>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub permissions: Option<Vec<PermissionDef>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic_permissions: Option<Vec<TopicPermissionDef>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameters: Option<Vec<ParameterDef>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub global_parameters: Option<Vec<GlobalParameter>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policies: Option<Vec<VhostPolicyDef>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queues: Option<Vec<QueueDef>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exchanges: Option<Vec<ExchangeDef>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bindings: Option<Vec<BindingDef>>,
}

/// Tags as RabbitMQ writes them: an array, or (older exports, the HTTP API) a
/// comma-separated string.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Tags {
    List(Vec<String>),
    Csv(String),
    #[default]
    None,
}

impl Tags {
    pub fn to_vec(&self) -> Vec<String> {
        match self {
            Tags::List(v) => v
                .iter()
                .map(|t| t.trim().to_owned())
                .filter(|t| !t.is_empty())
                .collect(),
            Tags::Csv(s) => s
                .split(',')
                .map(|t| t.trim().to_owned())
                .filter(|t| !t.is_empty())
                .collect(),
            Tags::None => Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UserDef {
    pub name: String,
    #[serde(default)]
    pub password_hash: String,
    #[serde(default = "default_algorithm")]
    pub hashing_algorithm: String,
    /// Not in RabbitMQ exports; accepted so hand-written files can set a password.
    #[serde(default, skip_serializing)]
    pub password: Option<String>,
    #[serde(default)]
    pub tags: Tags,
    #[serde(default)]
    pub limits: UserLimits,
}

fn default_algorithm() -> String {
    auth::HASH_SHA256.to_owned()
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct VhostDef {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<Tags>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_queue_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Value>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ParameterDef {
    pub value: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vhost: Option<String>,
    pub component: String,
    pub name: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct VhostPolicyDef {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vhost: Option<String>,
    #[serde(flatten)]
    pub def: PolicyDef,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct QueueDef {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vhost: Option<String>,
    #[serde(default = "yes")]
    pub durable: bool,
    #[serde(default)]
    pub auto_delete: bool,
    #[serde(default)]
    pub arguments: Value,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExchangeDef {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vhost: Option<String>,
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default = "yes")]
    pub durable: bool,
    #[serde(default)]
    pub auto_delete: bool,
    #[serde(default)]
    pub internal: bool,
    #[serde(default)]
    pub arguments: Value,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BindingDef {
    pub source: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vhost: Option<String>,
    pub destination: String,
    pub destination_type: String,
    #[serde(default)]
    pub routing_key: String,
    #[serde(default)]
    pub arguments: Value,
}

fn yes() -> bool {
    true
}

/// RabbitMQ's component names for what we keep in typed form.
const COMPONENT_LIMITS: &str = "vhost-limits";
const COMPONENT_OPERATOR_POLICY: &str = "operator_policy";

fn bad(what: String, why: impl std::fmt::Display) -> AdminError {
    AdminError::BadRequest(format!("{what}: {why}"))
}

/// A vhost, exchange or queue name of an import: not empty, and a short string
/// (RabbitMQ's text, as the API's: `queue should be less than 255 bytes, ...`).
fn check_name(what: &str, field: &str, name: &str) -> AdminResult<()> {
    if name.is_empty() {
        return Err(bad(what.to_owned(), "name is empty"));
    }
    ShortStr::new(name).map_err(|e| bad(what.to_owned(), e.text(field)))?;
    Ok(())
}
