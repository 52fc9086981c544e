//! `/api/permissions` and the per-user and per-vhost permission lists.

use serde_json::{json, Value};

use crate::core::admin::Declared;
use crate::core::permissions::PermissionDef;
use crate::http::paging::{self, Item, ListParams};
use crate::http::{ApiError, Reply, Req};

struct PermItem(PermissionDef);

impl Item for PermItem {
    fn name(&self) -> &str {
        &self.0.user
    }
    fn vhost(&self) -> &str {
        &self.0.vhost
    }
    fn render(&self) -> Value {
        let p = &self.0;
        json!({"user": p.user, "vhost": p.vhost, "configure": p.configure, "write": p.write, "read": p.read})
    }
}

fn listed(req: &Req<'_>, keep: impl Fn(&PermissionDef) -> bool) -> Result<Reply, ApiError> {
    let params = ListParams::parse(&req.query)?;
    let b = req.shared.broker.borrow();
    let items: Vec<PermItem> = b.permissions.defs().into_iter().filter(keep).map(PermItem).collect();
    paging::reply(items, &params)
}

pub(crate) fn list(req: &Req<'_>) -> Result<Reply, ApiError> {
    listed(req, |_| true)
}

pub(crate) fn of_vhost(req: &Req<'_>) -> Result<Reply, ApiError> {
    if !req.shared.broker.borrow().vhosts.contains_key(req.vhost()) {
        return Err(ApiError::not_found());
    }
    let v = req.vhost().to_owned();
    listed(req, |d| d.vhost == v)
}

pub(crate) fn of_user(req: &Req<'_>) -> Result<Reply, ApiError> {
    if req.shared.broker.borrow().users.get(req.param("user")).is_none() {
        return Err(ApiError::not_found());
    }
    let u = req.param("user").to_owned();
    listed(req, |d| d.user == u)
}

pub(crate) fn get(req: &Req<'_>) -> Result<Reply, ApiError> {
    let (v, u) = (req.vhost(), req.param("user"));
    let b = req.shared.broker.borrow();
    b.permissions
        .defs()
        .into_iter()
        .find(|d| d.vhost == v && d.user == u)
        .map_or_else(|| Err(ApiError::not_found()), |d| Reply::ok(PermItem(d).render()))
}

pub(crate) fn put(req: &Req<'_>) -> Result<Reply, ApiError> {
    let body = req.json_object()?;
    let field = |k: &str| -> Result<String, ApiError> {
        match body.get(k) {
            Some(Value::String(s)) => Ok(s.clone()),
            None => Err(ApiError::bad_request(format!("[{{key_missing,{k}}}]"))),
            Some(_) => Err(ApiError::bad_request(format!("{k} must be a string"))),
        }
    };
    let def = PermissionDef {
        user: req.param("user").to_owned(),
        vhost: req.vhost().to_owned(),
        configure: field("configure")?,
        write: field("write")?,
        read: field("read")?,
    };
    match req.shared.broker.borrow_mut().admin_set_permission(def)? {
        Declared::Created => Ok(Reply::Empty(201)),
        Declared::Existed => Reply::no_content(),
    }
}

pub(crate) fn delete(req: &Req<'_>) -> Result<Reply, ApiError> {
    req.shared
        .broker
        .borrow_mut()
        .admin_delete_permission(req.param("user"), req.vhost())?;
    Reply::no_content()
}
