//! What crosses between shards on the data path (`docs/shards.md`, step 3):
//! a message routed on one shard to queues another shard owns, and the
//! owner's word that it was stored, which a publisher's confirm waits for.
//!
//! The model collects what it has for each peer shard during an input
//! ([`Cross::send`]); the io layer takes it at the end of the turn
//! (`Broker::take_cross`) and hands it to the peer in one batch, and the
//! peer's broker takes it in (`Broker::handle_cross`). Within one pair of
//! shards batches arrive in the order they left, so a channel's publishes
//! reach a queue in publish order, as AMQP promises.
//!
//! With one shard nothing here is used: every queue is local.
//!
//! | module | what |
//! |---|---|
//! | this file | the outbox, forwarded publishes' `Stored` word |
//! | [`forwards`] | forwarded publishes, packed per batch ([`packed`]) |
//! | [`ask`] | questions to a queue's owner (counts, purge, delete, get) and answers |
//! | [`settle`] | acks, requeues and discards of another shard's deliveries |
//! | [`consume`] | consumers on another shard's queue: deliveries and permits |
//! | [`delivers`] | deliveries to them, packed per batch |
//! | [`delayed`] | messages for another shard's delayed exchange |

pub mod ask;
pub mod consume;
pub mod delayed;
pub mod delivers;
pub mod forwards;
pub(crate) mod packed;
pub mod settle;

pub use consume::{ConsumeAsk, ConsumerKey, StreamConsume, REMOTE_WINDOW};
pub use delivers::Delivers;

pub use ask::{Answer, Ask, AskRef, AskWhat, Got, Reply};
pub use forwards::Forwards;
pub use settle::{SettleHow, Settlement};

use ringmq_codec::ShortString;

use crate::core::model::ids::{ConnId, QueueId, VhostName};
use crate::core::model::meta::ShardId;
use crate::core::model::queue::append::StoredMessage;
use crate::core::model::route::PublishOutcome;
use crate::core::model::Model;

/// A publisher's confirm that waits for another shard: the connection,
/// channel and publish sequence number it is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConfirmRef {
    pub conn: ConnId,
    pub channel: u16,
    /// The channel's serial: a confirm for a closed channel is not taken by
    /// the next channel of the number.
    pub serial: u32,
    /// The publish's sequence number, or [`TX_COMMIT`] with the number of
    /// the channel's `tx.commit` whose publish it is (its commit-ok waits for
    /// the word).
    pub seq: u64,
}

/// The bit of `seq` that says "the publish of a tx.commit" (confirm numbers
/// never get that high).
pub const TX_COMMIT: u64 = 1 << 63;

/// A message taken from its queue for a receiver on another shard: what a
/// get-ok or a delivery carries.
#[derive(Debug, Clone, PartialEq)]
pub struct Taken {
    /// Where it is in its queue: what the receiver's settlement names.
    pub position: ringmq_store::SegmentPosition,
    pub exchange: ShortString,
    pub routing_key: ShortString,
    /// As delivered (with `x-delivery-count` where the queue counts it).
    pub properties: Vec<u8>,
    pub body: Vec<u8>,
    pub redelivered: bool,
    /// Ready messages left after it (basic.get-ok's count).
    pub remaining: u32,
}

/// What one shard sends another.
#[derive(Debug, Clone, PartialEq)]
pub enum CrossMsg {
    /// Messages for the receiver's queues, routed on the sender's copy of
    /// the routing data.
    Forwards(Box<Forwards>),
    /// A message for the receiver's delayed exchange.
    ForwardDelayed(Box<delayed::DelayedForward>),
    /// The forwarded message was stored (and synced, when it must be) in every
    /// queue of the receiver it routed to, or `failed` somewhere.
    Stored { confirm: ConfirmRef, failed: bool },
    /// A question for the owner of a queue (`ask`).
    Ask(Box<Ask>),
    /// The owner's answer.
    Reply(Box<Reply>),
    /// Deliveries of the receiver's queue settled on the sender's channels.
    Settle(Box<Settlement>),
    /// Messages for consumers of the receiver's.
    Delivers(Box<Delivers>),
    /// More deliveries the consumer may be sent.
    Grant { consumer: Box<ConsumerKey>, permits: u32 },
    /// The consumer is gone (basic.cancel, its channel's or connection's
    /// end). (When its queue goes, its shard cancels it as it applies the
    /// queue's delete from the metadata log.)
    Cancel(Box<ConsumerKey>),
}

