//! One vhost, read-only: its metadata, message stats, queues, exchanges and
//! the traffic of its connections.

use crate::core::mgmt::vhosts::VhostMeta;
use crate::core::model::stats::VhostStats;
use crate::core::model::vhost::VHost;

use super::{ExchangeView, QueueView, View};

#[derive(Clone, Copy)]
pub struct VhostView<'a> {
    view: View<'a>,
    name: &'a str,
    v: &'a VHost,
}

/// Bytes in and out of a vhost's connections, with rates.
#[derive(Debug, Clone, Copy, Default)]
pub struct Traffic {
    pub recv_oct: u64,
    pub send_oct: u64,
    pub recv_rate: f64,
    pub send_rate: f64,
}

impl<'a> VhostView<'a> {
    pub(super) fn new(view: View<'a>, name: &'a str, v: &'a VHost) -> Self {
        VhostView { view, name, v }
    }

    pub fn name(&self) -> &'a str {
        self.name
    }

    /// Description, tags, default queue type, limits.
    pub fn meta(&self) -> &'a VhostMeta {
        &self.v.meta
    }

    /// Message counters and rates, with history.
    pub fn stats(&self) -> &'a VhostStats {
        &self.v.stats
    }

    pub fn queues(&self) -> impl Iterator<Item = QueueView<'a>> + 'a {
        let name = self.name;
        self.v.queues.values().map(move |q| QueueView::new(name, q))
    }

    pub fn queue(&self, name: &str) -> Option<QueueView<'a>> {
        let id = self.v.queue_id(name)?;
        self.v.queues.get(&id).map(|q| QueueView::new(self.name, q))
    }

    pub fn has_queue(&self, name: &str) -> bool {
        self.v.queue_id(name).is_some()
    }

    pub fn queue_count(&self) -> usize {
        self.v.queues.len()
    }

    pub fn exchanges(&self) -> impl Iterator<Item = ExchangeView<'a>> + 'a {
        let name = self.name;
        self.v.exchanges.values().map(move |x| ExchangeView::new(name, x))
    }

    pub fn exchange(&self, name: &str) -> Option<ExchangeView<'a>> {
        self.v.exchanges.get(name).map(|x| ExchangeView::new(self.name, x))
    }

    pub fn has_exchange(&self, name: &str) -> bool {
        self.v.exchanges.contains_key(name)
    }

    pub fn exchange_count(&self) -> usize {
        self.v.exchanges.len()
    }

    /// Ready and unacknowledged messages over the vhost's queues.
    /// Ready and unacknowledged messages of the vhost's queues, as each
    /// queue's view counts them (a stream's messages are all ready).
    pub fn depth(&self) -> (u64, u64) {
        (self.v.queues.values())
            .map(|q| super::queues::QueueView::new(self.name, q))
            .fold((0, 0), |(r, un), q| (r + q.ready(), un + q.unacked()))
    }

    /// Bytes in and out of the connections open in this vhost.
    pub fn traffic(&self) -> Traffic {
        let mut t = Traffic::default();
        for c in self.view.connections().filter(|c| c.vhost() == Some(self.name)) {
            let s = c.traffic();
            t.recv_oct += s.recv_oct;
            t.send_oct += s.send_oct;
            t.recv_rate += s.recv_rate;
            t.send_rate += s.send_rate;
        }
        t
    }

    /// Every binding as RabbitMQ lists them: the default exchange's implicit
    /// binding of each queue (by queue name), then each named exchange's
    /// bindings (by exchange name). A binding to a queue that is gone is left out.
    pub fn bindings(&self) -> Vec<super::BindingRow<'a>> {
        super::exchanges::bindings_of(self.v)
    }
}
