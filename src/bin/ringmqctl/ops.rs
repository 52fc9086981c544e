//! Operators' commands of rabbitmqctl and lavinmqctl beyond declaring and
//! listing: queue pause/resume, closing every connection, user limits, runtime
//! parameters, removing a binding, waiting for the broker to start, the
//! cluster's status, and hashing a password offline.

use std::io::Read;
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{json, Value};
use sha2::Digest as _;

use crate::client::{api_path, Client, Request};
use crate::commands::{emit, json_object, optional_object, print_json, Ctx};
use crate::error::CtlError;
use crate::table;

/// LavinMQ's `PUT /api/queues/VHOST/NAME/pause` (and `resume`).
pub fn pause_queue(ctx: &Ctx<'_>, pause: bool) -> Result<(), CtlError> {
    let (action, done) = if pause {
        ("pause", "paused queue")
    } else {
        ("resume", "resumed queue")
    };
    let path = format!("{}/{action}", api_path(&["queues", ctx.g.vhost(), ctx.arg(0)]));
    let reply = ctx.client.put(path, &json!({}))?;
    ctx.done(reply, done, ctx.arg(0))
}

/// Closes the connections the API lists (all, or those of `--vhost`), each with
/// the reason, as lavinmqctl does.
pub fn close_all_connections(ctx: &Ctx<'_>) -> Result<(), CtlError> {
    let list = match &ctx.g.vhost {
        Some(v) => ctx.client.get(api_path(&["vhosts", v, "connections"]))?,
        None => ctx.client.get(api_path(&["connections"]))?,
    };
    let reason = ctx
        .args
        .first()
        .cloned()
        .unwrap_or_else(|| "Closed via ringmqctl".into());
    let mut closed = Vec::new();
    for row in table::rows(&list) {
        let Some(name) = row.get("name").and_then(Value::as_str) else {
            continue;
        };
        let req = Request::new("DELETE", api_path(&["connections", name])).header("X-Reason", reason.clone());
        match ctx.client.send(req) {
            Ok(_) => closed.push(name.to_owned()),
            // Gone between the list and the close: nothing to do.
            Err(CtlError::Api { status: 404, .. }) => {}
            Err(e) => return Err(e),
        }
    }
    if ctx.g.json {
        return print_json(&json!(closed));
    }
    emit(&format!("closed {} connection(s)\n", closed.len()))
}

/// rabbitmqctl's `set_user_limits USER '{"max-connections": N, ...}'`: the API
/// sets one limit per request.
pub fn set_user_limits(ctx: &Ctx<'_>) -> Result<(), CtlError> {
    let user = ctx.arg(0);
    let limits = json_object("JSON", ctx.arg(1))?;
    for (name, value) in limits.as_object().expect("checked to be an object") {
        ctx.client
            .put(api_path(&["user-limits", user, name]), &json!({"value": value}))?;
    }
    ctx.done(None, "set limits of user", user)
}

/// rabbitmqctl's `clear_user_limits USER LIMIT|all`.
pub fn clear_user_limits(ctx: &Ctx<'_>) -> Result<(), CtlError> {
    let user = ctx.arg(0);
    let names: Vec<String> = match ctx.args.get(1).map(String::as_str) {
        Some("all") | None => {
            let reply = ctx.client.get(api_path(&["user-limits", user]))?;
            table::rows(&reply)
                .iter()
                .filter_map(|r| r.get("value").and_then(Value::as_object))
                .flat_map(|o| o.keys().cloned())
                .collect()
        }
        Some(one) => vec![one.to_owned()],
    };
    for name in &names {
        ctx.client.delete(api_path(&["user-limits", user, name]))?;
    }
    ctx.done(None, "cleared limits of user", user)
}

pub fn set_parameter(ctx: &Ctx<'_>) -> Result<(), CtlError> {
    let (component, name) = (ctx.arg(0), ctx.arg(1));
    let value: Value = serde_json::from_str(ctx.arg(2))
        .map_err(|e| CtlError::Usage(format!("JSON: invalid JSON ({e}): {}", ctx.arg(2))))?;
    let path = api_path(&["parameters", component, ctx.g.vhost(), name]);
    let body = json!({"component": component, "vhost": ctx.g.vhost(), "name": name, "value": value});
    let reply = ctx.client.put(path, &body)?;
    ctx.done(reply, "set parameter", name)
}

pub fn clear_parameter(ctx: &Ctx<'_>) -> Result<(), CtlError> {
    let path = api_path(&["parameters", ctx.arg(0), ctx.g.vhost(), ctx.arg(1)]);
    let reply = ctx.client.delete(path)?;
    ctx.done(reply, "cleared parameter", ctx.arg(1))
}

