//! Deliveries to consumers on another shard ([`consume`](super::consume)),
//! packed per batch ([`packed`](super::packed)) as forwarded publishes are:
//! consecutive deliveries to one shard go into one [`Delivers`]; anything
//! else sent between them starts a new one, so the order made is kept.

use ringmq_codec::ShortStr;
use ringmq_store::SegmentPosition;

use crate::core::model::cross::packed::{Arena, Cursor, MsgLens, MsgParts, Vhosts};
use crate::core::model::ids::{ConnId, QueueId, VhostName};

/// One delivery's fixed fields.
#[derive(Debug, Clone, PartialEq)]
struct Entry {
    vhost: u16,
    queue: QueueId,
    conn: ConnId,
    channel: u16,
    /// The consumer tag's length (in the names, before the message's).
    tag: u8,
    position: SegmentPosition,
    redelivered: bool,
    lens: MsgLens,
}

/// Deliveries to consumers on the receiving shard, in the order taken.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Delivers {
    vhosts: Vhosts,
    entries: Vec<Entry>,
    arena: Arena,
}

/// A delivery's parts, packed, waiting for its entry.
#[derive(Debug)]
#[must_use = "a packed delivery needs its entry"]
pub(crate) struct Packed {
    tag: u8,
    lens: MsgLens,
}

/// Which consumer a delivery is for, borrowed from its batch.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ConsumerAt<'a> {
    pub vhost: &'a VhostName,
    pub queue: QueueId,
    pub conn: ConnId,
    pub channel: u16,
    pub tag: ShortStr<'a>,
}

/// One delivery, borrowed from its batch.
#[derive(Debug, Clone, Copy)]
pub(crate) struct DeliverRef<'a> {
    pub to: ConsumerAt<'a>,
    /// Where it is in its queue: what the receiver's settlement names.
    pub position: SegmentPosition,
    pub redelivered: bool,
    /// As delivered (properties with `x-delivery-count` where the queue
    /// counts it).
    pub msg: MsgParts<'a>,
}

impl Delivers {
    /// Appends a delivery to consumer `to` of the message at `position`.
    #[cfg(test)]
    pub(crate) fn push(
        &mut self,
        to: &ConsumerAt<'_>,
        position: SegmentPosition,
        redelivered: bool,
        msg: &MsgParts<'_>,
    ) {
        let packed = self.pack(to.tag, msg);
        self.push_packed(to, packed, position, redelivered);
    }

    /// Appends a delivery's variable parts, while the message is borrowed
    /// from its segment; its entry follows with [`Delivers::push_packed`]
    /// once its position is known, before anything else is packed.
    pub(crate) fn pack(&mut self, tag: ShortStr<'_>, msg: &MsgParts<'_>) -> Packed {
        Packed {
            tag: self.arena.push_short(tag),
            lens: self.arena.push(msg),
        }
    }

    /// The entry of the delivery [`Delivers::pack`] packed last.
    pub(crate) fn push_packed(
        &mut self,
        to: &ConsumerAt<'_>,
        packed: Packed,
        position: SegmentPosition,
        redelivered: bool,
    ) {
        self.entries.push(Entry {
            vhost: self.vhosts.index(to.vhost),
            queue: to.queue,
            conn: to.conn,
            channel: to.channel,
            tag: packed.tag,
            position,
            redelivered,
            lens: packed.lens,
        });
    }

    /// Each vhost named by the receiver's own name (see `Vhosts::localize`).
    pub(crate) fn localize(&mut self, local: impl Fn(&VhostName) -> Option<VhostName>) {
        self.vhosts.localize(local);
    }

    /// Deliveries held.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The deliveries, in the order pushed.
    pub(crate) fn iter(&self) -> impl Iterator<Item = DeliverRef<'_>> {
        let mut at = Cursor::default();
        self.entries.iter().map(move |e| {
            let tag = self.arena.read_short(&mut at, e.tag);
            DeliverRef {
                to: ConsumerAt {
                    vhost: self.vhosts.get(e.vhost),
                    queue: e.queue,
                    conn: e.conn,
                    channel: e.channel,
                    tag,
                },
                position: e.position,
                redelivered: e.redelivered,
                msg: self.arena.read(&mut at, e.lens),
            }
        })
    }

    /// Roughly what the batch holds, in bytes.
    pub fn weight(&self) -> usize {
        self.arena.len() + self.entries.len() * std::mem::size_of::<Entry>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deliveries_come_back_as_pushed_each_with_its_consumer() {
        let v = VhostName::new("/").unwrap();
        let pos = |offset| SegmentPosition {
            segment: ringmq_store::SegmentId(4),
            offset,
            size: 40,
        };
        let to = |conn, tag| ConsumerAt {
            vhost: &v,
            queue: QueueId(9),
            conn: ConnId(conn),
            channel: 3,
            tag: ShortStr::new(tag).unwrap(),
        };
        let parts = |rk, body| MsgParts {
            exchange: ShortStr::new("amq.direct").unwrap(),
            routing_key: ShortStr::new(rk).unwrap(),
            properties: b"\x00\x00",
            body,
        };
        let mut d = Delivers::default();
        d.push(&to(1, "ctag-1"), pos(0), false, &parts("a", b"first"));
        d.push(&to(2, ""), pos(40), true, &parts("", b""));
        d.push(&to(1, "ctag-1"), pos(80), false, &parts("bb", &[1; 3000]));
        let got: Vec<_> = d
            .iter()
            .map(|x| {
                let t = x.to;
                (
                    t.conn,
                    t.tag.as_str().to_owned(),
                    x.position,
                    x.redelivered,
                    x.msg.routing_key.as_str().to_owned(),
                    x.msg.body.len(),
                )
            })
            .collect();
        assert_eq!(
            got,
            vec![
                (ConnId(1), "ctag-1".to_owned(), pos(0), false, "a".to_owned(), 5),
                (ConnId(2), "".to_owned(), pos(40), true, "".to_owned(), 0),
                (ConnId(1), "ctag-1".to_owned(), pos(80), false, "bb".to_owned(), 3000),
            ]
        );
        assert!(d
            .iter()
            .all(|x| x.to.vhost == &v && x.to.queue == QueueId(9) && x.msg.properties == b"\x00\x00"));
    }
}
