//! `/api/queues`: lists, one queue, declare, delete, purge, get messages,
//! pause/resume (LavinMQ), actions (RabbitMQ's `sync`/`cancel_sync`).

use base64::Engine;
use serde_json::{json, Value};

use super::common::{details, done_part, gather, merge_done, merge_list, message_stats, QUEUE_FIELDS};
use crate::core::mgmt::views::QueueView;
use crate::core::mgmt::{AckMode, Declared, QueueSpec, View};
use crate::http::json::{arguments, boolean, properties_to_json, table_to_json};
use crate::http::paging::{self, Item, ListParams, Part, Row, SortKey};
use crate::http::{ApiError, Reply, Req};

pub(crate) struct QueueItem<'a> {
    pub q: QueueView<'a>,
    pub node: &'a str,
}

impl QueueItem<'_> {
    fn ready(&self) -> u64 {
        self.q.ready()
    }
    fn unacked(&self) -> u64 {
        self.q.unacked()
    }
}

impl Item for QueueItem<'_> {
    fn name(&self) -> &str {
        self.q.name()
    }
    fn vhost(&self) -> &str {
        self.q.vhost()
    }
    fn sort_key(&self, c: &str) -> Option<SortKey<'_>> {
        Some(match c {
            "name" => SortKey::Str(self.q.name()),
            "vhost" => SortKey::Str(self.q.vhost()),
            "messages" => SortKey::Num((self.ready() + self.unacked()) as f64),
            "messages_ready" => SortKey::Num(self.ready() as f64),
            "messages_unacknowledged" => SortKey::Num(self.unacked() as f64),
            "consumers" => SortKey::Num(self.q.consumer_count() as f64),
            "message_bytes" => SortKey::Num(self.q.total_bytes() as f64),
            c => SortKey::Num(super::common::stats_sort_key(self.q.stats(), c)?),
        })
    }
    fn render(&self) -> Value {
        let q = self.q;
        let (ready, unacked) = (self.ready(), self.unacked());
        let (ready_rate, unacked_rate) = q.depth_rates();
        let consumers = q.consumer_count();
        let mut v = json!({
            "name": q.name(),
            "vhost": q.vhost(),
            "durable": q.durable(),
            "auto_delete": q.auto_delete(),
            "exclusive": q.exclusive_owner().is_some(),
            "arguments": table_to_json(q.arguments()),
            "node": self.node,
            "type": q.kind_name(),
            // Not mirrored (RabbitMQ's value for a queue without mirrors).
            "recoverable_slaves": null,
            "state": if q.paused() { "paused" } else { "running" },
            "policy": q.policy_name(),
            "operator_policy": q.operator_policy_name(),
            "effective_policy_definition": q.effective_policy_definition(),
            "consumers": consumers,
            "consumer_capacity": if consumers > 0 { 1.0 } else { 0.0 },
            "consumer_utilisation": if consumers > 0 { 1.0 } else { 0.0 },
            "exclusive_consumer_tag": q.consumers().find(|c| c.exclusive()).map(|c| c.tag()),
            "single_active_consumer_tag": if q.single_active_consumer() {
                q.consumers().next().map(|c| c.tag())
            } else {
                None
            },
            "messages": ready + unacked,
            "messages_details": details(f64::from(ready_rate + unacked_rate)),
            "messages_ready": ready,
            "messages_ready_details": details(f64::from(ready_rate)),
            "messages_unacknowledged": unacked,
            "messages_unacknowledged_details": details(f64::from(unacked_rate)),
            "message_bytes": q.total_bytes(),
            "message_bytes_ready": q.ready_bytes(),
            "message_bytes_unacknowledged": q.total_bytes().saturating_sub(q.ready_bytes()),
            "head_message_timestamp": Value::Null,
            "message_stats": message_stats(q.stats(), QUEUE_FIELDS),
        });
        if let Some(s) = q.stream() {
            // ringmq's own: what the log holds (RabbitMQ shows none of it).
            v["stream"] = json!({
                "first_offset": s.first_offset,
                "last_offset": s.next_offset.checked_sub(1).filter(|_| s.messages > 0),
                "segments": s.segments,
                "bytes": s.bytes,
                "first_timestamp": s.first_ts_ms,
                "last_timestamp": s.last_ts_ms,
                "filter_skipped_segments": s.filter_skipped_segments,
            });
        }
        if q.stats().c == Default::default() {
            // RabbitMQ leaves message_stats out until something happened.
            v.as_object_mut().expect("object").remove("message_stats");
        }
        v
    }
}

pub(crate) fn items<'a>(b: View<'a>, req: &Req<'_>, vhost: Option<&str>, node: &'a str) -> Vec<QueueItem<'a>> {
    let u = req.user();
    b.vhosts()
        .filter(|v| vhost.is_none_or(|want| want == v.name()) && u.sees_vhost(b, v.name()))
        .flat_map(|v| v.queues().map(move |q| QueueItem { q, node }))
        .collect()
}

