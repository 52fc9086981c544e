//! `/api/topic-permissions` and the per-user and per-vhost lists, in RabbitMQ
//! 3.10's shapes: one user's entries in a vhost are a list (one per exchange),
//! 404 when there are none; PUT takes `exchange`, `write` and `read`; DELETE
//! clears all of the user's entries in the vhost, or with the exchange in the
//! path only that one.

use serde_json::{json, Value};

use super::permissions::Grants;
use crate::core::mgmt::{Declared, TopicPermissionDef, View};
use crate::http::paging::Item;
use crate::http::{ApiError, Reply, Req};

pub(crate) struct TopicItem(TopicPermissionDef);

impl Item for TopicItem {
    fn name(&self) -> &str {
        &self.0.user
    }
    fn vhost(&self) -> &str {
        &self.0.vhost
    }
    fn render(&self) -> Value {
        let p = &self.0;
        json!({"user": p.user, "vhost": p.vhost, "exchange": p.exchange, "write": p.write, "read": p.read})
    }
}

/// `/api/topic-permissions`'s entries (listed by [`super::permissions::list`]
/// and its siblings).
pub(crate) struct Topic;

impl Grants for Topic {
    type Entry = TopicItem;
    fn entries(b: View<'_>) -> Vec<TopicItem> {
        b.topic_permissions().into_iter().map(TopicItem).collect()
    }
}

/// The user's entries in the vhost (with an exchange in the path too: RabbitMQ
/// 3.10 lists them all there as well).
pub(crate) fn get(req: &Req<'_>) -> Result<Reply, ApiError> {
    let (v, u) = (req.vhost(), req.param("user"));
    let b = req.shared.broker.borrow();
    let items: Vec<Value> = View::of(&b)
        .topic_permissions()
        .into_iter()
        .filter(|d| d.vhost == v && d.user == u)
        .map(|d| TopicItem(d).render())
        .collect();
    if items.is_empty() {
        return Err(ApiError::not_found());
    }
    Reply::ok(Value::Array(items))
}

pub(crate) fn put(req: &Req<'_>) -> Result<Reply, ApiError> {
    let [exchange, write, read]: [String; 3] = req
        .string_fields(&["exchange", "write", "read"])?
        .try_into()
        .expect("three keys, three values");
    let def = TopicPermissionDef {
        user: req.param("user").to_owned(),
        vhost: req.vhost().to_owned(),
        exchange,
        write,
        read,
    };
    match req.shared.broker.borrow_mut().admin_set_topic_permission(def)? {
        Declared::Created => Ok(Reply::Empty(201)),
        Declared::Existed => Reply::no_content(),
    }
}

pub(crate) fn delete(req: &Req<'_>) -> Result<Reply, ApiError> {
    req.shared
        .broker
        .borrow_mut()
        .admin_clear_topic_permissions(req.param("user"), req.vhost(), None)?;
    Reply::no_content()
}

pub(crate) fn delete_one(req: &Req<'_>) -> Result<Reply, ApiError> {
    req.shared.broker.borrow_mut().admin_clear_topic_permissions(
        req.param("user"),
        req.vhost(),
        Some(req.param("exchange")),
    )?;
    Reply::no_content()
}
