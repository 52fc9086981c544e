//! Fanout exchange: every bound destination gets the message, whatever its
//! routing key (rabbit_exchange_type_fanout: `route` returns all bindings).

use std::hash::Hash;

use super::Dedup;

/// The unique destinations plus how many bindings each has, so a destination
/// bound with two different argument tables stays until both are gone. Kept as a
/// plain list because routing copies the whole list anyway; bind and unbind pay
/// the linear search, which is rare next to publishes.
#[derive(Debug)]
pub(super) struct Fanout<D> {
    dests: Vec<D>,
    /// `bindings[i]` is the number of bindings to `dests[i]`, always ≥ 1.
    bindings: Vec<u32>,
}

impl<D> Default for Fanout<D> {
    fn default() -> Self {
        Fanout {
            dests: Vec::new(),
            bindings: Vec::new(),
        }
    }
}

impl<D: Clone + Eq + Hash + Ord> Fanout<D> {
    pub(super) fn add(&mut self, dest: D) {
        match self.dests.iter().position(|d| *d == dest) {
            Some(at) => self.bindings[at] += 1,
            None => {
                self.dests.push(dest);
                self.bindings.push(1);
            }
        }
    }

    pub(super) fn remove(&mut self, dest: &D) {
        let at = self
            .dests
            .iter()
            .position(|d| d == dest)
            .expect("bound destination is indexed");
        self.bindings[at] -= 1;
        if self.bindings[at] == 0 {
            self.dests.swap_remove(at);
            self.bindings.swap_remove(at);
        }
    }

    pub(super) fn route(&self, out: &mut Vec<D>) {
        if out.is_empty() {
            // The common case: `dests` is already unique, so this is one copy.
            out.extend_from_slice(&self.dests);
        } else {
            Dedup::new(out).extend(&self.dests);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Bindings, ExchangeKind};
    use ringmq_codec::{FieldTable, FieldValue};

    fn routed(b: &Bindings<u32>, key: &str) -> Vec<u32> {
        let mut out = Vec::new();
        b.route(key, None, &mut out);
        out.sort();
        out
    }

    #[test]
    fn every_destination_once_whatever_the_key() {
        let mut b = Bindings::new(ExchangeKind::Fanout);
        let none = FieldTable::new();
        b.bind(1, ringmq_codec::short!(""), &none);
        b.bind(2, ringmq_codec::short!("ignored"), &none);
        b.bind(2, ringmq_codec::short!("also ignored"), &none);
        b.bind(3, ringmq_codec::short!("#"), &none);
        for key in ["", "anything", "a.b.c"] {
            assert_eq!(routed(&b, key), vec![1, 2, 3]);
        }
    }

    #[test]
    fn destination_stays_until_its_last_binding_goes() {
        let mut b = Bindings::new(ExchangeKind::Fanout);
        let a: FieldTable = [(ringmq_codec::short!("k"), FieldValue::Bool(true))]
            .into_iter()
            .collect();
        b.bind(1, ringmq_codec::short!(""), &FieldTable::new());
        b.bind(1, ringmq_codec::short!(""), &a);
        b.bind(2, ringmq_codec::short!(""), &a);
        assert!(b.unbind(&1, "", &a));
        assert_eq!(routed(&b, ""), vec![1, 2]);
        assert!(b.unbind(&1, "", &FieldTable::new()));
        assert_eq!(routed(&b, ""), vec![2]);
        assert_eq!(b.remove_destination(&2), 1);
        assert_eq!(routed(&b, ""), Vec::<u32>::new());
    }
}
