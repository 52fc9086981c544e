//! What exchange and queue links share: the link's context, its two
//! connections (the local one as the broker's default user, by the
//! broker's internal login (`links::connect::InternalLogin`), the upstream
//! one to the first of the upstream's URIs that answers), and how it
//! reports.

use ringmq_client::{ClientError, ConnectOptions, Connection, Uri};

use super::pump::{local_err, LinkError};
use super::status::LinkKey;
use crate::core::model::federation::Upstream;
use crate::links::connect::{Local, LINK_HEARTBEAT_SECS};

/// Everything one link needs besides its control channel.
#[derive(Debug, Clone)]
pub struct LinkCtx {
    pub key: LinkKey,
    pub upstream: Upstream,
    pub local: Local,
    /// This broker's cluster name (the upstream queue's name, loop checks).
    pub cluster: String,
    /// The policy that federates the exchange or queue.
    pub policy: String,
}

/// What a run tells the supervisor.
pub trait Report {
    /// Connected upstream (the URI answered, without credentials).
    fn connected(&mut self, uri: &str);
    /// Set up and moving messages; the local connection's name.
    fn running(&mut self, local_connection: &str);
    /// A queue link started or stopped consuming upstream.
    fn consuming(&mut self, consumer_tag: &str, on: bool);
}

impl LinkCtx {
    /// RabbitMQ's connection name for a link's connections.
    pub fn connection_name(&self) -> String {
        format!(
            "Federation link (upstream: {}, policy: {})",
            self.key.upstream, self.policy
        )
    }

    fn options(&self) -> ConnectOptions {
        ConnectOptions {
            heartbeat_secs: LINK_HEARTBEAT_SECS,
            product: "ringmq federation".into(),
            connection_name: Some(self.connection_name()),
            login: ringmq_client::Login::Plain,
        }
    }

    /// The local connection, to the link's vhost, as the default user
    /// (RabbitMQ's federation logs in locally as its `default_user` too).
    pub async fn connect_local(&self) -> Result<Connection, LinkError> {
        let (host, port) = self.local.loopback();
        let login = &self.local.login;
        let uri = Uri {
            host,
            port,
            user: login.user.clone(),
            password: String::new(),
            vhost: self.key.vhost.clone(),
            tls: None,
            host_given: true,
            options: Default::default(),
        };
        let opts = ConnectOptions {
            login: login.client_login(),
            ..self.options()
        };
        Connection::connect_with(&uri, &opts).await.map_err(local_err)
    }

    /// The upstream connection: the first URI that answers, that URI
    /// (credentials removed) and its vhost.
    pub async fn connect_upstream(&self) -> Result<(Connection, String, String), LinkError> {
        let (c, shown) = crate::links::connect::connect(&self.upstream.uris, &self.local, &self.options())
            .await
            .map_err(|e| LinkError::Connect(format!("could not connect to the upstream ({e})")))?;
        let vhost = crate::links::connect::resolve(&shown, &self.local)
            .map(|(u, _)| u.vhost)
            .unwrap_or_else(|_| self.key.vhost.clone());
        Ok((c, shown, vhost))
    }
}

/// A passive check that leaves the channel usable: `Ok(true)` when the
/// thing exists; on 404 the server closed the channel, so a new one is
/// opened into `ch`.
pub async fn exists_or_reopen(
    c: &mut Connection,
    ch: &mut u16,
    r: Result<(), ClientError>,
) -> Result<bool, ClientError> {
    match r {
        Ok(()) => Ok(true),
        Err(ClientError::Closed { code: 404, channel, .. }) if channel != 0 => {
            *ch = c.open_channel().await?;
            Ok(false)
        }
        Err(e) => Err(e),
    }
}
