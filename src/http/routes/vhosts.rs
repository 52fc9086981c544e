//! Vhost create and delete, vhost limits and user limits.
//!
//! `PUT /api/vhosts/{vhost}` creates (201) or updates the description and tags
//! (204) and gives the creating user full permissions, as RabbitMQ does.
//! Limits: `PUT /api/vhost-limits/{vhost}/{max-connections|max-queues}` and
//! `PUT /api/user-limits/{user}/{max-connections|max-channels}` with
//! `{"value": N}` (negative: no limit), DELETE to clear.

use serde_json::{json, Value};

use super::super::error::ApiError;
use super::super::{Reply, Req};
use crate::core::mgmt::{parse_limit, Tags, VhostMeta, View};

pub(crate) fn put(req: &Req<'_>) -> Result<Reply, ApiError> {
    let body = req.json_object()?;
    let text = |k: &str| body.get(k).and_then(Value::as_str).map(str::to_owned);
    let tags = match body.get("tags") {
        None | Some(Value::Null) => None,
        Some(t) => Some(
            serde_json::from_value::<Tags>(t.clone())
                .map_err(|_| ApiError::bad_request("tags must be a string or an array of strings"))?
                .to_vec(),
        ),
    };
    let meta = (!body.is_empty()).then(|| VhostMeta {
        description: text("description").unwrap_or_default(),
        tags: tags.unwrap_or_default(),
        default_queue_type: text("default_queue_type"),
        limits: Default::default(),
    });
    let user = req.user().name.clone();
    let r = req
        .shared
        .broker
        .borrow_mut()
        .create_vhost(req.vhost(), meta, Some(&user));
    req.shared.after_core_call();
    Ok(Reply::Empty(if r? { 201 } else { 204 }))
}

pub(crate) fn delete(req: &Req<'_>) -> Result<Reply, ApiError> {
    let r = req.shared.broker.borrow_mut().delete_vhost(req.vhost(), req.now_ms);
    req.shared.after_core_call();
    r?;
    Reply::no_content()
}

fn value_of(req: &Req<'_>, name: &str) -> Result<Option<u64>, ApiError> {
    let body = req.json_object()?;
    let v = body
        .get("value")
        .ok_or_else(|| ApiError::bad_request(format!("Validation failed\n\nKey \"value\" not found in {name}\n")))?;
    Ok(parse_limit(name, v)?)
}

fn vhost_limits_json(req: &Req<'_>, only: Option<&str>) -> Result<Reply, ApiError> {
    let b = req.shared.broker.borrow();
    let view = View::of(&b);
    let u = req.user();
    let mut vhosts: Vec<_> = view
        .vhosts()
        .filter(|v| only.is_none_or(|o| o == v.name()) && u.sees_vhost(view, v.name()))
        .collect();
    vhosts.sort_unstable_by_key(|v| v.name());
    let items: Vec<Value> = vhosts
        .into_iter()
        .filter_map(|v| {
            let l = &v.meta().limits;
            (!l.is_empty()).then(|| json!({"vhost": v.name(), "value": l}))
        })
        .collect();
    Reply::ok(Value::Array(items))
}

pub(crate) fn limits_all(req: &Req<'_>) -> Result<Reply, ApiError> {
    vhost_limits_json(req, None)
}

pub(crate) fn limits_vhost(req: &Req<'_>) -> Result<Reply, ApiError> {
    vhost_limits_json(req, Some(req.vhost()))
}

pub(crate) fn put_limit(req: &Req<'_>) -> Result<Reply, ApiError> {
    let name = req.param("name");
    let value = value_of(req, name)?;
    let r = req.shared.broker.borrow_mut().set_vhost_limit(req.vhost(), name, value);
    r?;
    Reply::no_content()
}

pub(crate) fn delete_limit(req: &Req<'_>) -> Result<Reply, ApiError> {
    let r = req
        .shared
        .broker
        .borrow_mut()
        .set_vhost_limit(req.vhost(), req.param("name"), None);
    r?;
    Reply::no_content()
}

fn user_limits_json(req: &Req<'_>, only: Option<&str>) -> Result<Reply, ApiError> {
    let b = req.shared.broker.borrow();
    let view = View::of(&b);
    if let Some(u) = only {
        if view.user(u).is_none() {
            return Err(ApiError::not_found());
        }
    }
    let mut users: Vec<_> = view
        .users()
        .filter(|u| only.is_none_or(|o| o == u.name()) && !u.limits().is_empty())
        .collect();
    users.sort_by(|a, b| a.name().cmp(b.name()));
    let items: Vec<Value> = users
        .into_iter()
        .map(|u| json!({"user": u.name(), "value": u.limits()}))
        .collect();
    Reply::ok(Value::Array(items))
}

pub(crate) fn user_limits_all(req: &Req<'_>) -> Result<Reply, ApiError> {
    user_limits_json(req, None)
}

pub(crate) fn user_limits_of(req: &Req<'_>) -> Result<Reply, ApiError> {
    user_limits_json(req, Some(req.param("user")))
}

fn set_user_limit(req: &Req<'_>, value: Option<u64>) -> Result<Reply, ApiError> {
    let r = req
        .shared
        .broker
        .borrow_mut()
        .set_user_limit(req.param("user"), req.param("name"), value);
    r?;
    Reply::no_content()
}

pub(crate) fn put_user_limit(req: &Req<'_>) -> Result<Reply, ApiError> {
    let value = value_of(req, req.param("name"))?;
    set_user_limit(req, value)
}

pub(crate) fn delete_user_limit(req: &Req<'_>) -> Result<Reply, ApiError> {
    set_user_limit(req, None)
}
