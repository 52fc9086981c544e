//! One function per command: build the request, send it, print the reply as a table,
//! `key: value` lines or, with `--json`, the API's JSON.

use std::io::{Read, Write};

use serde_json::{json, Value};

use crate::args::{Globals, Invocation, Opts};
use crate::client::{api_path, exchange_segment, Client, Request};
use crate::error::CtlError;
use crate::{lists, ops, table};

/// Bytes of a message body `get` asks the server to return (the API's `truncate`).
const GET_TRUNCATE_BYTES: u64 = 50_000;
/// Bound on a definitions file read for `import_definitions`.
const IMPORT_BYTES_MAX: u64 = 1 << 30;

pub struct Ctx<'a> {
    pub client: Client,
    pub g: &'a Globals,
    pub opts: &'a Opts,
    pub args: &'a [String],
}

pub fn run(inv: &Invocation) -> Result<(), CtlError> {
    // The commands that do not use the API client (or make their own).
    match inv.command.name {
        "ping" => {
            let addr = inv
                .args
                .first()
                .map(String::as_str)
                .unwrap_or(crate::ping::DEFAULT_ADDR);
            let timeout = std::time::Duration::from_secs(inv.globals.timeout_secs.unwrap_or(10));
            return emit(&crate::ping::ping(addr, timeout)?);
        }
        "hash_password" => return ops::hash_password(&inv.args[0]),
        "completion" => return emit(&crate::completion::script(&inv.args[0])?),
        "await_startup" => return ops::await_startup(&inv.globals),
        _ => {}
    }
    let client = Client::new(&inv.globals.endpoint()?)?;
    let ctx = Ctx {
        client,
        g: &inv.globals,
        opts: &inv.opts,
        args: &inv.args,
    };
    match inv.command.name {
        "status" => status(&ctx),
        "whoami" => whoami(&ctx),
        "cluster_status" => ops::cluster_status(&ctx),
        "list" => list(&ctx),
        "add_user" => add_user(&ctx),
        "delete_user" => ctx.delete(api_path(&["users", ctx.arg(0)]), "deleted user"),
        "change_password" => change_password(&ctx),
        "set_user_tags" => set_user_tags(&ctx),
        "set_permissions" => set_permissions(&ctx),
        "clear_permissions" => ctx.delete(
            api_path(&["permissions", ctx.g.vhost(), ctx.arg(0)]),
            "cleared permissions of",
        ),
        "set_topic_permissions" => set_topic_permissions(&ctx),
        "clear_topic_permissions" => {
            let mut path = vec!["topic-permissions", ctx.g.vhost(), ctx.arg(0)];
            path.extend(ctx.args.get(1).map(String::as_str));
            ctx.delete(api_path(&path), "cleared topic permissions of")
        }
        "add_vhost" => add_vhost(&ctx),
        "delete_vhost" => ctx.delete(api_path(&["vhosts", ctx.arg(0)]), "deleted vhost"),
        "set_policy" => set_policy(&ctx, "policies"),
        "clear_policy" => ctx.delete(api_path(&["policies", ctx.g.vhost(), ctx.arg(0)]), "cleared policy"),
        "set_operator_policy" => set_policy(&ctx, "operator-policies"),
        "clear_operator_policy" => ctx.delete(
            api_path(&["operator-policies", ctx.g.vhost(), ctx.arg(0)]),
            "cleared operator policy",
        ),
        "set_vhost_limits" => set_vhost_limits(&ctx),
        "clear_vhost_limits" => clear_vhost_limits(&ctx),
        "export_definitions" => export_definitions(&ctx),
        "import_definitions" => import_definitions(&ctx),
        "close_connection" => close_connection(&ctx),
        "declare_queue" => declare_queue(&ctx),
        "purge_queue" => ctx.delete(
            format!("{}/contents", api_path(&["queues", ctx.g.vhost(), ctx.arg(0)])),
            "purged queue",
        ),
        "delete_queue" => delete_queue(&ctx),
        "declare_exchange" => declare_exchange(&ctx),
        "delete_exchange" => delete_exchange(&ctx),
        "declare_binding" => declare_binding(&ctx),
        "publish" => publish(&ctx),
        "get" => get(&ctx),
        "delete_binding" => ops::delete_binding(&ctx),
        "pause_queue" => ops::pause_queue(&ctx, true),
        "resume_queue" => ops::pause_queue(&ctx, false),
        "close_all_connections" => ops::close_all_connections(&ctx),
        "set_user_limits" => ops::set_user_limits(&ctx),
        "clear_user_limits" => ops::clear_user_limits(&ctx),
        "set_parameter" => ops::set_parameter(&ctx),
        "clear_parameter" => ops::clear_parameter(&ctx),
        other => unreachable!("command {other} is in the table but has no handler"),
    }
}

