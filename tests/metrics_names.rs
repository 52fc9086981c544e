//! `/metrics` serves RabbitMQ 3.10's family names (its `rabbitmq_prometheus`
//! plugin), so RabbitMQ's Grafana dashboards and alerts read ringmq unchanged
//! (issue 16, item 12); `?prefix=` renames them, as LavinMQ's endpoint does.
//! The families are recorded from a real RabbitMQ in
//! `tests/fixtures/rabbitmq-3.10-metrics.txt`; `NOT_HERE` lists what ringmq does
//! not serve, with the reason.

mod common;

use std::collections::BTreeSet;

use common::http::Api;
use common::*;
use serde_json::json;

const FIXTURE: &str = include_str!("fixtures/rabbitmq-3.10-metrics.txt");

const NOT_HERE: &[(&str, &str)] = &[
    ("erlang_", "the Erlang VM"),
    ("telemetry_", "the Erlang Prometheus client's own scrape statistics"),
    ("process_start_time_seconds", "the Erlang Prometheus client"),
    ("rabbitmq_erlang_processes", "Erlang processes"),
    ("rabbitmq_erlang_gc", "Erlang garbage collection"),
    ("rabbitmq_erlang_scheduler", "Erlang schedulers"),
    ("rabbitmq_erlang_net_ticktime", "Erlang distribution (no cluster yet)"),
    ("rabbitmq_raft_", "Raft (quorum queues here are not Raft groups)"),
    ("rabbitmq_schema_db_", "Mnesia"),
    ("rabbitmq_io_", "RabbitMQ's file handle cache"),
    ("rabbitmq_msg_store_", "RabbitMQ's message store"),
    ("rabbitmq_queue_index_", "RabbitMQ's queue index"),
    ("rabbitmq_queue_disk_", "classic queue paging"),
    (
        "rabbitmq_queue_messages_paged_out",
        "no paging: messages are in segment files",
    ),
    ("rabbitmq_queue_messages_ram", "messages are in segment files, not RAM"),
    (
        "rabbitmq_queue_messages_ready_ram",
        "messages are in segment files, not RAM",
    ),
    (
        "rabbitmq_queue_messages_unacked_ram",
        "messages are in segment files, not RAM",
    ),
    ("rabbitmq_queue_process_", "no process per queue"),
    ("rabbitmq_channel_process_", "no process per channel"),
    ("rabbitmq_connection_process_", "no process per connection"),
    ("rabbitmq_queue_messages_persistent", "not counted yet"),
    (
        "rabbitmq_queue_messages_ready_bytes",
        "bytes are counted per queue, not split by state",
    ),
    (
        "rabbitmq_queue_messages_unacked_bytes",
        "bytes are counted per queue, not split by state",
    ),
    ("rabbitmq_queue_head_message_timestamp", "not tracked yet"),
    ("rabbitmq_queue_consumer_utilisation", "not tracked yet"),
    ("rabbitmq_queue_consumer_capacity", "not tracked yet"),
    (
        "rabbitmq_global_messages_dead_lettered_",
        "dead letters are not counted by reason yet",
    ),
    ("rabbitmq_global_messages_received_confirm_total", "not counted yet"),
    ("rabbitmq_global_publishers", "not counted yet"),
    (
        "rabbitmq_process_max_tcp_sockets",
        "connections are bounded by max_connections, not a socket alarm",
    ),
];

fn families(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split(' ').next())
        .map(str::to_owned)
        .collect()
}

#[test]
fn metrics_have_rabbitmqs_family_names() {
    let b = Broker::new();
    if b.skip_external("metrics_have_rabbitmqs_family_names") {
        return;
    }
    let a = Api::new(b.http_url(), b.user(), b.pass());
    assert_eq!(a.put("/api/queues/%2F/metered", json!({})).status, 201);
    let open = Api::anonymous(&b.metrics_url());
    let m = open.get("/metrics");
    assert_eq!(m.status, 200);
    let have = families(&m.text);
    let missing: Vec<&str> = FIXTURE
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter(|f| !have.contains(*f))
        .filter(|f| !NOT_HERE.iter().any(|(p, _)| f.starts_with(p)))
        .collect();
    assert!(
        missing.is_empty(),
        "RabbitMQ's families missing: {missing:?}\n{}",
        m.text
    );
    for sample in [
        "rabbitmq_queues 1",
        "rabbitmq_connections 0",
        "rabbitmq_alarms_memory_used_watermark 0",
        "rabbitmq_global_consumers{protocol=\"amqp091\"} 0",
    ] {
        assert!(m.text.contains(sample), "{sample} in:\n{}", m.text);
    }
    assert!(
        m.text.contains("rabbitmq_identity_info{rabbitmq_node=\"ringmq@"),
        "{}",
        m.text
    );

    // LavinMQ's `prefix`: every family renamed, nothing else.
    let r = open.get("/metrics?prefix=ringmq");
    let renamed = families(&r.text);
    assert_eq!(renamed.len(), have.len());
    assert!(renamed.iter().all(|f| f.starts_with("ringmq_")), "{renamed:?}");
    assert!(r.text.contains("ringmq_queues 1"));
    assert_eq!(open.get("/metrics?prefix=a-b").status, 400);

    let d = open.get("/metrics/detailed?family=queue_coarse_metrics&family=vhost_status");
    assert!(
        d.text
            .contains("rabbitmq_detailed_queue_messages_ready{vhost=\"/\",queue=\"metered\"} 0"),
        "{}",
        d.text
    );
    assert!(
        d.text.contains("rabbitmq_cluster_vhost_status{vhost=\"/\"} 1"),
        "{}",
        d.text
    );
    assert!(!d.text.contains("channel_consumers"), "family filter:\n{}", d.text);
}
