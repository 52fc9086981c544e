//! AMQP field tables and message properties to and from JSON, as RabbitMQ's
//! API writes them (JSON integers become `long`, strings `longstr`).

use ringmq_codec::ShortStr;
use ringmq_codec::{BasicProperties, FieldTable, Table};
use serde_json::{Map, Value};

use crate::core::mgmt::json_table::table_from_json;

use super::error::ApiError;

pub(crate) use crate::core::mgmt::json_table::table_to_json;

/// `arguments` of a request body: absent or an object.
pub(crate) fn arguments(body: &Map<String, Value>) -> Result<FieldTable, ApiError> {
    match body.get("arguments") {
        None | Some(Value::Null) => Ok(FieldTable::default()),
        Some(v @ Value::Object(_)) => table_from_json(v).map_err(ApiError::bad_request),
        // RabbitMQ's UI sends "" for no arguments.
        Some(Value::String(s)) if s.is_empty() => Ok(FieldTable::default()),
        Some(Value::Array(a)) if a.is_empty() => Ok(FieldTable::default()),
        Some(_) => Err(ApiError::bad_request("arguments must be an object")),
    }
}

/// A boolean field that RabbitMQ also accepts as the string "true"/"false".
pub(crate) fn boolean(body: &Map<String, Value>, key: &str, default: bool) -> Result<bool, ApiError> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(default),
        Some(Value::Bool(b)) => Ok(*b),
        Some(Value::String(s)) if s == "true" => Ok(true),
        Some(Value::String(s)) if s == "false" => Ok(false),
        Some(_) => Err(ApiError::bad_request(format!("{key} must be a boolean"))),
    }
}

/// Decoded properties as RabbitMQ shows them: an object, or `[]` when none
/// is set (its empty Erlang proplist).
pub(crate) fn properties_to_json(raw: &[u8]) -> Value {
    let Ok(p) = BasicProperties::decode(raw) else {
        return Value::Array(Vec::new());
    };
    let mut m = Map::new();
    let mut s = |k: &str, v: Option<ShortStr<'_>>| {
        if let Some(v) = v {
            m.insert(k.to_owned(), Value::String(v.to_string()));
        }
    };
    s("content_type", p.content_type);
    s("content_encoding", p.content_encoding);
    s("correlation_id", p.correlation_id);
    s("reply_to", p.reply_to);
    s("expiration", p.expiration);
    s("message_id", p.message_id);
    s("type", p.kind);
    s("user_id", p.user_id);
    s("app_id", p.app_id);
    s("cluster_id", p.cluster_id);
    if let Some(d) = p.delivery_mode {
        m.insert("delivery_mode".into(), d.into());
    }
    if let Some(d) = p.priority {
        m.insert("priority".into(), d.into());
    }
    if let Some(t) = p.timestamp {
        m.insert("timestamp".into(), t.into());
    }
    if let Some(h) = p.headers {
        m.insert("headers".into(), table_to_json(&h.to_owned_table()));
    }
    if m.is_empty() {
        Value::Array(Vec::new())
    } else {
        Value::Object(m)
    }
}

fn short<'a>(k: &str, v: &'a Option<String>) -> Result<Option<ShortStr<'a>>, ApiError> {
    v.as_deref()
        .map(|s| ShortStr::new(s).map_err(|e| ApiError::bad_request(e.text(k))))
        .transpose()
}