impl Ctx<'_> {
    pub fn arg(&self, i: usize) -> &str {
        &self.args[i]
    }

    /// Prints `done NAME` (or the reply with `--json`) after a mutating request.
    pub fn done(&self, reply: Option<Value>, what: &str, name: &str) -> Result<(), CtlError> {
        if self.g.json {
            return reply.map_or(Ok(()), |v| print_json(&v));
        }
        emit(&format!("{what} {name:?}\n"))
    }

    fn delete(&self, path: String, what: &str) -> Result<(), CtlError> {
        let reply = self.client.delete(path)?;
        self.done(reply, what, self.arg(0))
    }
}

/// Writes to stdout; a closed pipe (`ringmqctl list queues | head`) is not an error.
pub fn emit(text: &str) -> Result<(), CtlError> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(CtlError::Other(format!("writing to stdout: {e}"))),
        _ => Ok(()),
    }
}

pub fn print_json(v: &Value) -> Result<(), CtlError> {
    let text = serde_json::to_string_pretty(v).expect("a Value always serializes");
    emit(&format!("{text}\n"))
}

/// A command-line argument that must be a JSON object (definitions, arguments).
pub fn json_object(what: &str, text: &str) -> Result<Value, CtlError> {
    match serde_json::from_str::<Value>(text) {
        Ok(v @ Value::Object(_)) => Ok(v),
        Ok(_) => Err(CtlError::Usage(format!("{what}: expected a JSON object, got {text}"))),
        Err(e) => Err(CtlError::Usage(format!("{what}: invalid JSON ({e}): {text}"))),
    }
}

pub fn optional_object(opts: &Opts, name: &str) -> Result<Value, CtlError> {
    opts.value(name)
        .map_or(Ok(json!({})), |t| json_object(&format!("--{name}"), t))
}

fn rate(overview: &Value, stat: &str) -> String {
    let path = format!("message_stats.{stat}_details.rate");
    let r = table::cell(table::lookup(overview, &path));
    format!("{}/s", if r.is_empty() { "0" } else { &r })
}

fn human_duration(ms: u64) -> String {
    let s = ms / 1000;
    let (d, h, m, s) = (s / 86_400, s / 3600 % 24, s / 60 % 60, s % 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, _) => format!("{m}m {s}s"),
        (0, _, _) => format!("{h}h {m}m {s}s"),
        _ => format!("{d}d {h}h {m}m {s}s"),
    }
}

