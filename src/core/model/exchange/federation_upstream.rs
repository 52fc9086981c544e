//! `x-federation-upstream`: the exchange a federation link declares on its
//! upstream (RabbitMQ's `rabbit_federation_upstream_exchange`). It routes as
//! fanout, except a message that went through `x-max-hops` links already, or
//! that came from the downstream this exchange feeds (its `x-received-from`
//! names that downstream's cluster and vhost), goes nowhere: what stops a
//! message going round a ring of federated brokers.
//!
//! The same rule runs on the downstream side before a link republishes
//! ([`should_forward`]), as RabbitMQ's link does, for upstreams without this
//! exchange type (they fall back to fanout).

use ringmq_codec::{FieldTable, FieldValueRef, Table};

/// The header each federation hop prepends a table to.
pub const ROUTING_HEADER: &str = "x-received-from";
pub const MAX_HOPS_ARG: &str = "x-max-hops";
pub const DOWNSTREAM_NAME_ARG: &str = "x-downstream-name";
pub const DOWNSTREAM_VHOST_ARG: &str = "x-downstream-vhost";

/// What an `x-federation-upstream` exchange's arguments say about loops.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoopFilter {
    pub max_hops: u64,
    /// The downstream's cluster name and vhost (missing from RabbitMQ
    /// before 3.3.0 and 3.8.9: then no message is "already seen").
    pub downstream_name: Option<String>,
    pub downstream_vhost: Option<String>,
}

impl LoopFilter {
    /// Reads the declare's arguments; the error is the 406 text (RabbitMQ's
    /// `validate_arg(x-max-hops, long)`; any integer type is taken here).
    pub fn from_arguments(args: &FieldTable) -> Result<LoopFilter, String> {
        let max_hops = match args.get(MAX_HOPS_ARG) {
            None => return Err(format!("Argument {MAX_HOPS_ARG} missing")),
            Some(v) => match v.as_i64() {
                Some(n) => n.max(0) as u64,
                None => return Err(format!("Argument {MAX_HOPS_ARG} must be of type long")),
            },
        };
        let text = |k: &str| args.get(k).and_then(|v| v.as_str()).map(str::to_owned);
        Ok(LoopFilter {
            max_hops,
            downstream_name: text(DOWNSTREAM_NAME_ARG),
            downstream_vhost: text(DOWNSTREAM_VHOST_ARG),
        })
    }

    pub fn should_forward(&self, headers: Option<Table<'_>>) -> bool {
        should_forward(
            headers,
            self.max_hops,
            self.downstream_name.as_deref(),
            self.downstream_vhost.as_deref(),
        )
    }
}

/// RabbitMQ's `should_forward`: a message whose `x-received-from` has
/// `max_hops` entries or more, or an entry from `cluster`/`vhost` (both
/// given), goes no further. A header that is not an array is ignored.
pub fn should_forward(headers: Option<Table<'_>>, max_hops: u64, cluster: Option<&str>, vhost: Option<&str>) -> bool {
    let Some(FieldValueRef::Array(hops)) = headers.and_then(|h| h.get(ROUTING_HEADER)) else {
        return true;
    };
    if hops.iter().count() as u64 >= max_hops {
        return false;
    }
    let (Some(cluster), Some(vhost)) = (cluster, vhost) else {
        return true;
    };
    let seen = hops.iter().any(|v| match v {
        FieldValueRef::Table(t) => {
            let s = |k: &str| t.get(k).and_then(|v| v.as_str());
            s("cluster-name") == Some(cluster) && s("vhost") == Some(vhost)
        }
        _ => false,
    });
    !seen
}

#[cfg(test)]
mod tests {
    use super::*;
    use ringmq_codec::{FieldValue, ShortString};

    fn hop(cluster: &str, vhost: &str) -> FieldValue {
        let mut t = FieldTable::new();
        t.insert(
            ShortString::new("cluster-name").unwrap(),
            FieldValue::LongString(cluster.into()),
        );
        t.insert(ShortString::new("vhost").unwrap(), FieldValue::LongString(vhost.into()));
        FieldValue::Table(t)
    }

    fn headers(hops: Vec<FieldValue>) -> Vec<u8> {
        let mut h = FieldTable::new();
        h.insert(ShortString::new(ROUTING_HEADER).unwrap(), FieldValue::Array(hops));
        h.to_bytes()
    }

    #[test]
    fn hops_and_the_downstream_itself_stop_a_message() {
        let f = |bytes: &[u8], max: u64| should_forward(Some(Table::parse(bytes).unwrap()), max, Some("b"), Some("/"));
        assert!(should_forward(None, 1, Some("b"), Some("/")));
        assert!(f(&headers(vec![]), 1));
        assert!(!f(&headers(vec![hop("a", "/")]), 1), "one hop made, max-hops 1");
        assert!(f(&headers(vec![hop("a", "/")]), 2));
        assert!(!f(&headers(vec![hop("b", "/")]), 5), "came from b: not back to b");
        assert!(f(&headers(vec![hop("b", "other")]), 5), "same cluster, other vhost");
        // Not an array: ignored, as RabbitMQ does.
        let mut h = FieldTable::new();
        h.insert(
            ShortString::new(ROUTING_HEADER).unwrap(),
            FieldValue::LongString(b"x".to_vec()),
        );
        assert!(f(&h.to_bytes(), 1));
    }

    #[test]
    fn arguments_are_checked() {
        let mut a = FieldTable::new();
        assert_eq!(
            LoopFilter::from_arguments(&a).unwrap_err(),
            "Argument x-max-hops missing"
        );
        a.insert(
            ShortString::new(MAX_HOPS_ARG).unwrap(),
            FieldValue::LongString(b"1".to_vec()),
        );
        assert!(LoopFilter::from_arguments(&a).unwrap_err().contains("type long"));
        a.insert(ShortString::new(MAX_HOPS_ARG).unwrap(), FieldValue::I64(2));
        a.insert(
            ShortString::new(DOWNSTREAM_NAME_ARG).unwrap(),
            FieldValue::LongString(b"b".to_vec()),
        );
        let f = LoopFilter::from_arguments(&a).unwrap();
        assert_eq!(
            (f.max_hops, f.downstream_name.as_deref(), f.downstream_vhost),
            (2, Some("b"), None)
        );
    }
}
