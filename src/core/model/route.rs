//! Routing and storing one published message: the path that AMQP publishes,
//! transaction commits and the management API's publish share (and MQTT,
//! shovels and federation will). Delayed exchanges hold the message,
//! deduplicating exchanges drop repeats, CC/BCC add routing keys, then every
//! queue it routes to stores it. (Dead letters and due delayed messages are
//! routed again from the model itself, without the hold and the dedup check.)

use crate::core::model::ids::VhostName;

use ringmq_codec::{BasicProperties, FieldTable, FieldValueRef, ShortStr, Table};

use crate::core::model::queue::append::StoredMessage;
use crate::core::model::queue::args::parse_expiration;
use crate::core::model::Model;

/// Routing keys a message may carry through CC and BCC headers, beyond its own.
pub const CC_KEYS_MAX: usize = 256;

/// What happened to one published message.
#[derive(Debug, Default, Clone, Copy)]
pub struct PublishOutcome {
    pub routed: bool,
    /// Some queue needs a group commit before this message may be confirmed.
    pub needs_sync: bool,
    /// Storing failed somewhere: confirm with basic.nack.
    pub failed: bool,
    /// Shards the message was forwarded to whose word its confirm waits for
    /// (`model::cross`).
    pub remote: u16,
    /// It went to another shard's queue (with a confirm or without).
    pub forwarded: bool,
    /// It went to queues of this one other shard and no others: where its
    /// publisher's connection may move (`amqp::hand_off`).
    pub forwarded_to: Option<crate::core::model::meta::ShardId>,
}

/// Why a message cannot be routed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum RouteError {
    /// Its `expiration` property is not a TTL in milliseconds (RabbitMQ: 406).
    #[error("{0}")]
    BadExpiration(String),
}

impl Model {
    /// Routes one message from `exchange` of `vhost_name` (which exist: the
    /// caller checked) and stores it in every queue it routes to; `props` is
    /// `properties` decoded.
    pub(crate) fn route_and_store(
        &mut self,
        vhost_name: &VhostName,
        exchange: ShortStr<'_>,
        routing_key: ShortStr<'_>,
        props: &BasicProperties<'_>,
        properties: &[u8],
        body: &[u8],
    ) -> Result<PublishOutcome, RouteError> {
        if let Some(delay) = crate::core::model::exchange::delayed::delay_of(props) {
            if let Some(outcome) = self.hold_delayed(vhost_name, exchange, routing_key, properties, body, delay) {
                return Ok(outcome);
            }
        }
        let now_ms = self.now_ms;
        let vhost = self.vhosts.get_mut(vhost_name).expect("vhost");
        let persistent = props.is_persistent();
        // CC/BCC are rare: only then build a key list; the common case routes one
        // key without allocating.
        let single = [routing_key.as_str()];
        let mut cc_keys: Vec<&str> = Vec::new();
        let mut has_bcc = false;
        if let Some(h) = props
            .headers
            .filter(|h| h.get("CC").is_some() || h.get("BCC").is_some())
        {
            cc_keys.push(routing_key.as_str());
            collect_cc(&h, "CC", &mut cc_keys);
            has_bcc = collect_cc(&h, "BCC", &mut cc_keys);
        }
        let keys: &[&str] = if cc_keys.len() > 1 { &cc_keys } else { &single };
        let mut queues = std::mem::take(&mut self.route_scratch);
        if !vhost.route_publish(exchange.as_str(), keys, props, now_ms, &mut queues) {
            // A duplicate is dropped and still confirmed, as LavinMQ does.
            self.route_scratch = queues;
            return Ok(PublishOutcome {
                routed: true,
                ..Default::default()
            });
        }
        // BCC keys route but must not be seen by consumers: strip the header.
        let stripped;
        let properties = if has_bcc {
            stripped = strip_header(props, "BCC");
            &stripped[..]
        } else {
            properties
        };
        let mut outcome = PublishOutcome {
            routed: !queues.is_empty(),
            ..Default::default()
        };
        let expiration = match props.expiration.map(|e| parse_expiration(&e)) {
            Some(Err(e)) => {
                queues.clear();
                self.route_scratch = queues;
                return Err(RouteError::BadExpiration(e));
            }
            Some(Ok(ms)) => Some(ms),
            None => None,
        };
        let msg = StoredMessage {
            exchange,
            routing_key,
            properties,
            body,
            persistent,
            expiration_ms: expiration,
            priority: props.priority.unwrap_or(0),
            maybe_delivered: false,
        };
        self.store_routed(vhost_name, &queues, &msg, &mut outcome);
        queues.clear();
        self.route_scratch = queues;
        Ok(outcome)
    }
}

/// The properties without the BCC header, when they have one (BCC keys route
/// but no receiver may see them).
pub(crate) fn without_bcc(props: &BasicProperties<'_>) -> Option<Vec<u8>> {
    props
        .headers
        .filter(|h| h.get("BCC").is_some())
        .map(|_| strip_header(props, "BCC"))
}

/// Adds the long strings of a CC/BCC array header to `keys`; returns whether the
/// header was present.
fn collect_cc<'a>(headers: &Table<'a>, name: &str, keys: &mut Vec<&'a str>) -> bool {
    match headers.get(name) {
        Some(FieldValueRef::Array(a)) => {
            for v in a.iter().take(CC_KEYS_MAX) {
                if let FieldValueRef::LongString(s) = v {
                    if let Ok(s) = std::str::from_utf8(s) {
                        keys.push(s);
                    }
                }
            }
            true
        }
        Some(_) => true,
        None => false,
    }
}

/// Re-encodes properties without one header.
fn strip_header(props: &BasicProperties<'_>, name: &str) -> Vec<u8> {
    let mut headers: FieldTable = props.headers.map(|h| h.to_owned_table()).unwrap_or_default();
    headers.0.remove(name);
    let bytes = headers.to_bytes();
    let mut p = *props;
    p.headers = Some(Table::parse(&bytes).expect("own table"));
    let mut out = Vec::new();
    p.encode(&mut out);
    out
}
