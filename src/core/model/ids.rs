//! Small typed ids, so a connection id cannot be passed where a queue id goes.

/// A connection, unique for the life of the process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(pub u64);

impl ConnId {
    /// Bits of a connection id below its shard's number (`amqp::meta`).
    pub const SHARD_SHIFT: u32 = 48;

    /// The shard the connection is on.
    pub fn shard(self) -> crate::core::model::meta::ShardId {
        crate::core::model::meta::ShardId((self.0 >> Self::SHARD_SHIFT) as u16)
    }
}

/// The id of the in-memory connections the management API runs AMQP methods
/// on (`mgmt::commands`): never a client's, never in the broker's `conns`.
pub const ADMIN_CONN: ConnId = ConnId(0);

/// A queue, unique for the life of the process: a queue deleted and declared again
/// under the same name gets a new id, so stale acks cannot reach the new queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct QueueId(pub u64);

/// A binding destination inside a vhost.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Dest {
    Queue(QueueId),
    Exchange(ringmq_codec::ShortString),
}

/// A vhost's name as AMQP can carry it: 1 to 255 bytes of UTF-8
/// (connection.open names the vhost in a short string; RabbitMQ refuses an
/// empty one). Built only by [`VhostName::new`], so every vhost the model holds
/// is one a client can open and every encoder can write. Shared, so a clone
/// (per connection, per pending delivery) is a reference count, not a copy.
///
/// A short string inside, so equality and hashing are `ShortString`'s: equal
/// at once when both share one allocation (a connection's name is a clone of
/// the map's key), otherwise compared without libc's `memcmp`.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct VhostName(ringmq_codec::ShortString);

/// Why a string is not a vhost name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VhostNameError {
    #[error("vhost name must not be empty")]
    Empty,
    /// RabbitMQ's text for a name over a short string's 255 bytes.
    #[error("vhost should be less than 255 bytes, actually was {0}")]
    TooLong(usize),
}

impl VhostName {
    pub fn new(s: &str) -> Result<VhostName, VhostNameError> {
        match s.len() {
            0 => Err(VhostNameError::Empty),
            n if n > ringmq_codec::short::SHORTSTR_BYTES_MAX => Err(VhostNameError::TooLong(n)),
            _ => Ok(VhostName(
                ringmq_codec::ShortString::new(s).expect("length checked above"),
            )),
        }
    }

    #[inline]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::ops::Deref for VhostName {
    type Target = str;
    #[inline]
    fn deref(&self) -> &str {
        &self.0
    }
}

/// Maps keyed by vhost name are looked up with a `&str` (a client's
/// connection.open, an API path).
impl std::borrow::Borrow<str> for VhostName {
    #[inline]
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for VhostName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::fmt::Debug for VhostName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(&*self.0, f)
    }
}

/// A name from the wire, to look up a [`NameMap`](crate::core::NameMap) keyed
/// by names: hashes as `str` does (so as the key) and compares with
/// [`ringmq_codec::short::names_eq`], not `memcmp`.
#[derive(Debug, Clone, Copy)]
pub struct Name<'a>(pub &'a str);

impl std::hash::Hash for Name<'_> {
    #[inline]
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.hash(state)
    }
}

impl hashbrown::Equivalent<ringmq_codec::ShortString> for Name<'_> {
    #[inline]
    fn equivalent(&self, key: &ringmq_codec::ShortString) -> bool {
        ringmq_codec::short::names_eq(self.0, key)
    }
}

impl hashbrown::Equivalent<Box<str>> for Name<'_> {
    #[inline]
    fn equivalent(&self, key: &Box<str>) -> bool {
        ringmq_codec::short::names_eq(self.0, key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_vhost_name_is_what_connection_open_can_carry() {
        assert_eq!(VhostName::new("/").unwrap().as_str(), "/");
        assert_eq!(VhostName::new(""), Err(VhostNameError::Empty));
        let long = "v".repeat(256);
        assert_eq!(VhostName::new(&long), Err(VhostNameError::TooLong(256)));
        assert_eq!(
            VhostNameError::TooLong(256).to_string(),
            "vhost should be less than 255 bytes, actually was 256"
        );
        assert!(VhostName::new(&long[..255]).is_ok());
        // Looked up by &str in a map keyed by names.
        let mut m = std::collections::HashMap::new();
        m.insert(VhostName::new("a").unwrap(), 1);
        assert_eq!(m.get("a"), Some(&1));
        // Equal by content when not one allocation.
        assert_eq!(m.get(&VhostName::new("a").unwrap()), Some(&1));
        assert!(VhostName::new("ab").unwrap() != VhostName::new("ac").unwrap());
    }

    #[test]
    fn a_name_from_the_wire_finds_its_key_in_a_name_map() {
        let mut m: crate::core::NameMap<ringmq_codec::ShortString, u32> = Default::default();
        let names = ["", "q", "orders.eu", "a-name-longer-than-sixteen-bytes", "amq.direct"];
        for (i, n) in names.iter().enumerate() {
            m.insert(ringmq_codec::ShortString::new(n).unwrap(), i as u32);
        }
        for (i, n) in names.iter().enumerate() {
            // The hash must be the key's, the comparison ours.
            assert_eq!(m.get(&Name(n)), Some(&(i as u32)), "{n:?}");
            assert_eq!(m.get(*n), Some(&(i as u32)), "{n:?}");
        }
        assert_eq!(m.get(&Name("orders.e")), None);
        assert_eq!(m.get(&Name("orders.eU")), None);
        let mut b: crate::core::NameMap<Box<str>, u32> = Default::default();
        b.insert("key".into(), 7);
        assert_eq!(b.get(&Name("key")), Some(&7));
        assert_eq!(b.get(&Name("kez")), None);
    }
}
