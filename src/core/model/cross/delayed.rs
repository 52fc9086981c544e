//! Messages for a delayed exchange of another shard (`docs/shards.md`, step
//! 3): a delayed exchange's store is on one shard, its owner (by the same
//! hash as a queue's), so its messages fire in one order from one place and
//! its folder has one writer. Another shard's copy of the exchange routes
//! and checks like the owner's, but a message published to it crosses to
//! the owner with the publisher's confirm reference, and the owner's word
//! (after its group commit, for a durable exchange) releases the confirm.

use ringmq_codec::{ShortStr, ShortString};

use crate::core::model::cross::{ConfirmRef, CrossMsg};
use crate::core::model::ids::VhostName;
use crate::core::model::meta::ShardId;
use crate::core::model::route::PublishOutcome;
use crate::core::model::Model;

/// A message for the owner's delayed store.
#[derive(Debug, Clone, PartialEq)]
pub struct DelayedForward {
    pub vhost: VhostName,
    pub exchange: ShortString,
    pub routing_key: ShortString,
    pub properties: Vec<u8>,
    pub body: Vec<u8>,
    pub delay_ms: u64,
    pub confirm: Option<ConfirmRef>,
}

impl Model {
    /// Sends a message published to another shard's delayed exchange to it.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn forward_delayed(
        &mut self,
        owner: ShardId,
        vhost: &VhostName,
        exchange: ShortStr<'_>,
        routing_key: ShortStr<'_>,
        properties: &[u8],
        body: &[u8],
        delay_ms: u64,
    ) -> PublishOutcome {
        let confirm = self.cross.origin;
        let f = DelayedForward {
            vhost: vhost.clone(),
            exchange: exchange.into(),
            routing_key: routing_key.into(),
            properties: properties.to_vec(),
            body: body.to_vec(),
            delay_ms,
            confirm,
        };
        self.cross.send(owner, CrossMsg::ForwardDelayed(Box::new(f)));
        PublishOutcome {
            routed: true,
            remote: u16::from(confirm.is_some()),
            forwarded: true,
            ..Default::default()
        }
    }

    /// The owner's side: held in its store as a publish here would be; the
    /// word goes back now, or after the group commit that syncs it.
    pub(crate) fn store_delayed_forward(&mut self, from: ShardId, f: &DelayedForward) {
        let held = self.hold_delayed(
            &f.vhost,
            f.exchange.as_short(),
            f.routing_key.as_short(),
            &f.properties,
            &f.body,
            f.delay_ms,
        );
        // An exchange deleted meanwhile: the message goes nowhere, and an
        // unroutable message is confirmed, as on one shard.
        let outcome = held.unwrap_or_default();
        if let Some(confirm) = f.confirm {
            self.answer_stored(from, confirm, &outcome);
        }
    }
}
