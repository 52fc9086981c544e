//! Which queues a message goes to in a vhost: the first exchange by name,
//! then exchange-to-exchange bindings breadth first and alternate exchanges,
//! each exchange once and at most [`ROUTE_HOPS_MAX`] of them. Pure over the
//! vhost's exchanges and queue names (the publish path around it is
//! `route.rs`).

use ringmq_codec::{BasicProperties, ShortString};

use crate::core::model::exchange::RouteKey;
use crate::core::model::ids::{Dest, Name, QueueId};
use crate::core::model::vhost::{Exchange, VHost};

/// How deep exchange-to-exchange routing may go before we stop following
/// (cycles are cut by the visited list; this bounds pathological chains).
pub const ROUTE_HOPS_MAX: usize = 64;

impl VHost {
    /// Routes a message: returns the queues it goes to (each once) in `out`.
    ///
    /// `routing_keys` holds the routing key and any CC/BCC keys. Exchange-to-exchange
    /// bindings are followed breadth first; an exchange that matches nothing passes
    /// the message to its alternate exchange, as RabbitMQ does.
    pub fn route(
        &mut self,
        exchange: &str,
        routing_keys: &[&str],
        props: &BasicProperties<'_>,
        out: &mut Vec<QueueId>,
    ) {
        self.route_inner(exchange, routing_keys, props, None, out);
    }

    /// Routes a publish: as [`route`](Self::route), but an exchange that
    /// deduplicates (`x-message-deduplication`) first drops a duplicate it has
    /// seen by `now_ms`: false then, and `out` is empty. The exchange is looked
    /// up once for both.
    pub fn route_publish(
        &mut self,
        exchange: &str,
        routing_keys: &[&str],
        props: &BasicProperties<'_>,
        now_ms: u64,
        out: &mut Vec<QueueId>,
    ) -> bool {
        self.route_inner(exchange, routing_keys, props, Some(now_ms), out)
    }

    fn route_inner(
        &mut self,
        exchange: &str,
        routing_keys: &[&str],
        props: &BasicProperties<'_>,
        dedup_at_ms: Option<u64>,
        out: &mut Vec<QueueId>,
    ) -> bool {
        out.clear();
        // The first hop by the name given: one lookup, no clone of the name.
        // Most publishes end here (queues only: no exchange-to-exchange
        // binding matched, no alternate exchange needed).
        let Some(x) = self.exchanges.get_mut(&Name(exchange)) else {
            return true;
        };
        if let (Some(now_ms), Some(d)) = (dedup_at_ms, x.dedup.as_mut()) {
            if d.is_duplicate(props.headers, now_ms) {
                return false;
            }
        }
        let mut dests = std::mem::take(&mut self.route_dests);
        dests.clear();
        hop(x, &self.queue_names, routing_keys, props, &mut dests);
        let needs_ae = dests.is_empty() && x.alternate_exchange().is_some();
        if !needs_ae && dests.iter().all(|d| matches!(d, Dest::Queue(_))) {
            for d in dests.drain(..) {
                if let Dest::Queue(id) = d {
                    if !out.contains(&id) {
                        out.push(id);
                    }
                }
            }
            self.route_dests = dests;
            return true;
        }
        // Exchanges bound to exchanges, or an alternate exchange: followed
        // breadth first, each exchange once.
        let mut work = std::mem::take(&mut self.route_work);
        work.clear();
        work.push(x.name.clone());
        let mut i = 1;
        loop {
            if dests.is_empty() {
                // Unroutable here: the alternate exchange, if any, gets it.
                let x = &self.exchanges[&work[i - 1]];
                if let Some(ae) = x.alternate_exchange() {
                    if let Some((k, _)) = self.exchanges.get_key_value(ae) {
                        if !work.contains(k) {
                            work.push(k.clone());
                        }
                    }
                }
            }
            for d in dests.drain(..) {
                match d {
                    Dest::Queue(id) => {
                        if !out.contains(&id) {
                            out.push(id);
                        }
                    }
                    Dest::Exchange(name) => {
                        if !work.contains(&name) {
                            work.push(name);
                        }
                    }
                }
            }
            if i >= work.len() || i >= ROUTE_HOPS_MAX {
                break;
            }
            let x = self.exchanges.get_mut(&work[i]).expect("routed exchange exists");
            hop(x, &self.queue_names, routing_keys, props, &mut dests);
            i += 1;
        }
        self.route_work = work;
        self.route_dests = dests;
        true
    }
}

/// One exchange's destinations for a message (`dests`, cleared first), with
/// its publish counters.
fn hop(
    x: &mut Exchange,
    queue_names: &crate::core::NameMap<ShortString, QueueId>,
    routing_keys: &[&str],
    props: &BasicProperties<'_>,
    dests: &mut Vec<Dest>,
) {
    x.stats.c.publish_in += 1;
    dests.clear();
    if x.name.is_empty() {
        // The default exchange binds every queue by its name, implicitly.
        for rk in routing_keys {
            if let Some(id) = queue_names.get(&Name(rk)) {
                dests.push(Dest::Queue(*id));
            }
        }
    } else {
        for rk in routing_keys {
            x.bindings.route_with(RouteKey::from_properties(rk, props), dests);
        }
    }
    x.stats.c.publish_out += u64::from(!dests.is_empty());
}
