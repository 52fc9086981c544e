//! `/api/policies` and `/api/operator-policies`: list, get, put, delete.
//!
//! PUT bodies are RabbitMQ's `{"pattern", "definition", "priority", "apply-to"}`;
//! validation errors come back as 400 with RabbitMQ's "Validation failed" text.

use serde_json::{json, Map, Value};

use super::super::error::ApiError;
use super::super::paging::{self, Item, ListParams};
use super::super::{Reply, Req};
use crate::core::mgmt::{ApplyTo, PolicyDef, PolicyKind, VhostPolicy, View};

/// A listed policy; also the shape of definitions' `policies` entries.
pub(crate) struct PolicyItem(pub VhostPolicy);

impl Item for PolicyItem {
    fn name(&self) -> &str {
        &self.0.def.name
    }
    fn vhost(&self) -> &str {
        &self.0.vhost
    }
    fn render(&self) -> Value {
        render(&self.0)
    }
}

fn render(p: &VhostPolicy) -> Value {
    json!({
        "vhost": p.vhost,
        "name": p.def.name,
        "pattern": p.def.pattern,
        "apply-to": p.def.apply_to.as_str(),
        "definition": p.def.definition,
        "priority": p.def.priority,
    })
}

fn list(req: &Req<'_>, vhost: Option<&str>, kind: PolicyKind) -> Result<Reply, ApiError> {
    let b = req.shared.broker.borrow();
    let view = View::of(&b);
    let u = req.user();
    let items: Vec<PolicyItem> = view
        .policies(vhost, kind)?
        .into_iter()
        .filter(|p| u.sees_vhost(view, &p.vhost))
        .map(PolicyItem)
        .collect();
    Reply::ok(paging::list(items, &ListParams::parse(&req.query)?)?)
}

fn get(req: &Req<'_>, kind: PolicyKind) -> Result<Reply, ApiError> {
    let b = req.shared.broker.borrow();
    let name = req.param("name");
    let found = View::of(&b)
        .policies(Some(req.vhost()), kind)?
        .into_iter()
        .find(|p| p.def.name == name)
        .ok_or_else(ApiError::not_found)?;
    Reply::ok(render(&found))
}

/// Parses a PUT body into a policy definition with RabbitMQ's errors.
pub(crate) fn parse_body(name: &str, body: &Map<String, Value>) -> Result<PolicyDef, ApiError> {
    let failed = |what: String| ApiError::bad_request(format!("Validation failed\n\n{what}\n"));
    let pattern = match body.get("pattern") {
        Some(Value::String(s)) => s.clone(),
        Some(v) => return Err(failed(format!("{v} is not a valid pattern"))),
        None => return Err(failed("Key \"pattern\" not found in policy".into())),
    };
    let definition = match body.get("definition") {
        Some(Value::Object(m)) => m.clone(),
        Some(v) => return Err(failed(format!("{v} is not a valid definition"))),
        None => return Err(failed("Key \"definition\" not found in policy".into())),
    };
    let priority = match body.get("priority") {
        None | Some(Value::Null) => 0,
        Some(v) => match v.as_i64().or_else(|| v.as_str().and_then(|s| s.parse().ok())) {
            Some(n) => n,
            None => return Err(failed(format!("{v} is not a valid priority"))),
        },
    };
    let apply_to = match body.get("apply-to") {
        None | Some(Value::Null) => ApplyTo::All,
        Some(v) => v
            .as_str()
            .and_then(ApplyTo::parse)
            .ok_or_else(|| failed(format!("{v} is not a valid apply-to value")))?,
    };
    Ok(PolicyDef {
        name: name.to_owned(),
        pattern,
        apply_to,
        priority,
        definition,
    })
}

fn put(req: &Req<'_>, kind: PolicyKind) -> Result<Reply, ApiError> {
    let name = req.param("name");
    let def = parse_body(name, &req.json_object()?)?;
    let r = req
        .shared
        .broker
        .borrow_mut()
        .put_policy(req.vhost(), def, kind, req.now_ms);
    req.shared.after_core_call();
    Ok(Reply::Empty(if r? { 201 } else { 204 }))
}

fn delete(req: &Req<'_>, kind: PolicyKind) -> Result<Reply, ApiError> {
    let r = req
        .shared
        .broker
        .borrow_mut()
        .delete_policy(req.vhost(), req.param("name"), kind, req.now_ms);
    req.shared.after_core_call();
    r?;
    Reply::no_content()
}

pub(crate) fn list_all(req: &Req<'_>) -> Result<Reply, ApiError> {
    list(req, None, PolicyKind::User)
}
pub(crate) fn list_vhost(req: &Req<'_>) -> Result<Reply, ApiError> {
    list(req, Some(req.vhost()), PolicyKind::User)
}
pub(crate) fn get_one(req: &Req<'_>) -> Result<Reply, ApiError> {
    get(req, PolicyKind::User)
}
pub(crate) fn put_one(req: &Req<'_>) -> Result<Reply, ApiError> {
    put(req, PolicyKind::User)
}
pub(crate) fn delete_one(req: &Req<'_>) -> Result<Reply, ApiError> {
    delete(req, PolicyKind::User)
}
pub(crate) fn op_list_all(req: &Req<'_>) -> Result<Reply, ApiError> {
    list(req, None, PolicyKind::Operator)
}
pub(crate) fn op_list_vhost(req: &Req<'_>) -> Result<Reply, ApiError> {
    list(req, Some(req.vhost()), PolicyKind::Operator)
}
pub(crate) fn op_get_one(req: &Req<'_>) -> Result<Reply, ApiError> {
    get(req, PolicyKind::Operator)
}
pub(crate) fn op_put_one(req: &Req<'_>) -> Result<Reply, ApiError> {
    put(req, PolicyKind::Operator)
}
pub(crate) fn op_delete_one(req: &Req<'_>) -> Result<Reply, ApiError> {
    delete(req, PolicyKind::Operator)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_errors_say_what_is_wrong() {
        let body = |v: Value| v.as_object().unwrap().clone();
        let e = parse_body("p", &body(json!({"definition": {}}))).unwrap_err();
        assert!(e.reason.contains("pattern"), "{e:?}");
        let e = parse_body(
            "p",
            &body(json!({"pattern": ".*", "definition": {"max-length": 1}, "apply-to": "nope"})),
        )
        .unwrap_err();
        assert!(e.reason.contains("apply-to"), "{e:?}");
        let d = parse_body(
            "p",
            &body(json!({"pattern": "^q", "definition": {"max-length": 1}, "priority": "3", "apply-to": "queues"})),
        )
        .unwrap();
        assert_eq!((d.priority, d.apply_to), (3, ApplyTo::Queues));
    }
}
