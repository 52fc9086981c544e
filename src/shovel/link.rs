//! One shovel's run: connect both ends, declare what it needs, then move
//! messages with the links' pump (`links::pump`: how each turn drains,
//! flushes and waits, and the ack modes) until an end fails or
//! `src-delete-after` is reached. After a crash of this broker a message
//! may be moved twice; the copy is flagged (`x-shovelled`'s `redelivered`).

use ringmq_client::{ClientError, ConnectOptions, Connection, Consumer, Content, QueueOptions};

use super::message::{BadProperties, Rewrite};
use crate::core::model::shovel::{AckMode, DeleteAfter, ShovelDef, ShovelDest, ShovelSource};
pub use crate::links::connect::Local;
use crate::links::connect::{ConnectError, LINK_HEARTBEAT_SECS};
use crate::links::pump::{End, Fate, Forward, Pump, PumpError};
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

/// A shovel's part of the pump (`links::pump`): each delivery's properties
/// rewritten (`dest-publish-properties`, forward and timestamp headers) and
/// published where `dest-*` says.
struct Shovelled<'a> {
    def: &'a ShovelDef,
    rewrite: Rewrite,
}

impl Forward for Shovelled<'_> {
    type Error = LinkError;

    fn forward<'a>(&'a self, content: &'a Content, props: &mut Vec<u8>) -> Result<Fate<'a>, LinkError> {
        self.rewrite.apply(
            &content.properties_raw,
            content.redelivered,
            crate::links::shown::now_secs(),
            props,
        )?;
        let (exchange, key) = match &self.def.dest {
            ShovelDest::Queue(q) => ("", q.as_str()),
            ShovelDest::Exchange { exchange, key } => {
                (exchange.as_str(), key.as_deref().unwrap_or(&content.routing_key))
            }
            ShovelDest::AsPublished => (content.exchange.as_str(), content.routing_key.as_str()),
            ShovelDest::Http => unreachable!("an HTTP destination runs http_dest::run"),
        };
        Ok(Fate::Publish { exchange, key })
    }
}

impl From<PumpError> for LinkError {
    fn from(e: PumpError) -> LinkError {
        match e {
            PumpError::Client {
                end: End::Source,
                source,
            } => src_err(source),
            PumpError::Client {
                end: End::Destination,
                source,
            } => dest_err(source),
            PumpError::Cancelled => LinkError::Cancelled,
        }
    }
}

/// Moves messages until an end fails or the limit is reached.
async fn pump(pump: &mut Pump<Shovelled<'_>>, report: &mut dyn Report) -> Result<(), LinkError> {
    loop {
        pump.drain(|blocked| report.blocked(blocked))?;
        pump.flush().await?;
        if pump.done() {
            return Ok(());
        }
        pump.wait().await?;
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
    let mut p = Pump::new(
        (src, consumer),
        (dest, dest_ch),
        def.ack_mode,
        Shovelled { def, rewrite },
        limit,
    );
    pump(&mut p, report).await?;
    // Done: close both ends cleanly (the source requeues what was past the limit).
    let (src, dest) = p.into_connections();
    let _ = src.close().await;
    let _ = dest.close().await;
    Ok(())
}
