//! The moving part every link shares (shovels and federation): deliveries
//! from a consumer on the source connection republished on the destination
//! connection, acknowledged at the source by the ack mode (`on-confirm`:
//! only after the destination's confirm; `on-publish`: once the publish is
//! flushed; `no-ack`: never needed). What a delivery becomes (where it is
//! published, its properties, whether it is dropped) is the link's
//! [`Forward`].
//!
//! Nothing is awaited inside a turn, so no write is ever cancelled: a link's
//! loop drains what both connections received ([`Pump::drain`]), flushes
//! both ([`Pump::flush`]: the destination first, so an on-publish ack never
//! leaves before its publish) and only then waits ([`Pump::wait`]: either
//! socket or the next heartbeat), beside whatever else the link watches. On
//! any failure both connections are dropped and the source requeues what was
//! not acknowledged (at least once: a message confirmed whose ack was lost
//! is moved again).

use std::time::Instant;

use ringmq_client::{ClientError, Confirms, Connection, Consumer, Content, Event, Outcome};

use crate::core::model::shovel::AckMode;

/// Which connection failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    Source,
    Destination,
}

/// Why the pump stopped; each link says it in its own words (`From`).
#[derive(Debug)]
pub enum PumpError {
    Client {
        end: End,
        source: ClientError,
    },
    /// The source's broker cancelled the consumer (its queue was deleted).
    Cancelled,
}

fn src_err(source: ClientError) -> PumpError {
    PumpError::Client {
        end: End::Source,
        source,
    }
}
fn dest_err(source: ClientError) -> PumpError {
    PumpError::Client {
        end: End::Destination,
        source,
    }
}

/// What becomes of one delivery.
#[derive(Debug, PartialEq, Eq)]
pub enum Fate<'a> {
    /// Published to `exchange` with `key`, with the properties the link
    /// wrote.
    Publish { exchange: &'a str, key: &'a str },
    /// Acknowledged at the source and not published (federation's loop
    /// check).
    Drop,
}

/// A link's part: what each delivery becomes.
pub trait Forward {
    type Error: From<PumpError>;
    /// The fate of `content`; for [`Fate::Publish`], its properties written
    /// into `props` (cleared first).
    fn forward<'a>(&'a self, content: &'a Content, props: &mut Vec<u8>) -> Result<Fate<'a>, Self::Error>;
}

pub struct Pump<F> {
    pub src: Connection,
    pub dest: Connection,
    pub consumer: Consumer,
    dest_ch: u16,
    ack_mode: AckMode,
    forward: F,
    /// The most to publish (`src-delete-after`): deliveries past it are left
    /// unacknowledged and requeued at close. With no-ack the source let go
    /// of them already: they are moved, so a no-ack link may move a few
    /// past its limit rather than lose them.
    limit: Option<u64>,
    /// Source delivery tags of publishes the destination has not confirmed.
    confirms: Confirms<u64>,
    settled: Vec<(u64, Outcome)>,
    /// Source tags confirmed this turn, acked together at its end.
    to_ack: Vec<u64>,
    props: Vec<u8>,
    published: u64,
    /// Settled: published (on-publish, no-ack), or confirmed or refused by
    /// the destination (on-confirm).
    moved: u64,
}

impl<F: Forward> Pump<F> {
    pub fn new(
        (src, consumer): (Connection, Consumer),
        (dest, dest_ch): (Connection, u16),
        ack_mode: AckMode,
        forward: F,
        limit: Option<u64>,
    ) -> Pump<F> {
        Pump {
            src,
            dest,
            consumer,
            dest_ch,
            ack_mode,
            forward,
            limit,
            confirms: Confirms::default(),
            settled: Vec::new(),
            to_ack: Vec::new(),
            props: Vec::new(),
            published: 0,
            moved: 0,
        }
    }

    /// The limit is reached: every message up to it settled.
    pub fn done(&self) -> bool {
        self.limit.is_some_and(|l| self.moved >= l)
    }

    pub fn into_connections(self) -> (Connection, Connection) {
        (self.src, self.dest)
    }

