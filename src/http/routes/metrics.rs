//! `/metrics` and `/metrics/detailed` in the Prometheus text format (prefix
//! `ringmq_`). `/metrics` is node totals and process numbers; `/metrics/detailed`
//! adds per-object families, filtered by `family=` and `vhost=` (repeatable
//! with commas), as RabbitMQ's detailed endpoint.

use std::fmt::Write;

use super::common::ProcStats;
use crate::core::stats::MsgCounters;
use crate::core::Broker;
use crate::http::{ApiError, Reply, Req};

/// Builds the text format: a `# HELP`/`# TYPE` header once per family, then
/// samples.
#[derive(Debug, Default)]
pub(crate) struct Prom {
    pub out: String,
}

impl Prom {
    pub fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.out, "# HELP ringmq_{name} {help}");
        let _ = writeln!(self.out, "# TYPE ringmq_{name} {kind}");
    }

    pub fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        let _ = write!(self.out, "ringmq_{name}");
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                let _ = write!(self.out, "{k}=\"{}\"", escape(v));
            }
            self.out.push('}');
        }
        if value.fract() == 0.0 && value.abs() < 1e15 {
            let _ = writeln!(self.out, " {}", value as i64);
        } else {
            let _ = writeln!(self.out, " {value}");
        }
    }

    /// A family with one unlabelled sample.
    pub fn single(&mut self, name: &str, kind: &str, help: &str, value: f64) {
        self.family(name, kind, help);
        self.sample(name, &[], value);
    }
}

