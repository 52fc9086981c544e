//! Taking a message from a queue for delivery: the one path that a consumer's
//! delivery, `basic.get` and the management API's get share.
//!
//! A record that fails the store's checks on read, or whose exchange or routing
//! key is not the UTF-8 a publish stored, is dropped (acked, logged) and the next
//! one is taken: never sent corrupt, and never left taken but neither ready nor
//! unacked (`basic.get` used to return an error and leak it).

use ringmq_codec::ShortStr;
use ringmq_store::{MessageView, SegmentPosition, SharedBytes, StoreError};

use crate::core::model::queue::Queue;

/// Why a stored message cannot be sent on: the store's checks failed, or its
/// exchange or routing key is not the short string a publish stored.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ReadError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("stored {0} is not UTF-8 (corrupt record)")]
    BadName(&'static str),
}

/// A stored message's exchange and routing key as short strings. Their lengths
/// are one octet on disk, so only UTF-8 can fail, and only for bytes that changed
/// after the publish that stored them: such a record is corrupt, like one the
/// store's checks refuse, and is never sent with an empty or altered name.
pub(crate) fn stored_names<'a>(view: &MessageView<'a>) -> Result<(ShortStr<'a>, ShortStr<'a>), ReadError> {
    let exchange = ShortStr::from_bytes(view.exchange).ok_or(ReadError::BadName("exchange"))?;
    let routing_key = ShortStr::from_bytes(view.routing_key).ok_or(ReadError::BadName("routing key"))?;
    Ok((exchange, routing_key))
}

/// A store read with the message's names checked ([`stored_names`]): what every
/// path that sends a stored message on (delivery, dead-lettering, delayed
/// exchanges) reads.
pub(crate) fn read_named<'a>(
    read: Result<MessageView<'a>, StoreError>,
) -> Result<(MessageView<'a>, (ShortStr<'a>, ShortStr<'a>)), ReadError> {
    let view = read?;
    let names = stored_names(&view)?;
    Ok((view, names))
}

/// A ready message taken for delivery, read from the store.
pub(crate) struct Taken<'a> {
    pub view: MessageView<'a>,
    pub exchange: ShortStr<'a>,
    pub routing_key: ShortStr<'a>,
    /// The body as a share of the segment's mapping, for sending without a copy;
    /// only when asked for and the message is at least that large.
    pub shared: Option<SharedBytes>,
    /// How often it was delivered before, where the queue counts that
    /// (`x-delivery-count`).
    pub delivery_count: Option<u32>,
    /// Ready messages left in the queue after this one (basic.get-ok's count).
    pub remaining: u32,
    pub redelivered: bool,
}

/// Where a taken message is, for its ack or requeue.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TakenAt {
    pub pos: SegmentPosition,
    pub redelivered: bool,
}

impl Queue {
    /// Takes the next ready message, reads it and hands it to `send` (which
    /// encodes it for its receiver while it borrows the segment); returns where
    /// it was and what `send` returned. None when no message is ready.
    /// `shared_min`: bodies of at least this size come as a share of the
    /// mapping (zero-copy sending) instead of only a view.
    ///
    /// The caller owns what follows: an ack for no-ack receivers, or recording
    /// the position as unacked.
    #[inline]
    pub(crate) fn take_next<R>(
        &mut self,
        shared_min: Option<usize>,
        send: impl FnOnce(Taken<'_>) -> R,
    ) -> Option<(TakenAt, R)> {
        loop {
            let pos = self.next_ready()?;
            let at = TakenAt {
                pos,
                redelivered: self.take_redelivered(pos),
            };
            let delivery_count = self.delivery_count_header(pos);
            let remaining = self.message_count();
            let read = match shared_min {
                Some(min) if pos.size as usize >= min => {
                    self.storage.read_shared(pos).map(|(view, body)| (view, Some(body)))
                }
                _ => self.storage.read(pos).map(|view| (view, None)),
            };
            let read = read
                .map_err(ReadError::from)
                .and_then(|(view, shared)| Ok((view, stored_names(&view)?, shared)));
            match read {
                Ok((view, (exchange, routing_key), shared)) => {
                    let r = send(Taken {
                        shared: shared.filter(|b| b.len() >= shared_min.unwrap_or(usize::MAX)),
                        view,
                        exchange,
                        routing_key,
                        delivery_count,
                        remaining,
                        redelivered: at.redelivered,
                    });
                    return Some((at, r));
                }
                Err(e) => {
                    // CRCs are verified when a segment is recovered at open; this
                    // is a record that changed since, or a bug: drop it, go on.
                    tracing::error!(queue = %self.name, error = %e, "unreadable message dropped");
                    self.ack_position(pos);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view<'a>(exchange: &'a [u8], routing_key: &'a [u8]) -> MessageView<'a> {
        MessageView {
            timestamp_ms: 0,
            exchange,
            routing_key,
            properties: &[],
            body: b"m",
        }
    }

    /// A name that is not UTF-8 makes the record corrupt: it is refused, not
    /// sent empty or with replacement characters.
    #[test]
    fn stored_names_refuse_what_a_publish_cannot_have_stored() {
        let (x, rk) = stored_names(&view(b"amq.direct", "k\u{e9}".as_bytes())).unwrap();
        assert_eq!((x.as_str(), rk.as_str()), ("amq.direct", "k\u{e9}"));
        let e = stored_names(&view(b"x\xff", b"k")).unwrap_err();
        assert_eq!(e.to_string(), "stored exchange is not UTF-8 (corrupt record)");
        // A two-byte character cut in half by bit rot.
        let e = stored_names(&view(b"", b"k\xc3")).unwrap_err();
        assert_eq!(e.to_string(), "stored routing key is not UTF-8 (corrupt record)");
    }
}
