//! `/api/health/checks/*`, RabbitMQ's health checks as monitoring tools call
//! them: 200 `{"status":"ok"}` when healthy, 503 with `"status":"failed"`, a
//! `reason` and details when not (shapes of RabbitMQ 3.10).
//!
//! A single node that never runs a vhost down, has no mirrors or quorum
//! replicas and no TLS listeners yet answers several of them as RabbitMQ does
//! in the same situation: `virtual-hosts` and `node-is-*-critical` are ok,
//! `certificate-expiration` is ok once its arguments are valid.

use serde_json::{json, Value};

use super::overview::node_name;
use crate::core::mgmt::View;
use crate::http::{ApiError, Reply, Req};

fn ok(v: Value) -> Result<Reply, ApiError> {
    Reply::ok(v)
}

fn failed(v: Value) -> Result<Reply, ApiError> {
    Ok(Reply::Json(503, v))
}

/// The resource alarms in effect, as RabbitMQ's `rabbit_alarm:format_as_maps`.
fn alarms(req: &Req<'_>) -> Vec<Value> {
    let a = View::of(&req.shared.broker.borrow()).alarms();
    let node = node_name();
    [(a.disk, "disk space"), (a.mem, "memory")]
        .into_iter()
        .filter(|(on, _)| *on)
        .map(|(_, resource)| json!({"resource": resource, "node": node}))
        .collect()
}

fn alarm_check(req: &Req<'_>, reason: &str) -> Result<Reply, ApiError> {
    let alarms = alarms(req);
    if alarms.is_empty() {
        return ok(json!({"status": "ok"}));
    }
    failed(json!({"status": "failed", "reason": reason, "alarms": alarms}))
}

/// Alarms anywhere in the cluster (this node is the cluster).
pub(crate) fn alarms_cluster(req: &Req<'_>) -> Result<Reply, ApiError> {
    alarm_check(req, "There are alarms in effect in the cluster")
}

pub(crate) fn alarms_local(req: &Req<'_>) -> Result<Reply, ApiError> {
    alarm_check(req, "There are alarms in effect on the node")
}

/// The ports this node listens on (AMQP, AMQPS, API, HTTPS API, metrics), ascending.
fn listener_ports(req: &Req<'_>) -> Vec<u16> {
    let amqp = req
        .info
        .amqp_addr
        .rsplit_once(':')
        .and_then(|(_, p)| p.parse::<u16>().ok());
    let mut ports: Vec<u16> = [
        amqp,
        req.info.amqps_port,
        req.info.api_port,
        req.info.https_port,
        req.info.metrics_port,
    ]
    .into_iter()
    .flatten()
    .collect();
    ports.sort_unstable();
    ports.dedup();
    ports
}

pub(crate) fn port_listener(req: &Req<'_>) -> Result<Reply, ApiError> {
    let port: u64 = req
        .param("port")
        .parse()
        .map_err(|_| ApiError::bad_request("Invalid port"))?;
    let ports = listener_ports(req);
    if ports.iter().any(|p| u64::from(*p) == port) {
        return ok(json!({"status": "ok", "port": port}));
    }
    failed(json!({"status": "failed", "reason": "No active listener", "missing": port, "ports": ports}))
}

pub(crate) fn protocol_listener(req: &Req<'_>) -> Result<Reply, ApiError> {
    let mut protocols = vec!["amqp"];
    if req.info.amqps_port.is_some() {
        protocols.push("amqp/ssl");
    }
    if req.info.api_port.is_some() {
        protocols.push("http");
    }
    if req.info.https_port.is_some() {
        protocols.push("https");
    }
    if req.info.metrics_port.is_some() {
        protocols.push("http/prometheus");
    }
    // RabbitMQ normalises the AMQP 0-9-1 aliases and answers with the name.
    let wanted = match req.param("protocol") {
        "amqp091" | "amqp0-9-1" | "amqp0.9.1" => "amqp",
        "amqps" => "amqp/ssl",
        "prometheus" => "http/prometheus",
        p => p,
    };
    if protocols.contains(&wanted) {
        return ok(json!({"status": "ok", "protocol": wanted}));
    }
    failed(json!({"status": "failed", "reason": "No active listener", "missing": wanted, "protocols": protocols}))
}

/// Every vhost of a single node runs while the broker runs.
pub(crate) fn virtual_hosts(_req: &Req<'_>) -> Result<Reply, ApiError> {
    ok(json!({"status": "ok"}))
}

/// `node-is-quorum-critical` and `node-is-mirror-sync-critical`: without
/// replicas nothing depends on this node staying up but itself.
pub(crate) fn not_critical(_req: &Req<'_>) -> Result<Reply, ApiError> {
    ok(json!({"status": "ok", "reason": "single node cluster"}))
}

/// `certificate-expiration/{within}/{unit}`: RabbitMQ checks the certificates
/// of its TLS listeners; with none (ringmq has no TLS yet) it is ok once the
/// arguments parse, with RabbitMQ's 400 texts otherwise.
pub(crate) fn certificate_expiration(req: &Req<'_>) -> Result<Reply, ApiError> {
    if !["days", "weeks", "months", "years"].contains(&req.param("unit")) {
        return Err(ApiError::bad_request(
            "Time unit not recognised. Supported units: days, weeks, months, years.",
        ));
    }
    req.param("within")
        .parse::<i64>()
        .map_err(|_| ApiError::bad_request("Invalid expiration value."))?;
    ok(json!({"status": "ok"}))
}
