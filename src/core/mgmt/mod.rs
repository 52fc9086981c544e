//! The management seam: the one door from the HTTP API (`src/http`) and
//! ringmqctl into the core. Reads go through [`views`] (borrowed, read-only
//! views that answer what the routes render); writes through [`commands`] and
//! [`vhosts`] (the same code AMQP runs). What a caller needs besides (ids, the
//! error, request and definition types, stats types) is re-exported here, so
//! `src/http` names nothing in the core but `crate::core::mgmt` and the
//! [`Broker`](crate::core::Broker) handle.
//!
//! | module | what |
//! |---|---|
//! | [`views`] | read-only views: node, vhosts, queues, exchanges, bindings, connections, channels, users |
//! | [`commands`] | management operations (the HTTP API's writes, get/publish/purge) |
//! | `definitions` | definitions import and export on the broker: a validated plan applied through the commands, one sync |
//! | `policies` | policies set, deleted and listed, and re-applied to the session's queues at once |
//! | [`vhosts`] | vhost create/delete, limits, global parameters, node and cluster names |
//! | [`stats`] | the statistics tick: rates of connections, channels, queues, exchanges, vhosts, node |
//! | [`error`] | the error a management operation returns (the model's `AdminError`) and its HTTP status |
//! | [`json_table`] | AMQP field tables to and from JSON (`definitions::json::table`, re-exported) |

pub mod commands;
mod definitions;
pub mod error;
mod policies;
mod stats;
pub mod vhosts;
pub mod views;

pub use commands::{AckMode, AdminCtx, Declared, DestKind, ExchangeSpec, GotMessage, QueueSpec, UserSpec};
pub use error::AdminError;
pub use views::View;

/// AMQP field tables to and from JSON: the definitions format's conversion,
/// which the API's arguments and headers use too.
pub use crate::core::definitions::json::table as json_table;

pub use crate::core::access::permissions::PermissionDef;
pub use crate::core::access::topic_permissions::TopicPermissionDef;
pub use crate::core::definitions::json::{Definitions, Tags};
pub use crate::core::model::ids::ConnId;
pub use crate::core::model::stats::{counter_index, Churn, MsgCounters, ObjStats, Sample, VhostStats, COUNTERS};
pub use crate::core::policy::apply::VhostPolicy;
pub use crate::core::policy::{ApplyTo, PolicyDef, PolicyKind};
pub use vhosts::{node_name, parse_limit, GlobalParameter, Parameter, VhostMeta, CLUSTER_NAME_PARAMETER};

/// Whether `kind` is an exchange type this broker declares (the built-in
/// kinds and `x-delayed-message`).
pub fn exchange_type_known(kind: &str) -> bool {
    crate::core::model::exchange::ExchangeKind::parse(kind).is_some()
        || kind == crate::core::model::exchange::delayed::DELAYED_TYPE
}

/// A new salted SHA-256 password hash (base64(salt ++ hash), as in RabbitMQ
/// definitions), for `/api/auth/hash_password`.
pub fn hash_password(password: &str, salt: [u8; 4]) -> String {
    crate::core::access::auth::hash_password(crate::core::access::auth::HASH_SHA256, password, salt)
        .expect("sha256 is known")
}
