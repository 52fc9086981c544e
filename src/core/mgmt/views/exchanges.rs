//! Exchanges and bindings, read-only.

use ringmq_codec::FieldTable;

use crate::core::mgmt::commands::DestKind;
use crate::core::model::ids::Dest;
use crate::core::model::stats::ObjStats;
use crate::core::model::vhost::{Exchange, VHost};

#[derive(Clone, Copy)]
pub struct ExchangeView<'a> {
    vhost: &'a str,
    x: &'a Exchange,
}

impl<'a> ExchangeView<'a> {
    pub(super) fn new(vhost: &'a str, x: &'a Exchange) -> Self {
        ExchangeView { vhost, x }
    }

    pub fn vhost(&self) -> &'a str {
        self.vhost
    }
    pub fn name(&self) -> &'a str {
        &self.x.name
    }
    /// The type as clients declare it (`x-delayed-message` for a delayed one).
    pub fn type_name(&self) -> &'static str {
        self.x.type_name()
    }
    pub fn durable(&self) -> bool {
        self.x.durable
    }
    pub fn auto_delete(&self) -> bool {
        self.x.auto_delete
    }
    pub fn internal(&self) -> bool {
        self.x.internal
    }
    pub fn arguments(&self) -> &'a FieldTable {
        &self.x.arguments
    }
    pub fn policy_name(&self) -> Option<&'a str> {
        self.x.policy.as_ref().map(|p| p.name())
    }
    /// The definition of the policy that applies (federation reads its
    /// `federation-upstream(-set)`).
    pub fn policy_definition(&self) -> Option<&'a serde_json::Map<String, serde_json::Value>> {
        self.x.policy.as_ref().map(|p| &p.def.definition)
    }
    /// Each binding's routing key and arguments, whatever its destination.
    pub fn binding_keys(&self) -> impl Iterator<Item = (&'a str, &'a FieldTable)> + 'a {
        self.x.bindings.iter().map(|(_, k, a)| (k.as_str(), a))
    }
    /// publish_in / publish_out counters and rates.
    pub fn stats(&self) -> &'a ObjStats {
        &self.x.stats
    }
}

/// One binding: `source` (`""`: the default exchange) to a queue or exchange.
#[derive(Clone, Copy)]
pub struct BindingRow<'a> {
    pub source: &'a str,
    pub kind: DestKind,
    pub destination: &'a str,
    pub routing_key: &'a str,
    /// `None` for the default exchange's implicit bindings (no arguments).
    pub arguments: Option<&'a FieldTable>,
}

/// See [`super::VhostView::bindings`].
pub(super) fn bindings_of(v: &VHost) -> Vec<BindingRow<'_>> {
    let mut out = Vec::new();
    let mut queues: Vec<&str> = v.queues.values().map(|q| &**q.name()).collect();
    queues.sort_unstable();
    for q in queues {
        out.push(BindingRow {
            source: "",
            kind: DestKind::Queue,
            destination: q,
            routing_key: q,
            arguments: None,
        });
    }
    let mut xs: Vec<&Exchange> = v.exchanges.values().filter(|x| !x.name.is_empty()).collect();
    xs.sort_by(|a, b| a.name.cmp(&b.name));
    for x in xs {
        for (d, rk, args) in x.bindings.iter() {
            let (kind, destination) = match d {
                Dest::Queue(id) => match v.queues.get(id) {
                    Some(q) => (DestKind::Queue, &**q.name()),
                    None => continue,
                },
                Dest::Exchange(n) => (DestKind::Exchange, &**n),
            };
            out.push(BindingRow {
                source: &x.name,
                kind,
                destination,
                routing_key: rk.into(),
                arguments: Some(args),
            });
        }
    }
    out
}
