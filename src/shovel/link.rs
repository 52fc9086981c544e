//! One shovel's run: connect both ends, declare what it needs, then move
//! messages until an end fails or `src-delete-after` is reached.
//!
//! The loop never cancels a write: each turn drains what both connections
//! already received, flushes both, and only then waits (on either socket, or
//! the next heartbeat). With `on-confirm` a source delivery is acknowledged
//! only when the destination's confirm for its publish arrives; on any failure
//! both connections are dropped, and the source requeues what was not
//! acknowledged (at least once: a message confirmed but whose ack was lost is
//! moved again; nothing marks the copy at the destination).

use std::time::Instant;

use ringmq_client::{ClientError, Confirms, ConnectOptions, Connection, Consumer, Event, Outcome, QueueOptions};

use super::message::{BadProperties, Rewrite};
use crate::core::model::shovel::{AckMode, DeleteAfter, ShovelDef, ShovelDest, ShovelSource};
pub use crate::links::connect::Local;
use crate::links::connect::{ConnectError, LINK_HEARTBEAT_SECS};
use crate::links::shown::without_credentials;

/// Why a run ended.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error("{uri}: {why}")]
    BadUri { uri: String, why: String },
    #[error("could not connect to the {end} ({})", .errors.join("; "))]
    Connect { end: &'static str, errors: Vec<String> },
    #[error("{end}: {source}")]
    Client {
        end: &'static str,
        #[source]
        source: ClientError,
    },
    #[error("src-consumer-args: {0}")]
    ConsumerArgs(String),
    #[error(transparent)]
    Properties(#[from] BadProperties),
    #[error("source: the broker cancelled the consumer (its queue was deleted?)")]
    Cancelled,
}

/// What the run reports as it goes.
pub(super) trait Report {
    /// Both ends are up: moving messages (with the URIs connected to).
    fn running(&mut self, src_uri: &str, dest_uri: &str);
    /// The destination blocked (connection.blocked) or unblocked us.
    fn blocked(&mut self, blocked: bool);
}

async fn connect(
    end: &'static str,
    uris: &[String],
    local: &Local,
    name: &str,
) -> Result<(Connection, String), LinkError> {
    let opts = ConnectOptions {
        heartbeat_secs: LINK_HEARTBEAT_SECS,
        product: "ringmq shovel".into(),
        connection_name: Some(format!("Shovel {name}")),
        login: ringmq_client::Login::Plain,
    };
    crate::links::connect::connect(uris, local, &opts)
        .await
        .map_err(|e| match e {
            ConnectError::BadUri { uri, why } => LinkError::BadUri { uri, why },
            ConnectError::Failed(errors) => LinkError::Connect { end, errors },
        })
}

fn src_err(source: ClientError) -> LinkError {
    LinkError::Client { end: "source", source }
}
fn dest_err(source: ClientError) -> LinkError {
    LinkError::Client {
        end: "destination",
        source,
    }
}

/// Declares `queue` durable unless it exists (a passive declare first, so a
/// queue made with other arguments is used as it is); its message count.
async fn ensure_queue(c: &mut Connection, queue: &str) -> Result<(u16, u32), ClientError> {
    let ch = c.open_channel().await?;
    let passive = QueueOptions {
        passive: true,
        ..QueueOptions::default()
    };
    match c.queue_declare(ch, queue, passive).await {
        Ok((_, count)) => Ok((ch, count)),
        Err(ClientError::Closed { code: 404, .. }) => {
            let ch = c.open_channel().await?;
            let durable = QueueOptions {
                durable: true,
                ..QueueOptions::default()
            };
            let (_, count) = c.queue_declare(ch, queue, durable).await?;
            Ok((ch, count))
        }
        Err(e) => Err(e),
    }
}

/// The source's side: a consumer on its queue; how many messages to move
/// before the shovel is done (None: never).
async fn setup_source(c: &mut Connection, def: &ShovelDef) -> Result<(Consumer, Option<u64>), LinkError> {
    let (ch, queue, count) = match &def.src {
        ShovelSource::Queue(q) => {
            let (ch, count) = ensure_queue(c, q).await.map_err(src_err)?;
            (ch, q.clone(), count)
        }
        ShovelSource::Exchange { exchange, key } => {
            let ch = c.open_channel().await.map_err(src_err)?;
            let own = QueueOptions {
                exclusive: true,
                auto_delete: true,
                ..QueueOptions::default()
            };
            let (q, _) = c.queue_declare(ch, "", own).await.map_err(src_err)?;
            c.queue_bind(ch, &q, exchange, key).await.map_err(src_err)?;
            (ch, q, 0)
        }
    };
    let limit = match def.src_delete_after {
        DeleteAfter::Never => None,
        DeleteAfter::QueueLength => Some(u64::from(count)),
        DeleteAfter::Count(n) => Some(n),
    };
    let args =
        crate::core::mgmt::json_table::table_from_json(&serde_json::Value::Object(def.src_consumer_args.clone()))
            .map_err(LinkError::ConsumerArgs)?;
    let no_ack = def.ack_mode == AckMode::NoAck;
    let consumer = Consumer::start(c, ch, &queue, def.src_prefetch_count, no_ack, &args.to_bytes())
        .await
        .map_err(src_err)?;
    c.keep_content();
    Ok((consumer, limit))
}

/// The destination's side: a channel (in confirm mode for `on-confirm`).
async fn setup_dest(c: &mut Connection, def: &ShovelDef) -> Result<u16, LinkError> {
    let ch = match &def.dest {
        ShovelDest::Queue(q) => ensure_queue(c, q).await.map_err(dest_err)?.0,
        _ => c.open_channel().await.map_err(dest_err)?,
    };
    if def.ack_mode == AckMode::OnConfirm {
        c.confirm_select(ch).await.map_err(dest_err)?;
    }
    Ok(ch)
}

/// The moving part of a run, both ends set up.
struct Pump<'a> {
    def: &'a ShovelDef,
    src: Connection,
    dest: Connection,
    consumer: Consumer,
    dest_ch: u16,
    rewrite: Rewrite,
    /// Source delivery tags of publishes the destination has not confirmed.
    confirms: Confirms<u64>,
    settled: Vec<(u64, Outcome)>,
    /// Source tags confirmed this turn, acked together at its end.
    to_ack: Vec<u64>,
    props: Vec<u8>,
    /// Messages forwarded (published; with on-confirm, confirmed) and the
    /// most to forward.
    moved: u64,
    published: u64,
    limit: Option<u64>,
}

