//! Exchange routing: the binding table of one exchange and its matcher.
//!
//! Pure data structures, no I/O: the vhost owns one [`Bindings`] per exchange and
//! asks it where a message goes. The destination type `D` is generic so the broker
//! can route to queues and (for exchange-to-exchange bindings) to exchanges with
//! the same call; the caller follows exchange destinations itself, which keeps the
//! cycle check in one place (the vhost).
//!
//! | file | matcher | cost of one route |
//! |---|---|---|
//! | [`direct`] | `HashMap<key, dests>` | one hash lookup |
//! | [`fanout`] | a list of unique destinations | one copy of the list |
//! | [`topic`] | a trie over words with `*` and `#` edges | ~ words × branches, independent of the binding count |
//! | [`headers`] | binding rules checked one by one | bindings × pattern entries |
//! | [`consistent_hash`] | a ring of weighted points (`x-consistent-hash`) | one hash + binary search |
//! | [`federation_upstream`] | fanout behind a loop check (`x-federation-upstream`) | the `x-received-from` entries + one copy |
//!
//! Semantics follow RabbitMQ 3.x/4.x; each file cites the Erlang source it mirrors.

pub(in crate::core) mod delayed;

mod consistent_hash;
#[cfg(test)]
mod consistent_hash_tests;
mod direct;
mod fanout;
pub mod federation_upstream;
pub mod field_bytes;
mod headers;
mod topic;

use ringmq_codec::{ShortStr, ShortString};
use std::collections::BTreeMap;
use std::hash::Hash;

use ringmq_codec::{FieldTable, Table};

pub use consistent_hash::{parse_weight, HashOn, RouteKey, POINTS_PER_WEIGHT, WEIGHT_MAX};
pub use headers::{validate_binding_arguments, XMatch};

/// The four AMQP 0-9-1 exchange types, and the plugin types ringmq builds in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ExchangeKind {
    Direct,
    Fanout,
    Topic,
    Headers,
    /// RabbitMQ's `rabbitmq_consistent_hash_exchange` plugin type.
    ConsistentHash,
    /// RabbitMQ's federation plugin's upstream helper: what a federation
    /// link (ours or RabbitMQ's) declares here when this broker is its upstream.
    FederationUpstream,
}

impl ExchangeKind {
    /// Parses the `type` field of exchange.declare. Case-sensitive, as RabbitMQ's
    /// registry lookup is. `None` is for the caller to turn into RabbitMQ's 503
    /// "unknown exchange type '...'" (or accept a plugin type it knows).
    pub fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "direct" => ExchangeKind::Direct,
            "fanout" => ExchangeKind::Fanout,
            "topic" => ExchangeKind::Topic,
            "headers" => ExchangeKind::Headers,
            "x-consistent-hash" => ExchangeKind::ConsistentHash,
            "x-federation-upstream" => ExchangeKind::FederationUpstream,
            _ => return None,
        })
    }

    pub fn as_str(&self) -> &'static str {
        match self {
            ExchangeKind::Direct => "direct",
            ExchangeKind::Fanout => "fanout",
            ExchangeKind::Topic => "topic",
            ExchangeKind::Headers => "headers",
            ExchangeKind::ConsistentHash => "x-consistent-hash",
            ExchangeKind::FederationUpstream => "x-federation-upstream",
        }
    }
}

impl std::fmt::Display for ExchangeKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for ExchangeKind {
    type Err = ();

    fn from_str(s: &str) -> Result<Self, ()> {
        ExchangeKind::parse(s).ok_or(())
    }
}

/// Checks a binding as RabbitMQ's `validate_binding` callback of the exchange type
/// does: the routing key of a consistent-hash binding is its weight, a headers
/// binding's `x-match` must be valid. The error is the 406 reply text.
pub fn validate_binding(kind: ExchangeKind, routing_key: &str, arguments: &FieldTable) -> Result<(), String> {
    match kind {
        ExchangeKind::ConsistentHash => parse_weight(routing_key).map(|_| ()),
        _ => validate_binding_arguments(kind, arguments),
    }
}

