//! The downstream exchange's bindings as the upstream gets them (RabbitMQ's
//! `update_binding`): each distinct (routing key, arguments) becomes an
//! exchange-to-exchange binding from the upstream exchange to the link's
//! helper exchange, its arguments with an `x-bound-from` table prepended
//! (this cluster, vhost, exchange and the hops it may still travel).
//!
//! A binding that is itself another link's (it has `x-bound-from`) travels
//! on with one hop less, counted down from the tightest `max-hops` passed,
//! and not at all back to where it came from: bindings reach exactly as far
//! as messages can come, so a ring does not pass them round for ever.

use std::collections::BTreeSet;

use ringmq_codec::{FieldTable, FieldValue, ShortStr, Table};

/// One binding as the link syncs it: routing key and encoded arguments.
pub type BindingSet = BTreeSet<(String, Vec<u8>)>;

pub const BINDING_HEADER: &str = "x-bound-from";

/// Who makes the binding upstream.
#[derive(Debug, Clone)]
pub struct Binder {
    pub max_hops: u64,
    /// This broker's cluster name and the downstream exchange's vhost and name.
    pub cluster: String,
    pub vhost: String,
    pub exchange: String,
    /// The helper exchange's suffix this run (A or B).
    pub suffix: &'static str,
    /// The upstream's cluster name (when it said) and vhost.
    pub upstream_cluster: Option<String>,
    pub upstream_vhost: String,
}

impl Binder {
    /// The arguments to bind upstream with, or None when the binding goes no
    /// further (no hops left, or it came from that upstream).
    pub fn arguments(&self, args: &[u8]) -> Option<Vec<u8>> {
        let mut t = Table::parse(args).map(|t| t.to_owned_table()).unwrap_or_default();
        let earlier = match t.get(BINDING_HEADER) {
            Some(FieldValue::Array(a)) => Some(a.clone()),
            _ => None,
        };
        let hops = match &earlier {
            None => self.max_hops,
            Some(all) => {
                let text = |e: &FieldTable, k: &str| e.get(k).and_then(|v| v.as_str()).map(str::to_owned);
                let seen = all.iter().any(|e| match e {
                    FieldValue::Table(e) => {
                        self.upstream_cluster.is_some()
                            && text(e, "cluster-name") == self.upstream_cluster
                            && text(e, "vhost").as_deref() == Some(self.upstream_vhost.as_str())
                    }
                    _ => false,
                });
                let prev = match all.first() {
                    Some(FieldValue::Table(e)) => e.get("hops").and_then(FieldValue::as_i64).unwrap_or(0).max(0) as u64,
                    _ => 0,
                };
                if seen {
                    0
                } else {
                    prev.saturating_sub(1).min(self.max_hops)
                }
            }
        };
        if hops == 0 {
            return None;
        }
        let mut info = FieldTable::new();
        let s = |v: &str| FieldValue::LongString(v.as_bytes().to_vec());
        info.insert(ShortStr::truncate("cluster-name"), s(&self.cluster));
        info.insert(ShortStr::truncate("vhost"), s(&self.vhost));
        info.insert(
            ShortStr::truncate("exchange"),
            s(&format!("{}:{} {}", self.vhost, self.exchange, self.suffix)),
        );
        info.insert(
            ShortStr::truncate("hops"),
            FieldValue::I16(hops.min(i16::MAX as u64) as i16),
        );
        let mut list = vec![FieldValue::Table(info)];
        list.extend(earlier.unwrap_or_default());
        t.insert(ShortStr::truncate(BINDING_HEADER), FieldValue::Array(list));
        Some(t.to_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn binder(max_hops: u64, cluster: &str, upstream: &str) -> Binder {
        Binder {
            max_hops,
            cluster: cluster.into(),
            vhost: "/".into(),
            exchange: "x".into(),
            suffix: "A",
            upstream_cluster: Some(upstream.into()),
            upstream_vhost: "/".into(),
        }
    }

    fn hops(args: &[u8]) -> Vec<(String, i64)> {
        let t = Table::parse(args).unwrap().to_owned_table();
        let Some(FieldValue::Array(a)) = t.get(BINDING_HEADER) else {
            panic!()
        };
        a.iter()
            .map(|e| match e {
                FieldValue::Table(e) => (
                    e.get("cluster-name").unwrap().as_str().unwrap().to_owned(),
                    e.get("hops").unwrap().as_i64().unwrap(),
                ),
                _ => panic!(),
            })
            .collect()
    }

    #[test]
    fn bindings_travel_as_far_as_messages_and_not_back() {
        // A user's binding at c, over a link of max-hops 2 to b.
        let at_c = binder(2, "c", "b").arguments(&[]).unwrap();
        assert_eq!(hops(&at_c), vec![("c".into(), 2)]);
        // At b it is a binding of b's exchange: over b's link to a (max-hops 5), one hop left.
        let at_b = binder(5, "b", "a").arguments(&at_c).unwrap();
        assert_eq!(hops(&at_b), vec![("b".into(), 1), ("c".into(), 2)]);
        // At a, none left.
        assert_eq!(binder(5, "a", "z").arguments(&at_b), None);
        // Never back to the cluster it came from.
        assert_eq!(binder(5, "b", "c").arguments(&at_c), None);
        // A ring of two with max-hops 1: b's binding at a goes no further.
        let b_to_a = binder(1, "b", "a").arguments(&[]).unwrap();
        assert_eq!(binder(1, "a", "b").arguments(&b_to_a), None);
    }
}
