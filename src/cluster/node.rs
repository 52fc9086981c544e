//! A clustered node (`--clustering`), as LavinMQ runs one: it joins the
//! election; while another node leads it follows that leader's data
//! directory into its own ([`stream::follow`]) and relays its AMQP and HTTP
//! clients to the leader ([`relay`]); once it leads, it stops following and
//! the broker starts on its data directory, its store's changes recorded
//! for the followers ([`super::lead`]).
//!
//! The election, the stream and the relays run on a thread of their own
//! ("ringmq-cluster", a tokio current-thread runtime); the broker runs on the
//! calling thread once this node leads, as it would without clustering.

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::sync::watch;

use super::dir_files::DirFiles;
use super::elect::{self, Keys, Status};
use super::election::{ElectionConfig, Leader};
use super::etcd::{Etcd, EtcdError};
use super::lead::{self, Leading};
use super::record::Recorder;
use super::relay::{self, LeaderAddr};
use super::stream;
use crate::shard::{ConfirmGate, Services};

/// The election's lease: a dead leader is replaced about this long after.
pub const TTL_MS: u64 = 2_000;
/// Calls to etcd end after this long.
const ETCD_TIMEOUT: Duration = Duration::from_secs(2);
/// A follower reconnects to the leader after this long.
const FOLLOW_RETRY: Duration = Duration::from_millis(200);

/// What a node needs to know (from `[clustering]` and the listeners).
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// Its advertised URI (`tcp://host:port`): its name in etcd, and where
    /// followers reach it.
    pub me: String,
    /// Where it listens for followers while it leads (`bind:port`).
    pub repl_listen: String,
    pub etcd_endpoints: Vec<String>,
    pub etcd_prefix: String,
    pub min_isr: u8,
    pub data_dir: PathBuf,
    /// Its clients' listeners (`bind:port`), relayed while it follows, and
    /// where other nodes' relays reach them (`host:port`, told in etcd).
    pub amqp: Endpoint,
    pub http: Option<Endpoint>,
}

#[derive(Debug, Clone)]
pub struct Endpoint {
    pub listen: String,
    pub advertised: String,
}

/// Where a node's clients connect, as etcd tells the other nodes.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct NodeInfo {
    pub amqp: String,
    pub http: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("etcd: {0}")]
    Etcd(#[from] EtcdError),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("the cluster's thread ended before this node led")]
    Stopped,
}

/// `host:port` of a `tcp://host:port` URI.
pub fn host_port(uri: &str) -> &str {
    uri.trim_start_matches("tcp://").trim_end_matches('/')
}

/// `{prefix}/nodes/{uri}`: a node's [`NodeInfo`].
pub fn node_key(prefix: &str, uri: &str) -> Vec<u8> {
    format!("{}/nodes/{uri}", prefix.trim_end_matches('/')).into_bytes()
}

fn secret_key(prefix: &str) -> Vec<u8> {
    format!("{}/secret", prefix.trim_end_matches('/')).into_bytes()
}

/// How often the broker's thread hands its recorder the regions it wrote
/// with no group commit after them (acks written out by their timer).
const FLUSH_EVERY: Duration = Duration::from_millis(100);

/// A task on the broker's thread: the recorder reads what it keeps pending
/// into the log every [`FLUSH_EVERY`] (a barrier is what makes it read), so
/// the followers get it without waiting for the next group commit.
fn flusher() -> Services {
    Services::new(|_, _| {
        tokio::task::spawn_local(async {
            loop {
                tokio::time::sleep(FLUSH_EVERY).await;
                ringmq_store::changes::barrier();
            }
        });
        Box::pin(async { Ok(Vec::new()) })
    })
}

