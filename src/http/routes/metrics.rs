//! `/metrics`: node totals in the Prometheus text format, under RabbitMQ's family
//! names and labels (its `rabbitmq_prometheus` plugin, 3.10), so RabbitMQ's
//! published Grafana dashboards and alerts read ringmq unchanged. `?prefix=NAME`
//! (LavinMQ's parameter) renames every family `NAME_*`. Per-object families are
//! in `metrics_detailed`; families only ringmq has (the shard loop's turns) come
//! last and say so in their help text.
//!
//! What RabbitMQ has and ringmq does not: the Erlang VM's families (`erlang_*`,
//! reductions, garbage collection, Mnesia, Ra) and RabbitMQ's message store and
//! queue index I/O: nothing here corresponds to them.

use super::common::{gather, one_part, ProcStats};
use crate::core::mgmt::views::ChannelView;
use crate::core::mgmt::{Churn, MsgCounters, View};
use crate::http::paging::Part;
use crate::http::prom::Prom;
use crate::http::{ApiError, Reply, Req};

/// RabbitMQ's names by default.
pub(crate) const DEFAULT_PREFIX: &str = "rabbitmq";

pub(crate) fn prom_for(req: &Req<'_>) -> Result<Prom, ApiError> {
    Prom::new(req.query.get("prefix").map_or(DEFAULT_PREFIX, |p| p))
}

/// `identity_info` and `build_info`: dashboards join every family on the first.
pub(crate) fn identity(p: &mut Prom, b: View<'_>) {
    let node = super::overview::node_name();
    let global = |name: &str| {
        let v = b.global_parameter(name).map(|g| &g.value);
        v.and_then(|v| v.as_str()).map(str::to_owned)
    };
    let cluster = b.cluster_name();
    let id = global("internal_cluster_id").unwrap_or_default();
    p.labelled(
        "identity_info",
        "untyped",
        "RabbitMQ node & cluster identity info",
        &[
            ("rabbitmq_node", &node),
            ("rabbitmq_cluster", &cluster),
            ("rabbitmq_cluster_permanent_id", &id),
        ],
        1.0,
    );
    p.labelled(
        "build_info",
        "untyped",
        "Broker version info (the broker is ringmq)",
        &[("rabbitmq_version", env!("CARGO_PKG_VERSION")), ("product", "ringmq")],
        1.0,
    );
}

fn process(p: &mut Prom, req: &Req<'_>, b: View<'_>) {
    let s = ProcStats::read(req.info);
    let alarms = b.alarms();
    let gauges = [
        (
            "process_resident_memory_bytes",
            "Memory used in bytes",
            s.rss_bytes as f64,
        ),
        (
            "resident_memory_limit_bytes",
            "Memory high watermark in bytes",
            alarms.mem_limit as f64,
        ),
        ("process_open_fds", "Open file descriptors", s.open_fds as f64),
        ("process_max_fds", "Open file descriptors limit", s.fd_limit as f64),
        (
            "process_open_tcp_sockets",
            "Open TCP sockets",
            b.connection_count() as f64,
        ),
        (
            "disk_space_available_bytes",
            "Disk space available in bytes",
            s.disk_free_bytes as f64,
        ),
        (
            "disk_space_available_limit_bytes",
            "Free disk space low watermark in bytes",
            alarms.disk_free_limit as f64,
        ),
        // RabbitMQ's name for the node's uptime, which dashboards show.
        ("erlang_uptime_seconds", "Node uptime", s.uptime_ms as f64 / 1000.0),
        (
            "alarms_memory_used_watermark",
            "is 1 if VM memory watermark alarm is in effect",
            f64::from(u8::from(alarms.mem)),
        ),
        (
            "alarms_free_disk_space_watermark",
            "is 1 if free disk space watermark alarm is in effect",
            f64::from(u8::from(alarms.disk)),
        ),
        // ringmq has no file descriptor alarm: new connections past the limit
        // are refused at accept instead.
        (
            "alarms_file_descriptor_limit",
            "is 1 if file descriptor limit alarm is in effect",
            0.0,
        ),
    ];
    for (name, help, v) in gauges {
        p.single(name, "gauge", help, v);
    }
    p.single("process_cpu_seconds_total", "counter", "CPU time used", s.cpu_secs);
}

