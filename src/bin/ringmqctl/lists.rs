//! The kinds `list` knows: where each lives in the API and which columns it shows by
//! default (those of `rabbitmqctl list_*` where the API has them).

use crate::client::api_path;

pub struct ListKind {
    pub name: &'static str,
    /// The collection's path segment under `/api`.
    pub segment: &'static str,
    /// Listed per vhost (`/api/SEGMENT/VHOST`) unless `--all-vhosts`.
    pub per_vhost: bool,
    /// One vhost's list is `/api/vhosts/VHOST/SEGMENT` instead (permissions:
    /// `/api/permissions/VHOST/USER` is one user's).
    pub under_vhost: bool,
    pub columns: &'static [&'static str],
}

const KINDS: &[ListKind] = &[
    ListKind {
        name: "queues",
        segment: "queues",
        per_vhost: true,
        under_vhost: false,
        columns: &[
            "name",
            "type",
            "durable",
            "messages_ready",
            "messages_unacknowledged",
            "messages",
            "consumers",
            "state",
        ],
    },
    ListKind {
        name: "exchanges",
        segment: "exchanges",
        per_vhost: true,
        under_vhost: false,
        columns: &["name", "type", "durable", "auto_delete", "internal"],
    },
    ListKind {
        name: "bindings",
        segment: "bindings",
        per_vhost: true,
        under_vhost: false,
        columns: &["source", "destination", "destination_type", "routing_key", "arguments"],
    },
    ListKind {
        name: "connections",
        segment: "connections",
        per_vhost: false,
        under_vhost: false,
        columns: &[
            "name",
            "user",
            "vhost",
            "channels",
            "state",
            "client_properties.product",
        ],
    },
    ListKind {
        name: "channels",
        segment: "channels",
        per_vhost: false,
        under_vhost: false,
        columns: &[
            "name",
            "user",
            "vhost",
            "consumer_count",
            "messages_unacknowledged",
            "prefetch_count",
            "confirm",
        ],
    },
    ListKind {
        name: "consumers",
        segment: "consumers",
        per_vhost: true,
        under_vhost: false,
        columns: &[
            "queue.name",
            "channel_details.name",
            "consumer_tag",
            "ack_required",
            "prefetch_count",
            "exclusive",
        ],
    },
    ListKind {
        name: "users",
        segment: "users",
        per_vhost: false,
        under_vhost: false,
        columns: &["name", "tags"],
    },
    ListKind {
        name: "vhosts",
        segment: "vhosts",
        per_vhost: false,
        under_vhost: false,
        columns: &["name", "description", "messages", "tracing"],
    },
    ListKind {
        name: "policies",
        segment: "policies",
        per_vhost: true,
        under_vhost: false,
        columns: &["name", "pattern", "apply-to", "priority", "definition"],
    },
    ListKind {
        name: "operator_policies",
        segment: "operator-policies",
        per_vhost: true,
        under_vhost: false,
        columns: &["name", "pattern", "apply-to", "priority", "definition"],
    },
    ListKind {
        name: "permissions",
        segment: "permissions",
        per_vhost: true,
        under_vhost: true,
        columns: &["user", "configure", "write", "read"],
    },
    ListKind {
        name: "topic_permissions",
        segment: "topic-permissions",
        per_vhost: true,
        under_vhost: true,
        columns: &["user", "exchange", "write", "read"],
    },
    ListKind {
        name: "user_limits",
        segment: "user-limits",
        per_vhost: false,
        under_vhost: false,
        columns: &["user", "value"],
    },
    ListKind {
        name: "parameters",
        segment: "parameters",
        per_vhost: false,
        under_vhost: false,
        columns: &["component", "vhost", "name", "value"],
    },
    // RabbitMQ's `rabbitmqctl shovel_status`: each shovel's state and last error.
    ListKind {
        name: "shovels",
        segment: "shovels",
        per_vhost: true,
        under_vhost: false,
        columns: &["name", "vhost", "type", "state", "src_uri", "dest_uri", "reason"],
    },
    // The federation plugin's `rabbitmqctl federation_status`: each link's
    // state (`ringmqctl federation_status` too).
    ListKind {
        name: "federation_links",
        segment: "federation-links",
        per_vhost: true,
        under_vhost: false,
        columns: &[
            "type",
            "vhost",
            "exchange",
            "queue",
            "upstream",
            "status",
            "uri",
            "error",
            "timestamp",
        ],
    },
    ListKind {
        name: "vhost_limits",
        segment: "vhost-limits",
        per_vhost: true,
        under_vhost: false,
        columns: &["vhost", "value"],
    },
];

pub fn find(name: &str) -> Option<&'static ListKind> {
    let name = name.replace('-', "_");
    KINDS.iter().find(|k| k.name == name)
}

pub fn names() -> Vec<&'static str> {
    KINDS.iter().map(|k| k.name).collect()
}

impl ListKind {
    /// The collection's URL: one vhost, or all of them.
    pub fn path(&self, vhost: Option<&str>) -> String {
        match (self.per_vhost, vhost) {
            (true, Some(v)) if self.under_vhost => api_path(&["vhosts", v, self.segment]),
            (true, Some(v)) => api_path(&[self.segment, v]),
            _ => api_path(&[self.segment]),
        }
    }

    /// The default columns; a `vhost` column first when listing across vhosts.
    pub fn default_columns(&self, all_vhosts: bool) -> Vec<String> {
        let mut cols: Vec<String> = self.columns.iter().map(|c| c.to_string()).collect();
        let shows_vhost = cols.iter().any(|c| c == "vhost");
        if self.per_vhost && all_vhosts && !shows_vhost {
            cols.insert(0, "vhost".into());
        }
        cols
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_per_vhost_and_global() {
        let q = find("queues").unwrap();
        assert_eq!(q.path(Some("/")), "/api/queues/%2F");
        assert_eq!(q.path(None), "/api/queues");
        assert_eq!(find("users").unwrap().path(Some("/")), "/api/users");
        assert_eq!(
            find("permissions").unwrap().path(Some("v")),
            "/api/vhosts/v/permissions"
        );
        assert_eq!(
            find("operator-policies").unwrap().path(Some("/")),
            "/api/operator-policies/%2F"
        );
        assert_eq!(find("vhost_limits").unwrap().path(None), "/api/vhost-limits");
        assert_eq!(
            find("topic_permissions").unwrap().path(Some("/")),
            "/api/vhosts/%2F/topic-permissions"
        );
    }

    #[test]
    fn all_vhosts_adds_a_vhost_column_once() {
        let q = find("queues").unwrap();
        assert_eq!(q.default_columns(true)[0], "vhost");
        assert_eq!(q.default_columns(false)[0], "name");
        let l = find("vhost_limits").unwrap();
        assert_eq!(l.default_columns(true).iter().filter(|c| *c == "vhost").count(), 1);
        assert!(find("users")
            .unwrap()
            .default_columns(true)
            .iter()
            .all(|c| c != "vhost"));
    }
}
