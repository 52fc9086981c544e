//! Direct exchange: a message goes to the bindings whose key equals its routing
//! key, byte for byte (rabbit_exchange_type_direct: `match_routing_key`).

use std::hash::Hash;

use super::Dedup;

/// Routing key → destinations, one entry per binding: a destination bound twice
/// with the same key (and different arguments) appears twice, so unbinding one of
/// those bindings leaves the other routing.
#[derive(Debug)]
pub(super) struct Direct<D> {
    by_key: crate::core::NameMap<Box<str>, Vec<D>>,
}

impl<D> Default for Direct<D> {
    fn default() -> Self {
        Direct {
            by_key: Default::default(),
        }
    }
}

impl<D: Clone + Eq + Hash + Ord> Direct<D> {
    pub(super) fn add(&mut self, dest: D, routing_key: &str) {
        match self.by_key.get_mut(routing_key) {
            Some(dests) => dests.push(dest),
            None => {
                self.by_key.insert(routing_key.into(), vec![dest]);
            }
        }
    }

    pub(super) fn remove(&mut self, dest: &D, routing_key: &str) {
        let dests = self.by_key.get_mut(routing_key).expect("bound key is indexed");
        let at = dests
            .iter()
            .position(|d| d == dest)
            .expect("bound destination is indexed");
        dests.swap_remove(at);
        if dests.is_empty() {
            self.by_key.remove(routing_key);
        }
    }

    pub(super) fn route(&self, routing_key: &str, out: &mut Vec<D>) {
        if let Some(dests) = self.by_key.get(&crate::core::model::ids::Name(routing_key)) {
            Dedup::new(out).extend(dests);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Bindings, ExchangeKind};
    use ringmq_codec::{FieldTable, FieldValue};

    fn routed(b: &Bindings<&'static str>, key: &str) -> Vec<&'static str> {
        let mut out = Vec::new();
        b.route(key, None, &mut out);
        out.sort();
        out
    }

    #[test]
    fn exact_key_only() {
        // The routing tutorial (rabbitmq.com/tutorials/tutorial-four): severities.
        let mut b = Bindings::new(ExchangeKind::Direct);
        let none = FieldTable::new();
        b.bind("q1", ringmq_codec::short!("error"), &none);
        b.bind("q2", ringmq_codec::short!("info"), &none);
        b.bind("q2", ringmq_codec::short!("warning"), &none);
        b.bind("q2", ringmq_codec::short!("error"), &none);
        assert_eq!(routed(&b, "error"), vec!["q1", "q2"]);
        assert_eq!(routed(&b, "info"), vec!["q2"]);
        assert_eq!(routed(&b, "debug"), Vec::<&str>::new());
        // No pattern language, no case folding, no trimming.
        assert_eq!(routed(&b, "Error"), Vec::<&str>::new());
        assert_eq!(routed(&b, "error "), Vec::<&str>::new());
        assert_eq!(routed(&b, "#"), Vec::<&str>::new());
    }

    #[test]
    fn empty_key_is_a_key() {
        let mut b = Bindings::new(ExchangeKind::Direct);
        b.bind("q", ringmq_codec::short!(""), &FieldTable::new());
        assert_eq!(routed(&b, ""), vec!["q"]);
        assert_eq!(routed(&b, "a"), Vec::<&str>::new());
    }

    #[test]
    fn two_bindings_one_delivery_and_unbind_keeps_the_other() {
        let mut b = Bindings::new(ExchangeKind::Direct);
        let a: FieldTable = [(ringmq_codec::short!("x"), FieldValue::I32(1))].into_iter().collect();
        b.bind("q", ringmq_codec::short!("k"), &FieldTable::new());
        b.bind("q", ringmq_codec::short!("k"), &a);
        assert_eq!(routed(&b, "k"), vec!["q"]);
        assert!(b.unbind(&"q", "k", &FieldTable::new()));
        assert_eq!(routed(&b, "k"), vec!["q"]);
        assert!(b.unbind(&"q", "k", &a));
        assert_eq!(routed(&b, "k"), Vec::<&str>::new());
    }
}
