//! The route table. Adding a route is one line in [`ROUTES`]: method, path
//! pattern (`{name}` matches one percent-encoded segment, decoded for the
//! handler), the least tag it needs, and the handler. Literal paths go before
//! patterns that would also match them (the first match wins).
//!
//! Routes with a `{vhost}` check that the vhost exists (404) and that the user
//! has permissions in it (401), unless built with [`Route::any_vhost`] (for
//! administrator routes about permissions, which name vhosts as data).

mod bindings;
mod cluster;
mod common;
mod connections;
mod exchanges;
mod federation;
mod health;
pub(crate) mod metrics;
mod metrics_detailed;
mod overview;
mod parameters;
mod permissions;
mod policies;
mod queues;
mod shovels;
mod static_ui;
mod topic_permissions;
mod users;
mod vhosts;

use hyper::Method;

use super::error::ApiError;
use super::{decode, Reply, Req};
use permissions::Perms;
use topic_permissions::Topic;

pub(crate) type Handler = fn(&Req<'_>) -> Result<Reply, ApiError>;
/// Path parameters by their names in the pattern, decoded.
pub(crate) type Params = Vec<(&'static str, String)>;

/// The least a user must be to use a route (see `auth.rs` for the rules).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Need {
    /// No login (the UI's files, `/metrics` on the metrics port).
    None,
    Management,
    #[allow(dead_code)] // the policy and parameter routes use it
    Policymaker,
    Monitoring,
    Administrator,
}

#[derive(Debug)]
pub(crate) struct Route {
    pub method: Method,
    pub path: &'static str,
    pub need: Need,
    pub handler: Handler,
    /// Skip the vhost access check (the vhost in the path is data).
    pub any_vhost: bool,
    /// Largest request body this route reads ([`BODY_BYTES_MAX`] unless raised).
    pub body_bytes_max: usize,
}

/// Largest request body of an ordinary route: JSON objects of a few fields, a
/// message published through the API. Checked after authentication, so an
/// anonymous client cannot make the broker buffer anything.
pub(crate) const BODY_BYTES_MAX: usize = 1 << 20;
/// Largest definitions import (a broker's whole topology: 100,000 queues and
/// their bindings export to about 30 MB).
pub(crate) const DEFINITIONS_BODY_BYTES_MAX: usize = 64 << 20;

impl Route {
    pub const fn new(method: Method, path: &'static str, need: Need, handler: Handler) -> Route {
        Route {
            method,
            path,
            need,
            handler,
            any_vhost: false,
            body_bytes_max: BODY_BYTES_MAX,
        }
    }

    /// Lets the route read bodies up to `bytes` (definitions imports).
    pub const fn large_body(mut self, bytes: usize) -> Route {
        self.body_bytes_max = bytes;
        self
    }

    pub const fn any_vhost(mut self) -> Route {
        self.any_vhost = true;
        self
    }

    pub fn checks_vhost(&self) -> bool {
        !self.any_vhost && self.path.contains("{vhost}")
    }
}

use Need::{Administrator as Admin, Management as Mgmt, Monitoring as Monitor, None as Open, Policymaker as Policy};
const GET: Method = Method::GET;
const PUT: Method = Method::PUT;
const POST: Method = Method::POST;
const DELETE: Method = Method::DELETE;

/// Every route. The lead's groups (vhosts PUT/DELETE, limits, policies,
/// parameters, definitions) go here the same way.
pub(crate) static ROUTES: &[Route] = &[
    // overview.rs: the node as a whole
    Route::new(GET, "/api/overview", Mgmt, overview::overview),
    Route::new(GET, "/api/whoami", Mgmt, overview::whoami),
    Route::new(GET, "/api/aliveness-test/{vhost}", Mgmt, overview::aliveness),
    Route::new(GET, "/api/nodes", Monitor, overview::nodes),
    Route::new(GET, "/api/nodes/{node}", Monitor, overview::node),
    Route::new(GET, "/api/vhosts", Mgmt, overview::vhosts),
    // cluster.rs
    Route::new(GET, "/api/cluster-name", Mgmt, cluster::get_name),
    Route::new(PUT, "/api/cluster-name", Admin, cluster::put_name),
    Route::new(GET, "/api/extensions", Mgmt, cluster::extensions),
    Route::new(GET, "/api/feature-flags", Admin, cluster::feature_flags),
    // health.rs
    Route::new(GET, "/api/health/checks/alarms", Mgmt, health::alarms_cluster),
    Route::new(GET, "/api/health/checks/local-alarms", Mgmt, health::alarms_local),
    Route::new(
        GET,
        "/api/health/checks/port-listener/{port}",
        Mgmt,
        health::port_listener,
    ),
    Route::new(
        GET,
        "/api/health/checks/protocol-listener/{protocol}",
        Mgmt,
        health::protocol_listener,
    ),
    Route::new(GET, "/api/health/checks/virtual-hosts", Mgmt, health::virtual_hosts),
    Route::new(
        GET,
        "/api/health/checks/node-is-quorum-critical",
        Mgmt,
        health::not_critical,
    ),
    Route::new(
        GET,
        "/api/health/checks/node-is-mirror-sync-critical",
        Mgmt,
        health::not_critical,
    ),
    Route::new(
        GET,
        "/api/health/checks/certificate-expiration/{within}/{unit}",
        Mgmt,
        health::certificate_expiration,
    ),
    // exchanges.rs
    Route::new(GET, "/api/exchanges", Mgmt, exchanges::list_all),
    Route::new(GET, "/api/exchanges/{vhost}", Mgmt, exchanges::list_vhost),
    Route::new(GET, "/api/exchanges/{vhost}/{name}", Mgmt, exchanges::get),
    Route::new(PUT, "/api/exchanges/{vhost}/{name}", Mgmt, exchanges::put),
    Route::new(DELETE, "/api/exchanges/{vhost}/{name}", Mgmt, exchanges::delete),
    Route::new(POST, "/api/exchanges/{vhost}/{name}/publish", Mgmt, exchanges::publish),
    Route::new(
        GET,
        "/api/exchanges/{vhost}/{name}/bindings/source",
        Mgmt,
        bindings::by_source,
    ),
    Route::new(
        GET,
        "/api/exchanges/{vhost}/{name}/bindings/destination",
        Mgmt,
        bindings::by_destination,
    ),
    // queues.rs
    Route::new(GET, "/api/queues", Mgmt, queues::list_all),
    Route::new(GET, "/api/queues/{vhost}", Mgmt, queues::list_vhost),
    Route::new(GET, "/api/queues/{vhost}/{name}", Mgmt, queues::get),
    Route::new(PUT, "/api/queues/{vhost}/{name}", Mgmt, queues::put),
    Route::new(DELETE, "/api/queues/{vhost}/{name}", Mgmt, queues::delete),
    Route::new(DELETE, "/api/queues/{vhost}/{name}/contents", Mgmt, queues::purge),
    Route::new(POST, "/api/queues/{vhost}/{name}/get", Mgmt, queues::get_messages),
    Route::new(PUT, "/api/queues/{vhost}/{name}/pause", Mgmt, queues::pause),
    Route::new(PUT, "/api/queues/{vhost}/{name}/resume", Mgmt, queues::resume),
    Route::new(POST, "/api/queues/{vhost}/{name}/actions", Admin, queues::actions),
    Route::new(GET, "/api/queues/{vhost}/{name}/bindings", Mgmt, bindings::by_queue),
    // bindings.rs
    Route::new(GET, "/api/bindings", Mgmt, bindings::list_all),
    Route::new(GET, "/api/bindings/{vhost}", Mgmt, bindings::list_vhost),
    Route::new(
        GET,
        "/api/bindings/{vhost}/e/{source}/q/{dest}",
        Mgmt,
        bindings::between_q,
    ),
    Route::new(
        POST,
        "/api/bindings/{vhost}/e/{source}/q/{dest}",
        Mgmt,
        bindings::create_q,
    ),
    Route::new(
        GET,
        "/api/bindings/{vhost}/e/{source}/q/{dest}/{props}",
        Mgmt,
        bindings::one_q,
    ),
    Route::new(
        DELETE,
        "/api/bindings/{vhost}/e/{source}/q/{dest}/{props}",
        Mgmt,
        bindings::delete_q,
    ),
    Route::new(
        GET,
        "/api/bindings/{vhost}/e/{source}/e/{dest}",
        Mgmt,
        bindings::between_e,
    ),
    Route::new(
        POST,
        "/api/bindings/{vhost}/e/{source}/e/{dest}",
        Mgmt,
        bindings::create_e,
    ),
    Route::new(
        GET,
        "/api/bindings/{vhost}/e/{source}/e/{dest}/{props}",
        Mgmt,
        bindings::one_e,
    ),
    Route::new(
        DELETE,
        "/api/bindings/{vhost}/e/{source}/e/{dest}/{props}",
        Mgmt,
        bindings::delete_e,
    ),
    // connections.rs: connections, channels, consumers
    Route::new(GET, "/api/connections", Mgmt, connections::list_all),
    Route::new(GET, "/api/vhosts/{vhost}/connections", Mgmt, connections::list_vhost),
    Route::new(GET, "/api/connections/username/{user}", Mgmt, connections::of_user),
    Route::new(
        DELETE,
        "/api/connections/username/{user}",
        Mgmt,
        connections::close_of_user,
    ),
    Route::new(GET, "/api/connections/{name}", Mgmt, connections::get),
    Route::new(DELETE, "/api/connections/{name}", Mgmt, connections::close),
    Route::new(GET, "/api/connections/{name}/channels", Mgmt, connections::channels_of),
    Route::new(GET, "/api/channels", Mgmt, connections::channels),
    Route::new(GET, "/api/vhosts/{vhost}/channels", Mgmt, connections::channels_vhost),
    Route::new(GET, "/api/channels/{name}", Mgmt, connections::channel),
    Route::new(GET, "/api/consumers", Mgmt, connections::consumers),
    Route::new(GET, "/api/consumers/{vhost}", Mgmt, connections::consumers_vhost),
    // users.rs
    Route::new(GET, "/api/users", Admin, users::list),
    Route::new(GET, "/api/users/without-permissions", Admin, users::without_permissions),
    Route::new(POST, "/api/users/bulk-delete", Admin, users::bulk_delete),
    Route::new(GET, "/api/users/{user}", Admin, users::get),
    Route::new(PUT, "/api/users/{user}", Admin, users::put),
    Route::new(DELETE, "/api/users/{user}", Admin, users::delete),
    Route::new(GET, "/api/auth/hash_password/{password}", Admin, users::hash_password),
    // permissions.rs
    Route::new(GET, "/api/permissions", Admin, permissions::list::<Perms>),
    Route::new(GET, "/api/permissions/{vhost}/{user}", Admin, permissions::get).any_vhost(),
    Route::new(PUT, "/api/permissions/{vhost}/{user}", Admin, permissions::put).any_vhost(),
    Route::new(DELETE, "/api/permissions/{vhost}/{user}", Admin, permissions::delete).any_vhost(),
    Route::new(
        GET,
        "/api/vhosts/{vhost}/permissions",
        Admin,
        permissions::of_vhost::<Perms>,
    )
    .any_vhost(),
    Route::new(
        GET,
        "/api/users/{user}/permissions",
        Admin,
        permissions::of_user::<Perms>,
    ),
    // topic_permissions.rs
    Route::new(GET, "/api/topic-permissions", Admin, permissions::list::<Topic>),
    Route::new(
        GET,
        "/api/topic-permissions/{vhost}/{user}",
        Admin,
        topic_permissions::get,
    )
    .any_vhost(),
    Route::new(
        PUT,
        "/api/topic-permissions/{vhost}/{user}",
        Admin,
        topic_permissions::put,
    )
    .any_vhost(),
    Route::new(
        DELETE,
        "/api/topic-permissions/{vhost}/{user}",
        Admin,
        topic_permissions::delete,
    )
    .any_vhost(),
    Route::new(
        GET,
        "/api/topic-permissions/{vhost}/{user}/{exchange}",
        Admin,
        topic_permissions::get,
    )
    .any_vhost(),
    Route::new(
        PUT,
        "/api/topic-permissions/{vhost}/{user}/{exchange}",
        Admin,
        topic_permissions::put,
    )
    .any_vhost(),
    Route::new(
        DELETE,
        "/api/topic-permissions/{vhost}/{user}/{exchange}",
        Admin,
        topic_permissions::delete_one,
    )
    .any_vhost(),
    Route::new(
        GET,
        "/api/vhosts/{vhost}/topic-permissions",
        Admin,
        permissions::of_vhost::<Topic>,
    )
    .any_vhost(),
    Route::new(
        GET,
        "/api/users/{user}/topic-permissions",
        Admin,
        permissions::of_user::<Topic>,
    ),
    // vhosts.rs: vhost create/delete, vhost limits, user limits
    Route::new(GET, "/api/vhosts/{vhost}", Mgmt, overview::vhost),
    Route::new(PUT, "/api/vhosts/{vhost}", Admin, vhosts::put).any_vhost(),
    Route::new(DELETE, "/api/vhosts/{vhost}", Admin, vhosts::delete).any_vhost(),
    Route::new(GET, "/api/vhost-limits", Mgmt, vhosts::limits_all),
    Route::new(GET, "/api/vhost-limits/{vhost}", Mgmt, vhosts::limits_vhost),
    Route::new(PUT, "/api/vhost-limits/{vhost}/{name}", Admin, vhosts::put_limit).any_vhost(),
    Route::new(DELETE, "/api/vhost-limits/{vhost}/{name}", Admin, vhosts::delete_limit).any_vhost(),
    Route::new(GET, "/api/user-limits", Admin, vhosts::user_limits_all),
    Route::new(GET, "/api/user-limits/{user}", Admin, vhosts::user_limits_of),
    Route::new(PUT, "/api/user-limits/{user}/{name}", Admin, vhosts::put_user_limit),
    Route::new(
        DELETE,
        "/api/user-limits/{user}/{name}",
        Admin,
        vhosts::delete_user_limit,
    ),
    // policies.rs: policies (policymaker) and operator policies (administrator)
    Route::new(GET, "/api/policies", Policy, policies::list_all),
    Route::new(GET, "/api/policies/{vhost}", Policy, policies::list_vhost),
    Route::new(GET, "/api/policies/{vhost}/{name}", Policy, policies::get_one),
    Route::new(PUT, "/api/policies/{vhost}/{name}", Policy, policies::put_one),
    Route::new(DELETE, "/api/policies/{vhost}/{name}", Policy, policies::delete_one),
    Route::new(GET, "/api/operator-policies", Admin, policies::op_list_all),
    Route::new(GET, "/api/operator-policies/{vhost}", Admin, policies::op_list_vhost),
    Route::new(
        GET,
        "/api/operator-policies/{vhost}/{name}",
        Admin,
        policies::op_get_one,
    ),
    Route::new(
        PUT,
        "/api/operator-policies/{vhost}/{name}",
        Admin,
        policies::op_put_one,
    ),
    Route::new(
        DELETE,
        "/api/operator-policies/{vhost}/{name}",
        Admin,
        policies::op_delete_one,
    ),
    // parameters.rs: runtime and global parameters, definitions
    Route::new(GET, "/api/parameters", Policy, parameters::list_all),
    Route::new(GET, "/api/parameters/{component}", Policy, parameters::list_component),
    Route::new(
        GET,
        "/api/parameters/{component}/{vhost}",
        Policy,
        parameters::list_component_vhost,
    ),
    Route::new(
        GET,
        "/api/parameters/{component}/{vhost}/{name}",
        Policy,
        parameters::get,
    ),
    Route::new(
        PUT,
        "/api/parameters/{component}/{vhost}/{name}",
        Policy,
        parameters::put,
    ),
    Route::new(
        DELETE,
        "/api/parameters/{component}/{vhost}/{name}",
        Policy,
        parameters::delete,
    ),
    // shovels.rs: shovel_management's status and restart
    Route::new(GET, "/api/shovels", Mgmt, shovels::list_all),
    Route::new(GET, "/api/shovels/{vhost}", Mgmt, shovels::list_vhost),
    Route::new(
        DELETE,
        "/api/shovels/vhost/{vhost}/{name}/restart",
        Policy,
        shovels::restart,
    ),
    // federation.rs: federation_management's link status and restart
    Route::new(GET, "/api/federation-links", Monitor, federation::list_all),
    Route::new(
        GET,
        "/api/federation-links/state/down",
        Monitor,
        federation::list_all_down,
    ),
    Route::new(GET, "/api/federation-links/{vhost}", Monitor, federation::list_vhost),
    Route::new(
        GET,
        "/api/federation-links/{vhost}/state/down",
        Monitor,
        federation::list_vhost_down,
    ),
    Route::new(
        DELETE,
        "/api/federation-links/vhost/{vhost}/{id}/{node}/restart",
        Policy,
        federation::restart,
    ),
    Route::new(GET, "/api/global-parameters", Admin, parameters::global_list),
    Route::new(GET, "/api/global-parameters/{name}", Admin, parameters::global_get),
    Route::new(PUT, "/api/global-parameters/{name}", Admin, parameters::global_put),
    Route::new(
        DELETE,
        "/api/global-parameters/{name}",
        Admin,
        parameters::global_delete,
    ),
    Route::new(GET, "/api/definitions", Admin, parameters::export_all),
    Route::new(POST, "/api/definitions", Admin, parameters::import_all).large_body(DEFINITIONS_BODY_BYTES_MAX),
    Route::new(GET, "/api/definitions/{vhost}", Admin, parameters::export_vhost).any_vhost(),
    Route::new(POST, "/api/definitions/{vhost}", Admin, parameters::import_vhost)
        .any_vhost()
        .large_body(DEFINITIONS_BODY_BYTES_MAX),
    // metrics.rs (also open on the metrics listener)
    Route::new(GET, "/metrics", Mgmt, metrics::metrics),
    Route::new(GET, "/metrics/detailed", Mgmt, metrics::detailed),
    // static_ui.rs
    Route::new(GET, "/", Open, static_ui::index),
    Route::new(GET, "/index.html", Open, static_ui::index),
    Route::new(GET, "/{file}", Open, static_ui::file),
];

/// Finds the route for a request: 404 when no path matches, 405 when the
/// path exists with other methods.
pub(crate) fn find(method: &Method, path: &str) -> Result<(&'static Route, Params), ApiError> {
    let path = if path.len() > 1 {
        path.trim_end_matches('/')
    } else {
        path
    };
    let segs: Vec<&str> = path.split('/').collect();
    let mut path_matched = false;
    for r in ROUTES {
        let Some(params) = matches(r.path, &segs) else { continue };
        if r.method == *method || (*method == Method::HEAD && r.method == Method::GET) {
            return Ok((r, params));
        }
        path_matched = true;
    }
    Err(if path_matched {
        ApiError::method_not_allowed()
    } else {
        ApiError::not_found()
    })
}

fn matches(pattern: &'static str, segs: &[&str]) -> Option<Params> {
    let pat: Vec<&'static str> = pattern.split('/').collect();
    if pat.len() != segs.len() {
        return None;
    }
    let mut params = Vec::new();
    for (p, s) in pat.iter().zip(segs) {
        if let Some(name) = p.strip_prefix('{').and_then(|p| p.strip_suffix('}')) {
            if s.is_empty() {
                return None;
            }
            params.push((name, decode(s)));
        } else if p != s {
            return None;
        }
    }
    Some(params)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_percent_decoded_and_literals_win() {
        let (r, p) = find(&Method::GET, "/api/queues/%2F/my%20q").unwrap();
        assert_eq!(r.path, "/api/queues/{vhost}/{name}");
        assert_eq!(p, vec![("vhost", "/".to_string()), ("name", "my q".to_string())]);
        let (r, _) = find(&Method::GET, "/api/users/without-permissions").unwrap();
        assert_eq!(r.path, "/api/users/without-permissions");
        let (r, p) = find(&Method::GET, "/api/queues/").unwrap();
        assert_eq!((r.path, p.len()), ("/api/queues", 0));
        let (r, p) = find(&Method::DELETE, "/api/bindings/%2F/e/x/q/q1/a.b~xyz").unwrap();
        assert_eq!(r.path, "/api/bindings/{vhost}/e/{source}/q/{dest}/{props}");
        assert_eq!(p[3], ("props", "a.b~xyz".to_string()));
    }

    #[test]
    fn unknown_paths_404_and_wrong_methods_405() {
        assert_eq!(find(&Method::GET, "/api/nothing").unwrap_err().status, 404);
        assert_eq!(find(&Method::POST, "/api/overview").unwrap_err().status, 405);
        assert_eq!(find(&Method::POST, "/api/queues/%2F/q").unwrap_err().status, 405);
        assert!(find(&Method::HEAD, "/api/overview").is_ok());
    }

    #[test]
    fn vhost_checks() {
        let (r, _) = find(&Method::PUT, "/api/permissions/%2F/u").unwrap();
        assert!(!r.checks_vhost());
        let (r, _) = find(&Method::GET, "/api/queues/%2F").unwrap();
        assert!(r.checks_vhost());
    }
}
