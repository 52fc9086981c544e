//! `x-consistent-hash` exchange: each message goes to one destination, picked by
//! hashing its routing key (or a header, or a property) onto a ring of points
//! that the bindings own in proportion to their weights.
//!
//! Semantics of RabbitMQ's `rabbitmq_consistent_hash_exchange`
//! (`rabbit_exchange_type_consistent_hash.erl`, 3.8–4.x):
//! - The binding key is the weight, a positive integer as text (`validate_binding`:
//!   "The binding key must be an integer: ~p" / "The binding key must be greater
//!   than 0", both 406). ringmq also caps it at [`WEIGHT_MAX`] so one binding
//!   cannot make the ring unbounded (RabbitMQ would allocate that many buckets).
//! - Exchange arguments: `hash-header` (hash that header's value) or
//!   `hash-property` (`message_id`, `correlation_id` or `timestamp`), mutually
//!   exclusive ("hash-header and hash-property are mutually exclusive",
//!   "Unsupported property: ~s"). LavinMQ's `x-hash-on` (a header name) is taken
//!   as `hash-header` so LavinMQ clients work too.
//! - Only the first binding from the exchange to a destination counts; more
//!   bindings to the same destination (other weights) are ignored. RabbitMQ leaves
//!   the destination without buckets when that first binding goes while a later
//!   one stays; here the oldest remaining binding takes over instead.
//! - A message without the value (no such header or property) is hashed as an
//!   empty value, so all of them go to one destination, as in RabbitMQ (which
//!   hashes `undefined`) and LavinMQ (which hashes `""`).
//!
//! The algorithm differs on purpose: RabbitMQ numbers buckets densely in bind
//! order and jump-hashes into them, so unbinding a queue renumbers the buckets
//! after it and moves keys of *other* queues too. Here each destination owns
//! `weight × POINTS_PER_WEIGHT` points at fixed positions derived from its own
//! identity (a ring with virtual nodes, as in Karger et al. and ketama), so
//! unbinding one destination moves only the keys it owned, adding one takes keys
//! only for itself, and the layout does not depend on bind order.

use ringmq_codec::ShortStr;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};

use ringmq_codec::{BasicProperties, FieldTable, FieldValue, Table};

use super::field_bytes::{encode_field_value, mix64, StableHasher};
use super::headers::erlang;
use super::{BindingId, Dedup};

/// Largest accepted binding weight. Each unit costs [`POINTS_PER_WEIGHT`] ring
/// points (16 bytes each), so one binding costs at most ~2.5 MiB.
pub const WEIGHT_MAX: u32 = 1000;

/// Ring points per unit of weight. The share of a destination with `m` points is
/// off from its weight's share by about `1/sqrt(m)` (the arcs are exponentially
/// distributed): 160 points, ketama's choice, keep a weight-1 queue within ~8%.
pub const POINTS_PER_WEIGHT: u32 = 160;

/// What a consistent-hash exchange hashes.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum HashOn {
    #[default]
    RoutingKey,
    Header(Box<str>),
    MessageId,
    CorrelationId,
    Timestamp,
}

impl HashOn {
    /// Reads `hash-header` / `hash-property` (and LavinMQ's `x-hash-on`) from the
    /// exchange arguments; the error is the 406 reply text.
    pub fn from_arguments(args: &FieldTable) -> Result<HashOn, String> {
        let text = |name: &str| -> Result<Option<&str>, String> {
            match args.get(name) {
                None => Ok(None),
                Some(FieldValue::LongString(v)) => std::str::from_utf8(v)
                    .map(Some)
                    .map_err(|_| format!("{name} must be a UTF-8 string")),
                Some(_) => Err(format!("{name} must be a string (longstr)")),
            }
        };
        let header = match text("hash-header")? {
            Some(h) => Some(h),
            None => text("x-hash-on")?,
        };
        match (header, text("hash-property")?) {
            (None, None) => Ok(HashOn::RoutingKey),
            (Some(h), None) => Ok(HashOn::Header(h.into())),
            (None, Some("message_id")) => Ok(HashOn::MessageId),
            (None, Some("correlation_id")) => Ok(HashOn::CorrelationId),
            (None, Some("timestamp")) => Ok(HashOn::Timestamp),
            (None, Some(other)) => Err(format!("Unsupported property: {other}")),
            (Some(_), Some(_)) => Err("hash-header and hash-property are mutually exclusive".to_owned()),
        }
    }
}

