//! `/api/bindings` in its four URL forms, and the binding lists of exchanges
//! and queues. A binding is named by its properties key (`routing_key` or
//! `routing_key~hash` with arguments), which POST returns in `Location`.

use serde_json::{json, Value};

use super::exchanges::url_name;
use crate::core::mgmt::commands::properties_key;
use crate::core::mgmt::views::VhostView;
use crate::core::mgmt::{DestKind, View};
use crate::http::json::{arguments, table_to_json};
use crate::http::paging::{self, JsonItem, ListParams};
use crate::http::{encode, ApiError, Reply, Req};

/// Every binding of a vhost, the default exchange's implicit ones first (as
/// RabbitMQ lists them), filtered by `keep(source, dest_kind, dest)`.
fn collect(v: VhostView<'_>, keep: &dyn Fn(&str, DestKind, &str) -> bool) -> Vec<JsonItem> {
    let vname = v.name();
    let empty = ringmq_codec::FieldTable::default();
    let mut out = Vec::new();
    for b in v.bindings() {
        let (source, kind, dest, rk) = (b.source, b.kind, b.destination, b.routing_key);
        let args = b.arguments.unwrap_or(&empty);
        if !keep(source, kind, dest) {
            continue;
        }
        let v = json!({
            "source": source,
            "vhost": vname,
            "destination": dest,
            "destination_type": if kind == DestKind::Queue { "queue" } else { "exchange" },
            "routing_key": rk,
            "arguments": table_to_json(args),
            "properties_key": properties_key(rk, args),
        });
        out.push(JsonItem {
            v,
            name: format!("{source}\u{0}{dest}\u{0}{rk}"),
            vhost: vname.to_owned(),
        });
    }
    out
}

fn reply(items: Vec<JsonItem>, req: &Req<'_>) -> Result<Reply, ApiError> {
    let params = ListParams::parse(&req.query)?;
    if params.sort.is_none() && params.page.is_none() && params.name.is_none() {
        // Keep RabbitMQ's order (default exchange first, then by source).
        let all: Vec<Value> = items.into_iter().map(|i| i.v).collect();
        return Reply::ok(Value::Array(all));
    }
    paging::reply(items, &params)
}

fn in_vhost(req: &Req<'_>, keep: &dyn Fn(&str, DestKind, &str) -> bool) -> Result<Reply, ApiError> {
    let b = req.shared.broker.borrow();
    let v = View::of(&b).vhost(req.vhost()).ok_or_else(ApiError::not_found)?;
    reply(collect(v, keep), req)
}

pub(crate) fn list_all(req: &Req<'_>) -> Result<Reply, ApiError> {
    let b = req.shared.broker.borrow();
    let view = View::of(&b);
    let u = req.user();
    let mut vhosts: Vec<VhostView<'_>> = view.vhosts().filter(|v| u.sees_vhost(view, v.name())).collect();
    vhosts.sort_by_key(|v| v.name());
    let mut items = Vec::new();
    for v in vhosts {
        items.extend(collect(v, &|_, _, _| true));
    }
    reply(items, req)
}

pub(crate) fn list_vhost(req: &Req<'_>) -> Result<Reply, ApiError> {
    in_vhost(req, &|_, _, _| true)
}

fn exchange_exists(req: &Req<'_>, name: &str) -> Result<(), ApiError> {
    let b = req.shared.broker.borrow();
    let v = View::of(&b).vhost(req.vhost()).ok_or_else(ApiError::not_found)?;
    if !v.has_exchange(name) {
        return Err(ApiError::not_found());
    }
    Ok(())
}

fn queue_exists(req: &Req<'_>, name: &str) -> Result<(), ApiError> {
    let b = req.shared.broker.borrow();
    let v = View::of(&b).vhost(req.vhost()).ok_or_else(ApiError::not_found)?;
    if !v.has_queue(name) {
        return Err(ApiError::not_found());
    }
    Ok(())
}

pub(crate) fn by_source(req: &Req<'_>) -> Result<Reply, ApiError> {
    let name = url_name(req.param("name")).to_owned();
    exchange_exists(req, &name)?;
    in_vhost(req, &|s, _, _| s == name)
}

pub(crate) fn by_destination(req: &Req<'_>) -> Result<Reply, ApiError> {
    let name = url_name(req.param("name")).to_owned();
    exchange_exists(req, &name)?;
    in_vhost(req, &|_, k, d| k == DestKind::Exchange && d == name)
}

