//! The one supervisor of a broker's federation links, on shard 0's loop.
//!
//! Every [`POLL`] it reads the model: the `federation-upstream(-set)`
//! parameters, and each exchange and queue whose policy names an upstream
//! or a set. A link runs per (exchange or queue, upstream): started when it
//! appears, restarted when its upstream's value, the policy or the
//! exchange's or queue's declaration changes (or the API asks), stopped
//! when it goes. While a link runs, the supervisor sends it what changes
//! without a restart: an exchange's set of binding keys, a queue's "wants
//! messages" (from the queue's owner shard: its consumers and ready count).
//!
//! Polling rather than being told, as the shovel supervisor: policies,
//! parameters and bindings change through AMQP, the API, definitions and
//! other shards' logged ops, all of which end in the model read here; the
//! look is a borrow and, per federated exchange, a pass over its bindings.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::bindings::BindingSet;
use super::exchange_link::{self, ExchangeFacts};
use super::link::{LinkCtx, Report};
use super::queue_link::{self, QueueFacts};
use super::status::{Kind, LinkKey, State};
use super::upstreams::{for_policy, VhostParams};
use crate::core::mgmt::View;
use crate::core::model::federation::Upstream;
use crate::links::connect::InternalLogin;
use crate::links::connect::Local;
use crate::links::shown::without_credentials;
use crate::shard::Shared;

/// How often the model is looked at.
pub const POLL: Duration = Duration::from_millis(200);

/// The shortest pause between two runs of a failing link.
const RESTART_DELAY_MIN: Duration = Duration::from_millis(100);

#[derive(Debug, Clone, PartialEq)]
enum Facts {
    Exchange(ExchangeFacts),
    Queue(QueueFacts),
}

/// What a link runs with; a change restarts it.
#[derive(Debug, Clone, PartialEq)]
struct Config {
    upstream: Upstream,
    policy: String,
    facts: Facts,
}

/// A link the model asks for, and what it sends a running one.
struct Wanted {
    config: Config,
    bindings: BindingSet,
}

enum Control {
    Exchange(watch::Sender<BindingSet>),
    Queue(watch::Sender<bool>),
}

struct Task {
    config: Config,
    ctx: LinkCtx,
    control: Control,
    handle: JoinHandle<()>,
}

fn has_federation(def: &serde_json::Map<String, Value>) -> bool {
    def.contains_key("federation-upstream") || def.contains_key("federation-upstream-set")
}

/// Every link the model asks for.
fn wanted(shared: &Shared) -> (BTreeMap<LinkKey, Wanted>, String) {
    let b = shared.broker.borrow();
    let view = View::of(&b);
    let mut params: BTreeMap<String, VhostParams> = BTreeMap::new();
    for (v, p) in view.parameters(None, Some("federation-upstream")) {
        params
            .entry(v.to_string())
            .or_default()
            .upstreams
            .push((p.name, p.value));
    }
    for (v, p) in view.parameters(None, Some("federation-upstream-set")) {
        params.entry(v.to_string()).or_default().sets.push((p.name, p.value));
    }
    let mut out = BTreeMap::new();
    for vhost in view.vhosts() {
        let Some(params) = params.get(vhost.name()) else {
            continue;
        };
        for x in vhost.exchanges() {
            // Not the default exchange (nothing binds to it), nor internal
            // ones (a link's helper exchange among them), as RabbitMQ.
            let Some(def) = x.policy_definition().filter(|d| has_federation(d)) else {
                continue;
            };
            if x.name().is_empty() || x.internal() {
                continue;
            }
            let facts = Facts::Exchange(ExchangeFacts {
                kind: x.type_name().to_owned(),
                durable: x.durable(),
                auto_delete: x.auto_delete(),
                internal: x.internal(),
                arguments: x.arguments().to_bytes(),
            });
            let bindings: BindingSet = x.binding_keys().map(|(k, a)| (k.to_owned(), a.to_bytes())).collect();
            for (name, upstream) in for_policy(def, params) {
                let key = LinkKey {
                    vhost: vhost.name().to_owned(),
                    kind: Kind::Exchange,
                    name: x.name().to_owned(),
                    upstream: name,
                };
                let config = Config {
                    upstream,
                    policy: x.policy_name().unwrap_or_default().to_owned(),
                    facts: facts.clone(),
                };
                let bindings = bindings.clone();
                out.insert(key, Wanted { config, bindings });
            }
        }
        for q in vhost.queues() {
            let Some(def) = q.policy_definition().filter(|d| has_federation(d)) else {
                continue;
            };
            // Streams are not federated (RabbitMQ 3.10 federates classic
            // and quorum queues).
            if q.kind_name() == "stream" {
                continue;
            }
            let facts = Facts::Queue(QueueFacts {
                durable: q.durable(),
                auto_delete: q.auto_delete(),
                arguments: q.arguments().to_bytes(),
            });
            for (name, upstream) in for_policy(def, params) {
                let key = LinkKey {
                    vhost: vhost.name().to_owned(),
                    kind: Kind::Queue,
                    name: q.name().to_owned(),
                    upstream: name,
                };
                let config = Config {
                    upstream,
                    policy: q.policy_name().unwrap_or_default().to_owned(),
                    facts: facts.clone(),
                };
                out.insert(
                    key,
                    Wanted {
                        config,
                        bindings: BindingSet::new(),
                    },
                );
            }
        }
    }
    (out, view.cluster_name())
}