    fn on_src(&mut self, ev: Event) -> Result<(), F::Error> {
        let delivery_tag = match super::consumed(&ev) {
            super::Consumed::Delivery(tag) => tag,
            super::Consumed::Cancelled => return Err(PumpError::Cancelled.into()),
            super::Consumed::Other => return Ok(()),
        };
        let content = self.src.take_content().expect("content kept for every delivery");
        let no_ack = self.ack_mode == AckMode::NoAck;
        if !no_ack && self.limit.is_some_and(|l| self.published >= l) {
            return Ok(());
        }
        self.consumer.handle_delivery(delivery_tag).map_err(src_err)?;
        let (exchange, key) = match self.forward.forward(&content, &mut self.props)? {
            Fate::Publish { exchange, key } => (exchange, key),
            Fate::Drop => {
                if !no_ack {
                    self.consumer.push_ack(&mut self.src, delivery_tag, false);
                }
                return Ok(());
            }
        };
        (self.dest)
            .push_publish_raw(self.dest_ch, exchange, key, &self.props, &content.body)
            .map_err(dest_err)?;
        self.published += 1;
        match self.ack_mode {
            AckMode::OnConfirm => {
                self.confirms.handle_publish(delivery_tag);
            }
            AckMode::OnPublish => {
                // Acked after the publish is flushed: `flush` sends the
                // destination's output first.
                self.consumer.push_ack(&mut self.src, delivery_tag, false);
                self.moved += 1;
            }
            AckMode::NoAck => self.moved += 1,
        }
        Ok(())
    }

    fn on_dest(&mut self, ev: Event, blocked: &mut impl FnMut(bool)) {
        let (tag, multiple, outcome) = match ev {
            Event::Ack {
                delivery_tag, multiple, ..
            } => (delivery_tag, multiple, Outcome::Ack),
            Event::Nack {
                delivery_tag, multiple, ..
            } => (delivery_tag, multiple, Outcome::Nack),
            Event::Blocked => return blocked(true),
            Event::Unblocked => return blocked(false),
            _ => return,
        };
        self.confirms.handle_confirm(tag, multiple, outcome, &mut self.settled);
        for (src_tag, outcome) in self.settled.drain(..) {
            self.moved += 1;
            match outcome {
                Outcome::Ack => self.to_ack.push(src_tag),
                // As RabbitMQ's links: what the destination refused is
                // rejected at the source (dead-lettered there if it can be).
                Outcome::Nack => self.consumer.push_nack(&mut self.src, src_tag, false, false),
            }
        }
    }

    /// Handles what both connections received so far; `blocked` hears the
    /// destination's connection.blocked and unblocked.
    pub fn drain(&mut self, mut blocked: impl FnMut(bool)) -> Result<(), F::Error> {
        while let Some(ev) = self.dest.next_event().map_err(dest_err)? {
            self.on_dest(ev, &mut blocked);
        }
        // One multiple ack for a turn's confirms, when they are in order.
        self.consumer.push_acks(&mut self.src, &mut self.to_ack);
        while let Some(ev) = self.src.next_event().map_err(src_err)? {
            self.on_src(ev)?;
        }
        Ok(())
    }

    /// Sends what the turn queued: the destination first.
    pub async fn flush(&mut self) -> Result<(), PumpError> {
        self.dest.flush().await.map_err(dest_err)?;
        self.src.flush().await.map_err(src_err)
    }

    /// Until either connection has input, or a heartbeat is due.
    pub async fn wait(&mut self) -> Result<(), PumpError> {
        let deadline = match (self.src.heartbeat_deadline(), self.dest.heartbeat_deadline()) {
            (Some(a), Some(b)) => a.min(b),
            (a, b) => a
                .or(b)
                .unwrap_or_else(|| Instant::now() + std::time::Duration::from_secs(3600)),
        };
        tokio::select! {
            r = self.src.fill() => r.map_err(src_err),
            r = self.dest.fill() => r.map_err(dest_err),
            _ = tokio::time::sleep_until(deadline.into()) => {
                let now = Instant::now();
                self.src.poll_heartbeat(now).map_err(src_err)?;
                self.dest.poll_heartbeat(now).map_err(dest_err)
            }
        }
    }
}
