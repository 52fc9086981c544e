//! Node-wide facts tools read: `/api/cluster-name` (GET, PUT), `/api/extensions`
//! and `/api/feature-flags`, in RabbitMQ 3.10's shapes.

use serde_json::{json, Value};

use crate::core::mgmt::{View, CLUSTER_NAME_PARAMETER};
use crate::http::{ApiError, Reply, Req};

pub(crate) fn get_name(req: &Req<'_>) -> Result<Reply, ApiError> {
    Reply::ok(json!({"name": View::of(&req.shared.broker.borrow()).cluster_name()}))
}

pub(crate) fn put_name(req: &Req<'_>) -> Result<Reply, ApiError> {
    let [name]: [String; 1] = req.string_fields(&["name"])?.try_into().expect("one key, one value");
    if name.is_empty() {
        return Err(ApiError::bad_request("name must not be empty"));
    }
    req.shared
        .broker
        .borrow_mut()
        .put_global_parameter(CLUSTER_NAME_PARAMETER, Value::String(name))?;
    Reply::no_content()
}

/// The management UI's plugin extensions: the web UI here has none.
pub(crate) fn extensions(_req: &Req<'_>) -> Result<Reply, ApiError> {
    Reply::ok(json!([]))
}

/// RabbitMQ's feature flags for what this broker has, all enabled (there is
/// nothing to enable: a single binary has every feature it was built with).
/// Flags for what it lacks (streams, mirroring) are not listed, so tools that
/// look for them see the feature as absent. (RabbitMQ gives quorum_queue a
/// doc_url; every flag here has "", which tools treat as none.)
const FEATURE_FLAGS: &[(&str, &str, &str)] = &[
    (
        "drop_unroutable_metric",
        "Count unroutable publishes to be dropped in stats",
        "rabbitmq_management_agent",
    ),
    (
        "empty_basic_get_metric",
        "Count AMQP `basic.get` on empty queues in stats",
        "rabbitmq_management_agent",
    ),
    (
        "implicit_default_bindings",
        "Default bindings are now implicit, instead of being stored in the database",
        "rabbit",
    ),
    ("quorum_queue", "Support queues of type `quorum`", "rabbit"),
    (
        "user_limits",
        "Configure connection and channel limits for a user",
        "rabbit",
    ),
    (
        "virtual_host_metadata",
        "Virtual host metadata (description, tags, etc)",
        "rabbit",
    ),
];

pub(crate) fn feature_flags(_req: &Req<'_>) -> Result<Reply, ApiError> {
    let flags: Vec<Value> = FEATURE_FLAGS
        .iter()
        .map(|(name, desc, by)| {
            json!({"name": name, "desc": desc, "doc_url": "", "state": "enabled", "stability": "stable", "provided_by": by})
        })
        .collect();
    Reply::ok(Value::Array(flags))
}