/// Which federated queues want messages: asked of each queue's owner shard
/// (its consumers and counts are there). True while the queue has a
/// consumer of its own (priority 0 or more: not another link's) and no
/// ready message.
async fn queues_wanting(shared: &Shared, queues: Vec<(String, String)>) -> BTreeMap<(String, String), bool> {
    // Each shard looks up the federated queues by name (a broker with many
    // queues and a few federated ones pays for the few).
    let queues = Arc::new(queues);
    let job = Arc::new(move |s: &Shared| {
        let b = s.broker.borrow();
        let view = View::of(&b);
        let mut out = Vec::new();
        for (vhost, name) in queues.iter() {
            let Some(q) = view.vhost(vhost).and_then(|v| v.queue(name)) else {
                continue;
            };
            if q.owner() != view.shard() {
                continue;
            }
            let consumers = q.consumers().any(|c| c.priority() >= 0);
            out.push(((vhost.clone(), name.clone()), consumers && q.ready() == 0));
        }
        out
    });
    shared.on_every_shard(job).await.into_iter().flatten().collect()
}

/// Writes a link's progress into the registry.
struct Reporter {
    shared: Rc<Shared>,
    key: LinkKey,
    upstream_name: String,
    uri: String,
}

impl Reporter {
    fn set(&self, state: State) {
        (self.shared.federation.borrow_mut()).set(&self.key, state, &self.upstream_name, &self.uri);
    }
}

impl Report for Reporter {
    fn connected(&mut self, uri: &str) {
        self.uri = uri.to_owned();
    }

    fn running(&mut self, local_connection: &str) {
        self.set(State::Running {
            local_connection: local_connection.to_owned(),
        });
        tracing::info!(
            vhost = self.key.vhost,
            kind = self.key.kind.as_str(),
            name = self.key.name,
            upstream = self.key.upstream,
            uri = self.uri,
            "federation link running"
        );
    }

    fn consuming(&mut self, consumer_tag: &str, on: bool) {
        if let Some(s) = self.shared.federation.borrow_mut().statuses.get_mut(&self.key) {
            s.consumer_tag = Some(consumer_tag.to_owned());
            s.consuming = on;
        }
    }
}

enum ControlRx {
    Exchange(watch::Receiver<BindingSet>),
    Queue(watch::Receiver<bool>),
}

/// One link, run after run.
async fn run(shared: Rc<Shared>, ctx: LinkCtx, facts: Facts, mut control: ControlRx) {
    let upstream_name = match ctx.key.kind {
        Kind::Exchange => ctx.upstream.exchange.clone(),
        Kind::Queue => ctx.upstream.queue.clone(),
    }
    .unwrap_or_else(|| ctx.key.name.clone());
    let uri = ctx
        .upstream
        .uris
        .first()
        .map(|u| without_credentials(u))
        .unwrap_or_default();
    let mut rep = Reporter {
        shared,
        key: ctx.key.clone(),
        upstream_name,
        uri,
    };
    loop {
        rep.set(State::Starting);
        let r = match (&facts, &mut control) {
            (Facts::Exchange(f), ControlRx::Exchange(rx)) => exchange_link::run_once(&ctx, f, rx, &mut rep).await,
            (Facts::Queue(f), ControlRx::Queue(rx)) => queue_link::run_once(&ctx, f, rx, &mut rep).await,
            _ => unreachable!("a link's control matches its kind"),
        };
        let Err(e) = r else { return };
        let reason = e.to_string();
        tracing::warn!(
            vhost = ctx.key.vhost,
            kind = ctx.key.kind.as_str(),
            name = ctx.key.name,
            upstream = ctx.key.upstream,
            error = reason,
            "federation link failed"
        );
        rep.set(State::Error(reason));
        let delay = Duration::from_secs_f64(ctx.upstream.reconnect_delay_secs).max(RESTART_DELAY_MIN);
        tokio::time::sleep(delay).await;
    }
}

