//! `/api/overview`, `/api/whoami`, `/api/aliveness-test/{vhost}`,
//! `/api/nodes`, and the `/api/vhosts` list.

use serde_json::{json, Value};

use super::common::{
    all_part, details, gather, merge_one_summed, merge_summed, one_part, queue_totals, sum_json, vhost_message_stats,
    ProcStats, Window,
};
use crate::core::mgmt::views::vhosts::Traffic;
use crate::core::mgmt::views::VhostView;
use crate::core::mgmt::{AckMode, Churn, QueueSpec, VhostStats, View};
use crate::http::paging::{Item, SortKey};
use crate::http::{ApiError, AuthUser, Reply, Req};

/// The RabbitMQ version we answer to tools that check it.
pub(crate) const RABBITMQ_VERSION: &str = "3.10.8";

pub(crate) use crate::core::mgmt::node_name;

fn exchange_types() -> Value {
    let t = |name: &str, description: &str| json!({"name": name, "description": description, "enabled": true});
    json!([
        t("direct", "AMQP direct exchange, as per the AMQP specification"),
        t("fanout", "AMQP fanout exchange, as per the AMQP specification"),
        t("headers", "AMQP headers exchange, as per the AMQP specification"),
        t("topic", "AMQP topic exchange, as per the AMQP specification"),
        t("x-delayed-message", "Delayed message exchange"),
        t("x-consistent-hash", "Consistent hash exchange"),
        t("x-federation-upstream", "Federation upstream helper exchange"),
    ])
}

/// Totals over the vhosts the user sees.
struct Totals {
    stats: VhostStats,
    ready: u64,
    unacked: u64,
    queues: usize,
    exchanges: usize,
    consumers: usize,
}

fn totals(b: View<'_>, u: &AuthUser) -> Totals {
    let mut t = Totals {
        stats: VhostStats::default(),
        ready: 0,
        unacked: 0,
        queues: 0,
        exchanges: 0,
        consumers: 0,
    };
    let all = u.sees_all();
    // Each shard counts the queues it owns (with their messages and
    // consumers, remote ones included) and shard 0 the exchanges, which
    // every shard has: the overview sums the shards' counts (`overview`).
    let me = b.shard();
    for v in b.vhosts() {
        if !all && !u.sees_vhost(b, v.name()) {
            continue;
        }
        if me.0 == 0 {
            t.exchanges += v.exchange_count();
        }
        for q in v.queues().filter(|q| q.owner() == me) {
            t.queues += 1;
            t.ready += q.ready();
            t.unacked += q.unacked();
            t.consumers += q.consumer_count();
        }
    }
    if all {
        // Node totals carry the history.
        let n = b.node_totals();
        t.stats.totals = n.totals;
        t.stats.rate = n.rate;
        t.stats.messages_ready_rate = n.messages_ready_rate;
        t.stats.messages_unacknowledged_rate = n.messages_unacknowledged_rate;
        t.stats.history = n.history.clone();
    } else {
        for v in b.vhosts() {
            if u.sees_vhost(b, v.name()) {
                t.stats.totals.add(&v.stats().totals);
                for (r, x) in t.stats.rate.iter_mut().zip(v.stats().rate) {
                    *r += x;
                }
            }
        }
    }
    t
}

/// RabbitMQ's `churn_rates`: each count with its `_details` rate.
fn churn_rates(c: &Churn) -> Value {
    let mut m = serde_json::Map::new();
    for (i, name) in Churn::NAMES.iter().enumerate() {
        m.insert((*name).to_owned(), c.counts[i].into());
        m.insert(format!("{name}_details"), details(c.rates[i]));
    }
    Value::Object(m)
}

/// Each shard's overview of what it holds; the counts, totals and rates of
/// all of them summed into shard 0's.
pub(crate) fn overview(_: &Req<'_>) -> Result<Reply, ApiError> {
    gather(
        |req| one_part(Some(overview_here(req)?)),
        |_, parts| {
            let mut rows = parts.into_iter().flat_map(|p| p.rows).map(|r| r.v);
            let mut all = rows.next().ok_or_else(ApiError::not_found)?;
            for other in rows {
                for key in ["message_stats", "churn_rates", "queue_totals", "object_totals"] {
                    sum_json(&mut all[key], &other[key]);
                }
            }
            Reply::ok(all)
        },
    )
}