fn status(ctx: &Ctx<'_>) -> Result<(), CtlError> {
    let ov = ctx.client.get(api_path(&["overview"]))?;
    if ctx.g.json {
        return print_json(&ov);
    }
    let f = |path: &str| table::cell(table::lookup(&ov, path));
    let product = match (f("product_name"), f("product_version")) {
        (name, ver) if !name.is_empty() => format!("{name} {ver}"),
        _ => format!("RabbitMQ {}", f("rabbitmq_version")),
    };
    let mut pairs = vec![
        ("product".to_string(), product),
        ("management version".into(), f("management_version")),
        ("node".into(), f("node")),
        ("cluster".into(), f("cluster_name")),
    ];
    // Uptime, memory and disk are per node; a server without /api/nodes still has a
    // useful status, so a failure here only drops those lines.
    if let Ok(nodes) = ctx.client.get(api_path(&["nodes"])) {
        if let Some(node) = table::rows(&nodes).first() {
            if let Some(ms) = node.get("uptime").and_then(Value::as_u64) {
                pairs.push(("uptime".into(), human_duration(ms)));
            }
            for (label, key) in [
                ("memory used", "mem_used"),
                ("memory limit", "mem_limit"),
                ("disk free", "disk_free"),
                ("disk free limit", "disk_free_limit"),
            ] {
                if let Some(bytes) = node.get(key).and_then(Value::as_u64) {
                    pairs.push((label.into(), format!("{} MiB", bytes / (1 << 20))));
                }
            }
            pairs.push(("alarms".into(), alarms(node)));
        }
    }
    for kind in ["connections", "channels", "exchanges", "queues", "consumers"] {
        pairs.push((kind.into(), f(&format!("object_totals.{kind}"))));
    }
    for (label, key) in [
        ("messages", "messages"),
        ("messages ready", "messages_ready"),
        ("messages unacked", "messages_unacknowledged"),
    ] {
        pairs.push((label.into(), f(&format!("queue_totals.{key}"))));
    }
    for (label, stat) in [
        ("publish rate", "publish"),
        ("deliver/get rate", "deliver_get"),
        ("ack rate", "ack"),
        ("confirm rate", "confirm"),
        ("redeliver rate", "redeliver"),
    ] {
        pairs.push((label.into(), rate(&ov, stat)));
    }
    emit(&table::render_pairs(&pairs))
}

/// The resource alarms of a node (`/api/nodes`), as rabbitmqctl status names them.
fn alarms(node: &Value) -> String {
    let on: Vec<&str> = [("mem_alarm", "memory"), ("disk_free_alarm", "disk")]
        .iter()
        .filter(|(key, _)| node.get(key).and_then(Value::as_bool) == Some(true))
        .map(|(_, name)| *name)
        .collect();
    if on.is_empty() {
        "none".into()
    } else {
        on.join(", ")
    }
}

fn whoami(ctx: &Ctx<'_>) -> Result<(), CtlError> {
    let me = ctx.client.get(api_path(&["whoami"]))?;
    if ctx.g.json {
        return print_json(&me);
    }
    let f = |k: &str| table::cell(me.get(k));
    emit(&table::render_pairs(&[
        ("user".into(), f("name")),
        ("tags".into(), f("tags")),
    ]))
}

fn list(ctx: &Ctx<'_>) -> Result<(), CtlError> {
    let kind = lists::find(ctx.arg(0)).expect("kind checked by the parser");
    let all = ctx.opts.flag("all-vhosts");
    let reply = ctx.client.get(kind.path((!all).then(|| ctx.g.vhost())))?;
    if ctx.g.json {
        return print_json(&reply);
    }
    let columns = match ctx.opts.value("columns") {
        Some(c) => c
            .split(',')
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect(),
        None => kind.default_columns(all),
    };
    emit(&table::render(&columns, &table::rows(&reply)))
}

fn add_user(ctx: &Ctx<'_>) -> Result<(), CtlError> {
    let (name, password) = (ctx.arg(0), ctx.arg(1));
    let tags = ctx.opts.value("tags").unwrap_or("");
    let body = json!({"password": password, "tags": tags});
    let reply = ctx.client.put(api_path(&["users", name]), &body)?;
    ctx.done(reply, "added user", name)
}

fn change_password(ctx: &Ctx<'_>) -> Result<(), CtlError> {
    let name = ctx.arg(0);
    // PUT replaces the whole user: carry its tags over.
    let user = ctx.client.get(api_path(&["users", name]))?;
    let tags = user.get("tags").cloned().unwrap_or(json!(""));
    let body = json!({"password": ctx.arg(1), "tags": tags});
    let reply = ctx.client.put(api_path(&["users", name]), &body)?;
    ctx.done(reply, "changed password of", name)
}

fn set_user_tags(ctx: &Ctx<'_>) -> Result<(), CtlError> {
    let name = ctx.arg(0);
    let tags = ctx.args[1..].join(",");
    // PUT replaces the whole user: send its current hash back so the password stays.
    let user = ctx.client.get(api_path(&["users", name]))?;
    let mut body = json!({"tags": tags});
    for key in ["password_hash", "hashing_algorithm"] {
        if let Some(v) = user.get(key) {
            body[key] = v.clone();
        }
    }
    let reply = ctx.client.put(api_path(&["users", name]), &body)?;
    ctx.done(reply, "set tags of", name)
}