pub(crate) fn list_all(_: &Req<'_>) -> Result<Reply, ApiError> {
    gather(|req| part(req, None), merge_list)
}

pub(crate) fn list_vhost(_: &Req<'_>) -> Result<Reply, ApiError> {
    gather(|req| part(req, Some(req.vhost())), merge_list)
}

/// The queues this shard owns (each shard's copies of the others' show their
/// settings, not their messages and consumers).
fn part(req: &Req<'_>, vhost: Option<&str>) -> Result<Part, ApiError> {
    let params = ListParams::parse(&req.query)?;
    let b = req.shared.broker.borrow();
    let view = View::of(&b);
    let node = super::overview::node_name();
    let mut items = items(view, req, vhost, &node);
    items.retain(|i| i.q.owner() == view.shard());
    paging::part(items, &params)
}

/// One queue, as its owner has it.
/// One queue: its owner's view of it, with its consumers and its exclusive
/// owner as the shards of their connections show them (a consumer of
/// another shard's queue is in its own shard's copy of the queue too).
pub(crate) fn get(_: &Req<'_>) -> Result<Reply, ApiError> {
    gather(
        |req| {
            let b = req.shared.broker.borrow();
            let view = View::of(&b);
            let v = view.vhost(req.vhost()).ok_or_else(ApiError::not_found)?;
            let q = v.queue(req.param("name")).ok_or_else(ApiError::not_found)?;
            let mut part = Part::default();
            if q.owner() == view.shard() {
                let node = super::overview::node_name();
                part.rows
                    .push(Row::new(QueueItem { q, node: &node }.render(), "queue", ""));
            }
            // As RabbitMQ's consumer_details.
            for c in q.consumers().filter(|c| view.connection(c.conn()).is_some()) {
                let json = super::connections::consumer_json(view, req, q.vhost(), q.name(), c);
                part.rows.push(Row::new(json, "consumer", ""));
            }
            if q.owner() == view.shard() {
                part.aside.extend(super::connections::stream_offsets_aside(view, q));
            }
            if let Some(owner) = q.exclusive_owner().and_then(|id| view.connection(id)) {
                let (peer_host, peer_port) = super::connections::split_host_port(owner.peer());
                let details = json!({
                    "name": super::connections::conn_name(owner, req),
                    "peer_host": peer_host,
                    "peer_port": peer_port,
                });
                part.rows.push(Row::new(details, "owner", ""));
            }
            Ok(part)
        },
        |_, mut parts| {
            super::connections::place_stream_offsets(&mut parts);
            let rows: Vec<Row> = parts.into_iter().flat_map(|p| p.rows).collect();
            let of = |what: &'static str| rows.iter().filter(move |r| r.name == what).map(|r| r.v.clone());
            let mut out = of("queue").next().ok_or_else(ApiError::not_found)?;
            out["consumer_details"] = Value::Array(of("consumer").collect());
            if let Some(owner) = of("owner").next() {
                out["owner_pid_details"] = owner;
            }
            Reply::ok(out)
        },
    )
}

/// Runs `command` on the shard that owns the queue the URL names: its part
/// is the command's reply there, none elsewhere (404 when no shard has it).
fn on_owner(req: &Req<'_>, command: fn(&Req<'_>) -> Result<Reply, ApiError>) -> Result<Part, ApiError> {
    let here = {
        let b = req.shared.broker.borrow();
        let view = View::of(&b);
        let q = view.vhost(req.vhost()).and_then(|v| v.queue(req.param("name")));
        q.is_some_and(|q| q.owner() == view.shard())
    };
    if !here {
        return Ok(Part::default());
    }
    done_part(command(req))
}

pub(crate) fn put(req: &Req<'_>) -> Result<Reply, ApiError> {
    let body = req.json_object()?;
    let spec = QueueSpec {
        durable: boolean(&body, "durable", true)?,
        auto_delete: boolean(&body, "auto_delete", false)?,
        arguments: arguments(&body)?,
    };
    let r = req
        .shared
        .broker
        .borrow_mut()
        .admin_declare_queue(&req.ctx(), req.param("name"), &spec);
    req.shared.after_core_call();
    match r? {
        Declared::Created => Ok(Reply::Empty(201)),
        Declared::Existed => Reply::no_content(),
    }
}

pub(crate) fn delete(_: &Req<'_>) -> Result<Reply, ApiError> {
    gather(|req| on_owner(req, delete_here), merge_done)
}

fn delete_here(req: &Req<'_>) -> Result<Reply, ApiError> {
    let (if_unused, if_empty) = (req.query.flag("if-unused"), req.query.flag("if-empty"));
    let r = req
        .shared
        .broker
        .borrow_mut()
        .admin_delete_queue(&req.ctx(), req.param("name"), if_unused, if_empty);
    req.shared.after_core_call();
    r?;
    Reply::no_content()
}