/// RabbitMQ's churn counters, from the node's.
fn churn(p: &mut Prom, c: &Churn, detailed: bool) {
    let names = [
        (
            Churn::CONNECTION_CREATED,
            "connections_opened_total",
            "Total number of connections opened",
        ),
        (
            Churn::CONNECTION_CLOSED,
            "connections_closed_total",
            "Total number of connections closed or terminated",
        ),
        (
            Churn::CHANNEL_CREATED,
            "channels_opened_total",
            "Total number of channels opened",
        ),
        (
            Churn::CHANNEL_CLOSED,
            "channels_closed_total",
            "Total number of channels closed",
        ),
        (
            Churn::QUEUE_DECLARED,
            "queues_declared_total",
            "Total number of queues declared",
        ),
        (
            Churn::QUEUE_CREATED,
            "queues_created_total",
            "Total number of queues created",
        ),
        (
            Churn::QUEUE_DELETED,
            "queues_deleted_total",
            "Total number of queues deleted",
        ),
    ];
    for (i, name, help) in names {
        let name = if detailed {
            format!("detailed_{name}")
        } else {
            name.to_owned()
        };
        p.single(&name, "counter", help, c.counts[i] as f64);
    }
}

/// Gauges summed over the node's queues and channels.
fn gauges(p: &mut Prom, b: View<'_>) {
    let (mut queues, mut consumers, mut ready, mut unacked, mut bytes, mut published) = (0, 0, 0u64, 0u64, 0u64, 0u64);
    // The queues this shard owns (a scrape adds up every shard's, `metrics`).
    for v in b.vhosts() {
        for q in v.queues().filter(|q| q.owner() == b.shard()) {
            queues += 1;
            consumers += q.consumer_count();
            ready += q.ready();
            unacked += q.unacked();
            bytes += q.total_bytes();
            published += q.stats().c.publish;
        }
    }
    let open: Vec<_> = b.connections().filter(|c| c.vhost().is_some()).collect();
    let channels = || open.iter().flat_map(|c| c.channels());
    let chan_sum = |f: &dyn Fn(&ChannelView<'_>) -> usize| channels().map(|c| f(&c)).sum::<usize>() as f64;
    let list = [
        ("connections", "Connections currently open", open.len() as f64),
        ("channels", "Channels currently open", channels().count() as f64),
        ("consumers", "Consumers currently connected", consumers as f64),
        ("queues", "Queues available", queues as f64),
        (
            "queue_messages_ready",
            "Messages ready to be delivered to consumers",
            ready as f64,
        ),
        (
            "queue_messages_unacked",
            "Messages delivered to consumers but not yet acknowledged",
            unacked as f64,
        ),
        (
            "queue_messages",
            "Sum of ready and unacknowledged messages - total queue depth",
            (ready + unacked) as f64,
        ),
        (
            "queue_messages_bytes",
            "Size in bytes of ready and unacknowledged messages",
            bytes as f64,
        ),
        ("queue_consumers", "Consumers on a queue", consumers as f64),
        (
            "channel_consumers",
            "Consumers on a channel",
            chan_sum(&|c| c.consumer_count()),
        ),
        (
            "channel_messages_unacked",
            "Delivered but not yet acknowledged messages",
            chan_sum(&|c| c.unacked()),
        ),
        (
            "channel_messages_unconfirmed",
            "Published but not yet confirmed messages",
            chan_sum(&|c| c.unconfirmed()),
        ),
        (
            "channel_messages_uncommitted",
            "Messages received in a transaction but not yet committed",
            chan_sum(&|c| c.uncommitted().0),
        ),
        (
            "channel_acks_uncommitted",
            "Message acknowledgements in a transaction not yet committed",
            chan_sum(&|c| c.uncommitted().1),
        ),
        (
            "channel_prefetch",
            "Total limit of unacknowledged messages for all consumers on a channel",
            chan_sum(&|c| usize::from(c.channel_prefetch())),
        ),
        (
            "consumer_prefetch",
            "Limit of unacknowledged messages for each consumer",
            chan_sum(&|c| c.consumer_prefetch_sum()),
        ),
        (
            "connection_channels",
            "Channels on a connection",
            channels().count() as f64,
        ),
        (
            "connection_pending_packets",
            "Bytes waiting to be sent on a connection",
            open.iter().map(|c| c.pending_bytes()).sum::<usize>() as f64,
        ),
    ];
    for (name, help, v) in list {
        p.single(name, "gauge", help, v);
    }
    let conn_counters = [
        (
            "connection_incoming_bytes_total",
            "Total number of bytes received on a connection",
            open.iter().map(|c| c.traffic().recv_oct).sum::<u64>(),
        ),
        (
            "connection_outgoing_bytes_total",
            "Total number of bytes sent on a connection",
            open.iter().map(|c| c.traffic().send_oct).sum(),
        ),
        (
            "connection_incoming_packets_total",
            "Total number of packets (socket reads) received on a connection",
            open.iter().map(|c| c.traffic().recv_cnt).sum(),
        ),
        (
            "connection_outgoing_packets_total",
            "Total number of packets (socket writes) sent on a connection",
            open.iter().map(|c| c.traffic().send_cnt).sum(),
        ),
        (
            "queue_messages_published_total",
            "Total number of messages published to queues",
            published,
        ),
    ];
    for (name, help, v) in conn_counters {
        p.single(name, "counter", help, v as f64);
    }
    let amqp = [("protocol", "amqp091")];
    p.labelled(
        "global_consumers",
        "gauge",
        "Current number of consumers",
        &amqp,
        consumers as f64,
    );
    let (logins_ok, logins_failed) = b.logins();
    let logins = [
        (
            "auth_attempts_total",
            "Total number of authentication attempts",
            logins_ok + logins_failed,
        ),
        (
            "auth_attempts_succeeded_total",
            "Total number of successful authentication attempts",
            logins_ok,
        ),
        (
            "auth_attempts_failed_total",
            "Total number of failed authentication attempts",
            logins_failed,
        ),
    ];
    for (name, help, v) in logins {
        p.labelled(name, "counter", help, &amqp, v as f64);
    }
}

/// RabbitMQ's channel and global message counters, from the node's totals
/// (updated every stats interval, 5 s).
fn message_counters(p: &mut Prom, t: &MsgCounters) {
    let delivered = t.deliver + t.deliver_no_ack + t.get + t.get_no_ack;
    let unroutable = t.drop_unroutable + t.return_unroutable;
    let channel = [
        ("channel_messages_published_total", "Total number of messages published into an exchange on a channel", t.publish),
        ("channel_messages_confirmed_total", "Total number of messages published into an exchange and confirmed on the channel", t.confirm),
        ("channel_messages_unroutable_returned_total", "Total number of messages published as mandatory into an exchange and returned to the publisher as unroutable", t.return_unroutable),
        ("channel_messages_unroutable_dropped_total", "Total number of messages published as non-mandatory into an exchange and dropped as unroutable", t.drop_unroutable),
        ("channel_get_ack_total", "Total number of messages fetched with basic.get in manual acknowledgement mode", t.get),
        ("channel_get_total", "Total number of messages fetched with basic.get in automatic acknowledgement mode", t.get_no_ack),
        ("channel_messages_delivered_ack_total", "Total number of messages delivered to consumers in manual acknowledgement mode", t.deliver),
        ("channel_messages_delivered_total", "Total number of messages delivered to consumers in automatic acknowledgement mode", t.deliver_no_ack),
        ("channel_messages_redelivered_total", "Total number of messages redelivered to consumers", t.redeliver),
        ("channel_messages_acked_total", "Total number of messages acknowledged by consumers", t.ack),
        ("channel_get_empty_total", "Total number of times basic.get operations fetched no message", t.get_empty),
    ];
    for (name, help, v) in channel {
        p.single(name, "counter", help, v as f64);
    }
    let amqp = [("protocol", "amqp091")];
    let global = [
        ("global_messages_received_total", "Total number of messages received from publishers", t.publish),
        ("global_messages_routed_total", "Total number of messages routed to queues or streams", t.publish.saturating_sub(unroutable)),
        ("global_messages_confirmed_total", "Total number of messages confirmed to publishers", t.confirm),
        ("global_messages_delivered_total", "Total number of messages delivered to consumers", delivered),
        ("global_messages_delivered_consume_manual_ack_total", "Total number of messages delivered to consumers using basic.consume with manual acknowledgment", t.deliver),
        ("global_messages_delivered_consume_auto_ack_total", "Total number of messages delivered to consumers using basic.consume with automatic acknowledgment", t.deliver_no_ack),
        ("global_messages_delivered_get_manual_ack_total", "Total number of messages delivered to consumers using basic.get with manual acknowledgment", t.get),
        ("global_messages_delivered_get_auto_ack_total", "Total number of messages delivered to consumers using basic.get with automatic acknowledgment", t.get_no_ack),
        ("global_messages_get_empty_total", "Total number of times basic.get operations fetched no message", t.get_empty),
        ("global_messages_redelivered_total", "Total number of messages redelivered to consumers", t.redeliver),
        ("global_messages_acknowledged_total", "Total number of messages acknowledged by consumers", t.ack),
        ("global_messages_unroutable_dropped_total", "Total number of messages published as non-mandatory into an exchange and dropped as unroutable", t.drop_unroutable),
        ("global_messages_unroutable_returned_total", "Total number of messages published as mandatory into an exchange and returned to the publisher as unroutable", t.return_unroutable),
    ];
    for (name, help, v) in global {
        p.labelled(name, "counter", help, &amqp, v as f64);
    }
}

/// The shard loop's turns (see `sys::stall`): a stall shows here even when the
/// log is not watched.
fn loop_turns(p: &mut Prom, req: &Req<'_>) {
    let turns = &req.shared.turns;
    p.single(
        "loop_turn_longest_seconds",
        "gauge",
        "ringmq: longest turn of the shard loop since start (one call into the core)",
        turns.longest().as_secs_f64(),
    );
    p.single(
        "loop_turns_slow_total",
        "counter",
        &format!(
            "ringmq: loop turns longer than {} ms, each logged at WARN",
            crate::sys::stall::LOOP_TURN_WARN.as_millis()
        ),
        turns.slow_count() as f64,
    );
}

/// When each certificate of the TLS listeners expires (RabbitMQ has no such
/// family; its health check is `certificate-expiration`): one sample per
/// certificate file, the earliest `notAfter` in it (a chain expires with its
/// first certificate), so an alert can say "expires within 14 days" as
/// `..._expiry_timestamp_seconds - time() < 14 * 86400`.
fn tls_certificates(p: &mut Prom, req: &Req<'_>) {
    let Some(tls) = &req.info.tls else { return };
    let name = "tls_certificate_expiry_timestamp_seconds";
    p.family(
        name,
        "gauge",
        "ringmq: when the earliest certificate in a TLS certificate file expires (seconds since the epoch; reread on SIGHUP)",
    );
    for f in tls.files() {
        let Some(first) = f.not_after_unix.iter().min() else {
            continue;
        };
        let role = match f.role {
            crate::tls::FileRole::CaBundle => "ca",
            _ => "certificate",
        };
        let path = f.path.display().to_string();
        let sni = f.sni.as_deref().unwrap_or("");
        p.sample(name, &[("file", &path), ("role", role), ("sni", sni)], *first as f64);
    }
}

/// Each shard's families of what it holds (its connections, the queues it
/// owns, the messages through it), added up sample by sample into shard 0's,
/// which also has the process's and the listeners' (`prom::merge`).
pub(crate) fn metrics(_: &Req<'_>) -> Result<Reply, ApiError> {
    gather(
        |req| {
            let mut p = prom_for(req)?;
            let broker = req.shared.broker.borrow();
            let b = View::of(&broker);
            let first = b.shard().0 == 0;
            if first {
                identity(&mut p, b);
                process(&mut p, req, b);
            }
            churn(&mut p, b.churn(), false);
            gauges(&mut p, b);
            message_counters(&mut p, &b.node_totals().totals);
            drop(broker);
            if first {
                loop_turns(&mut p, req);
                tls_certificates(&mut p, req);
            }
            one_part(Some(p.out.into()))
        },
        merge_texts,
    )
}

pub(crate) fn detailed(_: &Req<'_>) -> Result<Reply, ApiError> {
    gather(
        |req| {
            let mut p = prom_for(req)?;
            let broker = req.shared.broker.borrow();
            let b = View::of(&broker);
            if super::metrics_detailed::wants(req, "connection_churn_metrics") {
                churn(&mut p, b.churn(), true);
            }
            super::metrics_detailed::families(&mut p, req, b);
            if b.shard().0 == 0 {
                identity(&mut p, b);
            }
            one_part(Some(p.out.into()))
        },
        merge_texts,
    )
}

/// Every shard's text, added up into the first's.
fn merge_texts(_: &Req<'_>, parts: Vec<Part>) -> Result<Reply, ApiError> {
    let texts = (parts.into_iter().flat_map(|p| p.rows))
        .map(|r| r.v.as_str().unwrap_or_default().to_owned())
        .collect();
    Ok(Reply::Raw {
        status: 200,
        content_type: "text/plain; version=0.0.4; charset=utf-8",
        body: crate::http::prom::merge(texts).into(),
    })
}