/// Checks exchange.declare arguments that the exchange type reads (RabbitMQ's
/// `validate` callback); the error is the 406 reply text. Only consistent-hash
/// exchanges read any.
pub fn validate_exchange_arguments(kind: ExchangeKind, arguments: &FieldTable) -> Result<(), String> {
    match kind {
        ExchangeKind::ConsistentHash => HashOn::from_arguments(arguments).map(|_| ()),
        ExchangeKind::FederationUpstream => federation_upstream::LoopFilter::from_arguments(arguments).map(|_| ()),
        _ => Ok(()),
    }
}

/// One binding as the client declared it (kept verbatim for listing and export).
#[derive(Debug)]
struct Binding {
    routing_key: ShortString,
    arguments: FieldTable,
    /// The encoded arguments: binding identity. RabbitMQ keys bindings by the exact
    /// Erlang term, so `1` as `I` and `1` as `l` are different bindings, and the
    /// bytes (unlike `FieldValue`'s `PartialEq`) also make a NaN argument equal to
    /// itself, so such a binding can still be unbound.
    arguments_bytes: Vec<u8>,
    /// Handed to the matcher so it can drop exactly this binding's rule.
    id: BindingId,
}

/// A per-table serial number for bindings; never reused within one table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct BindingId(u64);

/// The binding table of one exchange.
///
/// `D` is the destination id (the broker uses an enum of queue id / exchange id).
/// Bindings are kept per destination (for listing, unbind and
/// [`remove_destination`](Bindings::remove_destination)) and, separately, in the
/// matcher of the exchange's kind, which is what [`route`](Bindings::route) reads.
#[derive(Debug)]
pub struct Bindings<D> {
    kind: ExchangeKind,
    /// A BTreeMap so listings and definitions exports come out in a stable order.
    by_destination: BTreeMap<D, Vec<Binding>>,
    len: usize,
    next_id: u64,
    matcher: Matcher<D>,
}

#[derive(Debug)]
enum Matcher<D> {
    Direct(direct::Direct<D>),
    Fanout(fanout::Fanout<D>),
    Topic(topic::Topic<D>),
    Headers(headers::Headers<D>),
    ConsistentHash(consistent_hash::ConsistentHash<D>),
    FederationUpstream(fanout::Fanout<D>, federation_upstream::LoopFilter),
}

impl<D: Clone + Eq + Hash + Ord> Bindings<D> {
    /// A table for an exchange declared without arguments (a consistent-hash
    /// exchange then hashes the routing key).
    pub fn new(kind: ExchangeKind) -> Self {
        Self::with_hash_on(kind, HashOn::RoutingKey)
    }

    /// An `x-federation-upstream` exchange's table: fanout behind `filter`.
    fn federation_upstream(filter: federation_upstream::LoopFilter) -> Self {
        let mut b = Self::with_hash_on(ExchangeKind::Fanout, HashOn::RoutingKey);
        b.kind = ExchangeKind::FederationUpstream;
        b.matcher = Matcher::FederationUpstream(fanout::Fanout::default(), filter);
        b
    }

    /// A table for an exchange with its declare arguments, which consistent-hash
    /// exchanges read (`hash-header`, `hash-property`). The error is the 406 text
    /// of [`validate_exchange_arguments`].
    pub fn new_with_args(kind: ExchangeKind, arguments: &FieldTable) -> Result<Self, String> {
        let hash_on = match kind {
            ExchangeKind::ConsistentHash => HashOn::from_arguments(arguments)?,
            ExchangeKind::FederationUpstream => {
                return Ok(Self::federation_upstream(
                    federation_upstream::LoopFilter::from_arguments(arguments)?,
                ))
            }
            _ => HashOn::RoutingKey,
        };
        Ok(Self::with_hash_on(kind, hash_on))
    }

    fn with_hash_on(kind: ExchangeKind, hash_on: HashOn) -> Self {
        let matcher = match kind {
            ExchangeKind::Direct => Matcher::Direct(direct::Direct::default()),
            ExchangeKind::Fanout => Matcher::Fanout(fanout::Fanout::default()),
            ExchangeKind::Topic => Matcher::Topic(topic::Topic::default()),
            ExchangeKind::Headers => Matcher::Headers(headers::Headers::default()),
            ExchangeKind::ConsistentHash => Matcher::ConsistentHash(consistent_hash::ConsistentHash::new(hash_on)),
            // Declared without its arguments (not through a declare, which
            // checks them): no hop limit known, so none is routed.
            ExchangeKind::FederationUpstream => Matcher::FederationUpstream(
                fanout::Fanout::default(),
                federation_upstream::LoopFilter {
                    max_hops: 0,
                    downstream_name: None,
                    downstream_vhost: None,
                },
            ),
        };
        Bindings {
            kind,
            by_destination: BTreeMap::new(),
            len: 0,
            next_id: 0,
            matcher,
        }
    }

