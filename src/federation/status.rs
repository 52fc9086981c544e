//! What the federation links report: each link's state, kept on shard 0 for
//! `GET /api/federation-links` (the tasks write it, the API reads it), in the
//! shape of RabbitMQ's `rabbit_federation_status` as its management plugin
//! serves it.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value};

use crate::links::shown::{now_secs, timestamp};

/// Exchange or queue federation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    Exchange,
    Queue,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Exchange => "exchange",
            Kind::Queue => "queue",
        }
    }
}

/// One link: the federated exchange or queue (vhost, kind, name) and the
/// upstream it receives from.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LinkKey {
    pub vhost: String,
    pub kind: Kind,
    pub name: String,
    pub upstream: String,
}

impl LinkKey {
    /// RabbitMQ's link `id`: 8 hex digits of a hash of the key (FNV-1a
    /// here, stable across restarts and builds).
    pub fn id(&self) -> String {
        let mut h: u32 = 0x811c_9dc5;
        for part in [&self.vhost, self.kind.as_str(), &self.name, &self.upstream] {
            for b in part.bytes().chain([0]) {
                h ^= u32::from(b);
                h = h.wrapping_mul(0x0100_0193);
            }
        }
        format!("{h:08x}")
    }
}

/// RabbitMQ's link states.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State {
    Starting,
    /// With the local connection's name.
    Running {
        local_connection: String,
    },
    /// The last error; the link starts again after `reconnect-delay`.
    Error(String),
}

/// One link's status.
#[derive(Debug, Clone)]
pub struct Status {
    pub state: State,
    /// The upstream exchange or queue.
    pub upstream_name: String,
    /// The upstream URI connected to (or the first, before), credentials removed.
    pub uri: String,
    /// When the state last changed (seconds since the epoch).
    pub since_secs: u64,
    /// Queue links: the consumer tag on the upstream, and whether it
    /// consumes now (local consumers waiting) or is paused.
    pub consumer_tag: Option<String>,
    pub consuming: bool,
}

/// Every link's status and the operator's restarts.
#[derive(Debug, Default)]
pub struct Registry {
    pub statuses: BTreeMap<LinkKey, Status>,
    /// Asked through `DELETE /api/federation-links/vhost/{vhost}/{id}/{node}/restart`.
    pub restarts: BTreeSet<LinkKey>,
}

impl Registry {
    pub fn set(&mut self, key: &LinkKey, state: State, upstream_name: &str, uri: &str) {
        let s = self.statuses.entry(key.clone()).or_insert_with(|| Status {
            state: State::Starting,
            upstream_name: String::new(),
            uri: String::new(),
            since_secs: 0,
            consumer_tag: None,
            consuming: false,
        });
        s.state = state;
        s.upstream_name = upstream_name.to_owned();
        s.uri = uri.to_owned();
        s.since_secs = now_secs();
    }

    pub fn find_id(&self, vhost: &str, id: &str) -> Option<LinkKey> {
        self.statuses.keys().find(|k| k.vhost == vhost && k.id() == id).cloned()
    }
}

impl Status {
    /// As `GET /api/federation-links` shows a link (rabbit_federation_mgmt's
    /// `format`: node first, then the link's identity, status, uri, timestamp).
    pub fn to_json(&self, key: &LinkKey, node: &str) -> Value {
        let mut o = Map::new();
        o.insert("node".into(), node.into());
        match key.kind {
            Kind::Exchange => {
                o.insert("exchange".into(), key.name.clone().into());
                o.insert("upstream_exchange".into(), self.upstream_name.clone().into());
            }
            Kind::Queue => {
                o.insert("queue".into(), key.name.clone().into());
                o.insert("upstream_queue".into(), self.upstream_name.clone().into());
                o.insert(
                    "consumer_tag".into(),
                    self.consumer_tag.clone().unwrap_or_default().into(),
                );
                // ringmq's: whether the link consumes upstream now.
                o.insert("consuming".into(), self.consuming.into());
            }
        }
        o.insert("type".into(), key.kind.as_str().into());
        o.insert("vhost".into(), key.vhost.clone().into());
        o.insert("upstream".into(), key.upstream.clone().into());
        o.insert("id".into(), key.id().into());
        match &self.state {
            State::Starting => {
                o.insert("status".into(), "starting".into());
            }
            State::Running { local_connection } => {
                o.insert("status".into(), "running".into());
                o.insert("local_connection".into(), local_connection.clone().into());
            }
            State::Error(e) => {
                o.insert("status".into(), "error".into());
                o.insert("error".into(), e.clone().into());
            }
        }
        o.insert("uri".into(), self.uri.clone().into());
        o.insert("timestamp".into(), timestamp(self.since_secs).into());
        Value::Object(o)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_stable_and_distinct() {
        let k = |u: &str| LinkKey {
            vhost: "/".into(),
            kind: Kind::Exchange,
            name: "x".into(),
            upstream: u.into(),
        };
        assert_eq!(k("a").id(), k("a").id());
        assert_ne!(k("a").id(), k("b").id());
        assert_eq!(k("a").id().len(), 8);
        let mut r = Registry::default();
        r.set(&k("a"), State::Error("boom".into()), "x", "amqp://h");
        let j = r.statuses[&k("a")].to_json(&k("a"), "n");
        assert_eq!(
            (j["status"].as_str(), j["error"].as_str()),
            (Some("error"), Some("boom"))
        );
        assert_eq!(r.find_id("/", &k("a").id()), Some(k("a")));
    }
}
