//! What a federation link's pump does with each delivery (the moving itself
//! is `links::pump`, shared with shovels): republished locally with the
//! hop recorded in `x-received-from`, to the federated exchange with its
//! routing key or to the federated queue; exchange links drop what made
//! `max-hops` hops or came from here (the downstream loop check).

use ringmq_client::{ClientError, Content};
use ringmq_codec::BasicProperties;

use super::headers::{BadProperties, Hop};
use crate::core::model::exchange::federation_upstream::should_forward;
use crate::links::pump::{End, Fate, Forward, PumpError};

/// A federation link moving messages.
pub type Pump = crate::links::pump::Pump<Republish>;

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

impl From<PumpError> for LinkError {
    fn from(e: PumpError) -> LinkError {
        match e {
            PumpError::Client {
                end: End::Source,
                source,
            } => LinkError::Upstream(source),
            PumpError::Client {
                end: End::Destination,
                source,
            } => LinkError::Local(source),
            PumpError::Cancelled => LinkError::Cancelled,
        }
    }
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

/// A federation link's [`Forward`].
pub struct Republish {
    pub hop: Hop,
    pub target: Target,
    pub check: Option<LoopCheck>,
}

impl Forward for Republish {
    type Error = LinkError;

    fn forward<'a>(&'a self, content: &'a Content, props: &mut Vec<u8>) -> Result<Fate<'a>, LinkError> {
        if let Some(c) = &self.check {
            let p = BasicProperties::decode(&content.properties_raw).map_err(|e| BadProperties::new(e.to_string()))?;
            if !should_forward(p.headers, c.max_hops, Some(&c.cluster), Some(&c.vhost)) {
                // Dropped, but acknowledged (RabbitMQ's link does the same).
                return Ok(Fate::Drop);
            }
        }
        self.hop.apply(
            &content.properties_raw,
            content.redelivered,
            &content.exchange,
            &content.routing_key,
            props,
        )?;
        let (exchange, key) = match &self.target {
            Target::Exchange(x) => (x.as_str(), content.routing_key.as_str()),
            Target::Queue(q) => ("", q.as_str()),
        };
        Ok(Fate::Publish { exchange, key })
    }
}
