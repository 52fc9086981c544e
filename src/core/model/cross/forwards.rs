//! Forwarded publishes: messages routed on one shard to queues another shard
//! owns, packed per batch ([`packed`](super::packed)). Consecutive forwards
//! to one peer go into one [`Forwards`]; anything else sent between them
//! starts a new one, so the receiver sees every message in the order made.

use crate::core::model::cross::packed::{Arena, Cursor, MsgLens, MsgParts, Vhosts};
use crate::core::model::cross::ConfirmRef;
use crate::core::model::ids::{QueueId, VhostName};
use crate::core::model::queue::append::StoredMessage;

/// One forward's fixed fields.
#[derive(Debug, Clone, PartialEq)]
struct Entry {
    vhost: u16,
    /// How many of the batch's queue ids are this message's (next in order).
    queues: u16,
    lens: MsgLens,
    persistent: bool,
    priority: u8,
    expiration_ms: Option<u64>,
    confirm: Option<ConfirmRef>,
}

/// Forwarded messages, in the order they were routed.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Forwards {
    vhosts: Vhosts,
    entries: Vec<Entry>,
    queues: Vec<QueueId>,
    arena: Arena,
}

/// One forwarded message, borrowed from its batch.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ForwardRef<'a> {
    pub vhost: &'a VhostName,
    /// The receiver's queues the message routed to.
    pub queues: &'a [QueueId],
    pub msg: MsgParts<'a>,
    pub persistent: bool,
    pub expiration_ms: Option<u64>,
    pub priority: u8,
    /// The publisher waits for a confirm (None: no one waits, as for dead
    /// letters and publishes without confirms).
    pub confirm: Option<ConfirmRef>,
}

impl Forwards {
    /// Appends a message for `queues` (all the receiver's).
    pub(crate) fn push(
        &mut self,
        vhost: &VhostName,
        queues: &[QueueId],
        msg: &StoredMessage<'_>,
        confirm: Option<ConfirmRef>,
    ) {
        // A message routes to at most one queue per queue of the vhost, and
        // a vhost's queues are bounded far below this (`max-queues`); a
        // message naming more is a bug.
        let n = u16::try_from(queues.len()).expect("a forward names at most u16::MAX queues");
        let lens = self.arena.push(&MsgParts {
            exchange: msg.exchange,
            routing_key: msg.routing_key,
            properties: msg.properties,
            body: msg.body,
        });
        self.queues.extend_from_slice(queues);
        self.entries.push(Entry {
            vhost: self.vhosts.index(vhost),
            queues: n,
            lens,
            persistent: msg.persistent,
            priority: msg.priority,
            expiration_ms: msg.expiration_ms,
            confirm,
        });
    }

    /// Each vhost named by the receiver's own name (see `Vhosts::localize`).
    pub(crate) fn localize(&mut self, local: impl Fn(&VhostName) -> Option<VhostName>) {
        self.vhosts.localize(local);
    }

    /// Messages held.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The messages, in the order pushed.
    pub(crate) fn iter(&self) -> impl Iterator<Item = ForwardRef<'_>> {
        let mut at = Cursor::default();
        let mut queue_at = 0;
        self.entries.iter().map(move |e| {
            let queues = &self.queues[queue_at..queue_at + usize::from(e.queues)];
            queue_at += usize::from(e.queues);
            ForwardRef {
                vhost: self.vhosts.get(e.vhost),
                queues,
                msg: self.arena.read(&mut at, e.lens),
                persistent: e.persistent,
                expiration_ms: e.expiration_ms,
                priority: e.priority,
                confirm: e.confirm,
            }
        })
    }

    /// Roughly what the batch holds, in bytes: its messages' variable parts
    /// and fixed fields.
    pub fn weight(&self) -> usize {
        self.arena.len() + self.entries.len() * std::mem::size_of::<Entry>() + self.queues.len() * 8
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ringmq_codec::ShortStr;

    fn msg<'a>(rk: &'a str, body: &'a [u8], expiration_ms: Option<u64>) -> StoredMessage<'a> {
        StoredMessage {
            exchange: ShortStr::new("x").unwrap(),
            routing_key: ShortStr::new(rk).unwrap(),
            properties: b"\x10\x00\x02",
            body,
            persistent: expiration_ms.is_none(),
            expiration_ms,
            priority: body.len() as u8,
            maybe_delivered: false,
        }
    }

    #[test]
    fn forwards_come_back_as_pushed() {
        let (a, b) = (VhostName::new("a").unwrap(), VhostName::new("b").unwrap());
        let confirm = ConfirmRef {
            conn: crate::core::model::ids::ConnId(3),
            channel: 2,
            serial: 1,
            seq: 9,
        };
        let mut f = Forwards::default();
        f.push(&a, &[QueueId(1), QueueId(2)], &msg("one", b"1", None), Some(confirm));
        f.push(&b, &[QueueId(7)], &msg("two", b"22", Some(5)), None);
        f.push(&a, &[QueueId(2)], &msg("", b"", None), None);
        assert_eq!(f.len(), 3);
        let got: Vec<_> = f
            .iter()
            .map(|m| {
                (
                    m.vhost.as_str().to_owned(),
                    m.queues.to_vec(),
                    m.msg.routing_key.as_str().to_owned(),
                    m.msg.body.to_vec(),
                    m.msg.properties.to_vec(),
                    m.persistent,
                    m.expiration_ms,
                    m.priority,
                    m.confirm,
                )
            })
            .collect();
        let p = b"\x10\x00\x02".to_vec();
        assert_eq!(
            got,
            vec![
                (
                    "a".into(),
                    vec![QueueId(1), QueueId(2)],
                    "one".into(),
                    b"1".to_vec(),
                    p.clone(),
                    true,
                    None,
                    1,
                    Some(confirm)
                ),
                (
                    "b".into(),
                    vec![QueueId(7)],
                    "two".into(),
                    b"22".to_vec(),
                    p.clone(),
                    false,
                    Some(5),
                    2,
                    None
                ),
                ("a".into(), vec![QueueId(2)], "".into(), vec![], p, true, None, 0, None),
            ]
        );
    }
}
