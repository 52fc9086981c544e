//! `/api/exchanges`: lists, one exchange, declare, delete, publish.

use base64::Engine;
use serde_json::{json, Value};

use super::common::{all_part, gather, merge_one_summed, merge_summed, message_stats, one_part, EXCHANGE_FIELDS};
use crate::core::mgmt::views::ExchangeView;
use crate::core::mgmt::{exchange_type_known, Declared, ExchangeSpec, View};
use crate::http::json::{arguments, boolean, properties_from_json, table_to_json};
use crate::http::paging::{Item, Part, SortKey};
use crate::http::{ApiError, Reply, Req};

/// The default exchange's name in URLs (its real name is "").
pub(crate) const DEFAULT_EXCHANGE_URL_NAME: &str = "amq.default";

/// The exchange an URL names.
pub(crate) fn url_name(s: &str) -> &str {
    if s == DEFAULT_EXCHANGE_URL_NAME {
        ""
    } else {
        s
    }
}

struct ExchangeItem<'a> {
    x: ExchangeView<'a>,
}

impl Item for ExchangeItem<'_> {
    fn name(&self) -> &str {
        self.x.name()
    }
    fn vhost(&self) -> &str {
        self.x.vhost()
    }
    fn sort_key(&self, c: &str) -> Option<SortKey<'_>> {
        Some(match c {
            "name" => SortKey::Str(self.x.name()),
            "vhost" => SortKey::Str(self.x.vhost()),
            "type" => SortKey::Str(self.x.type_name()),
            c => SortKey::Num(super::common::stats_sort_key(self.x.stats(), c)?),
        })
    }
    fn render(&self) -> Value {
        let x = self.x;
        let mut v = json!({
            "name": x.name(),
            "vhost": x.vhost(),
            "type": x.type_name(),
            "durable": x.durable(),
            "auto_delete": x.auto_delete(),
            "internal": x.internal(),
            "arguments": table_to_json(x.arguments()),
            "user_who_performed_action": "rmq-internal",
            "policy": x.policy_name(),
            "message_stats": message_stats(x.stats(), EXCHANGE_FIELDS),
        });
        if x.stats().c == Default::default() {
            v.as_object_mut().expect("object").remove("message_stats");
        }
        v
    }
}

/// What each shard counts of an exchange: the messages published to it
/// through that shard's connections.
const SUMMED: &[&str] = &["message_stats"];

fn part(req: &Req<'_>, vhost: Option<&str>) -> Result<Part, ApiError> {
    let b = req.shared.broker.borrow();
    let view = View::of(&b);
    let u = req.user();
    let items: Vec<ExchangeItem<'_>> = view
        .vhosts()
        .filter(|v| vhost.is_none_or(|want| want == v.name()) && u.sees_vhost(view, v.name()))
        .flat_map(|v| v.exchanges().map(|x| ExchangeItem { x }))
        .collect();
    all_part(items, req)
}

pub(crate) fn list_all(_: &Req<'_>) -> Result<Reply, ApiError> {
    gather(|req| part(req, None), |req, parts| merge_summed(req, parts, SUMMED))
}

pub(crate) fn list_vhost(_: &Req<'_>) -> Result<Reply, ApiError> {
    gather(
        |req| part(req, Some(req.vhost())),
        |req, parts| merge_summed(req, parts, SUMMED),
    )
}

pub(crate) fn get(_: &Req<'_>) -> Result<Reply, ApiError> {
    gather(
        |req| {
            let b = req.shared.broker.borrow();
            let v = View::of(&b).vhost(req.vhost()).ok_or_else(ApiError::not_found)?;
            let x = v
                .exchange(url_name(req.param("name")))
                .ok_or_else(ApiError::not_found)?;
            let mut out = ExchangeItem { x }.render();
            out["incoming"] = json!([]);
            out["outgoing"] = json!([]);
            one_part(Some(out))
        },
        |_, parts| merge_one_summed(parts, SUMMED),
    )
}

pub(crate) fn put(req: &Req<'_>) -> Result<Reply, ApiError> {
    let body = req.json_object()?;
    let kind = match body.get("type") {
        None | Some(Value::Null) => "direct".to_owned(),
        Some(Value::String(s)) => s.clone(),
        Some(_) => return Err(ApiError::bad_request("type must be a string")),
    };
    if !exchange_type_known(&kind) {
        return Err(ApiError::bad_request(format!("unknown exchange type '{kind}'")));
    }
    let spec = ExchangeSpec {
        kind,
        durable: boolean(&body, "durable", true)?,
        auto_delete: boolean(&body, "auto_delete", false)?,
        internal: boolean(&body, "internal", false)?,
        arguments: arguments(&body)?,
    };
    let name = url_name(req.param("name"));
    let r = req
        .shared
        .broker
        .borrow_mut()
        .admin_declare_exchange(&req.ctx(), name, &spec);
    req.shared.after_core_call();
    match r? {
        Declared::Created => Ok(Reply::Empty(201)),
        Declared::Existed => Reply::no_content(),
    }
}

pub(crate) fn delete(req: &Req<'_>) -> Result<Reply, ApiError> {
    let name = url_name(req.param("name"));
    let r = req
        .shared
        .broker
        .borrow_mut()
        .admin_delete_exchange(&req.ctx(), name, req.query.flag("if-unused"));
    req.shared.after_core_call();
    r?;
    Reply::no_content()
}

/// POST `/publish`: `routing_key`, `payload`, `payload_encoding` (string |
/// base64), `properties`. Answers `{"routed": bool}`.
pub(crate) fn publish(req: &Req<'_>) -> Result<Reply, ApiError> {
    let body = req.json_object()?;
    let missing: Vec<&str> = ["properties", "routing_key", "payload", "payload_encoding"]
        .into_iter()
        .filter(|k| !body.contains_key(*k))
        .collect();
    if !missing.is_empty() {
        let list: Vec<String> = missing.iter().map(|k| format!("{{key_missing,{k}}}")).collect();
        return Err(ApiError::bad_request(format!("[{}]", list.join(",\n "))));
    }
    let routing_key = body["routing_key"]
        .as_str()
        .ok_or_else(|| ApiError::bad_request("routing_key must be a string"))?;
    let payload = body["payload"]
        .as_str()
        .ok_or_else(|| ApiError::bad_request("payload must be a string"))?;
    let payload: Vec<u8> = match body["payload_encoding"].as_str() {
        Some("string") => payload.as_bytes().to_vec(),
        Some("base64") => base64::engine::general_purpose::STANDARD
            .decode(payload)
            .map_err(|_| ApiError::bad_request("payload is not valid base64"))?,
        _ => return Err(ApiError::bad_request("payload_encoding must be string or base64")),
    };
    let props = properties_from_json(body.get("properties"))?;
    let name = url_name(req.param("name"));
    let r = req
        .shared
        .broker
        .borrow_mut()
        .admin_publish(&req.ctx(), name, routing_key, &props, &payload);
    req.shared.after_core_call();
    Reply::ok(json!({ "routed": r? }))
}
