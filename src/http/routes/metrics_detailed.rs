//! `/metrics/detailed`: per-object families, chosen with `family=` and limited
//! to vhosts with `vhost=` (each repeatable, or comma-separated), as RabbitMQ's
//! endpoint. Names and labels are RabbitMQ 3.10's; the exchange and vhost
//! message counters (`exchange_metrics`, `vhost_metrics`) are ringmq's own.

use crate::core::mgmt::views::{ChannelView, ConnView, QueueView};
use crate::core::mgmt::{MsgCounters, View};
use crate::http::prom::Prom;
use crate::http::Req;

type QueueGauge = fn(&QueueView<'_>) -> u64;
/// A per-object counter family: name, help, the counter it reads.
type CounterFamily = (&'static str, &'static str, fn(&MsgCounters) -> u64);

/// Every value of a repeatable, comma-separated parameter; `None` when absent.
fn list(req: &Req<'_>, key: &str) -> Option<Vec<String>> {
    let all: Vec<String> = req
        .query
        .all(key)
        .flat_map(|v| v.split(','))
        .map(str::to_owned)
        .collect();
    (!all.is_empty()).then_some(all)
}

/// Whether the scrape asked for `family` (all, when it names none).
pub(crate) fn wants(req: &Req<'_>, family: &str) -> bool {
    list(req, "family").is_none_or(|fs| fs.iter().any(|f| f == family))
}

pub(crate) fn families(p: &mut Prom, req: &Req<'_>, b: View<'_>) {
    let vhosts = list(req, "vhost");
    let in_vhost = |v: &str| vhosts.as_ref().is_none_or(|vs| vs.iter().any(|x| x == v));
    // The queues this shard owns: the others' are their owners' to count
    // (the scrape adds up every shard's, `routes::metrics`).
    let me = b.shard();
    let queues = || {
        (b.vhosts().filter(|v| in_vhost(v.name())))
            .flat_map(|v| v.queues())
            .filter(move |q| q.owner() == me)
    };
    let gauge_family = |p: &mut Prom, name: &str, help: &str, f: QueueGauge| {
        p.family(name, "gauge", help);
        for q in queues() {
            p.sample(name, &[("vhost", q.vhost()), ("queue", q.name())], f(&q) as f64);
        }
    };
    if wants(req, "queue_coarse_metrics") {
        let fams: [(&str, &str, QueueGauge); 3] = [
            (
                "detailed_queue_messages_ready",
                "Messages ready to be delivered to consumers",
                |q| q.ready(),
            ),
            (
                "detailed_queue_messages_unacked",
                "Messages delivered to consumers but not yet acknowledged",
                |q| q.unacked(),
            ),
            (
                "detailed_queue_messages",
                "Sum of ready and unacknowledged messages - total queue depth",
                |q| q.ready() + q.unacked(),
            ),
        ];
        for (name, help, f) in fams {
            gauge_family(p, name, help, f);
        }
    }
    if wants(req, "queue_consumer_count") || wants(req, "queue_metrics") {
        gauge_family(p, "detailed_queue_consumers", "Consumers on a queue", |q| {
            q.consumer_count() as u64
        });
    }
    if wants(req, "queue_metrics") {
        gauge_family(
            p,
            "detailed_queue_messages_bytes",
            "Size in bytes of ready and unacknowledged messages",
            |q| q.total_bytes(),
        );
        let counters: [CounterFamily; 8] = [
            (
                "detailed_queue_messages_published_total",
                "Total number of messages published to queues",
                |c| c.publish,
            ),
            (
                "detailed_queue_get_ack_total",
                "Total number of messages fetched with basic.get in manual acknowledgement mode",
                |c| c.get,
            ),
            (
                "detailed_queue_get_total",
                "Total number of messages fetched with basic.get in automatic acknowledgement mode",
                |c| c.get_no_ack,
            ),
            (
                "detailed_queue_messages_delivered_ack_total",
                "Total number of messages delivered to consumers in manual acknowledgement mode",
                |c| c.deliver,
            ),
            (
                "detailed_queue_messages_delivered_total",
                "Total number of messages delivered to consumers in automatic acknowledgement mode",
                |c| c.deliver_no_ack,
            ),
            (
                "detailed_queue_messages_redelivered_total",
                "Total number of messages redelivered to consumers",
                |c| c.redeliver,
            ),
            (
                "detailed_queue_messages_acked_total",
                "Total number of messages acknowledged by consumers",
                |c| c.ack,
            ),
            (
                "detailed_queue_get_empty_total",
                "Total number of times basic.get operations fetched no message",
                |c| c.get_empty,
            ),
        ];
        for (name, help, f) in counters {
            p.family(name, "counter", help);
            for q in queues() {
                p.sample(
                    name,
                    &[("vhost", q.vhost()), ("queue", q.name())],
                    f(&q.stats().c) as f64,
                );
            }
        }
    }
    if wants(req, "exchange_metrics") {
        let fams: [CounterFamily; 2] = [
            (
                "detailed_exchange_messages_published_in_total",
                "ringmq: messages published into an exchange",
                |c| c.publish_in,
            ),
            (
                "detailed_exchange_messages_published_out_total",
                "ringmq: messages an exchange routed on",
                |c| c.publish_out,
            ),
        ];
        for (name, help, f) in fams {
            p.family(name, "counter", help);
            for v in b.vhosts().filter(|v| in_vhost(v.name())) {
                for x in v.exchanges() {
                    p.sample(
                        name,
                        &[("vhost", v.name()), ("exchange", x.name())],
                        f(&x.stats().c) as f64,
                    );
                }
            }
        }
    }
    if wants(req, "vhost_status") {
        p.family("cluster_vhost_status", "gauge", "Whether a given vhost is running");
        for v in b.vhosts().filter(|v| in_vhost(v.name())) {
            p.sample("cluster_vhost_status", &[("vhost", v.name())], 1.0);
        }
    }
    if wants(req, "vhost_metrics") {
        for (i, cname) in MsgCounters::NAMES.iter().enumerate() {
            if cname.starts_with("publish_") {
                continue;
            }
            let name = format!("detailed_vhost_messages_{cname}_total");
            p.family(
                &name,
                "counter",
                &format!("ringmq: messages counted as {cname} per vhost"),
            );
            for v in b.vhosts().filter(|v| in_vhost(v.name())) {
                p.sample(&name, &[("vhost", v.name())], v.stats().totals.values()[i] as f64);
            }
        }
    }
    connections(p, req, b, &in_vhost);
}

fn connections(p: &mut Prom, req: &Req<'_>, b: View<'_>, in_vhost: &dyn Fn(&str) -> bool) {
    let conns: Vec<_> = b
        .connections()
        .filter_map(|c| Some((c, c.vhost().filter(|v| in_vhost(v))?)))
        .map(|(c, v)| (c, v, super::connections::conn_name(c, req)))
        .collect();
    type ConnValue = fn(&ConnView<'_>) -> u64;
    let emit = |p: &mut Prom, name: &str, kind: &str, help: &str, f: ConnValue| {
        p.family(name, kind, help);
        for (c, v, cn) in &conns {
            p.sample(name, &[("vhost", v), ("connection", cn)], f(c) as f64);
        }
    };
    if wants(req, "connection_coarse_metrics") {
        emit(
            p,
            "detailed_connection_incoming_bytes_total",
            "counter",
            "Total number of bytes received on a connection",
            |c| c.traffic().recv_oct,
        );
        emit(
            p,
            "detailed_connection_outgoing_bytes_total",
            "counter",
            "Total number of bytes sent on a connection",
            |c| c.traffic().send_oct,
        );
    }
    if wants(req, "connection_metrics") {
        emit(
            p,
            "detailed_connection_incoming_packets_total",
            "counter",
            "Total number of packets (socket reads) received on a connection",
            |c| c.traffic().recv_cnt,
        );
        emit(
            p,
            "detailed_connection_outgoing_packets_total",
            "counter",
            "Total number of packets (socket writes) sent on a connection",
            |c| c.traffic().send_cnt,
        );
        emit(
            p,
            "detailed_connection_pending_packets",
            "gauge",
            "Bytes waiting to be sent on a connection",
            |c| c.pending_bytes() as u64,
        );
        emit(
            p,
            "detailed_connection_channels",
            "gauge",
            "Channels on a connection",
            |c| c.channel_count() as u64,
        );
    }
    if wants(req, "channel_metrics") {
        type ChanValue = fn(&ChannelView<'_>) -> u64;
        let fams: [(&str, &str, ChanValue); 7] = [
            ("detailed_channel_consumers", "Consumers on a channel", |c| {
                c.consumer_count() as u64
            }),
            (
                "detailed_channel_messages_unacked",
                "Delivered but not yet acknowledged messages",
                |c| c.unacked() as u64,
            ),
            (
                "detailed_channel_messages_unconfirmed",
                "Published but not yet confirmed messages",
                |c| c.unconfirmed() as u64,
            ),
            (
                "detailed_channel_messages_uncommitted",
                "Messages received in a transaction but not yet committed",
                |c| c.uncommitted().0 as u64,
            ),
            (
                "detailed_channel_acks_uncommitted",
                "Message acknowledgements in a transaction not yet committed",
                |c| c.uncommitted().1 as u64,
            ),
            (
                "detailed_consumer_prefetch",
                "Limit of unacknowledged messages for each consumer",
                |c| u64::from(c.consumer_prefetch()),
            ),
            (
                "detailed_channel_prefetch",
                "Total limit of unacknowledged messages for all consumers on a channel",
                |c| u64::from(c.channel_prefetch()),
            ),
        ];
        for (name, help, f) in fams {
            p.family(name, "gauge", help);
            for (c, v, cn) in &conns {
                for ch in c.channels() {
                    let number = ch.number().to_string();
                    p.sample(
                        name,
                        &[("vhost", v), ("connection", cn), ("channel", &number)],
                        f(&ch) as f64,
                    );
                }
            }
        }
    }
}