    pub fn kind(&self) -> ExchangeKind {
        self.kind
    }

    /// What a consistent-hash exchange hashes (`None` for other kinds), so the
    /// broker knows whether [`route_with`](Bindings::route_with) needs the
    /// message properties.
    pub fn hash_on(&self) -> Option<&HashOn> {
        match &self.matcher {
            Matcher::ConsistentHash(m) => Some(m.hash_on()),
            _ => None,
        }
    }

    /// Adds a binding; returns false if that exact (destination, routing key,
    /// arguments) binding already existed (binding twice is a no-op in AMQP).
    ///
    /// The arguments are assumed to have passed [`validate_binding_arguments`]; an
    /// invalid `x-match` is treated as `all`, as RabbitMQ does for bindings made
    /// before it validated them.
    pub fn bind(&mut self, dest: D, routing_key: ShortStr<'_>, arguments: &FieldTable) -> bool {
        let short = routing_key;
        let routing_key: &str = short.as_str();
        let arguments_bytes = arguments.to_bytes();
        let list = self.by_destination.entry(dest.clone()).or_default();
        if list
            .iter()
            .any(|b| b.routing_key == routing_key && b.arguments_bytes == arguments_bytes)
        {
            return false;
        }
        let id = BindingId(self.next_id);
        self.next_id += 1;
        list.push(Binding {
            routing_key: short.into(),
            arguments: arguments.clone(),
            arguments_bytes,
            id,
        });
        self.len += 1;
        match &mut self.matcher {
            Matcher::Direct(m) => m.add(dest, routing_key),
            Matcher::Fanout(m) => m.add(dest),
            Matcher::Topic(m) => m.add(dest, routing_key),
            Matcher::Headers(m) => m.add(id, dest, arguments),
            Matcher::ConsistentHash(m) => m.add(id, dest, routing_key),
            Matcher::FederationUpstream(m, _) => m.add(dest),
        }
        true
    }

    /// Removes a binding; returns false if it did not exist.
    pub fn unbind(&mut self, dest: &D, routing_key: &str, arguments: &FieldTable) -> bool {
        let Some(list) = self.by_destination.get_mut(dest) else {
            return false;
        };
        let arguments_bytes = arguments.to_bytes();
        let Some(at) = list
            .iter()
            .position(|b| b.routing_key == routing_key && b.arguments_bytes == arguments_bytes)
        else {
            return false;
        };
        let binding = list.swap_remove(at);
        if list.is_empty() {
            self.by_destination.remove(dest);
        }
        self.len -= 1;
        self.matcher_remove(dest, &binding);
        true
    }

    /// Removes every binding to `dest` (its queue or exchange was deleted);
    /// returns how many there were.
    pub fn remove_destination(&mut self, dest: &D) -> usize {
        let Some(list) = self.by_destination.remove(dest) else {
            return 0;
        };
        for binding in &list {
            self.matcher_remove(dest, binding);
        }
        self.len -= list.len();
        list.len()
    }

    fn matcher_remove(&mut self, dest: &D, binding: &Binding) {
        match &mut self.matcher {
            Matcher::Direct(m) => m.remove(dest, &binding.routing_key),
            Matcher::Fanout(m) => m.remove(dest),
            Matcher::Topic(m) => m.remove(dest, &binding.routing_key),
            Matcher::Headers(m) => m.remove(binding.id),
            Matcher::ConsistentHash(m) => m.remove(dest, binding.id),
            Matcher::FederationUpstream(m, _) => m.remove(dest),
        }
    }