fn set_permissions(ctx: &Ctx<'_>) -> Result<(), CtlError> {
    let user = ctx.arg(0);
    let body = json!({"configure": ctx.arg(1), "write": ctx.arg(2), "read": ctx.arg(3)});
    let reply = ctx.client.put(api_path(&["permissions", ctx.g.vhost(), user]), &body)?;
    ctx.done(reply, "set permissions of", user)
}

fn set_topic_permissions(ctx: &Ctx<'_>) -> Result<(), CtlError> {
    let user = ctx.arg(0);
    let body = json!({"exchange": ctx.arg(1), "write": ctx.arg(2), "read": ctx.arg(3)});
    let path = api_path(&["topic-permissions", ctx.g.vhost(), user]);
    let reply = ctx.client.put(path, &body)?;
    ctx.done(reply, "set topic permissions of", user)
}

fn add_vhost(ctx: &Ctx<'_>) -> Result<(), CtlError> {
    let name = ctx.arg(0);
    let mut body = json!({});
    if let Some(d) = ctx.opts.value("description") {
        body["description"] = json!(d);
    }
    let reply = ctx.client.put(api_path(&["vhosts", name]), &body)?;
    ctx.done(reply, "added vhost", name)
}

fn set_policy(ctx: &Ctx<'_>, segment: &str) -> Result<(), CtlError> {
    let name = ctx.arg(0);
    let definition = json_object("DEFINITION_JSON", ctx.arg(2))?;
    let priority: i64 = ctx.opts.parsed("priority")?.unwrap_or(0);
    let apply_to = ctx.opts.value("apply-to").unwrap_or("all");
    if ![
        "queues",
        "exchanges",
        "all",
        "classic_queues",
        "quorum_queues",
        "streams",
    ]
    .contains(&apply_to)
    {
        return Err(CtlError::Usage(format!(
            "--apply-to {apply_to}: expected queues, exchanges or all"
        )));
    }
    let body = json!({
        "pattern": ctx.arg(1),
        "definition": definition,
        "priority": priority,
        "apply-to": apply_to,
    });
    let reply = ctx.client.put(api_path(&[segment, ctx.g.vhost(), name]), &body)?;
    ctx.done(reply, "set policy", name)
}

fn set_vhost_limits(ctx: &Ctx<'_>) -> Result<(), CtlError> {
    let limits = json_object("JSON", ctx.arg(0))?;
    let vhost = ctx.g.vhost();
    // The API sets one limit per request: PUT /api/vhost-limits/VHOST/NAME {"value": N}.
    for (name, value) in limits.as_object().expect("checked to be an object") {
        ctx.client
            .put(api_path(&["vhost-limits", vhost, name]), &json!({"value": value}))?;
    }
    ctx.done(None, "set limits of vhost", vhost)
}

fn clear_vhost_limits(ctx: &Ctx<'_>) -> Result<(), CtlError> {
    let vhost = ctx.g.vhost();
    let reply = ctx.client.get(api_path(&["vhost-limits", vhost]))?;
    for row in table::rows(&reply) {
        // RabbitMQ sends `"value": []` when there are none.
        let Some(limits) = row.get("value").and_then(Value::as_object) else {
            continue;
        };
        for name in limits.keys() {
            ctx.client.delete(api_path(&["vhost-limits", vhost, name]))?;
        }
    }
    ctx.done(None, "cleared limits of vhost", vhost)
}

fn definitions_path(g: &Globals) -> String {
    match &g.vhost {
        Some(v) => api_path(&["definitions", v]),
        None => api_path(&["definitions"]),
    }
}

fn export_definitions(ctx: &Ctx<'_>) -> Result<(), CtlError> {
    let defs = ctx.client.get(definitions_path(ctx.g))?;
    let text = serde_json::to_string_pretty(&defs).expect("a Value always serializes") + "\n";
    match ctx.arg(0) {
        "-" => emit(&text),
        file => {
            std::fs::write(file, text).map_err(|e| CtlError::Other(format!("writing {file}: {e}")))?;
            ctx.done(None, "exported definitions to", file)
        }
    }
}

