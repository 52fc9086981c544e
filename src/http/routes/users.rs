//! `/api/users`: list, one user, create/update, delete, bulk delete, users
//! without permissions, and `/api/auth/hash_password/{password}`.

use serde_json::{json, Value};

use crate::core::mgmt::views::UserView;
use crate::core::mgmt::{AdminError, Declared, UserSpec, View};
use crate::http::paging::{self, Item, ListParams};
use crate::http::{ApiError, Reply, Req};

struct UserItem<'a>(UserView<'a>);

impl Item for UserItem<'_> {
    fn name(&self) -> &str {
        self.0.name()
    }
    fn render(&self) -> Value {
        user_json(self.0)
    }
}

pub(crate) fn user_json(u: UserView<'_>) -> Value {
    let mut limits = serde_json::Map::new();
    if let Some(n) = u.limits().max_connections {
        limits.insert("max-connections".into(), n.into());
    }
    if let Some(n) = u.limits().max_channels {
        limits.insert("max-channels".into(), n.into());
    }
    json!({
        "name": u.name(),
        "password_hash": u.password_hash(),
        "hashing_algorithm": u.hashing_algorithm(),
        "tags": u.tags(),
        "limits": limits,
    })
}

pub(crate) fn list(req: &Req<'_>) -> Result<Reply, ApiError> {
    let params = ListParams::parse(&req.query)?;
    let b = req.shared.broker.borrow();
    let items: Vec<UserItem<'_>> = View::of(&b).users().map(UserItem).collect();
    paging::reply(items, &params)
}

pub(crate) fn without_permissions(req: &Req<'_>) -> Result<Reply, ApiError> {
    let params = ListParams::parse(&req.query)?;
    let b = req.shared.broker.borrow();
    let view = View::of(&b);
    let defs = view.permissions();
    let items: Vec<UserItem<'_>> = view
        .users()
        .filter(|u| !defs.iter().any(|d| d.user == u.name()))
        .map(UserItem)
        .collect();
    paging::reply(items, &params)
}

pub(crate) fn get(req: &Req<'_>) -> Result<Reply, ApiError> {
    let b = req.shared.broker.borrow();
    let u = View::of(&b).user(req.param("user")).ok_or_else(ApiError::not_found)?;
    Reply::ok(user_json(u))
}

/// `tags` as a comma-separated string or an array.
fn tags(v: Option<&Value>) -> Result<Vec<String>, ApiError> {
    let list: Vec<String> = match v {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(s)) => s.split(',').map(|t| t.trim().to_owned()).collect(),
        Some(Value::Array(a)) => a
            .iter()
            .map(|t| t.as_str().map(|s| s.trim().to_owned()))
            .collect::<Option<_>>()
            .ok_or_else(|| ApiError::bad_request("tags must be strings"))?,
        Some(_) => return Err(ApiError::bad_request("tags must be a string or an array")),
    };
    Ok(list.into_iter().filter(|t| !t.is_empty()).collect())
}

pub(crate) fn put(req: &Req<'_>) -> Result<Reply, ApiError> {
    let body = req.json_object()?;
    let s = |k: &str| -> Result<Option<String>, ApiError> {
        match body.get(k) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(ApiError::bad_request(format!("{k} must be a string"))),
        }
    };
    let spec = UserSpec {
        password: s("password")?,
        password_hash: s("password_hash")?,
        hashing_algorithm: s("hashing_algorithm")?,
        tags: tags(body.get("tags"))?,
    };
    let r = req.shared.broker.borrow_mut().admin_put_user(req.param("user"), &spec);
    match r? {
        Declared::Created => Ok(Reply::Empty(201)),
        Declared::Existed => Reply::no_content(),
    }
}

pub(crate) fn delete(req: &Req<'_>) -> Result<Reply, ApiError> {
    req.shared.broker.borrow_mut().admin_delete_user(req.param("user"))?;
    Reply::no_content()
}

/// POST `{"users": [names]}`; missing users are skipped (as RabbitMQ).
pub(crate) fn bulk_delete(req: &Req<'_>) -> Result<Reply, ApiError> {
    let body = req.json_object()?;
    let names: Vec<String> = body
        .get("users")
        .and_then(Value::as_array)
        .ok_or_else(|| ApiError::bad_request("[{key_missing,users}]"))?
        .iter()
        .filter_map(|v| v.as_str().map(str::to_owned))
        .collect();
    let mut b = req.shared.broker.borrow_mut();
    for n in names {
        match b.admin_delete_user(&n) {
            Ok(()) | Err(AdminError::NotFound(_)) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Reply::no_content()
}

/// `{"ok": hash}` with a fresh salt (RabbitMQ 3.11+).
pub(crate) fn hash_password(req: &Req<'_>) -> Result<Reply, ApiError> {
    let salt: [u8; 4] = (crate::sys::now_ms() as u32 ^ std::process::id().rotate_left(16)).to_le_bytes();
    let h = crate::core::mgmt::hash_password(req.param("password"), salt);
    Reply::ok(json!({ "ok": h }))
}