/// A link gone for good: its upstream queue and helper deleted (tried once).
async fn clean_up(ctx: LinkCtx) {
    let k = &ctx.key;
    match exchange_link::clean_up(&ctx).await {
        Ok(()) => tracing::info!(
            vhost = k.vhost,
            exchange = k.name,
            upstream = k.upstream,
            "federation link stopped: its upstream queue and exchange deleted"
        ),
        Err(e) => tracing::warn!(
            vhost = k.vhost,
            exchange = k.name,
            upstream = k.upstream,
            error = %e,
            "federation link stopped: its upstream queue and exchange could not be deleted"
        ),
    }
}

pub(crate) async fn supervise(shared: Rc<Shared>, amqp_addr: SocketAddr, login: InternalLogin) {
    let mut tasks: BTreeMap<LinkKey, Task> = BTreeMap::new();
    let node = crate::core::mgmt::node_name();
    loop {
        let (mut wanted, cluster) = wanted(&shared);
        // A queue with several upstreams is asked about once.
        let federated: Vec<(String, String)> = (wanted.keys())
            .filter(|k| k.kind == Kind::Queue)
            .map(|k| (k.vhost.clone(), k.name.clone()))
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        let wanting = if !federated.is_empty() {
            queues_wanting(&shared, federated).await
        } else {
            BTreeMap::new()
        };
        let restarts = std::mem::take(&mut shared.federation.borrow_mut().restarts);
        tasks.retain(|key, t| {
            let keep = !restarts.contains(key) && wanted.get(key).is_some_and(|w| w.config == t.config);
            if !keep {
                t.handle.abort();
            }
            if !wanted.contains_key(key) && key.kind == Kind::Exchange && !t.config.upstream.keep_resources {
                tokio::task::spawn_local(clean_up(t.ctx.clone()));
            }
            keep
        });
        (shared.federation.borrow_mut().statuses).retain(|key, _| wanted.contains_key(key));
        for (key, w) in std::mem::take(&mut wanted) {
            let run_now = wanting
                .get(&(key.vhost.clone(), key.name.clone()))
                .copied()
                .unwrap_or(false);
            if let Some(t) = tasks.get(&key) {
                match &t.control {
                    Control::Exchange(tx) => {
                        tx.send_if_modified(|b| {
                            let changed = *b != w.bindings;
                            if changed {
                                *b = w.bindings;
                            }
                            changed
                        });
                    }
                    Control::Queue(tx) => {
                        tx.send_if_modified(|r| std::mem::replace(r, run_now) != run_now);
                    }
                }
                continue;
            }
            let ctx = LinkCtx {
                key: key.clone(),
                upstream: w.config.upstream.clone(),
                local: Local {
                    amqp_addr,
                    vhost: key.vhost.clone(),
                    node: node.clone(),
                    login: login.clone(),
                },
                cluster: cluster.clone(),
                policy: w.config.policy.clone(),
            };
            let (control, rx) = match &w.config.facts {
                Facts::Exchange(_) => {
                    let (tx, rx) = watch::channel(w.bindings);
                    (Control::Exchange(tx), ControlRx::Exchange(rx))
                }
                Facts::Queue(_) => {
                    let (tx, rx) = watch::channel(run_now);
                    (Control::Queue(tx), ControlRx::Queue(rx))
                }
            };
            let handle = tokio::task::spawn_local(run(shared.clone(), ctx.clone(), w.config.facts.clone(), rx));
            tasks.insert(
                key,
                Task {
                    config: w.config,
                    ctx,
                    control,
                    handle,
                },
            );
        }
        tokio::time::sleep(POLL).await;
    }
}
