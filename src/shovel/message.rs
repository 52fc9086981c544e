//! What a shovel changes in a message's properties on the way: the
//! `x-shovelled` record (`dest-add-forward-headers`), the
//! `x-shovelled-timestamp` header (`dest-add-timestamp-header`) and the
//! properties of `dest-publish-properties`, as RabbitMQ's shovel sets them.
//! A shovel with none of them passes the properties through as they came,
//! byte for byte (no decode, no encode).
//!
//! ringmq's addition: an `x-shovelled` entry says `redelivered: true` when
//! the source redelivered the message (as federation's `x-received-from`
//! does). After a crash of either side a message may be moved twice; the
//! second copy is always such a redelivery, so with forward headers on, every
//! copy that may repeat one is flagged.

use ringmq_codec::{BasicProperties, FieldTable, FieldValue, ShortStr, Table};
use serde_json::{Map, Value};

use crate::core::model::shovel::{ShovelDef, ShovelDest, ShovelSource};

/// A message's properties the shovel could not read (the source broker sent
/// properties the codec refuses).
#[derive(Debug, thiserror::Error)]
#[error("a message with unreadable properties: {0}")]
pub struct BadProperties(String);

/// The changes of one shovel, made once when it starts.
#[derive(Debug, Default)]
pub struct Rewrite {
    /// The table prepended to the `x-shovelled` array.
    forward: Option<FieldTable>,
    timestamp: bool,
    properties: Map<String, Value>,
}

fn lstr(s: &str) -> FieldValue {
    FieldValue::LongString(s.as_bytes().to_vec())
}

impl Rewrite {
    pub fn new(def: &ShovelDef, vhost: &str, name: &str, node: &str, src_uri: &str, dest_uri: &str) -> Rewrite {
        let forward = def.add_forward_headers.then(|| {
            let mut t = FieldTable::new();
            let mut put = |k: &str, v: &str| t.insert(ShortStr::truncate(k), lstr(v));
            put("shovelled-by", node);
            put("shovel-type", "dynamic");
            put("shovel-name", name);
            put("shovel-vhost", vhost);
            put("src-uri", src_uri);
            match &def.src {
                ShovelSource::Queue(q) => put("src-queue", q),
                ShovelSource::Exchange { exchange, key } => {
                    put("src-exchange", exchange);
                    put("src-exchange-key", key);
                }
            }
            put("dest-uri", dest_uri);
            match &def.dest {
                ShovelDest::Queue(q) => put("dest-queue", q),
                ShovelDest::Exchange { exchange, key } => {
                    put("dest-exchange", exchange);
                    if let Some(k) = key {
                        put("dest-exchange-key", k);
                    }
                }
                ShovelDest::AsPublished | ShovelDest::Http => {}
            }
            t
        });
        Rewrite {
            forward,
            timestamp: def.add_timestamp_header,
            properties: def.dest_publish_properties.clone(),
        }
    }

    pub fn is_identity(&self) -> bool {
        self.forward.is_none() && !self.timestamp && self.properties.is_empty()
    }