impl Pump<'_> {
    fn done(&self) -> bool {
        self.limit.is_some_and(|l| self.moved >= l)
    }

    fn on_src(&mut self, ev: Event) -> Result<(), LinkError> {
        let delivery_tag = match crate::links::consumed(&ev) {
            crate::links::Consumed::Delivery(tag) => tag,
            // The source queue was deleted.
            crate::links::Consumed::Cancelled => return Err(LinkError::Cancelled),
            crate::links::Consumed::Other => return Ok(()),
        };
        let content = self.src.take_content().expect("content kept for every delivery");
        let no_ack = self.def.ack_mode == AckMode::NoAck;
        if !no_ack && self.limit.is_some_and(|l| self.published >= l) {
            // Past src-delete-after: left unacknowledged, requeued at close.
            // (With no-ack the source let go of it already: it is moved, so
            // a no-ack shovel may move a few past its limit rather than lose them.)
            return Ok(());
        }
        self.consumer.handle_delivery(delivery_tag).map_err(src_err)?;
        self.rewrite.apply(
            &content.properties_raw,
            content.redelivered,
            crate::links::shown::now_secs(),
            &mut self.props,
        )?;
        let (exchange, key) = match &self.def.dest {
            ShovelDest::Queue(q) => ("", q.as_str()),
            ShovelDest::Exchange { exchange, key } => {
                (exchange.as_str(), key.as_deref().unwrap_or(&content.routing_key))
            }
            ShovelDest::AsPublished => (content.exchange.as_str(), content.routing_key.as_str()),
            ShovelDest::Http => unreachable!("an HTTP destination runs http_dest::run"),
        };
        (self.dest)
            .push_publish_raw(self.dest_ch, exchange, key, &self.props, &content.body)
            .map_err(dest_err)?;
        self.published += 1;
        match self.def.ack_mode {
            AckMode::OnConfirm => {
                self.confirms.handle_publish(delivery_tag);
            }
            AckMode::OnPublish => {
                // Acked after the publish is flushed: the next flush of the
                // source follows the destination's (see `run`).
                self.consumer.push_ack(&mut self.src, delivery_tag, false);
                self.moved += 1;
            }
            AckMode::NoAck => self.moved += 1,
        }
        Ok(())
    }

    fn on_dest(&mut self, ev: Event, report: &mut dyn Report) {
        let (tag, multiple, outcome) = match ev {
            Event::Ack {
                delivery_tag, multiple, ..
            } => (delivery_tag, multiple, Outcome::Ack),
            Event::Nack {
                delivery_tag, multiple, ..
            } => (delivery_tag, multiple, Outcome::Nack),
            Event::Blocked => return report.blocked(true),
            Event::Unblocked => return report.blocked(false),
            _ => return,
        };
        self.confirms.handle_confirm(tag, multiple, outcome, &mut self.settled);
        for (src_tag, outcome) in self.settled.drain(..) {
            match outcome {
                Outcome::Ack => {
                    self.to_ack.push(src_tag);
                    self.moved += 1;
                }
                // As RabbitMQ's shovel: what the destination refused is
                // rejected at the source (dead-lettered if it has a DLX).
                Outcome::Nack => {
                    self.consumer.push_nack(&mut self.src, src_tag, false, false);
                    // Settled too: src-delete-after counts it.
                    self.moved += 1;
                }
            }
        }
    }

    async fn run(&mut self, report: &mut dyn Report) -> Result<(), LinkError> {
        loop {
            while let Some(ev) = self.dest.next_event().map_err(dest_err)? {
                self.on_dest(ev, report);
            }
            // One multiple ack for a turn's confirms, when they are in order.
            self.consumer.push_acks(&mut self.src, &mut self.to_ack);
            while let Some(ev) = self.src.next_event().map_err(src_err)? {
                self.on_src(ev)?;
            }
            // The destination first: an on-publish ack leaves only after
            // its publish did.
            self.dest.flush().await.map_err(dest_err)?;
            self.src.flush().await.map_err(src_err)?;
            if self.done() {
                return Ok(());
            }
            let deadline = match (self.src.heartbeat_deadline(), self.dest.heartbeat_deadline()) {
                (Some(a), Some(b)) => a.min(b),
                (a, b) => a
                    .or(b)
                    .unwrap_or_else(|| Instant::now() + std::time::Duration::from_secs(3600)),
            };
            tokio::select! {
                r = self.src.fill() => r.map_err(src_err)?,
                r = self.dest.fill() => r.map_err(dest_err)?,
                _ = tokio::time::sleep_until(deadline.into()) => {
                    let now = Instant::now();
                    self.src.poll_heartbeat(now).map_err(src_err)?;
                    self.dest.poll_heartbeat(now).map_err(dest_err)?;
                }
            }
        }
    }
}

