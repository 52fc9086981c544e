//! Federation link status as RabbitMQ's federation_management plugin serves
//! it: `GET /api/federation-links[/{vhost}]` (monitoring users and up, the
//! links of vhosts the user sees), `.../state/down` (only the links not
//! running or starting), and
//! `DELETE /api/federation-links/vhost/{vhost}/{id}/{node}/restart`.

use serde_json::Value;

use super::super::error::ApiError;
use super::super::{Reply, Req};
use crate::core::mgmt::{node_name, View};
use crate::federation::status::State;

fn list(req: &Req<'_>, only: Option<&str>, down_only: bool) -> Result<Reply, ApiError> {
    let b = req.shared.broker.borrow();
    let view = View::of(&b);
    let u = req.user();
    let node = node_name();
    let reg = req.shared.federation.borrow();
    let items: Vec<Value> = (reg.statuses.iter())
        .filter(|(k, _)| only.is_none_or(|o| o == k.vhost) && u.sees_vhost(view, &k.vhost))
        .filter(|(_, s)| !down_only || matches!(s.state, State::Error(_)))
        .map(|(k, s)| s.to_json(k, &node))
        .collect();
    Reply::ok(Value::Array(items))
}

pub(crate) fn list_all(req: &Req<'_>) -> Result<Reply, ApiError> {
    list(req, None, false)
}

pub(crate) fn list_vhost(req: &Req<'_>) -> Result<Reply, ApiError> {
    list(req, Some(req.vhost()), false)
}

pub(crate) fn list_all_down(req: &Req<'_>) -> Result<Reply, ApiError> {
    list(req, None, true)
}

pub(crate) fn list_vhost_down(req: &Req<'_>) -> Result<Reply, ApiError> {
    list(req, Some(req.vhost()), true)
}

pub(crate) fn restart(req: &Req<'_>) -> Result<Reply, ApiError> {
    let mut reg = req.shared.federation.borrow_mut();
    let key = reg
        .find_id(req.vhost(), req.param("id"))
        .ok_or_else(ApiError::not_found)?;
    reg.restarts.insert(key);
    Reply::no_content()
}