fn overview_here(req: &Req<'_>) -> Result<Value, ApiError> {
    let b = req.shared.broker.borrow();
    let b = View::of(&b);
    let u = req.user();
    let t = totals(b, u);
    let (conns, chans) = b
        .connections()
        .filter(|c| c.is_logged_in() && (u.sees_all() || c.user() == Some(&u.name)))
        .fold((0, 0), |(n, ch), c| (n + 1, ch + c.channel_count()));
    let node = node_name();
    let rates = Window::from_query(&req.query, "msg_rates_age", "msg_rates_incr");
    let lengths = Window::from_query(&req.query, "lengths_age", "lengths_incr");
    let mut listeners = vec![];
    let (host, port) = req.info.amqp_addr.rsplit_once(':').unwrap_or(("127.0.0.1", "5672"));
    listeners
        .push(json!({"node": node, "protocol": "amqp", "ip_address": host, "port": port.parse::<u16>().unwrap_or(0)}));
    if let Some(p) = req.info.amqps_port {
        // RabbitMQ's name for its TLS listener.
        listeners.push(json!({"node": node, "protocol": "amqp/ssl", "ip_address": host, "port": p}));
    }
    if let Some(p) = req.info.api_port {
        listeners.push(json!({"node": node, "protocol": "http", "ip_address": host, "port": p}));
    }
    if let Some(p) = req.info.https_port {
        // RabbitMQ's name for the management plugin's TLS listener.
        listeners.push(json!({"node": node, "protocol": "https", "ip_address": host, "port": p}));
    }
    if let Some(p) = req.info.metrics_port {
        listeners.push(json!({"node": node, "protocol": "http/prometheus", "ip_address": host, "port": p}));
    }
    Ok(json!({
        "management_version": RABBITMQ_VERSION,
        "rates_mode": "basic",
        "sample_retention_policies": {"global": [600], "basic": [600], "detailed": [600]},
        "exchange_types": exchange_types(),
        "product_version": env!("CARGO_PKG_VERSION"),
        "product_name": "ringmq",
        "rabbitmq_version": RABBITMQ_VERSION,
        "cluster_name": b.cluster_name(),
        "erlang_version": "none",
        "erlang_full_version": "none (ringmq is written in Rust)",
        "disable_stats": false,
        "enable_queue_totals": true,
        "message_stats": vhost_message_stats(&t.stats, rates),
        "churn_rates": churn_rates(b.churn()),
        "queue_totals": queue_totals(&t.stats, t.ready, t.unacked, lengths),
        "object_totals": {
            "channels": chans,
            "connections": conns,
            "consumers": t.consumers,
            "exchanges": t.exchanges,
            "queues": t.queues,
        },
        "statistics_db_event_queue": 0,
        "node": node,
        "listeners": listeners,
        "contexts": [{"node": node, "description": "ringmq management", "path": "/", "port": req.info.api_port.map(|p| p.to_string())}],
    }))
}

pub(crate) fn whoami(req: &Req<'_>) -> Result<Reply, ApiError> {
    let u = req.user();
    Reply::ok(json!({"name": u.name, "tags": u.tags}))
}

/// RabbitMQ declares a queue, publishes to it and gets the message back; the
/// same path here proves the vhost's store and routing work.
pub(crate) fn aliveness(req: &Req<'_>) -> Result<Reply, ApiError> {
    let mut b = req.shared.broker.borrow_mut();
    let ctx = req.ctx();
    let q = "aliveness-test";
    let spec = QueueSpec::default();
    let r = (|| {
        b.admin_declare_queue(&ctx, q, &spec)?;
        b.admin_publish(&ctx, "", q, &[0, 0], b"test_message")?;
        b.admin_get(&ctx, q, 1, AckMode::AckRequeueFalse)
    })();
    drop(b);
    req.shared.after_core_call();
    match r {
        Ok(got) if got.iter().any(|m| m.payload == b"test_message") => Reply::ok(json!({"status": "ok"})),
        Ok(_) => Reply::ok(json!({"status": "failed", "reason": "message not received"})),
        Err(e) => Err(e.into()),
    }
}

fn node_json(req: &Req<'_>) -> Value {
    let p = ProcStats::read(req.info);
    let b = req.shared.broker.borrow();
    let b = View::of(&b);
    let alarms = b.alarms();
    let mut node = json!({
        "name": node_name(),
        "type": "disc",
        "running": true,
        "os_pid": std::process::id().to_string(),
        "fd_used": p.open_fds,
        "fd_total": p.fd_limit,
        "sockets_used": b.connection_count(),
        "sockets_total": p.fd_limit,
        "mem_used": p.rss_bytes,
        "mem_limit": alarms.mem_limit,
        "mem_alarm": alarms.mem,
        "disk_free": p.disk_free_bytes,
        "disk_free_limit": alarms.disk_free_limit,
        "disk_free_alarm": alarms.disk,
        "proc_used": 1,
        "proc_total": 1,
        "uptime": p.uptime_ms,
        "run_queue": 0,
        "processors": std::thread::available_parallelism().map_or(1, |n| n.get()),
        "partitions": [],
        "rates_mode": "basic",
        "exchange_types": exchange_types(),
        "auth_mechanisms": [
            {"name": "PLAIN", "description": "SASL PLAIN authentication mechanism", "enabled": true},
            {"name": "AMQPLAIN", "description": "QPid AMQPLAIN mechanism", "enabled": true},
        ],
        "applications": [{"name": "ringmq", "description": "ringmq broker", "version": env!("CARGO_PKG_VERSION")}],
        "being_drained": false,
        "db_dir": req.info.data_dir.display().to_string(),
        "log_files": ["<stdout>"],
        "enabled_plugins": [],
        "mem_calculation_strategy": "rss",
        "cluster_links": [],
    });
    // RabbitMQ lists the churn counters on the node too, each with its rate.
    if let (Value::Object(n), Value::Object(c)) = (&mut node, churn_rates(b.churn())) {
        n.extend(c);
    }
    node
}