pub(crate) fn by_queue(req: &Req<'_>) -> Result<Reply, ApiError> {
    let name = req.param("name").to_owned();
    queue_exists(req, &name)?;
    in_vhost(req, &|_, k, d| k == DestKind::Queue && d == name)
}

fn kind_exists(req: &Req<'_>, kind: DestKind) -> Result<(String, String), ApiError> {
    let source = url_name(req.param("source")).to_owned();
    let dest = req.param("dest").to_owned();
    exchange_exists(req, &source)?;
    match kind {
        DestKind::Queue => queue_exists(req, &dest)?,
        DestKind::Exchange => exchange_exists(req, &dest)?,
    }
    Ok((source, dest))
}

fn between(req: &Req<'_>, kind: DestKind) -> Result<Reply, ApiError> {
    let (source, dest) = kind_exists(req, kind)?;
    in_vhost(req, &|s, k, d| s == source && k == kind && d == dest)
}

fn one(req: &Req<'_>, kind: DestKind) -> Result<Reply, ApiError> {
    let (source, dest) = kind_exists(req, kind)?;
    let props = req.param("props").to_owned();
    let b = req.shared.broker.borrow();
    let view = View::of(&b);
    let found = view.find_binding(req.vhost(), &source, kind, &dest, &props);
    let v = view.vhost(req.vhost()).ok_or_else(ApiError::not_found)?;
    let Some((rk, args)) = found else {
        return Err(ApiError::not_found());
    };
    let key = properties_key(&rk, &args);
    collect(v, &|s, k, d| s == source && k == kind && d == dest)
        .into_iter()
        .find(|i| i.v["properties_key"] == key.as_str())
        .map_or_else(|| Err(ApiError::not_found()), |i| Reply::ok(i.v))
}

fn create(req: &Req<'_>, kind: DestKind) -> Result<Reply, ApiError> {
    let (source, dest) = kind_exists(req, kind)?;
    let body = req.json_object()?;
    let routing_key = match body.get("routing_key") {
        None | Some(Value::Null) => "",
        Some(Value::String(s)) => s.as_str(),
        Some(_) => return Err(ApiError::bad_request("routing_key must be a string")),
    };
    let args = arguments(&body)?;
    let r = req
        .shared
        .broker
        .borrow_mut()
        .admin_bind(&req.ctx(), &source, kind, &dest, routing_key, &args, true);
    req.shared.after_core_call();
    let key = r?;
    // Relative, as RabbitMQ sends it: `dest/props`.
    Ok(Reply::Created(format!("{}/{}", encode(&dest), encode(&key))))
}

fn delete(req: &Req<'_>, kind: DestKind) -> Result<Reply, ApiError> {
    let (source, dest) = kind_exists(req, kind)?;
    let found =
        View::of(&req.shared.broker.borrow()).find_binding(req.vhost(), &source, kind, &dest, req.param("props"));
    let (rk, args) = found.ok_or_else(ApiError::not_found)?;
    let r = req
        .shared
        .broker
        .borrow_mut()
        .admin_bind(&req.ctx(), &source, kind, &dest, &rk, &args, false);
    req.shared.after_core_call();
    r?;
    Reply::no_content()
}

pub(crate) fn between_q(req: &Req<'_>) -> Result<Reply, ApiError> {
    between(req, DestKind::Queue)
}
pub(crate) fn between_e(req: &Req<'_>) -> Result<Reply, ApiError> {
    between(req, DestKind::Exchange)
}
pub(crate) fn one_q(req: &Req<'_>) -> Result<Reply, ApiError> {
    one(req, DestKind::Queue)
}
pub(crate) fn one_e(req: &Req<'_>) -> Result<Reply, ApiError> {
    one(req, DestKind::Exchange)
}
pub(crate) fn create_q(req: &Req<'_>) -> Result<Reply, ApiError> {
    create(req, DestKind::Queue)
}
pub(crate) fn create_e(req: &Req<'_>) -> Result<Reply, ApiError> {
    create(req, DestKind::Exchange)
}
pub(crate) fn delete_q(req: &Req<'_>) -> Result<Reply, ApiError> {
    delete(req, DestKind::Queue)
}
pub(crate) fn delete_e(req: &Req<'_>) -> Result<Reply, ApiError> {
    delete(req, DestKind::Exchange)
}
