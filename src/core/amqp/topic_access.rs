//! Topic permissions on the AMQP session: the connection's user and vhost
//! checked by `access` (`TopicPermissions::check`), a refusal answered as RabbitMQ
//! does, 403 ACCESS_REFUSED on the channel.

use ringmq_codec::ReplyCode;

use crate::core::access::topic_permissions::TopicAccess;
use crate::core::amqp::broker::Broker;
use crate::core::amqp::connection::Connection;
use crate::core::amqp::error::{channel_error, Exception};

impl Broker {
    /// RabbitMQ's `check_topic_authorisation` for `conn`: 403 ACCESS_REFUSED
    /// with its text when the connection's user may not use `key` on
    /// `exchange`, a topic exchange of its vhost. A connection not yet open
    /// (no user or vhost) is not checked.
    pub(crate) fn check_topic_access(
        &self,
        conn: &Connection,
        exchange: &str,
        key: &str,
        access: TopicAccess,
    ) -> Result<(), Exception> {
        let (Some(user), Some(vhost)) = (conn.user.as_deref(), conn.vhost.as_deref()) else {
            return Ok(());
        };
        (self.permissions.topic)
            .check(&self.model, user, vhost, exchange, key, access)
            .map_err(|refused| channel_error(ReplyCode::AccessRefused, refused.to_string()))
    }
}
