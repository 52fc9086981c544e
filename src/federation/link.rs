//! What exchange and queue links share: the link's context, its two
//! connections (the local one as the broker's default user, the upstream
//! one to the first of the upstream's URIs that answers), and how it
//! reports.

use ringmq_client::{ClientError, ConnectOptions, Connection, Uri};

use super::pump::{local_err, LinkError};
use super::status::LinkKey;
use crate::core::model::federation::Upstream;
use crate::links::connect::{Local, LINK_HEARTBEAT_SECS};

/// How the links log in to this broker. RabbitMQ's links use a direct
/// connection as an internal user; ours cross the loopback as a client, as
/// the default user (`--default-user`), whose password the broker knows
/// only when given in clear (`--default-password`, the default `guest`).
#[derive(Debug, Clone)]
pub struct LocalLogin {
    pub user: String,
    pub password: Option<String>,
}

/// Everything one link needs besides its control channel.
#[derive(Debug, Clone)]
pub struct LinkCtx {
    pub key: LinkKey,
    pub upstream: Upstream,
    pub local: Local,
    pub login: LocalLogin,
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
        }
    }

    /// The local connection, to the link's vhost.
    pub async fn connect_local(&self) -> Result<Connection, LinkError> {
        let Some(password) = &self.login.password else {
            return Err(LinkError::Other(format!(
                "local: the default user {}'s password is configured as a hash only: federation links log in as that user and need it in clear",
                self.login.user
            )));
        };
        let (host, port) = self.local.loopback();
        let uri = Uri {
            host,
            port,
            user: self.login.user.clone(),
            password: password.clone(),
            vhost: self.key.vhost.clone(),
            tls: None,
            host_given: true,
            options: Default::default(),
        };
        Connection::connect_with(&uri, &self.options()).await.map_err(local_err)
    }

    /// The upstream connection: the first URI that answers, that URI
    /// (credentials removed) and its vhost.
    pub async fn connect_upstream(&self) -> Result<(Connection, String, String), LinkError> {
        let (c, shown) = crate::links::connect::connect(&self.upstream.uris, &self.local, &self.options())
            .await
            .map_err(|e| LinkError::Connect(format!("could not connect to the upstream ({e})")))?;
        let vhost = crate::links::connect::resolve(&shown, &self.local)
            .map(|u| u.vhost)
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
