//! Messages packed for a batch: what many forwarded publishes (or deliveries)
//! to one peer share, so a batch of thousands costs a few allocations, not
//! five or six per message.
//!
//! Each message crossing as its own boxed struct (its vhost's name cloned, its
//! exchange and routing key as shared strings, its properties and body as
//! vectors) was 25% of two shards' CPU in malloc and free under 10p10c over
//! 10 queues (`docs/shards.md`): allocated on one thread and freed on the
//! other, and each vhost clone a reference count bumped on one core and
//! dropped on the other. Packed, a message's variable bytes go one after
//! another into one buffer, its names into one string, and its vhost is an
//! index into the batch's table of the vhosts it names (nearly always one).

use ringmq_codec::ShortStr;

use crate::core::model::ids::VhostName;

/// The vhosts a batch's messages name, each once.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Vhosts(Vec<VhostName>);

impl Vhosts {
    /// The index of `vhost`, added if new. The last one added is checked
    /// first (a batch nearly always names one vhost): no clone then.
    pub(crate) fn index(&mut self, vhost: &VhostName) -> u16 {
        if let Some(i) = self.0.iter().rposition(|v| v == vhost) {
            return i as u16;
        }
        // Vhosts are a few hundred at most (`vhost limits`); a batch naming
        // more than u16 can count is a bug, not a load.
        assert!(self.0.len() < usize::from(u16::MAX), "a batch names too many vhosts");
        self.0.push(vhost.clone());
        (self.0.len() - 1) as u16
    }

    pub(crate) fn get(&self, i: u16) -> &VhostName {
        &self.0[usize::from(i)]
    }

    /// The receiver's side: each name replaced by the receiver's own (`local`
    /// gives it; a vhost it does not have keeps the sender's). A name is a
    /// shared allocation: the receiver cloning the sender's for each message
    /// it stores (the queues to deliver from, their pending work) bumped a
    /// reference count the sender bumps for each publish, one cache line
    /// between two cores: 15% of two shards' CPU (`perf annotate`: the
    /// `lock incq` and `lock decq` of `Arc<str>` under `store_routed`,
    /// `publish` and `deliver`, 10p10c over 10 queues).
    pub(crate) fn localize(&mut self, local: impl Fn(&VhostName) -> Option<VhostName>) {
        for v in &mut self.0 {
            if let Some(mine) = local(v) {
                *v = mine;
            }
        }
    }
}

/// Where a packed message's variable parts are: their lengths, in the order
/// they were appended (the names in [`Arena::names`], properties and body in
/// [`Arena::bytes`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct MsgLens {
    exchange: u8,
    routing_key: u8,
    properties: u32,
    body: u32,
}

/// A packed message's variable parts, borrowed from its batch.
#[derive(Debug, Clone, Copy)]
pub(crate) struct MsgParts<'a> {
    pub exchange: ShortStr<'a>,
    pub routing_key: ShortStr<'a>,
    pub properties: &'a [u8],
    pub body: &'a [u8],
}

impl<'a> MsgParts<'a> {
    /// A taken message's parts, with the `properties` it is delivered with.
    pub(crate) fn of(m: &crate::core::model::queue::take::Taken<'a>, properties: &'a [u8]) -> MsgParts<'a> {
        MsgParts {
            exchange: m.exchange,
            routing_key: m.routing_key,
            properties,
            body: m.view.body,
        }
    }
}

/// The variable parts of a batch's messages, one after another.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Arena {
    names: String,
    bytes: Vec<u8>,
}

/// Where the next message's parts start, walking a batch in order.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Cursor {
    names: usize,
    bytes: usize,
}