/// Encodes `properties` of a publish request.
pub(crate) fn properties_from_json(v: Option<&Value>) -> Result<Vec<u8>, ApiError> {
    let empty = Map::new();
    let m = match v {
        None | Some(Value::Null) => &empty,
        Some(Value::Object(m)) => m,
        Some(Value::Array(a)) if a.is_empty() => &empty,
        Some(_) => return Err(ApiError::bad_request("properties must be an object")),
    };
    let string = |k: &str| -> Result<Option<String>, ApiError> {
        match m.get(k) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(Value::Number(n)) => Ok(Some(n.to_string())),
            Some(_) => Err(ApiError::bad_request(format!("property {k} must be a string"))),
        }
    };
    let int = |k: &str, max: u64| -> Result<Option<u64>, ApiError> {
        match m.get(k) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => v
                .as_u64()
                .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
                .filter(|n| *n <= max)
                .map(Some)
                .ok_or_else(|| ApiError::bad_request(format!("property {k} must be an integer up to {max}"))),
        }
    };
    let headers = match m.get("headers") {
        None | Some(Value::Null) => None,
        Some(h @ Value::Object(_)) => Some(table_from_json(h).map_err(ApiError::bad_request)?.to_bytes()),
        Some(_) => return Err(ApiError::bad_request("headers must be an object")),
    };
    let (ct, ce, cid, rt, exp, mid, ty, uid, aid, clid) = (
        string("content_type")?,
        string("content_encoding")?,
        string("correlation_id")?,
        string("reply_to")?,
        string("expiration")?,
        string("message_id")?,
        string("type")?,
        string("user_id")?,
        string("app_id")?,
        string("cluster_id")?,
    );
    // Each is a short string on the wire: one AMQP cannot carry is refused
    // here, not found by the encoder (issue 15, defect 3).
    let props = BasicProperties {
        content_type: short("content_type", &ct)?,
        content_encoding: short("content_encoding", &ce)?,
        headers: headers.as_deref().map(|b| Table::parse(b).expect("own table")),
        delivery_mode: int("delivery_mode", 255)?.map(|n| n as u8),
        priority: int("priority", 255)?.map(|n| n as u8),
        correlation_id: short("correlation_id", &cid)?,
        reply_to: short("reply_to", &rt)?,
        expiration: short("expiration", &exp)?,
        message_id: short("message_id", &mid)?,
        timestamp: int("timestamp", u64::MAX)?,
        kind: short("type", &ty)?,
        user_id: short("user_id", &uid)?,
        app_id: short("app_id", &aid)?,
        cluster_id: short("cluster_id", &clid)?,
    };
    let mut out = Vec::new();
    props.encode(&mut out);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn arguments_accept_what_rabbitmq_clients_send() {
        let body = json!({"arguments": {"x-max-length": 10}});
        let t = arguments(body.as_object().unwrap()).unwrap();
        assert_eq!(t.get("x-max-length"), Some(&ringmq_codec::FieldValue::I64(10)));
        for empty in [json!({}), json!({"arguments": ""}), json!({"arguments": null})] {
            assert!(arguments(empty.as_object().unwrap()).unwrap().is_empty());
        }
        assert!(arguments(json!({"arguments": 5}).as_object().unwrap()).is_err());
        let b = json!({"durable": "false", "auto_delete": true});
        assert!(!boolean(b.as_object().unwrap(), "durable", true).unwrap());
        assert!(boolean(b.as_object().unwrap(), "auto_delete", false).unwrap());
        assert!(boolean(b.as_object().unwrap(), "x", true).unwrap());
    }

    #[test]
    fn properties_both_ways() {
        assert_eq!(properties_to_json(&properties_from_json(None).unwrap()), json!([]));
        let p = json!({"delivery_mode": 2, "headers": {"h": "v"}, "content_type": "text/plain", "priority": 3});
        let raw = properties_from_json(Some(&p)).unwrap();
        assert_eq!(properties_to_json(&raw), p);
        assert!(properties_from_json(Some(&json!({"delivery_mode": 300}))).is_err());
        assert!(properties_from_json(Some(&json!("x"))).is_err());
        let long = "t".repeat(300);
        let e = properties_from_json(Some(&json!({"content_type": long}))).unwrap_err();
        assert!(
            format!("{e:?}").contains("content_type should be less than 255 bytes, actually was 300"),
            "{e:?}"
        );
    }
}