/// What a boxed message costs beside its payload: the box and the slot in
/// the batch (for [`CrossMsg::weight`]).
const MSG_WEIGHT_MIN: usize = 64;

impl CrossMsg {
    /// Roughly the bytes this message holds while it crosses: what the
    /// credit between shards counts (`io::shards::cross`). Exact for the
    /// messages that carry bodies, a fixed cost for the small ones.
    pub fn weight(&self) -> usize {
        MSG_WEIGHT_MIN
            + match self {
                CrossMsg::Forwards(f) => f.weight(),
                CrossMsg::Delivers(d) => d.weight(),
                CrossMsg::ForwardDelayed(f) => f.properties.len() + f.body.len(),
                CrossMsg::Settle(s) => s.positions.len() * std::mem::size_of::<ringmq_store::SegmentPosition>(),
                _ => 0,
            }
    }
}

/// A word that waits for the sender's group commit: a stored message's
/// confirm, a durable queue's delete.
#[derive(Debug)]
struct AfterSync {
    epoch: u64,
    to: ShardId,
    msg: CrossMsg,
}

/// The model's side of the crossing: what leaves at the end of the turn, and
/// what waits for a group commit before it may.
#[derive(Debug, Default)]
pub struct Cross {
    /// Per peer shard, in the order made.
    out: Vec<Vec<CrossMsg>>,
    /// The confirm of the publish being routed (set by the session around one
    /// publish), carried by its forwards.
    pub(crate) origin: Option<ConfirmRef>,
    after_sync: Vec<AfterSync>,
}

impl Cross {
    /// Queues `msg` for shard `to`.
    pub fn send(&mut self, to: ShardId, msg: CrossMsg) {
        self.out_to(to).push(msg);
    }

    fn out_to(&mut self, to: ShardId) -> &mut Vec<CrossMsg> {
        let i = usize::from(to.0);
        if self.out.len() <= i {
            self.out.resize_with(i + 1, Vec::new);
        }
        &mut self.out[i]
    }

    /// The forwards to shard `to` that the next one joins: the last message
    /// made for it, when that is forwards (so the order of everything sent
    /// stays the order made), or new ones.
    pub(crate) fn forwards_to(&mut self, to: ShardId) -> &mut Forwards {
        fn is(m: &mut CrossMsg) -> Option<&mut Forwards> {
            match m {
                CrossMsg::Forwards(f) => Some(f),
                _ => None,
            }
        }
        last_or_new(self.out_to(to), is, CrossMsg::Forwards)
    }

    /// The deliveries to shard `to` that the next one joins, as
    /// [`Cross::forwards_to`].
    pub(crate) fn delivers_to(&mut self, to: ShardId) -> &mut Delivers {
        fn is(m: &mut CrossMsg) -> Option<&mut Delivers> {
            match m {
                CrossMsg::Delivers(d) => Some(d),
                _ => None,
            }
        }
        last_or_new(self.out_to(to), is, CrossMsg::Delivers)
    }

    /// The confirm of a message stored here goes back once the commit of
    /// `epoch` is done.
    pub fn send_after_sync(&mut self, epoch: u64, to: ShardId, confirm: ConfirmRef, failed: bool) {
        self.reply_after_sync(epoch, to, CrossMsg::Stored { confirm, failed });
    }

    /// Queues a grant or a settlement for shard `to`, merged into one made
    /// for the same consumer (or the same queue and kind) among the last few
    /// for that shard, so a busy consumer costs one message per batch, not
    /// one per delivery. Both only add (permits, acks), so moving one earlier
    /// among the batch's messages changes nothing another message depends on.
    pub fn send_merged(&mut self, to: ShardId, msg: CrossMsg) {
        const LOOK_BACK: usize = 8;
        let i = usize::from(to.0);
        if let Some(out) = self.out.get_mut(i) {
            for prev in out.iter_mut().rev().take(LOOK_BACK) {
                match (prev, &msg) {
                    (
                        CrossMsg::Grant { consumer, permits },
                        CrossMsg::Grant {
                            consumer: c,
                            permits: more,
                        },
                    ) if consumer == c => {
                        *permits = permits.saturating_add(*more);
                        return;
                    }
                    (CrossMsg::Settle(s), CrossMsg::Settle(more))
                        if s.queue == more.queue
                            && s.how == more.how
                            && s.how == SettleHow::Delivered
                            && s.reader == more.reader =>
                    {
                        s.positions.extend_from_slice(&more.positions);
                        return;
                    }
                    _ => {}
                }
            }
        }
        self.send(to, msg);
    }

