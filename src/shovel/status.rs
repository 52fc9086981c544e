//! What the shovels report: each one's state and last error, kept on shard
//! 0 for `GET /api/shovels` (the HTTP API reads it; the tasks write it), and
//! the operator's requests to the supervisor (restart one).

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{json, Map, Value};

use crate::core::model::shovel::{ShovelDef, ShovelDest, ShovelSource};
use crate::links::shown::timestamp;
pub use crate::links::shown::{now_secs, without_credentials};

/// A shovel by its vhost and name.
pub type ShovelKey = (String, String);

/// RabbitMQ's three states of a dynamic shovel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Connecting and declaring.
    Starting,
    /// Moving messages.
    Running,
    /// Failed (`reason` says why), waiting out `reconnect-delay` to start
    /// again; or done for good (a reconnect delay of 0).
    Terminated,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Starting => "starting",
            State::Running => "running",
            State::Terminated => "terminated",
        }
    }
}

/// One shovel's status.
#[derive(Debug, Clone)]
pub struct Status {
    pub state: State,
    /// The last error, while terminated.
    pub reason: Option<String>,
    /// The destination told us to stop publishing (connection.blocked).
    pub blocked: bool,
    /// When the state last changed (seconds since the epoch).
    pub since_secs: u64,
    /// The URIs connected to, credentials removed (running only).
    pub src_uri: String,
    pub dest_uri: String,
    pub def: ShovelDef,
}

/// The shovels' statuses and the requests for the supervisor.
#[derive(Debug, Default)]
pub struct Registry {
    pub statuses: BTreeMap<ShovelKey, Status>,
    /// Restarts asked for through the API (`DELETE .../restart`).
    pub restarts: BTreeSet<ShovelKey>,
    /// Shovels done with `src-delete-after`: their parameters are deleted.
    pub finished: BTreeSet<ShovelKey>,
}

impl Status {
    /// As RabbitMQ's shovel_management shows one: the endpoints only while
    /// running, `reason` while terminated; `blocked_status` as 3.12+ adds it.
    pub fn to_json(&self, vhost: &str, name: &str, node: &str) -> Value {
        let mut o = Map::new();
        o.insert("node".into(), node.into());
        o.insert("timestamp".into(), timestamp(self.since_secs).into());
        o.insert("name".into(), name.into());
        o.insert("vhost".into(), vhost.into());
        o.insert("type".into(), "dynamic".into());
        o.insert("state".into(), self.state.as_str().into());
        match self.state {
            State::Running => {
                let blocked = if self.blocked { "blocked" } else { "running" };
                o.insert("blocked_status".into(), blocked.into());
                o.insert("src_uri".into(), self.src_uri.clone().into());
                o.insert("src_protocol".into(), "amqp091".into());
                o.insert("dest_protocol".into(), "amqp091".into());
                o.insert("dest_uri".into(), self.dest_uri.clone().into());
                match &self.def.src {
                    ShovelSource::Queue(q) => {
                        o.insert("src_queue".into(), q.clone().into());
                    }
                    ShovelSource::Exchange { exchange, key } => {
                        o.insert("src_exchange".into(), exchange.clone().into());
                        o.insert("src_exchange_key".into(), key.clone().into());
                    }
                }
                match &self.def.dest {
                    ShovelDest::Queue(q) => {
                        o.insert("dest_queue".into(), q.clone().into());
                    }
                    ShovelDest::Exchange { exchange, key } => {
                        o.insert("dest_exchange".into(), exchange.clone().into());
                        if let Some(k) = key {
                            o.insert("dest_exchange_key".into(), k.clone().into());
                        }
                    }
                    ShovelDest::AsPublished | ShovelDest::Http => {}
                }
            }
            State::Terminated => {
                o.insert("reason".into(), json!(self.reason.clone().unwrap_or_default()));
            }
            State::Starting => {}
        }
        Value::Object(o)
    }
}
