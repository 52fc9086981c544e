//! A link's URIs as client URIs, and connecting to the first that answers
//! (a list fails over in order, RabbitMQ's `uri` lists).

use std::net::SocketAddr;

use ringmq_client::{ConnectOptions, Connection, Uri};

use super::shown::without_credentials;

/// Heartbeats on a link's connections: a silent peer is noticed within 20 s.
pub const LINK_HEARTBEAT_SECS: u16 = 10;

/// Where a link inside the broker connects for `amqp://` with no host: this
/// broker's own AMQP listener over loopback. RabbitMQ's "direct" connection
/// skips sockets and framing; here each message is framed, crosses the
/// loopback twice (in and out) and is parsed again, on the same shard's loop
/// — about the cost of one more client per link, paid for one client library
/// and one session type (no second way into the core).
#[derive(Debug, Clone)]
pub struct Local {
    pub amqp_addr: SocketAddr,
    /// The link's vhost: `amqp://` with no path means it (as RabbitMQ's
    /// `amqp_uri:parse(Uri, VHost)`).
    pub vhost: String,
    /// RabbitMQ's node name (`x-shovelled`, the federation status).
    pub node: String,
}

impl Local {
    /// This broker's listener over loopback (an unspecified bind address
    /// means loopback).
    pub fn loopback(&self) -> (String, u16) {
        let ip = self.amqp_addr.ip();
        let ip = if ip.is_unspecified() {
            match ip {
                std::net::IpAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
                std::net::IpAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
            }
        } else {
            ip
        };
        (ip.to_string(), self.amqp_addr.port())
    }
}

/// Why no connection was made.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("{uri}: {why}")]
    BadUri { uri: String, why: String },
    /// Each URI's error, credentials removed.
    #[error("{}", .0.join("; "))]
    Failed(Vec<String>),
}

/// A link's URI as a client URI: `amqp://` with no host is this broker, no
/// path is the link's vhost.
pub fn resolve(s: &str, local: &Local) -> Result<Uri, ConnectError> {
    let mut uri = Uri::parse(s).map_err(|e| ConnectError::BadUri {
        uri: without_credentials(s),
        why: e,
    })?;
    let after_scheme = s.split_once("://").map_or("", |(_, r)| r);
    let after_auth = after_scheme.rsplit_once('@').map_or(after_scheme, |(_, r)| r);
    if !after_auth.contains('/') {
        uri.vhost = local.vhost.clone();
    }
    if !uri.host_given {
        (uri.host, uri.port) = local.loopback();
    }
    Ok(uri)
}

/// Connects to the first of `uris` that answers: the connection and the URI
/// it answered on, credentials removed.
pub async fn connect(
    uris: &[String],
    local: &Local,
    opts: &ConnectOptions,
) -> Result<(Connection, String), ConnectError> {
    let parsed = uris.iter().map(|u| resolve(u, local)).collect::<Result<Vec<_>, _>>()?;
    match ringmq_client::reconnect::connect_first(&parsed, opts).await {
        Ok((c, i)) => Ok((c, without_credentials(&uris[i]))),
        Err(errors) => Err(ConnectError::Failed(
            errors
                .into_iter()
                .map(|(i, e)| format!("{}: {e}", without_credentials(&uris[i])))
                .collect(),
        )),
    }
}