/// Runs the node: follows until it leads, then runs `serve` (the broker) on
/// this thread with the confirm gate of its replicas and the services it
/// needs beside the broker, and returns what it returns.
pub fn run(cfg: NodeConfig, serve: impl FnOnce(ConfirmGate, Services) -> std::io::Result<()>) -> Result<(), NodeError> {
    let (tx, rx) = std::sync::mpsc::channel();
    let thread_cfg = cfg.clone();
    std::thread::Builder::new()
        .name("ringmq-cluster".into())
        .spawn(move || {
            let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                Ok(rt) => rt,
                Err(e) => return tracing::error!(error = %e, "cannot start the cluster's runtime"),
            };
            let local = tokio::task::LocalSet::new();
            if let Err(e) = local.block_on(&rt, supervise(thread_cfg, tx)) {
                tracing::error!(error = %e, "clustering stopped: exiting");
                std::process::exit(1);
            }
        })?;
    let leading: Leading = rx.recv().map_err(|_| NodeError::Stopped)?;
    // Every change the broker makes from its start on (recovery's too) is
    // recorded: this thread is its one writer (one shard: `config`).
    let recorder = Recorder::new(&cfg.data_dir, leading.log.clone()).waking(leading.grew.clone());
    let synced = recorder.synced_handle();
    ringmq_store::changes::install(Box::new(recorder));
    let confirmable = leading.confirmable;
    let gate = ConfirmGate::new(
        move || {
            // What the commit just taken wrote is all told: read it into the log.
            ringmq_store::changes::synced();
            synced.load(Ordering::Acquire)
        },
        move |mark| {
            let mut rx = confirmable.clone();
            Box::pin(async move {
                // Closed only when the cluster's thread ends, and the process with it.
                let _ = rx.wait_for(|&c| c >= mark).await;
            })
        },
    );
    let served = serve(gate, flusher());
    lead::resign(&cfg, &Etcd::new(&cfg.etcd_endpoints, ETCD_TIMEOUT));
    Ok(served?)
}