    /// Appends each matching destination to `out`, once.
    ///
    /// `headers` is the message's headers table, if any (only the headers exchange
    /// reads it; the others read only the routing key). Destinations already in
    /// `out` are not added again, so a caller following exchange-to-exchange
    /// bindings can route several exchanges into one list and get each queue once,
    /// as RabbitMQ does. The order of `out` is unspecified: past
    /// [`LINEAR_DEDUP_MAX`] entries the list is sorted to deduplicate it.
    pub fn route(&self, routing_key: &str, headers: Option<Table<'_>>, out: &mut Vec<D>) {
        self.route_with(RouteKey::new(routing_key, headers), out)
    }

    /// [`route`](Bindings::route) with every part of the message an exchange may
    /// hash on: a consistent-hash exchange with `hash-property` needs the
    /// properties ([`RouteKey::from_properties`]); for the others it is the same.
    pub fn route_with(&self, key: RouteKey<'_>, out: &mut Vec<D>) {
        match &self.matcher {
            Matcher::Direct(m) => m.route(key.routing_key, out),
            Matcher::Fanout(m) => m.route(out),
            Matcher::Topic(m) => m.route(key.routing_key, out),
            Matcher::Headers(m) => m.route(key.headers.unwrap_or(Table::EMPTY), out),
            Matcher::ConsistentHash(m) => m.route(key, out),
            Matcher::FederationUpstream(m, filter) => {
                if filter.should_forward(key.headers) {
                    m.route(out)
                }
            }
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// All bindings as declared, ordered by destination, for listing (management
    /// API, definitions export) and persistence.
    pub fn iter(&self) -> impl Iterator<Item = (&D, ShortStr<'_>, &FieldTable)> {
        self.by_destination
            .iter()
            .flat_map(|(d, list)| list.iter().map(move |b| (d, b.routing_key.as_short(), &b.arguments)))
    }

    pub fn has_destination(&self, dest: &D) -> bool {
        self.by_destination.contains_key(dest)
    }
}

/// Up to this many routed destinations, duplicates are caught with a linear scan
/// of `out`; past it the list is sorted and deduplicated once at the end, which
/// costs no allocation (a HashSet would) and is O(n log n) instead of O(n²).
pub const LINEAR_DEDUP_MAX: usize = 16;

/// Appends destinations to a route result without duplicates. Dropping it
/// finishes the job (sorts and dedups if the list outgrew the linear scan).
struct Dedup<'a, D: Ord + Clone> {
    out: &'a mut Vec<D>,
    sort_at_end: bool,
}

impl<'a, D: Ord + Clone> Dedup<'a, D> {
    fn new(out: &'a mut Vec<D>) -> Self {
        let sort_at_end = out.len() > LINEAR_DEDUP_MAX;
        Dedup { out, sort_at_end }
    }

    fn push(&mut self, dest: &D) {
        if self.sort_at_end {
            self.out.push(dest.clone());
        } else if !self.out.contains(dest) {
            self.out.push(dest.clone());
            self.sort_at_end = self.out.len() > LINEAR_DEDUP_MAX;
        }
    }

