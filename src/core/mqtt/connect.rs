//! CONNECT: the protocol level, the client id, the credentials (a user name
//! `vhost:user` or `user`, the password checked as AMQP's PLAIN is), the
//! keepalive, the will, the takeover of a session with the same client id
//! in the vhost, and a persistent session resumed (or discarded by a clean
//! one). CONNACK 0 goes out once the broker opened the
//! connection (`translate`); a refusal goes out at once.

use mq::reason::v3;
use ringmq_codec::ShortStr;
use ringmq_mqtt_codec as mq;

use super::session::{Session, State, Will};
use crate::core::amqp::broker::Broker;
use crate::core::model::ids::ConnId;

/// The longest client id: the subscription queue's name
/// (`mqtt-subscription-` + id + `qos0`) must fit AMQP's 255 bytes.
pub(super) const CLIENT_ID_BYTES_MAX: usize = 255 - QUEUE_PREFIX.len() - 4;

const QUEUE_PREFIX: &str = "mqtt-subscription-";

/// The name RabbitMQ gives a session's subscription queue of `qos`.
pub(super) fn queue_name(client_id: &str, qos: u8) -> String {
    format!("{QUEUE_PREFIX}{client_id}qos{qos}")
}

impl Session {
    pub(super) fn connect(&mut self, b: &mut Broker, id: ConnId, c: &mq::Connect<'_>, now_ms: u64) {
        if c.version == mq::Version::V5 {
            // MQTT 5 is step 5 of docs/mqtt.md: refused as a 3.1.1 server refuses a level it does not speak.
            tracing::info!("MQTT connection refused: MQTT 5 is not supported yet");
            return self.refuse(b, id, v3::UNACCEPTABLE_PROTOCOL_VERSION);
        }
        self.version = c.version;
        if !c.clean_start && c.client_id.is_empty() {
            // The spec: a persistent session needs a name to be found again by.
            tracing::info!("MQTT connection refused: a persistent session without a client id");
            return self.refuse(b, id, v3::IDENTIFIER_REJECTED);
        }
        if c.client_id.len() > CLIENT_ID_BYTES_MAX {
            tracing::info!(len = c.client_id.len(), "MQTT connection refused: client id too long");
            return self.refuse(b, id, v3::IDENTIFIER_REJECTED);
        }
        let max = self.settings.keepalive_max_secs;
        if max > 0 && c.keep_alive_secs > max {
            tracing::info!(
                client_id = c.client_id,
                keepalive = c.keep_alive_secs,
                max,
                "MQTT connection refused: keepalive over keepalive_max"
            );
            return self.refuse(b, id, v3::IDENTIFIER_REJECTED);
        }
        let settings = self.settings.clone();
        let (vhost, user) = match c.username {
            Some(name) => match name.split_once(':') {
                Some((vhost, user)) => (vhost, user),
                None => (settings.vhost.as_str(), name),
            },
            None => {
                tracing::info!(client_id = c.client_id, "MQTT connection refused: no user name");
                return self.refuse(b, id, v3::NOT_AUTHORIZED);
            }
        };
        let password = c.password.and_then(|p| std::str::from_utf8(p).ok()).unwrap_or("");
        if let Err(why) = b.users.authenticate(user, password, self.peer_is_loopback) {
            tracing::warn!(user, why, "MQTT login refused");
            return self.refuse(b, id, v3::BAD_USER_NAME_OR_PASSWORD);
        }
        // A vhost that does not exist is a bad login (4), as RabbitMQ answers
        // it; one the user may not use is "not authorized" (5).
        let Ok(vhost_short) = ShortStr::new(vhost) else {
            return self.refuse(b, id, v3::BAD_USER_NAME_OR_PASSWORD);
        };
        if !b.model.vhosts.contains_key(vhost) {
            tracing::warn!(user, vhost, "MQTT connection refused: no such vhost");
            return self.refuse(b, id, v3::BAD_USER_NAME_OR_PASSWORD);
        }
        if b.permissions.get(user, vhost).is_none() {
            tracing::warn!(user, vhost, "MQTT connection refused: no access to the vhost");
            return self.refuse(b, id, v3::NOT_AUTHORIZED);
        }
        self.client_id = if c.client_id.is_empty() {
            b.generated_name("mqtt-").as_str().to_owned()
        } else {
            c.client_id.to_owned()
        };
        self.vhost = vhost.to_owned();
        self.user = user.to_owned();
        self.clean = c.clean_start;
        self.keepalive_ms = u64::from(c.keep_alive_secs) * 1000;
        self.will = c.will.map(|w| Will {
            routing_key: mq::topic::to_amqp(w.topic),
            payload: w.payload.to_vec(),
            qos: (w.qos as u8).min(1),
        });
        self.take_over(b, id, now_ms);
        self.state = State::Connecting;
        let frame_max = b.config.frame_max;
        super::amqp::handshake(&mut self.to_broker, user, password, vhost_short, frame_max);
        self.replies
            .extend((0..super::amqp::HANDSHAKE_MAIN_REPLIES).map(|_| None));
        self.resume_or_discard(b);
    }

    /// A persistent session's queues (what it subscribed, the QoS 1
    /// messages not yet acked) are consumed again, and CONNACK says the
    /// session was present; a clean session deletes those of a persistent
    /// one with its client id, as the spec has it discarded.
    fn resume_or_discard(&mut self, b: &Broker) {
        let names = [queue_name(&self.client_id, 0), queue_name(&self.client_id, 1)];
        let vhost = b.model.vhosts.get(self.vhost.as_str());
        let exists = |name: &str| vhost.is_some_and(|v| v.queue_id(name).is_some());
        for qos in [0u8, 1] {
            let name = &names[usize::from(qos)];
            if !exists(name) {
                continue;
            }
            if self.clean {
                let queue = ShortStr::new(name).expect("client ids are bounded (CLIENT_ID_BYTES_MAX)");
                super::amqp::delete_queue(&mut self.to_broker, queue);
                self.replies.push_back(None);
            } else {
                self.session_present = true;
                self.ensure_queue(qos);
            }
        }
    }

    /// A connection with the same client id in the vhost is closed (the
    /// spec's takeover): the broker forgets it now, so its exclusive queues
    /// are gone before this session declares its own; its task sees it
    /// closed once woken (`take_took_over`) and publishes its will.
    fn take_over(&mut self, b: &mut Broker, id: ConnId, _now_ms: u64) {
        let key = (self.vhost.clone(), self.client_id.clone());
        if let Some(old) = b.mqtt_clients.insert(key, id) {
            if old != id && b.conns.contains_key(&old) {
                tracing::info!(client_id = %self.client_id, vhost = %self.vhost, "MQTT client id taken over: the older connection is closed");
                b.handle_disconnect(old);
                self.took_over = true;
            }
        }
    }
}
