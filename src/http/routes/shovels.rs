//! Shovel status as RabbitMQ's shovel_management plugin serves it:
//! `GET /api/shovels`, `GET /api/shovels/{vhost}` (a list each, the shovels of
//! vhosts the user sees) and `DELETE /api/shovels/vhost/{vhost}/{name}/restart`
//! (the supervisor stops and starts it again).

use serde_json::Value;

use super::super::error::ApiError;
use super::super::{Reply, Req};
use crate::core::mgmt::{node_name, View};

fn list(req: &Req<'_>, only: Option<&str>) -> Result<Reply, ApiError> {
    let b = req.shared.broker.borrow();
    let view = View::of(&b);
    let u = req.user();
    let node = node_name();
    let reg = req.shared.shovels.borrow();
    let items: Vec<Value> = (reg.statuses.iter())
        .filter(|((vhost, _), _)| only.is_none_or(|o| o == vhost) && u.sees_vhost(view, vhost))
        .map(|((vhost, name), s)| s.to_json(vhost, name, &node))
        .collect();
    Reply::ok(Value::Array(items))
}

pub(crate) fn list_all(req: &Req<'_>) -> Result<Reply, ApiError> {
    list(req, None)
}

pub(crate) fn list_vhost(req: &Req<'_>) -> Result<Reply, ApiError> {
    list(req, Some(req.vhost()))
}

pub(crate) fn restart(req: &Req<'_>) -> Result<Reply, ApiError> {
    let key = (req.vhost().to_owned(), req.param("name").to_owned());
    let mut reg = req.shared.shovels.borrow_mut();
    if !reg.statuses.contains_key(&key) {
        return Err(ApiError::not_found());
    }
    reg.restarts.insert(key);
    Reply::no_content()
}