fn import_definitions(ctx: &Ctx<'_>) -> Result<(), CtlError> {
    let source = ctx.arg(0);
    let mut text = String::new();
    let read = if source == "-" {
        std::io::stdin().take(IMPORT_BYTES_MAX).read_to_string(&mut text)
    } else {
        std::fs::File::open(source).and_then(|f| f.take(IMPORT_BYTES_MAX).read_to_string(&mut text))
    };
    read.map_err(|e| CtlError::Other(format!("reading {source}: {e}")))?;
    // Check locally so a truncated file gets a clear message, not a server 400.
    json_object(source, &text).map_err(|e| CtlError::Other(e.to_string()))?;
    let reply = ctx
        .client
        .send(Request::new("POST", definitions_path(ctx.g)).raw_body(text))?;
    ctx.done(reply, "imported definitions from", source)
}

fn close_connection(ctx: &Ctx<'_>) -> Result<(), CtlError> {
    let mut req = Request::new("DELETE", api_path(&["connections", ctx.arg(0)]));
    if let Some(reason) = ctx.args.get(1) {
        req = req.header("X-Reason", reason.clone());
    }
    let reply = ctx.client.send(req)?;
    ctx.done(reply, "closed connection", ctx.arg(0))
}

fn declare_queue(ctx: &Ctx<'_>) -> Result<(), CtlError> {
    let name = ctx.arg(0);
    let body = json!({
        "durable": ctx.opts.flag("durable"),
        "auto_delete": ctx.opts.flag("auto-delete"),
        "arguments": optional_object(ctx.opts, "arguments")?,
    });
    let reply = ctx.client.put(api_path(&["queues", ctx.g.vhost(), name]), &body)?;
    ctx.done(reply, "declared queue", name)
}

/// `?if-unused=true&if-empty=true` for the flags given.
fn conditions(opts: &Opts, names: &[&str]) -> String {
    let set: Vec<String> = names
        .iter()
        .filter(|n| opts.flag(n))
        .map(|n| format!("{n}=true"))
        .collect();
    if set.is_empty() {
        String::new()
    } else {
        format!("?{}", set.join("&"))
    }
}

fn delete_queue(ctx: &Ctx<'_>) -> Result<(), CtlError> {
    let name = ctx.arg(0);
    let path = api_path(&["queues", ctx.g.vhost(), name]) + &conditions(ctx.opts, &["if-unused", "if-empty"]);
    let reply = ctx.client.delete(path)?;
    ctx.done(reply, "deleted queue", name)
}

fn declare_exchange(ctx: &Ctx<'_>) -> Result<(), CtlError> {
    let name = ctx.arg(0);
    let body = json!({
        "type": ctx.arg(1),
        "durable": ctx.opts.flag("durable"),
        "auto_delete": ctx.opts.flag("auto-delete"),
        "internal": ctx.opts.flag("internal"),
        "arguments": optional_object(ctx.opts, "arguments")?,
    });
    let reply = ctx.client.put(api_path(&["exchanges", ctx.g.vhost(), name]), &body)?;
    ctx.done(reply, "declared exchange", name)
}

fn delete_exchange(ctx: &Ctx<'_>) -> Result<(), CtlError> {
    let name = ctx.arg(0);
    let path = api_path(&["exchanges", ctx.g.vhost(), name]) + &conditions(ctx.opts, &["if-unused"]);
    let reply = ctx.client.delete(path)?;
    ctx.done(reply, "deleted exchange", name)
}

/// `--destination-type` as the bindings API's path names it: `q` or `e`.
pub fn destination_kind(opts: &Opts) -> Result<&'static str, CtlError> {
    match opts.value("destination-type").unwrap_or("queue") {
        "queue" => Ok("q"),
        "exchange" => Ok("e"),
        other => Err(CtlError::Usage(format!(
            "--destination-type {other}: expected queue or exchange"
        ))),
    }
}

