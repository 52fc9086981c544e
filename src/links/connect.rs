//! A link's URIs as client URIs, and connecting to the first that answers
//! (a list fails over in order, RabbitMQ's `uri` lists).

use std::net::SocketAddr;

use ringmq_client::{ConnectOptions, Connection, Login, Uri};

use super::shown::without_credentials;
use crate::core::config::InternalSecret;

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
    /// How the links log in here.
    pub login: InternalLogin,
}

/// How links log in to this broker: as `user` (the default user,
/// `--default-user`), proved by this start's secret instead of the user's
/// password (`RINGMQ-INTERNAL`, loopback only). RabbitMQ's federation logs
/// in locally as its default user without a password too, and its shovels'
/// `amqp://` as an internal user; a changed or hash-only default password
/// breaks neither. The user must exist and its permissions apply.
#[derive(Debug, Clone)]
pub struct InternalLogin {
    pub user: String,
    pub secret: InternalSecret,
}

impl InternalLogin {
    /// The client's options for it.
    pub fn client_login(&self) -> Login {
        Login::BrokerInternal {
            secret: self.secret.as_str().to_owned(),
        }
    }
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

/// A link's URI as a client URI and how to log in with it: `amqp://` with
/// no host is this broker, no path is the link's vhost, and no user there
/// is [`InternalLogin`] (a user and password given are used as given).
pub fn resolve(s: &str, local: &Local) -> Result<(Uri, Login), ConnectError> {
    let mut uri = Uri::parse(s).map_err(|e| ConnectError::BadUri {
        uri: without_credentials(s),
        why: e,
    })?;
    let after_scheme = s.split_once("://").map_or("", |(_, r)| r);
    let (auth, after_auth) = match after_scheme.rsplit_once('@') {
        Some((a, r)) => (Some(a), r),
        None => (None, after_scheme),
    };
    if !after_auth.contains('/') {
        uri.vhost = local.vhost.clone();
    }
    let mut login = Login::Plain;
    if !uri.host_given {
        (uri.host, uri.port) = local.loopback();
        if auth.is_none() {
            uri.user = local.login.user.clone();
            uri.password = String::new();
            login = local.login.client_login();
        }
    }
    Ok((uri, login))
}

/// Connects to the first of `uris` that answers: the connection and the URI
/// it answered on, credentials removed.
pub async fn connect(
    uris: &[String],
    local: &Local,
    opts: &ConnectOptions,
) -> Result<(Connection, String), ConnectError> {
    let parsed = uris.iter().map(|u| resolve(u, local)).collect::<Result<Vec<_>, _>>()?;
    let mut errors = Vec::new();
    for (i, (uri, login)) in parsed.into_iter().enumerate() {
        let opts = ConnectOptions { login, ..opts.clone() };
        match Connection::connect_with(&uri, &opts).await {
            Ok(c) => return Ok((c, without_credentials(&uris[i]))),
            Err(e) => errors.push(format!("{}: {e}", without_credentials(&uris[i]))),
        }
    }
    Err(ConnectError::Failed(errors))
}
