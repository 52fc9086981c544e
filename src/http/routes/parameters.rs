//! Runtime parameters (`/api/parameters/{component}/{vhost}/{name}`), global
//! parameters (`/api/global-parameters/{name}`) and definitions
//! (`/api/definitions`, `/api/definitions/{vhost}`: GET exports, POST imports).

use serde_json::{json, Value};

use super::super::error::ApiError;
use super::super::{Reply, Req};
use crate::core::mgmt::{Definitions, Parameter, View};

fn render(vhost: &str, p: &Parameter) -> Value {
    json!({"vhost": vhost, "component": p.component, "name": p.name, "value": p.value})
}

fn list(req: &Req<'_>, component: Option<&str>, vhost: Option<&str>) -> Result<Reply, ApiError> {
    let b = req.shared.broker.borrow();
    let view = View::of(&b);
    let u = req.user();
    let items: Vec<Value> = view
        .parameters(vhost, component)
        .into_iter()
        .filter(|(v, _)| u.sees_vhost(view, v))
        .map(|(v, p)| render(&v, &p))
        .collect();
    Reply::ok(Value::Array(items))
}

pub(crate) fn list_all(req: &Req<'_>) -> Result<Reply, ApiError> {
    list(req, None, None)
}
pub(crate) fn list_component(req: &Req<'_>) -> Result<Reply, ApiError> {
    list(req, Some(req.param("component")), None)
}
pub(crate) fn list_component_vhost(req: &Req<'_>) -> Result<Reply, ApiError> {
    list(req, Some(req.param("component")), Some(req.vhost()))
}

pub(crate) fn get(req: &Req<'_>) -> Result<Reply, ApiError> {
    let b = req.shared.broker.borrow();
    let (c, n) = (req.param("component"), req.param("name"));
    let found = View::of(&b)
        .parameters(Some(req.vhost()), Some(c))
        .into_iter()
        .find(|(_, p)| p.name == n)
        .ok_or_else(ApiError::not_found)?;
    Reply::ok(render(&found.0, &found.1))
}

pub(crate) fn put(req: &Req<'_>) -> Result<Reply, ApiError> {
    let body = req.json_object()?;
    let value = body
        .get("value")
        .cloned()
        .ok_or_else(|| ApiError::bad_request("Validation failed\n\nKey \"value\" not found in parameter\n"))?;
    let p = Parameter {
        component: req.param("component").to_owned(),
        name: req.param("name").to_owned(),
        value,
    };
    let r = req.shared.broker.borrow_mut().put_parameter(req.vhost(), p);
    r?;
    Reply::no_content()
}

pub(crate) fn delete(req: &Req<'_>) -> Result<Reply, ApiError> {
    let r = req
        .shared
        .broker
        .borrow_mut()
        .delete_parameter(req.vhost(), req.param("component"), req.param("name"));
    r?;
    Reply::no_content()
}

pub(crate) fn global_list(req: &Req<'_>) -> Result<Reply, ApiError> {
    let b = req.shared.broker.borrow();
    Reply::ok(serde_json::to_value(View::of(&b).global_parameters()).expect("plain data"))
}

pub(crate) fn global_get(req: &Req<'_>) -> Result<Reply, ApiError> {
    let b = req.shared.broker.borrow();
    let n = req.param("name");
    let p = View::of(&b).global_parameter(n).ok_or_else(ApiError::not_found)?;
    Reply::ok(serde_json::to_value(p).expect("plain data"))
}

pub(crate) fn global_put(req: &Req<'_>) -> Result<Reply, ApiError> {
    let body = req.json_object()?;
    let value = body
        .get("value")
        .cloned()
        .ok_or_else(|| ApiError::bad_request("Validation failed\n\nKey \"value\" not found in parameter\n"))?;
    let r = req
        .shared
        .broker
        .borrow_mut()
        .put_global_parameter(req.param("name"), value);
    r?;
    Reply::no_content()
}

pub(crate) fn global_delete(req: &Req<'_>) -> Result<Reply, ApiError> {
    let r = req
        .shared
        .broker
        .borrow_mut()
        .delete_global_parameter(req.param("name"));
    r?;
    Reply::no_content()
}

fn export(req: &Req<'_>, vhost: Option<&str>) -> Result<Reply, ApiError> {
    let d = View::of(&req.shared.broker.borrow()).export_definitions(vhost)?;
    Reply::ok(serde_json::to_value(d).expect("plain data"))
}

/// The body of an import is the definitions JSON itself (the UI reads the file
/// and posts its text).
fn import(req: &Req<'_>, vhost: Option<&str>) -> Result<Reply, ApiError> {
    let d: Definitions = serde_json::from_slice(&req.body)
        .map_err(|e| ApiError::bad_request(format!("could not parse the definitions JSON: {e}")))?;
    let user = req.user().name.clone();
    let r = (req.shared.broker.borrow_mut()).import_definitions(d, vhost, Some(&user), req.now_ms);
    req.shared.after_core_call();
    r?;
    Reply::no_content()
}

pub(crate) fn export_all(req: &Req<'_>) -> Result<Reply, ApiError> {
    export(req, None)
}
pub(crate) fn export_vhost(req: &Req<'_>) -> Result<Reply, ApiError> {
    export(req, Some(req.vhost()))
}
pub(crate) fn import_all(req: &Req<'_>) -> Result<Reply, ApiError> {
    import(req, None)
}
pub(crate) fn import_vhost(req: &Req<'_>) -> Result<Reply, ApiError> {
    import(req, Some(req.vhost()))
}