pub(crate) fn purge(_: &Req<'_>) -> Result<Reply, ApiError> {
    gather(|req| on_owner(req, purge_here), merge_done)
}

fn purge_here(req: &Req<'_>) -> Result<Reply, ApiError> {
    let r = req
        .shared
        .broker
        .borrow_mut()
        .admin_purge_queue(&req.ctx(), req.param("name"));
    req.shared.after_core_call();
    r?;
    Reply::no_content()
}

fn set_paused(req: &Req<'_>, paused: bool) -> Result<Reply, ApiError> {
    let r = req
        .shared
        .broker
        .borrow_mut()
        .admin_pause_queue(&req.ctx(), req.param("name"), paused);
    req.shared.after_core_call();
    r?;
    Reply::no_content()
}

pub(crate) fn pause(_: &Req<'_>) -> Result<Reply, ApiError> {
    gather(|req| on_owner(req, |req| set_paused(req, true)), merge_done)
}

pub(crate) fn resume(_: &Req<'_>) -> Result<Reply, ApiError> {
    gather(|req| on_owner(req, |req| set_paused(req, false)), merge_done)
}

/// POST `/actions` `{"action": ..}`: RabbitMQ's `sync` and `cancel_sync` are
/// for classic mirrored queues; for a queue without mirrors (every queue
/// here) RabbitMQ answers 204 and does nothing, and so does this. `pause` and
/// `resume` are LavinMQ's pause and resume as actions (RabbitMQ: 400).
pub(crate) fn actions(_: &Req<'_>) -> Result<Reply, ApiError> {
    gather(|req| on_owner(req, actions_here), merge_done)
}

fn actions_here(req: &Req<'_>) -> Result<Reply, ApiError> {
    let [action]: [String; 1] = req.string_fields(&["action"])?.try_into().expect("one key, one value");
    match action.as_str() {
        "sync" | "cancel_sync" => {
            let b = req.shared.broker.borrow();
            // RabbitMQ 3.10 fails with 500 for a missing queue; 404 says why.
            View::of(&b)
                .vhost(req.vhost())
                .filter(|v| v.has_queue(req.param("name")))
                .ok_or_else(ApiError::not_found)?;
            Reply::no_content()
        }
        "pause" => set_paused(req, true),
        "resume" => set_paused(req, false),
        other => Err(ApiError::bad_request(format!("unknown action '{other}'"))),
    }
}

/// POST `/get`: `count`, `ackmode`, `encoding` (auto|base64), `truncate`.
pub(crate) fn get_messages(_: &Req<'_>) -> Result<Reply, ApiError> {
    gather(|req| on_owner(req, get_messages_here), merge_done)
}

fn get_messages_here(req: &Req<'_>) -> Result<Reply, ApiError> {
    let body = req.json_object()?;
    let count = match body.get("count") {
        Some(v) => v
            .as_u64()
            .or_else(|| v.as_str()?.parse().ok())
            .ok_or_else(|| ApiError::bad_request("count must be a positive integer"))?,
        None => return Err(ApiError::bad_request("[{key_missing,count}]")),
    };
    let mode: AckMode = body
        .get("ackmode")
        .and_then(Value::as_str)
        .ok_or_else(|| ApiError::bad_request("[{key_missing,ackmode}]"))?
        .parse()
        .map_err(ApiError::bad_request)?;
    let encoding = body.get("encoding").and_then(Value::as_str).unwrap_or("auto");
    if encoding != "auto" && encoding != "base64" {
        return Err(ApiError::bad_request(format!("unknown encoding '{encoding}'")));
    }
    let truncate = body
        .get("truncate")
        .and_then(|v| v.as_u64().or_else(|| v.as_str()?.parse().ok()))
        .map(|t| t as usize);
    let r = req.shared.broker.borrow_mut().admin_get(
        &req.ctx(),
        req.param("name"),
        u32::try_from(count).unwrap_or(u32::MAX),
        mode,
    );
    req.shared.after_core_call();
    let got = r?;
    let out: Vec<Value> = got
        .iter()
        .map(|m| {
            let payload = &m.payload[..truncate.unwrap_or(m.payload.len()).min(m.payload.len())];
            let (text, enc) = match (encoding, std::str::from_utf8(payload)) {
                ("auto", Ok(s)) => (s.to_owned(), "string"),
                _ => (base64::engine::general_purpose::STANDARD.encode(payload), "base64"),
            };
            json!({
                "payload_bytes": m.payload.len(),
                "redelivered": m.redelivered,
                "exchange": m.exchange,
                "routing_key": m.routing_key,
                "message_count": m.message_count,
                "properties": properties_to_json(&m.properties),
                "payload": text,
                "payload_encoding": enc,
            })
        })
        .collect();
    Reply::ok(Value::Array(out))
}
