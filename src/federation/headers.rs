//! What a link changes in a message it republishes, as RabbitMQ's federation
//! does: a table prepended to the `x-received-from` array (where it came
//! from: uri without credentials, exchange or queue, redelivered, the
//! upstream's cluster name and vhost), `user_id` removed unless the upstream
//! has `trust-user-id` (the local broker would refuse a publish whose
//! `user_id` is not the link's user). Queue links also keep the original
//! exchange and routing key the first time, and count visits.

use ringmq_codec::{BasicProperties, FieldTable, FieldValue, ShortStr, Table};

pub use crate::core::model::exchange::federation_upstream::ROUTING_HEADER;

/// A message's properties the link could not read.
#[derive(Debug, thiserror::Error)]
#[error("a message with unreadable properties: {0}")]
pub struct BadProperties(String);

impl BadProperties {
    pub fn new(why: String) -> BadProperties {
        BadProperties(why)
    }
}

fn lstr(s: &str) -> FieldValue {
    FieldValue::LongString(s.as_bytes().to_vec())
}

fn key(s: &str) -> ShortStr<'_> {
    ShortStr::truncate(s)
}

/// Where a link's messages come from: the table each one gets.
#[derive(Debug, Clone)]
pub struct Hop {
    /// `uri` (credentials removed), then `exchange` or `queue`, and, when
    /// the upstream said them, `cluster-name` and `vhost`.
    table: FieldTable,
    trust_user_id: bool,
    /// Queue links: `x-original-*` and `visit-count`.
    queue: bool,
}

impl Hop {
    pub fn exchange(uri: &str, exchange: &str, cluster: Option<&str>, vhost: &str, trust_user_id: bool) -> Hop {
        let mut t = FieldTable::new();
        t.insert(key("uri"), lstr(uri));
        t.insert(key("exchange"), lstr(exchange));
        if let Some(c) = cluster {
            t.insert(key("cluster-name"), lstr(c));
        }
        t.insert(key("vhost"), lstr(vhost));
        Hop {
            table: t,
            trust_user_id,
            queue: false,
        }
    }

    pub fn queue(uri: &str, queue: &str, vhost: &str, trust_user_id: bool) -> Hop {
        let mut t = FieldTable::new();
        t.insert(key("uri"), lstr(uri));
        t.insert(key("virtual_host"), lstr(vhost));
        t.insert(key("queue"), lstr(queue));
        Hop {
            table: t,
            trust_user_id,
            queue: true,
        }
    }

    /// The properties to republish with, into `out` (cleared first).
    /// `exchange` and `routing_key` are the delivery's (queue links keep them).
    pub fn apply(
        &self,
        raw: &[u8],
        redelivered: bool,
        exchange: &str,
        routing_key: &str,
        out: &mut Vec<u8>,
    ) -> Result<(), BadProperties> {
        out.clear();
        let mut p = BasicProperties::decode(raw).map_err(|e| BadProperties(e.to_string()))?;
        let mut headers = p.headers.map(|h| h.to_owned_table()).unwrap_or_default();
        let mut entry = self.table.clone();
        entry.insert(key("redelivered"), FieldValue::Bool(redelivered));
        let mut earlier = match headers.get(ROUTING_HEADER) {
            Some(FieldValue::Array(a)) => a.clone(),
            _ => Vec::new(),
        };
        if self.queue {
            if earlier.is_empty() {
                headers.insert(key("x-original-exchange"), lstr(exchange));
                headers.insert(key("x-original-routing-key"), lstr(routing_key));
            }
            // This link's earlier visit, if any, is replaced by one counting it.
            let same = |t: &FieldTable| {
                ["uri", "virtual_host", "queue"]
                    .iter()
                    .all(|k| t.get(k) == self.table.get(k))
            };
            let mut visits = 0;
            earlier.retain(|v| match v {
                FieldValue::Table(t) if same(t) => {
                    visits = t.get("visit-count").and_then(FieldValue::as_i64).unwrap_or(0);
                    false
                }
                _ => true,
            });
            entry.insert(key("visit-count"), FieldValue::I64(visits + 1));
        }
        let mut list = vec![FieldValue::Table(entry)];
        list.extend(earlier);
        headers.insert(key(ROUTING_HEADER), FieldValue::Array(list));
        let bytes = headers.to_bytes();
        p.headers = Some(Table::parse(&bytes).expect("a table we encoded"));
        if !self.trust_user_id {
            p.user_id = None;
        }
        p.encode(out);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn received_from(out: &[u8]) -> Vec<FieldValue> {
        let p = BasicProperties::decode(out).unwrap();
        match p.headers.unwrap().to_owned_table().get(ROUTING_HEADER) {
            Some(FieldValue::Array(a)) => a.clone(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_hop_is_prepended_and_user_id_dropped_unless_trusted() {
        let mut raw = Vec::new();
        BasicProperties {
            user_id: Some(ShortStr::truncate("alice")),
            ..Default::default()
        }
        .encode(&mut raw);
        let hop = Hop::exchange("amqp://up", "x", Some("rabbit@up"), "/", false);
        let mut once = Vec::new();
        hop.apply(&raw, true, "x", "k", &mut once).unwrap();
        assert_eq!(BasicProperties::decode(&once).unwrap().user_id, None);
        let mut twice = Vec::new();
        Hop::exchange("amqp://b", "x", None, "/", true)
            .apply(&once, false, "x", "k", &mut twice)
            .unwrap();
        let list = received_from(&twice);
        assert_eq!(list.len(), 2);
        let FieldValue::Table(first) = &list[0] else { panic!() };
        assert_eq!(first.get("uri"), Some(&lstr("amqp://b")));
        assert_eq!(first.get("redelivered"), Some(&FieldValue::Bool(false)));
        let FieldValue::Table(second) = &list[1] else { panic!() };
        assert_eq!(second.get("cluster-name"), Some(&lstr("rabbit@up")));
        assert_eq!(second.get("redelivered"), Some(&FieldValue::Bool(true)));
    }

    #[test]
    fn queue_hops_keep_the_origin_and_count_visits() {
        let mut raw = Vec::new();
        BasicProperties::default().encode(&mut raw);
        let hop = Hop::queue("amqp://up", "q", "/", false);
        let (mut a, mut b) = (Vec::new(), Vec::new());
        hop.apply(&raw, false, "orig-x", "orig-k", &mut a).unwrap();
        hop.apply(&a, false, "", "q", &mut b).unwrap();
        let h = BasicProperties::decode(&b).unwrap().headers.unwrap().to_owned_table();
        assert_eq!(h.get("x-original-exchange"), Some(&lstr("orig-x")));
        let list = received_from(&b);
        assert_eq!(list.len(), 1, "the earlier visit replaced");
        let FieldValue::Table(t) = &list[0] else { panic!() };
        assert_eq!(t.get("visit-count"), Some(&FieldValue::I64(2)));
    }
}
