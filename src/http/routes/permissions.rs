//! `/api/permissions` and the per-user and per-vhost permission lists.

use serde_json::{json, Value};

use crate::core::mgmt::{Declared, PermissionDef, View};
use crate::http::paging::{self, Item, ListParams};
use crate::http::{ApiError, Reply, Req};

pub(crate) struct PermItem(PermissionDef);

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

/// A kind of grant kept per user and vhost (permissions, topic permissions):
/// its three lists (all, one vhost's, one user's) are these functions with
/// the kind as type parameter, so both kinds list, filter and 404 alike.
pub(crate) trait Grants {
    /// An entry; its [`Item::name`] is the user.
    type Entry: Item;
    fn entries(b: View<'_>) -> Vec<Self::Entry>;
}

/// `/api/permissions`'s entries.
pub(crate) struct Perms;

impl Grants for Perms {
    type Entry = PermItem;
    fn entries(b: View<'_>) -> Vec<PermItem> {
        b.permissions().into_iter().map(PermItem).collect()
    }
}

fn listed<G: Grants>(req: &Req<'_>, keep: impl Fn(&G::Entry) -> bool) -> Result<Reply, ApiError> {
    let params = ListParams::parse(&req.query)?;
    let b = req.shared.broker.borrow();
    let items: Vec<G::Entry> = G::entries(View::of(&b)).into_iter().filter(keep).collect();
    paging::reply(items, &params)
}

pub(crate) fn list<G: Grants>(req: &Req<'_>) -> Result<Reply, ApiError> {
    listed::<G>(req, |_| true)
}

pub(crate) fn of_vhost<G: Grants>(req: &Req<'_>) -> Result<Reply, ApiError> {
    if !View::of(&req.shared.broker.borrow()).has_vhost(req.vhost()) {
        return Err(ApiError::not_found());
    }
    listed::<G>(req, |e| e.vhost() == req.vhost())
}

pub(crate) fn of_user<G: Grants>(req: &Req<'_>) -> Result<Reply, ApiError> {
    if View::of(&req.shared.broker.borrow()).user(req.param("user")).is_none() {
        return Err(ApiError::not_found());
    }
    listed::<G>(req, |e| e.name() == req.param("user"))
}

pub(crate) fn get(req: &Req<'_>) -> Result<Reply, ApiError> {
    let (v, u) = (req.vhost(), req.param("user"));
    let b = req.shared.broker.borrow();
    View::of(&b)
        .permissions()
        .into_iter()
        .find(|d| d.vhost == v && d.user == u)
        .map_or_else(|| Err(ApiError::not_found()), |d| Reply::ok(PermItem(d).render()))
}

pub(crate) fn put(req: &Req<'_>) -> Result<Reply, ApiError> {
    let [configure, write, read]: [String; 3] = req
        .string_fields(&["configure", "write", "read"])?
        .try_into()
        .expect("three keys, three values");
    let def = PermissionDef {
        user: req.param("user").to_owned(),
        vhost: req.vhost().to_owned(),
        configure,
        write,
        read,
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
