//! The statistics tick: every [`STATS_INTERVAL_MS`] the rates of connections,
//! channels, queues, exchanges, vhosts and the node are recomputed from their
//! counters (the counters and rates themselves are the model's, `model::stats`).
//! It reads the AMQP connections beside the model, so it lives here, with the
//! management views that show the result.

use crate::core::amqp::broker::Broker;
use crate::core::model::ids::VhostName;
use crate::core::model::stats::{Churn, MsgCounters, ObjStats, STATS_INTERVAL_MS};

impl Broker {
    /// Recomputes every rate and folds channel counts into the vhost totals.
    /// Call every [`STATS_INTERVAL_MS`]; costs O(queues + exchanges + channels).
    pub fn handle_stats_tick(&mut self, now_ms: u64) {
        let last = self.node_stats.last_tick_ms;
        let interval_ms = if last == 0 {
            STATS_INTERVAL_MS
        } else {
            now_ms.saturating_sub(last).max(1)
        };
        self.node_stats.last_tick_ms = now_ms;
        let mut per_vhost: crate::core::Map<VhostName, MsgCounters> = Default::default();
        for conn in self.conns.values_mut() {
            let Some((v, delta)) = conn.tick_stats(interval_ms) else {
                continue;
            };
            per_vhost.entry(v.clone()).or_default().add(&delta);
        }
        // Channels that went away since the last tick.
        for (v, c) in self.retired_stats.drain() {
            per_vhost.entry(v).or_default().add(&c);
        }
        let mut node_delta = MsgCounters::default();
        let (mut node_ready, mut node_unacked) = (0u64, 0u64);
        for vhost in self.model.vhosts.values_mut() {
            let (created, deleted) = std::mem::take(&mut vhost.queue_churn);
            self.node_stats.churn.counts[Churn::QUEUE_CREATED] += created;
            self.node_stats.churn.counts[Churn::QUEUE_DELETED] += deleted;
        }
        self.node_stats.churn.tick(interval_ms);
        for (name, vhost) in self.model.vhosts.iter_mut() {
            let (mut ready, mut unacked) = (0u64, 0u64);
            for q in vhost.queues.values_mut() {
                q.tick_stats(interval_ms);
                q.retain_stream(now_ms);
                let (r, u) = (q.ready_count(), q.unacked_count());
                ready += r;
                unacked += u;
            }
            for x in vhost.exchanges.values_mut() {
                x.stats.tick(interval_ms);
            }
            let delta = per_vhost.remove(name).unwrap_or_default();
            node_delta.add(&delta);
            node_ready += ready;
            node_unacked += unacked;
            vhost.stats.push_sample(now_ms, &delta, interval_ms, ready, unacked);
        }
        self.node_stats
            .vhosts
            .push_sample(now_ms, &node_delta, interval_ms, node_ready, node_unacked);
    }

    /// A channel is going away: its counts since the last tick go to its vhost.
    pub(crate) fn retire_channel_stats(&mut self, vhost: Option<&VhostName>, stats: &ObjStats) {
        let Some(v) = vhost else { return };
        let rest = stats.unflushed();
        if rest != MsgCounters::default() {
            self.retired_stats.entry(v.clone()).or_default().add(&rest);
        }
    }

    /// Counts done by the management API itself (its gets and publishes act as a
    /// channel of their own, as RabbitMQ's direct connection does).
    pub(crate) fn count_admin(&mut self, vhost: &VhostName, f: impl FnOnce(&mut MsgCounters)) {
        f(self.retired_stats.entry(vhost.clone()).or_default());
    }
}