impl Arena {
    /// Appends a message's parts; returns their lengths for the entry.
    pub(crate) fn push(&mut self, m: &MsgParts<'_>) -> MsgLens {
        // A body is bounded by the broker's max message size (at most 512
        // MiB, as RabbitMQ's), properties by a frame: both fit in u32.
        let properties = u32::try_from(m.properties.len()).expect("properties fit in a frame");
        let body = u32::try_from(m.body.len()).expect("bodies are bounded by max_message_bytes");
        self.names.push_str(m.exchange.as_str());
        self.names.push_str(m.routing_key.as_str());
        self.bytes.extend_from_slice(m.properties);
        self.bytes.extend_from_slice(m.body);
        MsgLens {
            exchange: m.exchange.len_u8(),
            routing_key: m.routing_key.len_u8(),
            properties,
            body,
        }
    }

    /// Appends a short string (a consumer tag) to the names; returns its
    /// length, which reads it back ([`Arena::read_short`]).
    pub(crate) fn push_short(&mut self, s: ShortStr<'_>) -> u8 {
        self.names.push_str(s.as_str());
        s.len_u8()
    }

    /// The short string of `len` at `at`; moves `at` past it.
    pub(crate) fn read_short(&self, at: &mut Cursor, len: u8) -> ShortStr<'_> {
        let s = &self.names[at.names..at.names + usize::from(len)];
        at.names += usize::from(len);
        ShortStr::new(s).expect("at most 255 bytes, as pushed")
    }

    /// The parts at `at` with `lens`; moves `at` past them.
    pub(crate) fn read(&self, at: &mut Cursor, lens: MsgLens) -> MsgParts<'_> {
        let exchange = self.read_short(at, lens.exchange);
        let routing_key = self.read_short(at, lens.routing_key);
        let properties = &self.bytes[at.bytes..at.bytes + lens.properties as usize];
        at.bytes += lens.properties as usize;
        let body = &self.bytes[at.bytes..at.bytes + lens.body as usize];
        at.bytes += lens.body as usize;
        MsgParts {
            exchange,
            routing_key,
            properties,
            body,
        }
    }

    /// Bytes held (for the batch's weight).
    pub(crate) fn len(&self) -> usize {
        self.names.len() + self.bytes.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_come_back_in_order_with_their_boundaries() {
        let mut a = Arena::default();
        let msgs = [
            ("ex", "rk", &b"\x00\x00"[..], &b"body one"[..]),
            ("", "", &b""[..], &b""[..]),
            ("amq.topic", "a.b.c", &b"props"[..], &[7u8; 70_000][..]),
        ];
        let lens: Vec<MsgLens> = msgs
            .iter()
            .map(|(e, r, p, b)| {
                a.push(&MsgParts {
                    exchange: ShortStr::new(e).unwrap(),
                    routing_key: ShortStr::new(r).unwrap(),
                    properties: p,
                    body: b,
                })
            })
            .collect();
        let mut at = Cursor::default();
        for ((e, r, p, b), lens) in msgs.iter().zip(lens) {
            let m = a.read(&mut at, lens);
            assert_eq!((m.exchange.as_str(), m.routing_key.as_str()), (*e, *r));
            assert_eq!((m.properties, m.body), (*p, *b));
        }
        assert_eq!(a.len(), "exrkamq.topica.b.c".len() + 2 + 8 + 5 + 70_000);
    }

    #[test]
    fn localized_vhosts_are_the_receivers_allocations() {
        let theirs = VhostName::new("v").unwrap();
        let mine = VhostName::new("v").unwrap();
        let mut v = Vhosts::default();
        v.index(&theirs);
        v.index(&VhostName::new("gone").unwrap());
        v.localize(|n| (n.as_str() == "v").then(|| mine.clone()));
        assert!(
            std::ptr::eq(v.get(0).as_str(), mine.as_str()),
            "the receiver's own name"
        );
        assert_eq!(v.get(1).as_str(), "gone");
    }

    #[test]
    fn a_vhost_is_kept_once() {
        let (a, b) = (VhostName::new("a").unwrap(), VhostName::new("b").unwrap());
        let mut v = Vhosts::default();
        assert_eq!([v.index(&a), v.index(&a), v.index(&b), v.index(&a)], [0, 0, 1, 0]);
        assert_eq!((v.get(0), v.get(1)), (&a, &b));
    }
}