    /// `msg` goes to `to` once the commit of `epoch` is done.
    pub fn reply_after_sync(&mut self, epoch: u64, to: ShardId, msg: CrossMsg) {
        self.after_sync.push(AfterSync { epoch, to, msg });
    }

    /// The commit went as far as `synced`; the ones through `failed_through`
    /// failed: their confirms go back as failures (nacks), their answers as
    /// internal errors. Each peer gets its words in the order they were made.
    pub fn commit_done(&mut self, synced: u64, failed_through: Option<u64>) {
        let waiting = std::mem::take(&mut self.after_sync);
        for mut w in waiting {
            let failed = failed_through.is_some_and(|f| w.epoch <= f);
            if !failed && w.epoch > synced {
                self.after_sync.push(w);
                continue;
            }
            if failed {
                match &mut w.msg {
                    CrossMsg::Stored { failed, .. } => *failed = true,
                    CrossMsg::Reply(r) => {
                        r.answer = Answer::Refused {
                            code: ringmq_codec::ReplyCode::InternalError,
                            text: "the queue's owner could not sync its change to disk".into(),
                        }
                    }
                    _ => {}
                }
            }
            self.send(w.to, w.msg);
        }
    }

    /// Takes everything made for other shards since the last call.
    pub fn take(&mut self, out: &mut Vec<(ShardId, Vec<CrossMsg>)>) {
        for (i, msgs) in self.out.iter_mut().enumerate() {
            if !msgs.is_empty() {
                out.push((ShardId(i as u16), std::mem::take(msgs)));
            }
        }
    }

    /// Whether anything waits to leave.
    pub fn has_output(&self) -> bool {
        self.out.iter().any(|m| !m.is_empty())
    }
}

/// The last of `out` when `is` takes it, or a new default one pushed.
fn last_or_new<T: Default>(
    out: &mut Vec<CrossMsg>,
    is: fn(&mut CrossMsg) -> Option<&mut T>,
    make: fn(Box<T>) -> CrossMsg,
) -> &mut T {
    if out.last_mut().and_then(is).is_none() {
        out.push(make(Box::default()));
    }
    out.last_mut().and_then(is).expect("pushed above")
}

impl Model {
    /// Sends `msg` to the owners of the queues in `queues` that are not this
    /// shard's, one forward per owner; returns this shard's queues, None when
    /// they are all of `queues`. A message routed to one queue (the common
    /// case) allocates nothing here.
    pub(crate) fn forward_to_owners(
        &mut self,
        vhost_name: &VhostName,
        queues: &[QueueId],
        msg: &StoredMessage<'_>,
        outcome: &mut PublishOutcome,
    ) -> Option<Vec<QueueId>> {
        let me = self.shards.me;
        let Some(vhost) = self.vhosts.get(vhost_name) else {
            return Some(Vec::new());
        };
        let owner = |id: &QueueId| vhost.queues.get(id).map(|q| q.owner());
        if queues.iter().all(|id| owner(id).is_none_or(|o| o == me)) {
            return None; // a queue gone meanwhile is skipped by the store
        }
        if let [id] = queues {
            let owner = owner(id).expect("checked above");
            let confirm = self.cross.origin;
            if confirm.is_some() {
                outcome.remote += 1;
            }
            outcome.forwarded = true;
            outcome.forwarded_to = Some(owner);
            self.cross.forwards_to(owner).push(vhost_name, queues, msg, confirm);
            return Some(Vec::new());
        }
        let mut local = Vec::with_capacity(queues.len());
        let mut remote: Vec<(ShardId, Vec<QueueId>)> = Vec::new();
        for id in queues {
            let Some(owner) = vhost.queues.get(id).map(|q| q.owner()) else {
                continue;
            };
            if owner == me {
                local.push(*id);
            } else if let Some((_, ids)) = remote.iter_mut().find(|(s, _)| *s == owner) {
                ids.push(*id);
            } else {
                remote.push((owner, vec![*id]));
            }
        }
        let confirm = self.cross.origin;
        if let ([], [(owner, _)]) = (&local[..], &remote[..]) {
            outcome.forwarded_to = Some(*owner);
        }
        for (owner, ids) in remote {
            if confirm.is_some() {
                outcome.remote += 1;
            }
            outcome.forwarded = true;
            self.cross.forwards_to(owner).push(vhost_name, &ids, msg, confirm);
        }
        Some(local)
    }

