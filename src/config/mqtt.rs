//! `[mqtt]`: the MQTT 3.1.1 listener and its sessions (issue 23). Key names
//! are LavinMQ's where it has them (`bind`, `port`, `max_packet_size`;
//! `default_vhost` read as `vhost`), RabbitMQ's meaning otherwise
//! (`mqtt.exchange`, `mqtt.vhost`, `mqtt.max_keepalive`).

use super::keys::{addresses, bytes, in_range, integer, non_empty, optional_port, Outcome};
use super::Config;

/// The MQTT listener's port by default (IANA's).
pub const DEFAULT_MQTT_PORT: u16 = 1883;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MqttConfig {
    /// Addresses the MQTT listener binds.
    pub bind: String,
    /// `None`: no MQTT listener (`-1`); 0: any free port.
    pub port: Option<u16>,
    /// Where PUBLISHes go and SUBSCRIBEs bind.
    pub exchange: String,
    /// The vhost of a user name without `vhost:`.
    pub vhost: String,
    /// The largest packet accepted from a connected client, fixed header included.
    pub max_packet_bytes: u64,
    /// The largest keepalive a client may ask for, seconds; more is refused
    /// (CONNACK 2). 0: no limit.
    pub keepalive_max_secs: u16,
}

impl Default for MqttConfig {
    fn default() -> MqttConfig {
        let s = crate::core::mqtt::Settings::default();
        MqttConfig {
            bind: "127.0.0.1".into(),
            port: Some(DEFAULT_MQTT_PORT),
            exchange: s.exchange,
            vhost: s.vhost,
            max_packet_bytes: s.max_packet_bytes as u64,
            keepalive_max_secs: s.keepalive_max_secs,
        }
    }
}

impl MqttConfig {
    /// What the sessions are given.
    pub fn settings(&self) -> crate::core::mqtt::Settings {
        crate::core::mqtt::Settings {
            exchange: self.exchange.clone(),
            vhost: self.vhost.clone(),
            max_packet_bytes: self.max_packet_bytes as usize,
            keepalive_max_secs: self.keepalive_max_secs,
        }
    }
}

pub(super) fn set_mqtt(cfg: &mut Config, key: &str, v: &str) -> Result<Outcome, String> {
    let m = &mut cfg.mqtt;
    match key {
        "bind" => m.bind = addresses(v)?,
        "port" => m.port = optional_port(v)?,
        "exchange" => m.exchange = short_name(v)?,
        "vhost" | "default_vhost" => m.vhost = short_name(v)?,
        "max_packet_size" => {
            let max = crate::core::mqtt::PACKET_BYTES_MAX as u64;
            m.max_packet_bytes = in_range(bytes(v)?, 16, max)?;
        }
        "keepalive_max" => m.keepalive_max_secs = in_range(integer(v)?, 0, u16::MAX.into())? as u16,
        _ => return Ok(Outcome::UnknownKey),
    }
    Ok(Outcome::Applied)
}

/// An exchange or vhost name: AMQP's short string, not empty.
fn short_name(v: &str) -> Result<String, String> {
    let v = non_empty(v)?;
    if v.len() > 255 {
        return Err("expected a name of at most 255 bytes".into());
    }
    Ok(v.to_owned())
}
