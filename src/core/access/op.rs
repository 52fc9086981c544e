//! The access ops: a change to users, permissions, vhosts, policies or
//! parameters as a value, carried by the same metadata log as the routing ops
//! (`model::meta`; the log's entry is `amqp::meta::LoggedOp`), so every
//! shard's copy of who may log in where, and of each vhost's policies, stays
//! equal.
//!
//! As for the routing ops, an op carries what was decided: a user with its
//! password already hashed (a shard that hashed a clear password again would
//! pick another salt), a policy as its definition (compiling it is
//! deterministic), a vhost's whole metadata. What follows from an op (a deleted
//! user's permissions and connections, a deleted vhost's permissions, queues
//! and connections, a policy re-applied to the vhost's queues) is derived by
//! every shard that applies it (`amqp::meta_access`).

use crate::core::access::auth::User;
use crate::core::access::permissions::PermissionDef;
use crate::core::access::topic_permissions::TopicPermissionDef;
use crate::core::model::ids::VhostName;
use crate::core::model::policy::{PolicyDef, PolicyKind};
use crate::core::model::vhost_meta::{GlobalParameter, Parameter, VhostMeta};

/// One change to users, permissions, vhosts, policies or parameters.
#[derive(Debug, Clone, PartialEq)]
pub enum AccessOp {
    /// Adds or replaces a user (its hash, tags, limits, loopback restriction).
    UserPut(User),
    /// Removes a user, its permissions and topic permissions; its connections
    /// are closed on every shard.
    UserDelete {
        name: String,
    },
    /// Sets a user's permission in a vhost (patterns validated by the maker).
    PermissionSet(PermissionDef),
    PermissionDelete {
        user: String,
        vhost: String,
    },
    TopicPermissionSet(TopicPermissionDef),
    /// Clears a user's topic permissions in a vhost: one exchange's, or all.
    TopicPermissionClear {
        user: String,
        vhost: String,
        exchange: Option<String>,
    },
    /// A new vhost with its metadata.
    VhostCreate {
        name: VhostName,
        meta: VhostMeta,
    },
    /// Replaces an existing vhost's description, tags and limits.
    VhostMeta {
        name: VhostName,
        meta: VhostMeta,
    },
    /// Removes a vhost: its connections are closed, its queues and exchanges
    /// go, and the permissions on it.
    VhostDelete {
        name: VhostName,
    },
    /// Adds or replaces a policy (valid: the maker compiled it); the vhost's
    /// queues and exchanges get the policies that apply to them now.
    PolicyPut {
        vhost: VhostName,
        def: PolicyDef,
        kind: PolicyKind,
    },
    PolicyDelete {
        vhost: VhostName,
        name: String,
        kind: PolicyKind,
    },
    ParameterPut {
        vhost: VhostName,
        parameter: Parameter,
    },
    ParameterDelete {
        vhost: VhostName,
        component: String,
        name: String,
    },
    GlobalParameterPut(GlobalParameter),
    GlobalParameterDelete {
        name: String,
    },
}