    /// The properties to publish with, into `out` (cleared first), for a
    /// message the source did (`redelivered`) or did not deliver before.
    pub fn apply(&self, raw: &[u8], redelivered: bool, now_secs: u64, out: &mut Vec<u8>) -> Result<(), BadProperties> {
        out.clear();
        if self.is_identity() {
            out.extend_from_slice(raw);
            return Ok(());
        }
        let mut p = BasicProperties::decode(raw).map_err(|e| BadProperties(e.to_string()))?;
        let headers_bytes;
        if self.forward.is_some() || self.timestamp {
            let mut headers = p.headers.map(|h| h.to_owned_table()).unwrap_or_default();
            if let Some(entry) = &self.forward {
                let mut entry = entry.clone();
                if redelivered {
                    entry.insert(ShortStr::truncate("redelivered"), FieldValue::Bool(true));
                }
                let mut list = vec![FieldValue::Table(entry)];
                if let Some(FieldValue::Array(old)) = headers.get("x-shovelled") {
                    list.extend(old.iter().cloned());
                }
                headers.insert(ShortStr::truncate("x-shovelled"), FieldValue::Array(list));
            }
            if self.timestamp {
                headers.insert(
                    ShortStr::truncate("x-shovelled-timestamp"),
                    FieldValue::I64(now_secs as i64),
                );
            }
            headers_bytes = headers.to_bytes();
            p.headers = Some(Table::parse(&headers_bytes).expect("a table we encoded"));
        }
        for (k, v) in &self.properties {
            let s = || v.as_str().map(ShortStr::truncate);
            let n = v.as_u64();
            match k.as_str() {
                "content_type" => p.content_type = s(),
                "content_encoding" => p.content_encoding = s(),
                "delivery_mode" => p.delivery_mode = n.map(|n| n as u8),
                "priority" => p.priority = n.map(|n| n as u8),
                "correlation_id" => p.correlation_id = s(),
                "reply_to" => p.reply_to = s(),
                "expiration" => p.expiration = s(),
                "message_id" => p.message_id = s(),
                "timestamp" => p.timestamp = n,
                "type" => p.kind = s(),
                "user_id" => p.user_id = s(),
                "app_id" => p.app_id = s(),
                "cluster_id" => p.cluster_id = s(),
                other => unreachable!("{other}: refused by ShovelDef::parse"),
            }
        }
        p.encode(out);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn headers_and_properties_are_added_and_the_rest_kept() {
        let def = ShovelDef::parse(
            "s",
            &json!({"src-uri": "amqp://", "src-queue": "q", "dest-uri": "amqp://", "dest-queue": "d",
                    "dest-add-forward-headers": true, "dest-add-timestamp-header": true,
                    "dest-publish-properties": {"delivery_mode": 2, "app_id": "shovel"}}),
        )
        .unwrap();
        let rw = Rewrite::new(&def, "/", "s", "rabbit@h", "amqp://", "amqp://");
        let mut raw = Vec::new();
        BasicProperties {
            message_id: Some(ShortStr::truncate("m1")),
            ..Default::default()
        }
        .encode(&mut raw);
        let mut out = Vec::new();
        rw.apply(&raw, false, 1_700_000_000, &mut out).unwrap();
        let p = BasicProperties::decode(&out).unwrap();
        assert_eq!(p.message_id.map(|m| m.as_str()), Some("m1"));
        assert_eq!(
            (p.delivery_mode, p.app_id.map(|a| a.as_str())),
            (Some(2), Some("shovel"))
        );
        let h = p.headers.unwrap().to_owned_table();
        assert_eq!(h.get("x-shovelled-timestamp"), Some(&FieldValue::I64(1_700_000_000)));
        let Some(FieldValue::Array(list)) = h.get("x-shovelled") else {
            panic!("{h:?}")
        };
        let Some(FieldValue::Table(t)) = list.first() else {
            panic!()
        };
        assert_eq!(t.get("shovel-name"), Some(&lstr("s")));
        assert_eq!(t.get("dest-queue"), Some(&lstr("d")));
        assert_eq!(t.get("redelivered"), None, "delivered the first time");
        rw.apply(&raw, true, 1_700_000_000, &mut out).unwrap();
        let h = BasicProperties::decode(&out).unwrap().headers.unwrap().to_owned_table();
        let Some(FieldValue::Array(list)) = h.get("x-shovelled") else {
            panic!("{h:?}")
        };
        let Some(FieldValue::Table(t)) = list.first() else {
            panic!()
        };
        assert_eq!(
            t.get("redelivered"),
            Some(&FieldValue::Bool(true)),
            "a redelivery is flagged"
        );
        // No changes asked: the bytes go through as they came.
        let plain = ShovelDef::parse(
            "s",
            &json!({"src-uri": "amqp://", "src-queue": "q", "dest-uri": "amqp://"}),
        )
        .unwrap();
        let id = Rewrite::new(&plain, "/", "s", "n", "", "");
        id.apply(&raw, true, 0, &mut out).unwrap();
        assert_eq!(out, raw);
    }
}