/// One run of shovel `name`: Ok when `src-delete-after` was reached (the
/// shovel is done), Err when an end failed (the supervisor starts it again
/// after `reconnect-delay`).
pub async fn run_once(def: &ShovelDef, name: &str, local: &Local, report: &mut dyn Report) -> Result<(), LinkError> {
    let (mut src, src_uri) = connect("source", &def.src_uris, local, name).await?;
    if def.dest == ShovelDest::Http {
        let (consumer, limit) = setup_source(&mut src, def).await?;
        let dest_uri = without_credentials(&def.dest_uris[0]);
        report.running(&src_uri, &dest_uri);
        let rewrite = Rewrite::new(def, &local.vhost, name, &local.node, &src_uri, &dest_uri);
        return super::http_dest::run(def, name, src, consumer, limit, rewrite, report).await;
    }
    let (mut dest, dest_uri) = connect("destination", &def.dest_uris, local, name).await?;
    let (consumer, limit) = setup_source(&mut src, def).await?;
    let dest_ch = setup_dest(&mut dest, def).await?;
    report.running(&src_uri, &dest_uri);
    let rewrite = Rewrite::new(def, &local.vhost, name, &local.node, &src_uri, &dest_uri);
    let mut pump = Pump {
        def,
        src,
        dest,
        consumer,
        dest_ch,
        rewrite,
        confirms: Confirms::default(),
        settled: Vec::new(),
        to_ack: Vec::new(),
        props: Vec::new(),
        moved: 0,
        published: 0,
        limit,
    };
    pump.run(report).await?;
    // Done: close both ends cleanly (the source requeues what was past the limit).
    let Pump { src, dest, .. } = pump;
    let _ = src.close().await;
    let _ = dest.close().await;
    Ok(())
}
