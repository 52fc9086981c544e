//! `/api/health/checks/*`, RabbitMQ's health checks as monitoring tools call
//! them: 200 `{"status":"ok"}` when healthy, 503 with `"status":"failed"`, a
//! `reason` and details when not (shapes of RabbitMQ 3.10).
//!
//! A single node that never runs a vhost down, has no mirrors or quorum
//! replicas and no TLS listeners yet answers several of them as RabbitMQ does
//! in the same situation: `virtual-hosts` and `node-is-*-critical` are ok,
//! `certificate-expiration` checks the TLS listeners' certificates.

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

/// `certificate-expiration/{within}/{unit}`, as RabbitMQ 3.10 answers it:
/// 200 `{"status":"ok"}` when no certificate of a TLS listener (its
/// certificate file with the chain, and on AMQPS the CA bundle) expires within
/// that time; else 503 with `"reason":"Certificates expiring"` and, per
/// listener and certificate file, the dates (`expired`). With no TLS listener
/// it is ok once the arguments parse. Months are 365/12 days, as there.
pub(crate) fn certificate_expiration(req: &Req<'_>) -> Result<Reply, ApiError> {
    let unit_secs: f64 = match req.param("unit").to_ascii_lowercase().as_str() {
        "days" => 86_400.0,
        "weeks" => 7.0 * 86_400.0,
        "months" => 86_400.0 * 365.0 / 12.0,
        "years" => 365.0 * 86_400.0,
        _ => {
            return Err(ApiError::bad_request(
                "Time unit not recognised. Supported units: days, weeks, months, years.",
            ))
        }
    };
    let within = req
        .param("within")
        .parse::<i64>()
        .map_err(|_| ApiError::bad_request("Invalid expiration value."))?;
    let Some(tls) = &req.info.tls else {
        return ok(json!({"status": "ok"}));
    };
    let now = (req.now_ms / 1000) as i64;
    let limit = now.saturating_add((within as f64 * unit_secs) as i64);
    let files = tls.files();
    let expiring: Vec<Value> = tls_listeners(req)
        .into_iter()
        .flat_map(|(protocol, port)| {
            let files = &files;
            files
                .iter()
                .filter(|f| f.role == crate::tls::FileRole::Certificate)
                .filter_map(move |f| {
                    // The CA bundle of the same name (an `[sni:HOST]`'s own), else [main]'s.
                    let ca_of = |sni: &Option<String>| {
                        (files.iter()).find(|c| c.role == crate::tls::FileRole::CaBundle && &c.sni == sni)
                    };
                    let ca = (protocol == "amqp/ssl")
                        .then(|| ca_of(&f.sni).or_else(|| ca_of(&None)))
                        .flatten();
                    let soon = |f: &crate::tls::CertFile| -> Vec<String> {
                        (f.not_after_unix.iter())
                            .filter(|t| **t < limit)
                            .map(|t| expiry_text(*t))
                            .collect()
                    };
                    let (cert_soon, ca_soon) = (soon(f), ca.map(soon).unwrap_or_default());
                    if cert_soon.is_empty() && ca_soon.is_empty() {
                        return None;
                    }
                    Some(json!({
                        "node": node_name(),
                        "protocol": protocol,
                        "interface": listener_host(req),
                        "port": port,
                        "sni": f.sni,
                        "certfile": f.path.display().to_string(),
                        "cacertfile": ca.map(|c| c.path.display().to_string()),
                        "certfile_expires_on": cert_soon,
                        "cacertfile_expires_on": ca_soon,
                    }))
                })
        })
        .collect();
    if expiring.is_empty() {
        return ok(json!({"status": "ok"}));
    }
    failed(json!({"status": "failed", "reason": "Certificates expiring", "expired": expiring}))
}

/// The TLS listeners: RabbitMQ's protocol name and port.
fn tls_listeners(req: &Req<'_>) -> Vec<(&'static str, u16)> {
    let mut out = Vec::new();
    if let Some(p) = req.info.amqps_port {
        out.push(("amqp/ssl", p));
    }
    if let Some(p) = req.info.https_port {
        out.push(("https", p));
    }
    out
}

fn listener_host(req: &Req<'_>) -> String {
    let a = req.info.amqp_addr.as_str();
    a.rsplit_once(':')
        .map_or(a, |(h, _)| h)
        .trim_matches(['[', ']'])
        .to_owned()
}

/// RabbitMQ's format of an expiry date: `2026-01-31 9:05:00` (UTC; the hour
/// is not padded).
fn expiry_text(unix: i64) -> String {
    let iso = crate::tls::x509::utc_text(unix); // 2026-01-31T09:05:00Z
    let (date, time) = iso.trim_end_matches('Z').split_once('T').unwrap_or((&iso, ""));
    format!("{date} {}", time.strip_prefix('0').unwrap_or(time))
}

#[cfg(test)]
mod tests {
    #[test]
    fn expiry_dates_as_rabbitmq_writes_them() {
        assert_eq!(super::expiry_text(1_700_000_000), "2023-11-14 22:13:20");
        assert_eq!(super::expiry_text(0), "1970-01-01 0:00:00");
    }
}