/// Retries an etcd call until it succeeds (the node cannot go on without it).
async fn retry<T, F: std::future::Future<Output = Result<T, EtcdError>>>(what: &str, f: impl Fn() -> F) -> T {
    loop {
        match f().await {
            Ok(v) => return v,
            Err(e) => tracing::warn!(error = %e, "cannot {what}: trying again"),
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// The cluster's secret: made by the first node that asks.
async fn secret(etcd: &Etcd, prefix: &str) -> Result<Vec<u8>, EtcdError> {
    let mut fresh = [0u8; 32];
    let random = rustls::crypto::ring::default_provider().secure_random;
    random.fill(&mut fresh).expect("the system's random source");
    let hex: String = fresh.iter().map(|b| format!("{b:02x}")).collect();
    Ok(match etcd.create(&secret_key(prefix), hex.as_bytes(), 0).await? {
        Ok(_) => hex.into_bytes(),
        Err(kv) => kv.value,
    })
}

/// A follower's relays: bound once, pointed at whoever leads.
struct Relays {
    amqp: LeaderAddr,
    http: LeaderAddr,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Relays {
    async fn bind(cfg: &NodeConfig) -> std::io::Result<Relays> {
        let (amqp, http) = (LeaderAddr::default(), LeaderAddr::default());
        let mut tasks = Vec::new();
        for (ep, to) in [(Some(&cfg.amqp), &amqp), (cfg.http.as_ref(), &http)] {
            if let Some(ep) = ep {
                let listener = tokio::net::TcpListener::bind(&ep.listen).await?;
                tasks.push(tokio::task::spawn_local(relay::relay(listener, to.clone())));
            }
        }
        Ok(Relays { amqp, http, tasks })
    }
}

impl Drop for Relays {
    fn drop(&mut self) {
        self.tasks.iter().for_each(|t| t.abort());
    }
}

/// Following one leader: the stream into the data directory.
struct Following {
    leader: String,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Following {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn follow(cfg: &NodeConfig, leader: &str, secret: &[u8]) -> Following {
    let (addr, me, secret, dir) = (
        host_port(leader).to_string(),
        cfg.me.clone(),
        secret.to_vec(),
        cfg.data_dir.clone(),
    );
    tracing::info!(leader, "following");
    let task = tokio::task::spawn_local(async move {
        if let Err(e) = std::fs::create_dir_all(&dir) {
            tracing::error!(dir = %dir.display(), error = %e, "cannot make the data directory");
        }
        let mut files = DirFiles::new(&dir, &[]);
        let (applied, _) = watch::channel(0);
        stream::follow(addr, me, secret, &mut files, FOLLOW_RETRY, applied).await;
    });
    Following {
        leader: leader.to_string(),
        task,
    }
}

async fn supervise(cfg: NodeConfig, lead_tx: std::sync::mpsc::Sender<Leading>) -> Result<(), NodeError> {
    let etcd = Etcd::new(&cfg.etcd_endpoints, ETCD_TIMEOUT);
    let keys = Keys::under(&cfg.etcd_prefix);
    let secret = retry("read the cluster's secret", || secret(&etcd, &cfg.etcd_prefix)).await;
    let info = NodeInfo {
        amqp: cfg.amqp.advertised.clone(),
        http: cfg.http.as_ref().map(|h| h.advertised.clone()),
    };
    let info = serde_json::to_vec(&info).expect("plain data");
    let key = node_key(&cfg.etcd_prefix, &cfg.me);
    retry("tell etcd this node's addresses", || etcd.put(&key, &info, 0)).await;
    let (tx, mut status) = watch::channel(Status {
        leader: Leader::Unknown,
        leads_until_ms: None,
    });
    let election = ElectionConfig {
        me: cfg.me.clone(),
        ttl_ms: TTL_MS,
    };
    tokio::task::spawn_local(elect::run(etcd.clone(), election, keys.clone(), tx));
    let mut sigterm = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let mut relays: Option<Relays> = None;
    let mut following: Option<Following> = None;
    loop {
        let s = status.borrow_and_update().clone();
        if let (true, Leader::Me { term }) = (s.leads(elect::now_ms()), &s.leader) {
            // Stop following and free the client ports for the broker.
            drop(following.take());
            drop(relays.take());
            tokio::time::sleep(Duration::from_millis(50)).await;
            tracing::info!(term, "leading");
            return lead::lead(&cfg, &etcd, &keys, *term, &secret, status, lead_tx).await;
        }
        if let Leader::Other { uri, .. } = &s.leader {
            if following.as_ref().is_none_or(|f| f.leader != *uri) {
                following = Some(follow(&cfg, uri, &secret));
                if relays.is_none() {
                    relays = Some(Relays::bind(&cfg).await?);
                }
                let info = match etcd.get(&node_key(&cfg.etcd_prefix, uri)).await {
                    Ok(kv) => kv.and_then(|kv| serde_json::from_slice::<NodeInfo>(&kv.value).ok()),
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot read the leader's addresses");
                        None
                    }
                };
                let r = relays.as_ref().expect("bound above");
                *r.amqp.borrow_mut() = info.as_ref().map(|i| i.amqp.clone());
                *r.http.borrow_mut() = info.and_then(|i| i.http);
            }
        }
        tokio::select! {
            changed = status.changed() => if changed.is_err() {
                return Err(NodeError::Stopped);
            },
            _ = sigterm.recv() => {
                tracing::info!("SIGTERM while following: stopping");
                std::process::exit(0);
            }
            // Leading depends on time too (the fence).
            _ = tokio::time::sleep(Duration::from_millis(100)) => {}
        }
    }
}

/// `host:port`, with brackets around an IPv6 host.
fn join(host: &str, port: u16) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

impl NodeConfig {
    /// From the configuration: `[clustering]`, the AMQP and HTTP listeners
    /// (their first address). The advertised URI defaults to
    /// `tcp://HOSTNAME:PORT`; the client endpoints are advertised at its host.
    pub fn from_config(cfg: &crate::config::Config) -> NodeConfig {
        let c = &cfg.clustering;
        let me = c.advertised_uri.clone().unwrap_or_else(|| {
            let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
            let host = host.trim();
            join(if host.is_empty() { "localhost" } else { host }, c.port)
        });
        let me = if me.contains("://") { me } else { format!("tcp://{me}") };
        let host = host_port(&me)
            .rsplit_once(':')
            .map_or("localhost", |(h, _)| h)
            .to_string();
        let first = |bind: &str| {
            crate::config::bind_addresses(bind)
                .next()
                .unwrap_or("0.0.0.0")
                .to_string()
        };
        let endpoint = |bind: &str, port: u16| Endpoint {
            listen: join(&first(bind), port),
            advertised: format!("{host}:{port}"),
        };
        NodeConfig {
            repl_listen: join(&first(&c.bind), c.port),
            etcd_endpoints: c.etcd_endpoints.clone(),
            etcd_prefix: c.etcd_prefix.clone(),
            min_isr: c.min_isr,
            data_dir: cfg.main.data_dir.clone(),
            amqp: endpoint(&cfg.amqp.bind, cfg.amqp.port),
            http: cfg.mgmt.port.map(|p| endpoint(&cfg.mgmt.bind, p)),
            me,
        }
    }
}