    /// The word for a message shard `from` forwarded with `confirm`, stored
    /// here: now, or after the group commit that syncs it.
    pub(crate) fn answer_stored(&mut self, from: ShardId, confirm: ConfirmRef, outcome: &PublishOutcome) {
        if outcome.needs_sync {
            self.cross
                .send_after_sync(self.commit.epoch + 1, from, confirm, outcome.failed);
        } else {
            let failed = outcome.failed;
            self.cross.send(from, CrossMsg::Stored { confirm, failed });
        }
    }

    /// Forwards from shard `from`: stored in this shard's queues; each
    /// one's confirm goes back now, or after the group commit that syncs it.
    pub(crate) fn store_forwards(&mut self, from: ShardId, forwards: &Forwards) {
        for f in forwards.iter() {
            let mut outcome = PublishOutcome::default();
            let msg = StoredMessage {
                exchange: f.msg.exchange,
                routing_key: f.msg.routing_key,
                properties: f.msg.properties,
                body: f.msg.body,
                persistent: f.persistent,
                expiration_ms: f.expiration_ms,
                priority: f.priority,
                maybe_delivered: false,
            };
            self.store_routed(f.vhost, f.queues, &msg, &mut outcome);
            if let Some(confirm) = f.confirm {
                self.answer_stored(from, confirm, &outcome);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(seq: u64) -> ConfirmRef {
        ConfirmRef {
            conn: ConnId(1),
            channel: 1,
            serial: 1,
            seq,
        }
    }

    #[test]
    fn confirms_wait_for_their_commit_and_failures_go_back_as_failures() {
        let mut x = Cross::default();
        x.send_after_sync(3, ShardId(1), c(1), false);
        x.send_after_sync(4, ShardId(1), c(2), false);
        x.send_after_sync(5, ShardId(2), c(3), true);
        x.commit_done(2, None);
        assert!(!x.has_output());
        x.commit_done(3, None);
        let mut out = Vec::new();
        x.take(&mut out);
        assert_eq!(
            out,
            vec![(
                ShardId(1),
                vec![CrossMsg::Stored {
                    confirm: c(1),
                    failed: false
                }]
            )]
        );
        x.commit_done(3, Some(5));
        out.clear();
        x.take(&mut out);
        out.sort_by_key(|(s, _)| *s);
        assert_eq!(
            out,
            vec![
                (
                    ShardId(1),
                    vec![CrossMsg::Stored {
                        confirm: c(2),
                        failed: true
                    }]
                ),
                (
                    ShardId(2),
                    vec![CrossMsg::Stored {
                        confirm: c(3),
                        failed: true
                    }]
                ),
            ]
        );
        assert!(!x.has_output());
    }

    #[test]
    fn grants_and_delivered_settlements_merge_others_do_not() {
        use ringmq_store::SegmentPosition;
        let key = |tag: &str| ConsumerKey {
            vhost: VhostName::new("/").expect("name"),
            queue: QueueId(1),
            conn: ConnId(7),
            channel: 1,
            tag: ShortString::try_from(tag).expect("short"),
        };
        let grant = |tag: &str, permits| CrossMsg::Grant {
            consumer: Box::new(key(tag)),
            permits,
        };
        let settle = |how, offset| {
            CrossMsg::Settle(Box::new(Settlement {
                vhost: VhostName::new("/").expect("name"),
                queue: QueueId(1),
                how,
                positions: vec![SegmentPosition {
                    segment: ringmq_store::SegmentId(1),
                    offset,
                    size: 10,
                }],
                reader: None,
            }))
        };
        let mut x = Cross::default();
        let to = ShardId(1);
        x.send_merged(to, grant("a", 1));
        x.send_merged(to, settle(SettleHow::Delivered, 8));
        x.send_merged(to, grant("a", 1));
        x.send_merged(to, settle(SettleHow::Delivered, 18));
        x.send_merged(to, grant("b", 1));
        x.send_merged(to, settle(SettleHow::Requeue, 28));
        x.send_merged(to, settle(SettleHow::Requeue, 38));
        let mut out = Vec::new();
        x.take(&mut out);
        let msgs = &out[0].1;
        assert_eq!(msgs.len(), 5, "{msgs:?}");
        assert_eq!(msgs[0], grant("a", 2));
        match &msgs[1] {
            CrossMsg::Settle(s) => assert_eq!(s.positions.len(), 2),
            other => panic!("{other:?}"),
        }
        assert_eq!(msgs[2], grant("b", 1));
    }
}