/// The parts of a message that an exchange may route on. Headers exchanges read
/// `headers`, consistent-hash exchanges whatever their [`HashOn`] names, the
/// others only `routing_key`. Borrowed, so building one per route costs nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct RouteKey<'a> {
    pub routing_key: &'a str,
    pub headers: Option<Table<'a>>,
    pub message_id: Option<&'a str>,
    pub correlation_id: Option<&'a str>,
    pub timestamp: Option<u64>,
}

impl<'a> RouteKey<'a> {
    /// Routing key and headers only (a `hash-property` exchange then sees every
    /// message as lacking the property).
    pub fn new(routing_key: &'a str, headers: Option<Table<'a>>) -> Self {
        RouteKey {
            routing_key,
            headers,
            ..RouteKey::default()
        }
    }

    /// Everything a message offers, from its decoded properties.
    pub fn from_properties(routing_key: &'a str, props: &BasicProperties<'a>) -> Self {
        RouteKey {
            routing_key,
            headers: props.headers,
            message_id: props.message_id.map(ShortStr::as_str),
            correlation_id: props.correlation_id.map(ShortStr::as_str),
            timestamp: props.timestamp,
        }
    }
}

/// Parses a binding key as a weight, with RabbitMQ's error texts. Accepts what
/// Erlang's `list_to_integer` does: an optional sign and at least one digit.
pub fn parse_weight(routing_key: &str) -> Result<u32, String> {
    let digits = routing_key.strip_prefix(['+', '-']).unwrap_or(routing_key);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "The binding key must be an integer: {}",
            erlang::binary(routing_key.as_bytes())
        ));
    }
    let significant = digits.trim_start_matches('0');
    if significant.is_empty() || routing_key.starts_with('-') {
        return Err("The binding key must be greater than 0".to_owned());
    }
    match significant.parse::<u32>() {
        Ok(w) if w <= WEIGHT_MAX => Ok(w),
        _ => Err(format!("The binding key must be at most {WEIGHT_MAX}")),
    }
}

/// One destination's place on the ring.
#[derive(Debug)]
struct Slot<D> {
    dest: D,
    /// Its bindings in bind order; the first one's weight is the one in force.
    bindings: Vec<(BindingId, u32)>,
    /// The weight its points were made for (0: invalid key, no points).
    weight: u32,
}

#[derive(Debug)]
pub(super) struct ConsistentHash<D> {
    hash_on: HashOn,
    /// Slots never move, so ring entries can name them by index; freed ones are
    /// reused through `free`.
    slots: Vec<Option<Slot<D>>>,
    free: Vec<u32>,
    slot_of: HashMap<D, u32>,
    /// (position, slot), sorted by position (ties by destination, so the order
    /// does not depend on bind history).
    ring: Vec<(u64, u32)>,
}

impl<D: Clone + Eq + Hash + Ord> ConsistentHash<D> {
    pub(super) fn new(hash_on: HashOn) -> Self {
        ConsistentHash {
            hash_on,
            slots: Vec::new(),
            free: Vec::new(),
            slot_of: HashMap::new(),
            ring: Vec::new(),
        }
    }

    pub(super) fn hash_on(&self) -> &HashOn {
        &self.hash_on
    }

    /// A key that failed validation (bindings restored from before it was
    /// checked) gets weight 0: listed, but routes nothing.
    pub(super) fn add(&mut self, id: BindingId, dest: D, routing_key: &str) {
        let weight = parse_weight(routing_key).unwrap_or(0);
        let at = match self.slot_of.get(&dest) {
            Some(&at) => at,
            None => {
                let slot = Slot {
                    dest: dest.clone(),
                    bindings: Vec::new(),
                    weight: 0,
                };
                let at = match self.free.pop() {
                    Some(at) => {
                        self.slots[at as usize] = Some(slot);
                        at
                    }
                    None => {
                        self.slots.push(Some(slot));
                        u32::try_from(self.slots.len() - 1).expect("under 2^32 destinations")
                    }
                };
                self.slot_of.insert(dest, at);
                at
            }
        };
        self.slot_mut(at).bindings.push((id, weight));
        self.refresh(at);
    }