/// Label values escape `\`, `"` and newlines.
pub(crate) fn escape(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

type QueueGauge = fn(&crate::core::queue::Queue) -> u64;

fn text(p: Prom) -> Result<Reply, ApiError> {
    Ok(Reply::Raw {
        status: 200,
        content_type: "text/plain; version=0.0.4; charset=utf-8",
        body: p.out.into(),
    })
}

fn process(p: &mut Prom, req: &Req<'_>) {
    let s = ProcStats::read(req.info);
    p.single(
        "process_resident_memory_bytes",
        "gauge",
        "Resident set size",
        s.rss_bytes as f64,
    );
    p.single("process_open_fds", "gauge", "Open file descriptors", s.open_fds as f64);
    p.single(
        "process_max_fds",
        "gauge",
        "Limit of open file descriptors",
        s.fd_limit as f64,
    );
    p.single("process_cpu_seconds_total", "counter", "CPU time used", s.cpu_secs);
    p.single(
        "uptime_seconds",
        "gauge",
        "Seconds since the broker started",
        s.uptime_ms as f64 / 1000.0,
    );
    p.single(
        "disk_space_available_bytes",
        "gauge",
        "Free bytes in the data directory's file system",
        s.disk_free_bytes as f64,
    );
}

fn totals(p: &mut Prom, b: &Broker) {
    let (mut queues, mut exchanges, mut consumers, mut ready, mut unacked) = (0, 0, 0, 0u64, 0u64);
    for v in b.vhosts.values() {
        queues += v.queues.len();
        exchanges += v.exchanges.len();
        for q in v.queues.values() {
            consumers += q.consumers().len();
            ready += q.store.ready_count();
            unacked += q.store.unacked_count();
        }
    }
    let open = b.conns.values().filter(|c| c.vhost.is_some());
    let (conns, chans) = open.fold((0, 0), |(n, c), x| (n + 1, c + x.channels.len()));
    p.single("connections", "gauge", "Open AMQP connections", conns as f64);
    p.single("channels", "gauge", "Open channels", chans as f64);
    p.single("consumers", "gauge", "Consumers", consumers as f64);
    p.single("queues", "gauge", "Queues", queues as f64);
    p.single("exchanges", "gauge", "Exchanges", exchanges as f64);
    p.single("vhosts", "gauge", "Virtual hosts", b.vhosts.len() as f64);
    p.single(
        "queue_messages_ready",
        "gauge",
        "Messages ready for delivery",
        ready as f64,
    );
    p.single(
        "queue_messages_unacked",
        "gauge",
        "Messages delivered and not yet acknowledged",
        unacked as f64,
    );
    p.single(
        "queue_messages",
        "gauge",
        "Messages ready and unacknowledged",
        (ready + unacked) as f64,
    );
    let t = b.node_stats.vhosts.totals.values();
    for (i, name) in MsgCounters::NAMES.iter().enumerate() {
        if name.starts_with("publish_") {
            continue;
        }
        let fam = format!("messages_{name}_total");
        p.single(
            &fam,
            "counter",
            &format!("Messages counted as {name} (updated every 5 s)"),
            t[i] as f64,
        );
    }
}

/// The shard loop's turns (see `io::stall`): a stall shows here even when the
/// log is not watched.
fn loop_turns(p: &mut Prom, req: &Req<'_>) {
    let turns = &req.shared.turns;
    p.single(
        "loop_turn_longest_seconds",
        "gauge",
        "Longest turn of the shard loop since start (one call into the core)",
        turns.longest().as_secs_f64(),
    );
    p.single(
        "loop_turns_slow_total",
        "counter",
        &format!(
            "Loop turns longer than {} ms, each logged at WARN",
            crate::io::stall::LOOP_TURN_WARN.as_millis()
        ),
        turns.slow_count() as f64,
    );
}

pub(crate) fn metrics(req: &Req<'_>) -> Result<Reply, ApiError> {
    let mut p = Prom::default();
    process(&mut p, req);
    loop_turns(&mut p, req);
    totals(&mut p, &req.shared.broker.borrow());
    text(p)
}

pub(crate) fn detailed(req: &Req<'_>) -> Result<Reply, ApiError> {
    let list = |k: &str| -> Option<Vec<String>> { req.query.get(k).map(|v| v.split(',').map(str::to_owned).collect()) };
    let families = list("family");
    let vhosts = list("vhost");
    let want = |f: &str| families.as_ref().is_none_or(|fs| fs.iter().any(|x| x == f));
    let in_vhost = |v: &str| vhosts.as_ref().is_none_or(|vs| vs.iter().any(|x| x == v));
    let mut p = Prom::default();
    let b = req.shared.broker.borrow();
    if want("queue_coarse_metrics") {
        let fams: [(&str, &str, QueueGauge); 4] = [
            ("detailed_queue_messages_ready", "Ready messages per queue", |q| {
                q.store.ready_count()
            }),
            (
                "detailed_queue_messages_unacked",
                "Unacknowledged messages per queue",
                |q| q.store.unacked_count(),
            ),
            ("detailed_queue_messages", "Messages per queue", |q| {
                q.store.ready_count() + q.store.unacked_count()
            }),
            ("detailed_queue_consumers", "Consumers per queue", |q| {
                q.consumers().len() as u64
            }),
        ];
        for (name, help, f) in fams {
            p.family(name, "gauge", help);
            for (vn, v) in b.vhosts.iter().filter(|(n, _)| in_vhost(n)) {
                for q in v.queues.values() {
                    p.sample(name, &[("vhost", vn), ("queue", &q.name)], f(q) as f64);
                }
            }
        }
    }
    if want("queue_metrics") {
        for (i, cname) in MsgCounters::NAMES.iter().enumerate() {
            if !super::common::QUEUE_FIELDS.contains(cname) {
                continue;
            }
            let name = format!("detailed_queue_messages_{cname}_total");
            p.family(&name, "counter", &format!("Messages counted as {cname} per queue"));
            for (vn, v) in b.vhosts.iter().filter(|(n, _)| in_vhost(n)) {
                for q in v.queues.values() {
                    p.sample(
                        &name,
                        &[("vhost", vn), ("queue", &q.name)],
                        q.stats.c.values()[i] as f64,
                    );
                }
            }
        }
    }
    if want("exchange_metrics") {
        for (i, cname) in MsgCounters::NAMES.iter().enumerate() {
            if !cname.starts_with("publish_") {
                continue;
            }
            let name = format!("detailed_exchange_messages_{cname}_total");
            p.family(&name, "counter", &format!("Messages counted as {cname} per exchange"));
            for (vn, v) in b.vhosts.iter().filter(|(n, _)| in_vhost(n)) {
                for x in v.exchanges.values() {
                    p.sample(
                        &name,
                        &[("vhost", vn), ("exchange", &x.name)],
                        x.stats.c.values()[i] as f64,
                    );
                }
            }
        }
    }
    if want("vhost_metrics") {
        for (i, cname) in MsgCounters::NAMES.iter().enumerate() {
            if cname.starts_with("publish_") {
                continue;
            }
            let name = format!("detailed_vhost_messages_{cname}_total");
            p.family(&name, "counter", &format!("Messages counted as {cname} per vhost"));
            for (vn, v) in b.vhosts.iter().filter(|(n, _)| in_vhost(n)) {
                p.sample(&name, &[("vhost", vn)], v.stats.totals.values()[i] as f64);
            }
        }
    }
    if want("connection_metrics") {
        let amqp = &req.info.amqp_addr;
        for (name, help, recv) in [
            (
                "detailed_connection_received_bytes_total",
                "Bytes received per connection",
                true,
            ),
            (
                "detailed_connection_sent_bytes_total",
                "Bytes sent per connection",
                false,
            ),
        ] {
            p.family(name, "counter", help);
            for c in b.conns.values() {
                let Some(v) = c.vhost.as_deref().filter(|v| in_vhost(v)) else {
                    continue;
                };
                let cn = super::connections::conn_name(c, amqp);
                let n = if recv { c.stats.recv_oct } else { c.stats.send_oct };
                p.sample(name, &[("vhost", v), ("connection", &cn)], n as f64);
            }
        }
    }
    text(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_format() {
        let mut p = Prom::default();
        p.single("queues", "gauge", "Queues", 3.0);
        p.family("detailed_queue_messages", "gauge", "Messages per queue");
        p.sample(
            "detailed_queue_messages",
            &[("vhost", "/"), ("queue", "a\"b\\c\nd")],
            7.0,
        );
        p.sample("detailed_queue_messages", &[("vhost", "/"), ("queue", "r")], 0.25);
        assert_eq!(
            p.out,
            "# HELP ringmq_queues Queues\n# TYPE ringmq_queues gauge\nringmq_queues 3\n\
             # HELP ringmq_detailed_queue_messages Messages per queue\n\
             # TYPE ringmq_detailed_queue_messages gauge\n\
             ringmq_detailed_queue_messages{vhost=\"/\",queue=\"a\\\"b\\\\c\\nd\"} 7\n\
             ringmq_detailed_queue_messages{vhost=\"/\",queue=\"r\"} 0.25\n"
        );
    }
}