/// Finds the binding with the routing key and arguments among those between
/// the two objects, and deletes it by its `properties_key` (the API's name for
/// one binding).
pub fn delete_binding(ctx: &Ctx<'_>) -> Result<(), CtlError> {
    let (source, dest) = (ctx.arg(0), ctx.arg(1));
    let kind = crate::commands::destination_kind(ctx.opts)?;
    let key = ctx.opts.value("routing-key").unwrap_or("");
    let args = optional_object(ctx.opts, "arguments")?;
    let between = api_path(&["bindings", ctx.g.vhost(), "e", source, kind, dest]);
    let list = ctx.client.get(between.clone())?;
    let props = table::rows(&list)
        .into_iter()
        .find(|b| {
            b.get("routing_key").and_then(Value::as_str) == Some(key)
                && b.get("arguments").cloned().unwrap_or_else(|| json!({})) == args
        })
        .and_then(|b| b.get("properties_key").and_then(Value::as_str).map(str::to_owned))
        .ok_or_else(|| {
            CtlError::Other(format!(
                "no binding from {source:?} to {dest:?} with routing key {key:?} and arguments {args}"
            ))
        })?;
    let path = format!("{between}/{}", crate::client::encode_segment(&props));
    let reply = ctx.client.delete(path)?;
    ctx.done(reply, "unbound", &format!("{source} -> {dest}"))
}

/// How long one probe of `await_startup` may take, and the pause between probes.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);
const PROBE_INTERVAL: Duration = Duration::from_millis(200);

/// rabbitmqctl's `await_startup`: polls the API until it answers (exit 0), or
/// `--timeout` seconds pass (exit 69). A refused login is an answer: the broker
/// is up, the credentials are wrong (exit 1 at once).
pub fn await_startup(g: &crate::args::Globals) -> Result<(), CtlError> {
    let mut endpoint = g.endpoint()?;
    let total = endpoint.timeout;
    endpoint.timeout = PROBE_TIMEOUT.min(total);
    let client = Client::new(&endpoint)?;
    let deadline = Instant::now() + total;
    loop {
        match client.get(api_path(&["overview"])) {
            Ok(_) => return emit(&format!("{} is up\n", endpoint.describe())),
            Err(CtlError::Unavailable(e))
            | Err(CtlError::Api {
                reason: e, status: 503, ..
            }) => {
                if Instant::now() + PROBE_INTERVAL >= deadline {
                    return Err(CtlError::Unavailable(format!(
                        "the API did not answer within {} s: {e}",
                        total.as_secs()
                    )));
                }
                std::thread::sleep(PROBE_INTERVAL);
            }
            Err(e) => return Err(e),
        }
    }
}

/// rabbitmqctl's and lavinmqctl's `hash_password`: RabbitMQ's default scheme,
/// base64(salt ++ SHA-256(salt ++ password)) with a random 4-byte salt, which
/// `password_hash` in definitions and the users API take as is. Computed here,
/// without a broker (ringmqctl does not link the broker library).
pub fn hash_password(password: &str) -> Result<(), CtlError> {
    let mut salt = [0u8; 4];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut salt))
        .map_err(|e| CtlError::Other(format!("reading /dev/urandom: {e}")))?;
    emit(&format!("{}\n", salted_sha256(salt, password)))
}

fn salted_sha256(salt: [u8; 4], password: &str) -> String {
    let digest = sha2::Sha256::new().chain_update(salt).chain_update(password).finalize();
    let mut raw = salt.to_vec();
    raw.extend_from_slice(&digest);
    base64::engine::general_purpose::STANDARD.encode(raw)
}

/// The cluster's nodes as the leader's `/api/nodes` lists them (any node's
/// API is the leader's: followers relay it): role, in the in-sync replica
/// set, changes of the replication log not held yet.
pub fn cluster_status(ctx: &Ctx<'_>) -> Result<(), CtlError> {
    let nodes = ctx.client.get(api_path(&["nodes"]))?;
    if ctx.g.json {
        return print_json(&nodes);
    }
    let rows = table::rows(&nodes);
    if !rows.iter().any(|r| r.get("role").is_some()) {
        let name = rows.first().map(|r| table::cell(r.get("name"))).unwrap_or_default();
        return emit(&format!("{name}: not clustered\n"));
    }
    let columns: Vec<String> = ["cluster_name", "role", "in_sync", "replication_lag", "running"]
        .iter()
        .map(|c| c.to_string())
        .collect();
    emit(&table::render(&columns, &rows))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_rabbitmqs() {
        // RabbitMQ's own test vector: the salt 90 8d c6 0a and "guest" (computed
        // independently with Python's hashlib, as in the broker's auth tests).
        assert_eq!(
            salted_sha256([0x90, 0x8d, 0xc6, 0x0a], "guest"),
            "kI3GCrswBLNZQzHJJ95QLoyfAVooYhnvf7jbqiW9BjOYUloe"
        );
    }
}