fn declare_binding(ctx: &Ctx<'_>) -> Result<(), CtlError> {
    let (source, dest) = (ctx.arg(0), ctx.arg(1));
    let dest_kind = destination_kind(ctx.opts)?;
    let body = json!({
        "routing_key": ctx.opts.value("routing-key").unwrap_or(""),
        "arguments": optional_object(ctx.opts, "arguments")?,
    });
    let path = api_path(&["bindings", ctx.g.vhost(), "e", source, dest_kind, dest]);
    let reply = ctx.client.post(path, &body)?;
    ctx.done(reply, "bound", &format!("{source} -> {dest}"))
}

fn publish(ctx: &Ctx<'_>) -> Result<(), CtlError> {
    let exchange = ctx.arg(0);
    let body = json!({
        "properties": optional_object(ctx.opts, "properties")?,
        "routing_key": ctx.arg(1),
        "payload": ctx.arg(2),
        "payload_encoding": "string",
    });
    let path = api_path(&["exchanges", ctx.g.vhost(), exchange_segment(exchange), "publish"]);
    let reply = ctx.client.post(path, &body)?.unwrap_or(Value::Null);
    if ctx.g.json {
        return print_json(&reply);
    }
    let routed = reply.get("routed").and_then(Value::as_bool).unwrap_or(false);
    emit(if routed {
        "published, routed\n"
    } else {
        "published, but not routed to any queue\n"
    })
}

fn get(ctx: &Ctx<'_>) -> Result<(), CtlError> {
    let count: u64 = ctx.opts.parsed("count")?.unwrap_or(1);
    let ackmode = if ctx.opts.flag("ack") {
        "ack_requeue_false"
    } else {
        "ack_requeue_true"
    };
    let body = json!({
        "count": count,
        "ackmode": ackmode,
        "encoding": "auto",
        "truncate": GET_TRUNCATE_BYTES,
    });
    let path = format!("{}/get", api_path(&["queues", ctx.g.vhost(), ctx.arg(0)]));
    let reply = ctx.client.post(path, &body)?.unwrap_or(Value::Null);
    if ctx.g.json {
        return print_json(&reply);
    }
    let columns: Vec<String> = [
        "exchange",
        "routing_key",
        "redelivered",
        "message_count",
        "payload_bytes",
        "payload_encoding",
        "payload",
        "properties",
    ]
    .iter()
    .map(|c| c.to_string())
    .collect();
    emit(&table::render(&columns, &table::rows(&reply)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_like_uptime() {
        assert_eq!(human_duration(999), "0s");
        assert_eq!(human_duration(61_000), "1m 1s");
        assert_eq!(human_duration(3_600_000), "1h 0m 0s");
        assert_eq!(human_duration(90_061_000), "1d 1h 1m 1s");
    }

    #[test]
    fn json_arguments_must_be_objects() {
        assert!(json_object("x", r#"{"a":1}"#).is_ok());
        assert!(matches!(json_object("x", "[1]"), Err(CtlError::Usage(m)) if m.contains("JSON object")));
        assert!(matches!(json_object("x", "{"), Err(CtlError::Usage(m)) if m.contains("invalid JSON")));
    }

    #[test]
    fn delete_conditions_become_a_query() {
        let parse = |a: &[&str]| match crate::args::parse(a.iter().map(|s| s.to_string())) {
            Ok(crate::args::Parsed::Run(inv)) => inv.opts,
            _ => panic!("parse"),
        };
        let opts = parse(&["delete_queue", "q", "--if-empty", "--if-unused"]);
        assert_eq!(
            conditions(&opts, &["if-unused", "if-empty"]),
            "?if-unused=true&if-empty=true"
        );
        let opts = parse(&["delete_queue", "q"]);
        assert_eq!(conditions(&opts, &["if-unused", "if-empty"]), "");
    }

    #[test]
    fn rates_default_to_zero() {
        let ov = json!({"message_stats": {"publish_details": {"rate": 12.345}}});
        assert_eq!(rate(&ov, "publish"), "12.35/s");
        assert_eq!(rate(&ov, "ack"), "0/s");
    }
}