    fn extend(&mut self, dests: &[D]) {
        for d in dests {
            self.push(d);
        }
    }
}

impl<D: Ord + Clone> Drop for Dedup<'_, D> {
    fn drop(&mut self) {
        if self.sort_at_end {
            self.out.sort_unstable();
            self.out.dedup();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ringmq_codec::FieldValue;

    fn args(pairs: &[(&str, FieldValue)]) -> FieldTable {
        pairs
            .iter()
            .map(|(k, v)| (ringmq_codec::ShortString::new(k).unwrap(), v.clone()))
            .collect()
    }

    fn routed<D: Clone + Eq + Hash + Ord>(b: &Bindings<D>, key: &str) -> Vec<D> {
        let mut out = Vec::new();
        b.route(key, None, &mut out);
        out.sort();
        out
    }

    #[test]
    fn kind_parses_and_prints() {
        for k in [
            ExchangeKind::Direct,
            ExchangeKind::Fanout,
            ExchangeKind::Topic,
            ExchangeKind::Headers,
            ExchangeKind::ConsistentHash,
            ExchangeKind::FederationUpstream,
        ] {
            assert_eq!(ExchangeKind::parse(k.as_str()), Some(k));
            assert_eq!(k.to_string().parse::<ExchangeKind>(), Ok(k));
        }
        assert_eq!(ExchangeKind::parse("Direct"), None);
        assert_eq!(ExchangeKind::parse("x-modulus-hash"), None);
    }

    #[test]
    fn bind_and_unbind_are_idempotent_for_every_kind() {
        for kind in [
            ExchangeKind::Direct,
            ExchangeKind::Fanout,
            ExchangeKind::Topic,
            ExchangeKind::Headers,
        ] {
            let mut b = Bindings::new(kind);
            let none = FieldTable::new();
            assert!(b.bind(1u32, ringmq_codec::short!("k"), &none));
            assert!(!b.bind(1, ringmq_codec::short!("k"), &none), "{kind}");
            assert_eq!(b.len(), 1);
            // Different arguments or key make a different binding.
            let other = args(&[("a", FieldValue::I32(1))]);
            assert!(b.bind(1, ringmq_codec::short!("k"), &other));
            assert!(b.bind(1, ringmq_codec::short!("k2"), &none));
            // Same value, other integer type: another binding, as in RabbitMQ.
            assert!(b.bind(1, ringmq_codec::short!("k"), &args(&[("a", FieldValue::I64(1))])));
            assert_eq!(b.len(), 4);
            assert!(b.unbind(&1, "k", &other));
            assert!(!b.unbind(&1, "k", &other));
            assert!(!b.unbind(&2, "k", &none));
            assert_eq!(b.len(), 3);
            assert!(b.has_destination(&1));
            assert_eq!(b.remove_destination(&1), 3);
            assert_eq!(b.remove_destination(&1), 0);
            assert!(b.is_empty() && !b.has_destination(&1));
            assert_eq!(routed(&b, "k"), Vec::<u32>::new(), "{kind}");
        }
    }

    #[test]
    fn nan_arguments_can_be_unbound() {
        let mut b = Bindings::new(ExchangeKind::Headers);
        let nan = args(&[("f", FieldValue::F64(f64::NAN))]);
        assert!(b.bind(1u32, ringmq_codec::short!(""), &nan));
        assert!(!b.bind(1, ringmq_codec::short!(""), &nan));
        assert!(b.unbind(&1, "", &nan));
        assert!(b.is_empty());
    }

    #[test]
    fn iter_lists_bindings_verbatim() {
        let mut b = Bindings::new(ExchangeKind::Topic);
        let a = args(&[("x-note", "hi".into())]);
        b.bind(2u32, ringmq_codec::short!("a.#.#"), &a);
        b.bind(1, ringmq_codec::short!("b.*"), &FieldTable::new());
        let listed: Vec<(u32, String, FieldTable)> = b.iter().map(|(d, k, a)| (*d, k.to_string(), a.clone())).collect();
        assert_eq!(
            listed,
            vec![(1, "b.*".to_owned(), FieldTable::new()), (2, "a.#.#".to_owned(), a)]
        );
    }

    #[test]
    fn remove_destination_leaves_others_routing() {
        for kind in [ExchangeKind::Direct, ExchangeKind::Fanout, ExchangeKind::Topic] {
            let mut b = Bindings::new(kind);
            let none = FieldTable::new();
            b.bind(1u32, ringmq_codec::short!("a"), &none);
            b.bind(1, ringmq_codec::short!("#"), &none);
            b.bind(2, ringmq_codec::short!("a"), &none);
            assert_eq!(b.remove_destination(&1), 2);
            assert_eq!(routed(&b, "a"), vec![2], "{kind}");
            assert_eq!(b.len(), 1);
        }
    }

    #[test]
    fn route_dedups_against_what_out_already_holds() {
        let mut b = Bindings::new(ExchangeKind::Fanout);
        for d in 0..40u32 {
            b.bind(d, ringmq_codec::short!(""), &FieldTable::new());
        }
        let mut out = vec![3, 39, 100];
        b.route("", None, &mut out);
        out.sort();
        let mut want: Vec<u32> = (0..40).collect();
        want.push(100);
        assert_eq!(out, want);
    }

    #[test]
    fn dedup_switches_to_sorting_past_the_linear_bound() {
        let mut out = Vec::new();
        {
            let mut d = Dedup::new(&mut out);
            for round in 0..3 {
                for i in (0..50u32).rev() {
                    d.push(&(i + round % 2));
                }
            }
        }
        assert_eq!(out, (0..51).collect::<Vec<u32>>());
    }
}