    pub(super) fn remove(&mut self, dest: &D, id: BindingId) {
        let Some(&at) = self.slot_of.get(dest) else {
            return;
        };
        let slot = self.slot_mut(at);
        slot.bindings.retain(|(b, _)| *b != id);
        if slot.bindings.is_empty() {
            self.set_points(at, 0);
            self.slots[at as usize] = None;
            self.slot_of.remove(dest);
            self.free.push(at);
        } else {
            self.refresh(at);
        }
    }

    /// Appends the destination the message hashes to (none if no weights).
    pub(super) fn route(&self, key: RouteKey<'_>, out: &mut Vec<D>) {
        if self.ring.is_empty() {
            return;
        }
        let position = self.position(key);
        let i = self.ring.partition_point(|(p, _)| *p < position);
        let (_, at) = self.ring[if i == self.ring.len() { 0 } else { i }];
        let slot = self.slots[at as usize].as_ref().expect("ring points at live slots");
        Dedup::new(out).push(&slot.dest);
    }

    /// Where the message falls on the ring.
    fn position(&self, key: RouteKey<'_>) -> u64 {
        let mut h = StableHasher::default();
        match &self.hash_on {
            HashOn::RoutingKey => h.write(key.routing_key.as_bytes()),
            HashOn::Header(name) => {
                if let Some(v) = key.headers.and_then(|t| t.get(name)) {
                    encode_field_value(v, &mut h);
                }
            }
            HashOn::MessageId => h.write(key.message_id.unwrap_or("").as_bytes()),
            HashOn::CorrelationId => h.write(key.correlation_id.unwrap_or("").as_bytes()),
            // RabbitMQ hashes the timestamp as decimal text; the text is not
            // observable here, only that equal timestamps land together.
            HashOn::Timestamp => {
                if let Some(t) = key.timestamp {
                    h.write(&t.to_be_bytes());
                }
            }
        }
        h.finish()
    }

    fn slot_mut(&mut self, at: u32) -> &mut Slot<D> {
        self.slots[at as usize].as_mut().expect("slot_of names live slots")
    }

    /// Gives the slot the points of its oldest binding's weight, if that changed.
    fn refresh(&mut self, at: u32) {
        let weight = self.slot_mut(at).bindings.first().map_or(0, |(_, w)| *w);
        if weight != self.slot_mut(at).weight {
            self.set_points(at, weight);
        }
    }

    fn set_points(&mut self, at: u32, weight: u32) {
        let slot = self.slots[at as usize].as_mut().expect("live slot");
        let old = slot.weight;
        slot.weight = weight;
        if old > 0 {
            self.ring.retain(|(_, s)| *s != at);
        }
        if weight == 0 {
            return;
        }
        let mut h = StableHasher::default();
        slot.dest.hash(&mut h);
        let seed = h.finish();
        let count = u64::from(weight) * u64::from(POINTS_PER_WEIGHT);
        // Point i of a destination is the same whatever its weight, so raising a
        // weight only adds points (and lowering it only drops some).
        self.ring.extend((0..count).map(|i| (point(seed, i), at)));
        let slots = &self.slots;
        let dest = |s: u32| &slots[s as usize].as_ref().expect("live slot").dest;
        self.ring
            .sort_unstable_by(|a, b| a.0.cmp(&b.0).then_with(|| dest(a.1).cmp(dest(b.1))));
    }

    #[cfg(test)]
    pub(super) fn ring_len(&self) -> usize {
        self.ring.len()
    }
}

/// The i-th ring position of a destination whose identity hashes to `seed`.
fn point(seed: u64, i: u64) -> u64 {
    mix64(seed ^ mix64(i.wrapping_add(1).wrapping_mul(0x9e37_79b9_7f4a_7c15)))
}
