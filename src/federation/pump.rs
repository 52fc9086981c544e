//! The moving part of a link, exchange or queue: deliveries from the
//! upstream consumer republished on the local connection, acknowledged
//! upstream by the ack mode (`on-confirm`: only after the local confirm;
//! `on-publish`: once the publish is flushed; `no-ack`: never needed).
//!
//! As in the shovel, nothing is awaited inside a turn: the link's loop
//! drains both connections ([`Pump::drain`]), flushes them (the local one
//! first, so an on-publish ack never leaves before its publish), and waits
//! ([`Pump::wait`]) beside its own control (bindings, run/pause).

use std::time::Instant;

use ringmq_client::{ClientError, Confirms, Connection, Consumer, Event, Outcome};
use ringmq_codec::BasicProperties;

use super::headers::{BadProperties, Hop};
use crate::core::model::exchange::federation_upstream::should_forward;
use crate::core::model::shovel::AckMode;

/// Why a run ended.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error("{0}")]
    Connect(String),
    #[error("upstream: {0}")]
    Upstream(ClientError),
    #[error("local: {0}")]
    Local(ClientError),
    #[error(transparent)]
    Properties(#[from] BadProperties),
    #[error("upstream: the broker cancelled the consumer (its queue was deleted?)")]
    Cancelled,
    #[error("{0}")]
    Other(String),
}

pub fn up_err(e: ClientError) -> LinkError {
    LinkError::Upstream(e)
}
pub fn local_err(e: ClientError) -> LinkError {
    LinkError::Local(e)
}

/// Where republished messages go.
#[derive(Debug, Clone)]
pub enum Target {
    /// The federated exchange, with each delivery's routing key.
    Exchange(String),
    /// The federated queue, through the default exchange.
    Queue(String),
}

/// The downstream side's loop check (exchange links): a message that made
/// `max_hops` hops or came from here is acknowledged and dropped, for
/// upstreams whose helper exchange is a plain fanout.
#[derive(Debug, Clone)]
pub struct LoopCheck {
    pub max_hops: u64,
    pub cluster: String,
    pub vhost: String,
}

pub struct Pump {
    pub up: Connection,
    pub local: Connection,
    pub consumer: Consumer,
    pub local_ch: u16,
    pub ack_mode: AckMode,
    pub hop: Hop,
    pub target: Target,
    pub check: Option<LoopCheck>,
    /// Upstream delivery tags of publishes not confirmed locally yet.
    confirms: Confirms<u64>,
    settled: Vec<(u64, Outcome)>,
    to_ack: Vec<u64>,
    props: Vec<u8>,
    /// Messages republished, and dropped by the loop check.
    pub forwarded: u64,
    pub dropped: u64,
}

impl Pump {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        up: Connection,
        local: Connection,
        consumer: Consumer,
        local_ch: u16,
        ack_mode: AckMode,
        hop: Hop,
        target: Target,
        check: Option<LoopCheck>,
    ) -> Pump {
        Pump {
            up,
            local,
            consumer,
            local_ch,
            ack_mode,
            hop,
            target,
            check,
            confirms: Confirms::default(),
            settled: Vec::new(),
            to_ack: Vec::new(),
            props: Vec::new(),
            forwarded: 0,
            dropped: 0,
        }
    }

    fn on_up(&mut self, ev: Event) -> Result<(), LinkError> {
        let delivery_tag = match crate::links::consumed(&ev) {
            crate::links::Consumed::Delivery(tag) => tag,
            crate::links::Consumed::Cancelled => return Err(LinkError::Cancelled),
            crate::links::Consumed::Other => return Ok(()),
        };
        let content = self.up.take_content().expect("content kept for every delivery");
        self.consumer.handle_delivery(delivery_tag).map_err(up_err)?;
        let no_ack = self.ack_mode == AckMode::NoAck;
        if let Some(c) = &self.check {
            let p = BasicProperties::decode(&content.properties_raw).map_err(|e| BadProperties::new(e.to_string()))?;
            if !should_forward(p.headers, c.max_hops, Some(&c.cluster), Some(&c.vhost)) {
                // Dropped, but acknowledged (RabbitMQ's link does the same).
                self.dropped += 1;
                if !no_ack {
                    self.consumer.push_ack(&mut self.up, delivery_tag, false);
                }
                return Ok(());
            }
        }
        self.hop.apply(
            &content.properties_raw,
            content.redelivered,
            &content.exchange,
            &content.routing_key,
            &mut self.props,
        )?;
        let (exchange, key) = match &self.target {
            Target::Exchange(x) => (x.as_str(), content.routing_key.as_str()),
            Target::Queue(q) => ("", q.as_str()),
        };
        (self.local)
            .push_publish_raw(self.local_ch, exchange, key, &self.props, &content.body)
            .map_err(local_err)?;
        match self.ack_mode {
            AckMode::OnConfirm => {
                self.confirms.handle_publish(delivery_tag);
            }
            AckMode::OnPublish => {
                self.consumer.push_ack(&mut self.up, delivery_tag, false);
                self.forwarded += 1;
            }
            AckMode::NoAck => self.forwarded += 1,
        }
        Ok(())
    }

    fn on_local(&mut self, ev: Event) {
        let (tag, multiple, outcome) = match ev {
            Event::Ack {
                delivery_tag, multiple, ..
            } => (delivery_tag, multiple, Outcome::Ack),
            Event::Nack {
                delivery_tag, multiple, ..
            } => (delivery_tag, multiple, Outcome::Nack),
            _ => return,
        };
        self.confirms.handle_confirm(tag, multiple, outcome, &mut self.settled);
        for (up_tag, outcome) in self.settled.drain(..) {
            match outcome {
                Outcome::Ack => {
                    self.to_ack.push(up_tag);
                    self.forwarded += 1;
                }
                // Refused here: rejected upstream (dead-lettered there if it can be).
                Outcome::Nack => self.consumer.push_nack(&mut self.up, up_tag, false, false),
            }
        }
    }

    /// Handles what both connections received so far.
    pub fn drain(&mut self) -> Result<(), LinkError> {
        while let Some(ev) = self.local.next_event().map_err(local_err)? {
            self.on_local(ev);
        }
        self.consumer.push_acks(&mut self.up, &mut self.to_ack);
        while let Some(ev) = self.up.next_event().map_err(up_err)? {
            self.on_up(ev)?;
        }
        Ok(())
    }

    /// Sends what the turn queued: the local side first.
    pub async fn flush(&mut self) -> Result<(), LinkError> {
        self.local.flush().await.map_err(local_err)?;
        self.up.flush().await.map_err(up_err)
    }

    /// Until either connection has input, or a heartbeat is due.
    pub async fn wait(&mut self) -> Result<(), LinkError> {
        let deadline = match (self.up.heartbeat_deadline(), self.local.heartbeat_deadline()) {
            (Some(a), Some(b)) => a.min(b),
            (a, b) => a
                .or(b)
                .unwrap_or_else(|| Instant::now() + std::time::Duration::from_secs(3600)),
        };
        tokio::select! {
            r = self.up.fill() => r.map_err(up_err),
            r = self.local.fill() => r.map_err(local_err),
            _ = tokio::time::sleep_until(deadline.into()) => {
                let now = Instant::now();
                self.up.poll_heartbeat(now).map_err(up_err)?;
                self.local.poll_heartbeat(now).map_err(local_err)
            }
        }
    }
}