/// This node; clustered, every node of the cluster, each with its role,
/// whether it is in the in-sync replica set and how many changes of the
/// replication log it lacks (`replication_lag`). Only a leader serves the
/// API (followers relay it), so its view is the cluster's.
pub(crate) fn nodes(req: &Req<'_>) -> Result<Reply, ApiError> {
    let mut me = node_json(req);
    let Some(view) = crate::cluster::view::current() else {
        return Reply::ok(json!([me]));
    };
    let mut list = Vec::new();
    for row in view.rows() {
        let mut n = if row.role == "leader" {
            std::mem::take(&mut me)
        } else {
            json!({"name": row.name, "type": "disc", "running": row.running})
        };
        n["cluster_name"] = json!(row.name);
        n["role"] = json!(row.role);
        n["in_sync"] = json!(row.in_sync);
        n["replication_lag"] = json!(row.lag);
        list.push(n);
    }
    Reply::ok(Value::Array(list))
}

pub(crate) fn node(req: &Req<'_>) -> Result<Reply, ApiError> {
    if req.param("node") != node_name() {
        return Err(ApiError::not_found());
    }
    Reply::ok(node_json(req))
}

struct VhostItem<'a> {
    name: &'a str,
    v: VhostView<'a>,
    ready: u64,
    unacked: u64,
    w: Option<Window>,
    /// Bytes in and out of the vhost's connections, with rates.
    traffic: Traffic,
}

impl<'a> VhostItem<'a> {
    fn new(v: VhostView<'a>, w: Option<Window>) -> Self {
        let (ready, unacked) = v.depth();
        VhostItem {
            name: v.name(),
            v,
            ready,
            unacked,
            w,
            traffic: v.traffic(),
        }
    }
}

impl Item for VhostItem<'_> {
    fn name(&self) -> &str {
        self.name
    }
    fn sort_key(&self, c: &str) -> Option<SortKey<'_>> {
        match c {
            "name" => Some(SortKey::Str(self.name)),
            "messages" => Some(SortKey::Num((self.ready + self.unacked) as f64)),
            _ => None,
        }
    }
    fn render(&self) -> Value {
        let meta = self.v.meta();
        let mut v = json!({
            "name": self.name,
            "description": meta.description,
            "tags": meta.tags,
            "default_queue_type": meta.default_queue_type.as_deref().unwrap_or("classic"),
            "metadata": {"description": meta.description, "tags": meta.tags},
            "tracing": false,
            "cluster_state": {node_name(): "running"},
            "message_stats": vhost_message_stats(self.v.stats(), self.w),
            "recv_oct": self.traffic.recv_oct,
            "recv_oct_details": details(self.traffic.recv_rate),
            "send_oct": self.traffic.send_oct,
            "send_oct_details": details(self.traffic.send_rate),
        });
        if let (Value::Object(m), Value::Object(t)) =
            (&mut v, queue_totals(self.v.stats(), self.ready, self.unacked, self.w))
        {
            m.extend(t);
        }
        v
    }
}

/// What each shard counts of a vhost: the messages of the queues it owns,
/// the traffic of its connections, the messages published and delivered
/// through it.
const VHOST_SUMMED: &[&str] = &[
    "message_stats",
    "recv_oct",
    "recv_oct_details",
    "send_oct",
    "send_oct_details",
    "messages",
    "messages_details",
    "messages_ready",
    "messages_ready_details",
    "messages_unacknowledged",
    "messages_unacknowledged_details",
];

/// One vhost, as listed.
pub(crate) fn vhost(_: &Req<'_>) -> Result<Reply, ApiError> {
    gather(
        |req| {
            let b = req.shared.broker.borrow();
            let v = View::of(&b).vhost(req.vhost()).ok_or_else(ApiError::not_found)?;
            let w = Window::from_query(&req.query, "msg_rates_age", "msg_rates_incr");
            one_part(Some(VhostItem::new(v, w).render()))
        },
        |_, parts| merge_one_summed(parts, VHOST_SUMMED),
    )
}

/// The vhost list with message counts (create and delete are in the vhosts
/// routes).
pub(crate) fn vhosts(_: &Req<'_>) -> Result<Reply, ApiError> {
    gather(
        |req| {
            let b = req.shared.broker.borrow();
            let view = View::of(&b);
            let u = req.user();
            let w = Window::from_query(&req.query, "msg_rates_age", "msg_rates_incr");
            let items: Vec<VhostItem<'_>> = view
                .vhosts()
                .filter(|v| u.sees_vhost(view, v.name()))
                .map(|v| VhostItem::new(v, w))
                .collect();
            all_part(items, req)
        },
        |req, parts| merge_summed(req, parts, VHOST_SUMMED),
    )
}
