//! What a consumer of another shard's queue may be sent (`remote_consume`):
//! the owner sends one delivery per *permit*, and the consumer's shard
//! grants permits for the room the consumer has now, counting the permits
//! it granted and that are not used yet as deliveries already made:
//!
//! - in ack mode, its prefetch less its unacked deliveries, and its
//!   channel's prefetch (basic.qos global) less the channel's unacked
//!   deliveries, shared with the channel's other consumers of other shards'
//!   queues (and the channel's bound on unacked deliveries);
//! - always [`REMOTE_WINDOW`]: a no-ack consumer, or one without a prefetch,
//!   gets more as its deliveries are written;
//! - nothing while its connection's output is over its high-water mark
//!   (granted when it drains).
//!
//! Room is looked at again whenever it may have grown: a consumer added, a
//! delivery written, a settlement, a basic.qos, the output drained.

use crate::core::amqp::broker::{Broker, OUT_HIGH_WATER_BYTES};
use crate::core::amqp::channel::{ChannelState, UNACKED_PER_CHANNEL_MAX};
use crate::core::amqp::connection::Connection;
use crate::core::model::cross::{ConsumerKey, REMOTE_WINDOW};
use crate::core::model::ids::ConnId;

impl Broker {
    /// Grants the consumers of other shards' queues on `channel` of `conn`
    /// what they have room for now.
    pub(crate) fn regrant(&mut self, conn: &mut Connection, channel: u16) {
        if self.model.shards.count == 1 || conn.out.len() >= OUT_HIGH_WATER_BYTES {
            return;
        }
        let Some(vhost) = conn.vhost.clone() else { return };
        let Some(ch) = conn
            .channels
            .get_mut(&channel)
            .filter(|c| c.state == ChannelState::Open)
        else {
            return;
        };
        if !ch.consumers.values().any(|c| c.remote.is_some()) {
            return;
        }
        // The channel's room in ack mode: its bound less what it holds and
        // what its consumers of other shards may still be sent.
        let promised = ch.promised_remote();
        let bound = match ch.channel_prefetch {
            0 => UNACKED_PER_CHANNEL_MAX,
            p => usize::from(p).min(UNACKED_PER_CHANNEL_MAX),
        };
        let mut channel_room = bound.saturating_sub(ch.unacked.len() + promised);
        let mut grants = Vec::new();
        for (tag, c) in ch.consumers.iter_mut() {
            if c.remote.is_none() {
                continue;
            }
            let mut room = REMOTE_WINDOW.saturating_sub(c.permits_out) as usize;
            if !c.no_ack {
                if c.prefetch > 0 {
                    let own = u32::from(c.prefetch).saturating_sub(c.unacked + c.permits_out);
                    room = room.min(own as usize);
                }
                room = room.min(channel_room);
                channel_room -= room;
            }
            if room > 0 {
                c.permits_out += room as u32;
                grants.push((tag.clone(), c.queue, room as u32));
            }
        }
        for (tag, queue, permits) in grants {
            let k = ConsumerKey {
                vhost: vhost.clone(),
                queue,
                conn: conn.id,
                channel,
                tag,
            };
            self.send_grant(&k, permits);
        }
    }

    /// [`Self::regrant`] for every channel of a connection whose output drained.
    pub(crate) fn regrant_all(&mut self, id: ConnId) {
        let Some(mut conn) = self.conns.remove(&id) else { return };
        let channels: Vec<u16> = conn.channels.keys().copied().collect();
        for channel in channels {
            self.regrant(&mut conn, channel);
        }
        self.conns.insert(id, conn);
    }
}
