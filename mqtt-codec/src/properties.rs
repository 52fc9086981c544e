//! MQTT 5 properties (spec 2.2.2): decoded once into typed fields, each
//! checked for the packet it came in, given at most once, and in range. The
//! repeatable ones (User Property, Subscription Identifier) stay as the
//! wire's bytes and are iterated, so decoding never allocates.

use crate::error::{malformed, protocol, Result};
use crate::wire::{put_binary, put_str, put_u16, put_u32, put_varint, varint_len, Reader};

/// Where a property block stands: which properties it may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ctx {
    Connect,
    Will,
    ConnAck,
    Publish,
    /// PUBACK, PUBREC, PUBREL, PUBCOMP.
    Ack,
    Subscribe,
    SubAck,
    Unsubscribe,
    UnsubAck,
    Disconnect,
    Auth,
}

const PAYLOAD_FORMAT: u8 = 0x01;
const MESSAGE_EXPIRY: u8 = 0x02;
const CONTENT_TYPE: u8 = 0x03;
const RESPONSE_TOPIC: u8 = 0x08;
const CORRELATION_DATA: u8 = 0x09;
const SUBSCRIPTION_ID: u8 = 0x0B;
const SESSION_EXPIRY: u8 = 0x11;
const ASSIGNED_CLIENT_ID: u8 = 0x12;
const SERVER_KEEP_ALIVE: u8 = 0x13;
const AUTH_METHOD: u8 = 0x15;
const AUTH_DATA: u8 = 0x16;
const REQUEST_PROBLEM_INFO: u8 = 0x17;
const WILL_DELAY: u8 = 0x18;
const REQUEST_RESPONSE_INFO: u8 = 0x19;
const RESPONSE_INFO: u8 = 0x1A;
const SERVER_REFERENCE: u8 = 0x1C;
const REASON_STRING: u8 = 0x1F;
const RECEIVE_MAXIMUM: u8 = 0x21;
const TOPIC_ALIAS_MAXIMUM: u8 = 0x22;
const TOPIC_ALIAS: u8 = 0x23;
const MAXIMUM_QOS: u8 = 0x24;
const RETAIN_AVAILABLE: u8 = 0x25;
const USER_PROPERTY: u8 = 0x26;
const MAXIMUM_PACKET_SIZE: u8 = 0x27;
const WILDCARD_SUB_AVAILABLE: u8 = 0x28;
const SUB_ID_AVAILABLE: u8 = 0x29;
const SHARED_SUB_AVAILABLE: u8 = 0x2A;

/// Every property identifier of the spec.
const KNOWN: [u8; 27] = [
    PAYLOAD_FORMAT,
    MESSAGE_EXPIRY,
    CONTENT_TYPE,
    RESPONSE_TOPIC,
    CORRELATION_DATA,
    SUBSCRIPTION_ID,
    SESSION_EXPIRY,
    ASSIGNED_CLIENT_ID,
    SERVER_KEEP_ALIVE,
    AUTH_METHOD,
    AUTH_DATA,
    REQUEST_PROBLEM_INFO,
    WILL_DELAY,
    REQUEST_RESPONSE_INFO,
    RESPONSE_INFO,
    SERVER_REFERENCE,
    REASON_STRING,
    RECEIVE_MAXIMUM,
    TOPIC_ALIAS_MAXIMUM,
    TOPIC_ALIAS,
    MAXIMUM_QOS,
    RETAIN_AVAILABLE,
    USER_PROPERTY,
    MAXIMUM_PACKET_SIZE,
    WILDCARD_SUB_AVAILABLE,
    SUB_ID_AVAILABLE,
    SHARED_SUB_AVAILABLE,
];

/// Whether property `id` may stand in a block of `ctx` (spec 2.2.2.2's table).
fn allowed(ctx: Ctx, id: u8) -> bool {
    use Ctx::*;
    match id {
        USER_PROPERTY => true,
        PAYLOAD_FORMAT | MESSAGE_EXPIRY | CONTENT_TYPE | RESPONSE_TOPIC | CORRELATION_DATA => {
            matches!(ctx, Publish | Will)
        }
        SUBSCRIPTION_ID => matches!(ctx, Publish | Subscribe),
        SESSION_EXPIRY => matches!(ctx, Connect | ConnAck | Disconnect),
        ASSIGNED_CLIENT_ID
        | SERVER_KEEP_ALIVE
        | RESPONSE_INFO
        | MAXIMUM_QOS
        | RETAIN_AVAILABLE
        | WILDCARD_SUB_AVAILABLE
        | SUB_ID_AVAILABLE
        | SHARED_SUB_AVAILABLE => ctx == ConnAck,
        AUTH_METHOD | AUTH_DATA => matches!(ctx, Connect | ConnAck | Auth),
        REQUEST_PROBLEM_INFO | REQUEST_RESPONSE_INFO => ctx == Connect,
        WILL_DELAY => ctx == Will,
        SERVER_REFERENCE => matches!(ctx, ConnAck | Disconnect),
        REASON_STRING => !matches!(ctx, Connect | Will | Publish | Subscribe | Unsubscribe),
        RECEIVE_MAXIMUM | TOPIC_ALIAS_MAXIMUM | MAXIMUM_PACKET_SIZE => matches!(ctx, Connect | ConnAck),
        TOPIC_ALIAS => ctx == Publish,
        _ => false,
    }
}

/// A property block's values. `repeated` holds the wire's entries of the
/// repeatable properties (User Property, Subscription Identifier): a decoded
/// block leaves its whole bytes there (the iterators pick those two kinds),
/// and encoding copies only those two kinds from it. Two blocks are equal
/// when their values are, repeated entries compared in order.
#[derive(Debug, Clone, Copy, Default)]
pub struct Properties<'a> {
    pub payload_format_utf8: Option<bool>,
    pub message_expiry_secs: Option<u32>,
    pub content_type: Option<&'a str>,
    pub response_topic: Option<&'a str>,
    pub correlation_data: Option<&'a [u8]>,
    pub session_expiry_secs: Option<u32>,
    pub assigned_client_id: Option<&'a str>,
    pub server_keep_alive: Option<u16>,
    pub auth_method: Option<&'a str>,
    pub auth_data: Option<&'a [u8]>,
    pub request_problem_info: Option<bool>,
    pub will_delay_secs: Option<u32>,
    pub request_response_info: Option<bool>,
    pub response_info: Option<&'a str>,
    pub server_reference: Option<&'a str>,
    pub reason_string: Option<&'a str>,
    pub receive_maximum: Option<u16>,
    pub topic_alias_maximum: Option<u16>,
    pub topic_alias: Option<u16>,
    pub maximum_qos: Option<u8>,
    pub retain_available: Option<bool>,
    pub maximum_packet_size: Option<u32>,
    pub wildcard_sub_available: Option<bool>,
    pub sub_id_available: Option<bool>,
    pub shared_sub_available: Option<bool>,
    pub repeated: &'a [u8],
}

impl PartialEq for Properties<'_> {
    fn eq(&self, o: &Self) -> bool {
        // Destructured whole: a field added to the struct must be added here.
        let Properties {
            payload_format_utf8,
            message_expiry_secs,
            content_type,
            response_topic,
            correlation_data,
            session_expiry_secs,
            assigned_client_id,
            server_keep_alive,
            auth_method,
            auth_data,
            request_problem_info,
            will_delay_secs,
            request_response_info,
            response_info,
            server_reference,
            reason_string,
            receive_maximum,
            topic_alias_maximum,
            topic_alias,
            maximum_qos,
            retain_available,
            maximum_packet_size,
            wildcard_sub_available,
            sub_id_available,
            shared_sub_available,
            repeated: _,
        } = self;
        *payload_format_utf8 == o.payload_format_utf8
            && *message_expiry_secs == o.message_expiry_secs
            && *content_type == o.content_type
            && *response_topic == o.response_topic
            && *correlation_data == o.correlation_data
            && *session_expiry_secs == o.session_expiry_secs
            && *assigned_client_id == o.assigned_client_id
            && *server_keep_alive == o.server_keep_alive
            && *auth_method == o.auth_method
            && *auth_data == o.auth_data
            && *request_problem_info == o.request_problem_info
            && *will_delay_secs == o.will_delay_secs
            && *request_response_info == o.request_response_info
            && *response_info == o.response_info
            && *server_reference == o.server_reference
            && *reason_string == o.reason_string
            && *receive_maximum == o.receive_maximum
            && *topic_alias_maximum == o.topic_alias_maximum
            && *topic_alias == o.topic_alias
            && *maximum_qos == o.maximum_qos
            && *retain_available == o.retain_available
            && *maximum_packet_size == o.maximum_packet_size
            && *wildcard_sub_available == o.wildcard_sub_available
            && *sub_id_available == o.sub_id_available
            && *shared_sub_available == o.shared_sub_available
            && self.user_properties().eq(o.user_properties())
            && self.subscription_ids().eq(o.subscription_ids())
    }
}

impl Eq for Properties<'_> {}

/// Sets a property met once; a second is a protocol error (spec 2.2.2.2).
fn once<T>(slot: &mut Option<T>, v: T) -> Result<()> {
    if slot.is_some() {
        return protocol("a property given twice");
    }
    *slot = Some(v);
    Ok(())
}

fn flag(r: &mut Reader<'_>) -> Result<bool> {
    match r.u8()? {
        0 => Ok(false),
        1 => Ok(true),
        _ => protocol("a 0-or-1 property with another value"),
    }
}

/// One entry's id and value, the value read and dropped: for iterating the
/// repeatable entries of a checked block.
enum Entry<'a> {
    User(&'a str, &'a str),
    SubscriptionId(u32),
    Other,
}

fn entry<'a>(r: &mut Reader<'a>) -> Result<(u8, Entry<'a>)> {
    let id = r.varint()?;
    let id = u8::try_from(id).or(malformed("an unknown property identifier"))?;
    let e = match id {
        USER_PROPERTY => Entry::User(r.string()?, r.string()?),
        SUBSCRIPTION_ID => Entry::SubscriptionId(r.varint()?),
        PAYLOAD_FORMAT
        | REQUEST_PROBLEM_INFO
        | REQUEST_RESPONSE_INFO
        | MAXIMUM_QOS
        | RETAIN_AVAILABLE
        | WILDCARD_SUB_AVAILABLE
        | SUB_ID_AVAILABLE
        | SHARED_SUB_AVAILABLE => {
            r.u8()?;
            Entry::Other
        }
        SERVER_KEEP_ALIVE | RECEIVE_MAXIMUM | TOPIC_ALIAS_MAXIMUM | TOPIC_ALIAS => {
            r.u16()?;
            Entry::Other
        }
        MESSAGE_EXPIRY | SESSION_EXPIRY | WILL_DELAY | MAXIMUM_PACKET_SIZE => {
            r.u32()?;
            Entry::Other
        }
        CONTENT_TYPE | RESPONSE_TOPIC | ASSIGNED_CLIENT_ID | AUTH_METHOD | RESPONSE_INFO | SERVER_REFERENCE
        | REASON_STRING => {
            r.string()?;
            Entry::Other
        }
        CORRELATION_DATA | AUTH_DATA => {
            r.binary()?;
            Entry::Other
        }
        _ => return malformed("an unknown property identifier"),
    };
    Ok((id, e))
}

impl<'a> Properties<'a> {
    /// Reads a property block (its length, then its entries) of `ctx`.
    pub fn decode(r: &mut Reader<'a>, ctx: Ctx) -> Result<Properties<'a>> {
        let len = r.varint()?;
        let block = r.take(len as usize)?;
        let mut p = Properties {
            repeated: block,
            ..Properties::default()
        };
        let mut b = Reader::new(block);
        let mut sub_ids = 0;
        while !b.is_empty() {
            let id = u8::try_from(b.varint()?).or(malformed("an unknown property identifier"))?;
            if !KNOWN.contains(&id) {
                return malformed("an unknown property identifier");
            }
            if !allowed(ctx, id) {
                return protocol("a property this packet may not carry");
            }
            match id {
                USER_PROPERTY => {
                    b.string()?;
                    b.string()?;
                }
                SUBSCRIPTION_ID => {
                    let v = b.varint()?;
                    sub_ids += 1;
                    if v == 0 {
                        return protocol("a subscription identifier of 0");
                    }
                    if ctx == Ctx::Subscribe && sub_ids > 1 {
                        return protocol("a property given twice");
                    }
                }
                PAYLOAD_FORMAT => once(&mut p.payload_format_utf8, flag(&mut b)?)?,
                MESSAGE_EXPIRY => once(&mut p.message_expiry_secs, b.u32()?)?,
                CONTENT_TYPE => once(&mut p.content_type, b.string()?)?,
                RESPONSE_TOPIC => once(&mut p.response_topic, b.string()?)?,
                CORRELATION_DATA => once(&mut p.correlation_data, b.binary()?)?,
                SESSION_EXPIRY => once(&mut p.session_expiry_secs, b.u32()?)?,
                ASSIGNED_CLIENT_ID => once(&mut p.assigned_client_id, b.string()?)?,
                SERVER_KEEP_ALIVE => once(&mut p.server_keep_alive, b.u16()?)?,
                AUTH_METHOD => once(&mut p.auth_method, b.string()?)?,
                AUTH_DATA => once(&mut p.auth_data, b.binary()?)?,
                REQUEST_PROBLEM_INFO => once(&mut p.request_problem_info, flag(&mut b)?)?,
                WILL_DELAY => once(&mut p.will_delay_secs, b.u32()?)?,
                REQUEST_RESPONSE_INFO => once(&mut p.request_response_info, flag(&mut b)?)?,
                RESPONSE_INFO => once(&mut p.response_info, b.string()?)?,
                SERVER_REFERENCE => once(&mut p.server_reference, b.string()?)?,
                REASON_STRING => once(&mut p.reason_string, b.string()?)?,
                RECEIVE_MAXIMUM => {
                    let v = b.u16()?;
                    if v == 0 {
                        return protocol("a receive maximum of 0");
                    }
                    once(&mut p.receive_maximum, v)?
                }
                TOPIC_ALIAS_MAXIMUM => once(&mut p.topic_alias_maximum, b.u16()?)?,
                TOPIC_ALIAS => {
                    let v = b.u16()?;
                    if v == 0 {
                        return protocol("a topic alias of 0");
                    }
                    once(&mut p.topic_alias, v)?
                }
                MAXIMUM_QOS => {
                    let v = b.u8()?;
                    if v > 1 {
                        return protocol("a maximum QoS other than 0 or 1");
                    }
                    once(&mut p.maximum_qos, v)?
                }
                RETAIN_AVAILABLE => once(&mut p.retain_available, flag(&mut b)?)?,
                MAXIMUM_PACKET_SIZE => {
                    let v = b.u32()?;
                    if v == 0 {
                        return protocol("a maximum packet size of 0");
                    }
                    once(&mut p.maximum_packet_size, v)?
                }
                WILDCARD_SUB_AVAILABLE => once(&mut p.wildcard_sub_available, flag(&mut b)?)?,
                SUB_ID_AVAILABLE => once(&mut p.sub_id_available, flag(&mut b)?)?,
                SHARED_SUB_AVAILABLE => once(&mut p.shared_sub_available, flag(&mut b)?)?,
                _ => unreachable!("KNOWN holds only the ids matched here"),
            }
        }
        Ok(p)
    }

    /// No property at all (what a block of length 0 decodes to).
    pub fn is_empty(&self) -> bool {
        *self == Properties::default()
    }

    /// The User Properties, in order.
    pub fn user_properties(&self) -> impl Iterator<Item = (&'a str, &'a str)> + 'a {
        entries(self.repeated).filter_map(|e| match e {
            Entry::User(k, v) => Some((k, v)),
            _ => None,
        })
    }

    /// The Subscription Identifiers, in order.
    pub fn subscription_ids(&self) -> impl Iterator<Item = u32> + 'a {
        entries(self.repeated).filter_map(|e| match e {
            Entry::SubscriptionId(v) => Some(v),
            _ => None,
        })
    }

    /// Appends the block (its length, then its entries).
    pub fn encode(&self, out: &mut Vec<u8>) {
        let mut body = Vec::new();
        self.encode_entries(&mut body);
        put_varint(out, body.len() as u32);
        out.extend_from_slice(&body);
    }

    /// The block's encoded length, its length prefix included.
    pub fn encoded_len(&self) -> usize {
        let mut body = Vec::new();
        self.encode_entries(&mut body);
        varint_len(body.len() as u32) + body.len()
    }

    fn encode_entries(&self, out: &mut Vec<u8>) {
        let byte = |out: &mut Vec<u8>, id: u8, v: Option<u8>| {
            if let Some(v) = v {
                out.extend_from_slice(&[id, v]);
            }
        };
        let two = |out: &mut Vec<u8>, id: u8, v: Option<u16>| {
            if let Some(v) = v {
                out.push(id);
                put_u16(out, v);
            }
        };
        let four = |out: &mut Vec<u8>, id: u8, v: Option<u32>| {
            if let Some(v) = v {
                out.push(id);
                put_u32(out, v);
            }
        };
        let string = |out: &mut Vec<u8>, id: u8, v: Option<&str>| {
            if let Some(v) = v {
                out.push(id);
                put_str(out, v);
            }
        };
        let bin = |out: &mut Vec<u8>, id: u8, v: Option<&[u8]>| {
            if let Some(v) = v {
                out.push(id);
                put_binary(out, v);
            }
        };
        byte(out, PAYLOAD_FORMAT, self.payload_format_utf8.map(u8::from));
        four(out, MESSAGE_EXPIRY, self.message_expiry_secs);
        string(out, CONTENT_TYPE, self.content_type);
        string(out, RESPONSE_TOPIC, self.response_topic);
        bin(out, CORRELATION_DATA, self.correlation_data);
        four(out, SESSION_EXPIRY, self.session_expiry_secs);
        string(out, ASSIGNED_CLIENT_ID, self.assigned_client_id);
        two(out, SERVER_KEEP_ALIVE, self.server_keep_alive);
        string(out, AUTH_METHOD, self.auth_method);
        bin(out, AUTH_DATA, self.auth_data);
        byte(out, REQUEST_PROBLEM_INFO, self.request_problem_info.map(u8::from));
        four(out, WILL_DELAY, self.will_delay_secs);
        byte(out, REQUEST_RESPONSE_INFO, self.request_response_info.map(u8::from));
        string(out, RESPONSE_INFO, self.response_info);
        string(out, SERVER_REFERENCE, self.server_reference);
        string(out, REASON_STRING, self.reason_string);
        two(out, RECEIVE_MAXIMUM, self.receive_maximum);
        two(out, TOPIC_ALIAS_MAXIMUM, self.topic_alias_maximum);
        two(out, TOPIC_ALIAS, self.topic_alias);
        byte(out, MAXIMUM_QOS, self.maximum_qos);
        byte(out, RETAIN_AVAILABLE, self.retain_available.map(u8::from));
        four(out, MAXIMUM_PACKET_SIZE, self.maximum_packet_size);
        byte(out, WILDCARD_SUB_AVAILABLE, self.wildcard_sub_available.map(u8::from));
        byte(out, SUB_ID_AVAILABLE, self.sub_id_available.map(u8::from));
        byte(out, SHARED_SUB_AVAILABLE, self.shared_sub_available.map(u8::from));
        for e in entries(self.repeated) {
            match e {
                Entry::User(k, v) => put_user_property(out, k, v),
                Entry::SubscriptionId(v) => put_subscription_id(out, v),
                Entry::Other => {}
            }
        }
    }
}

/// The entries of a block's bytes (stops at the first it cannot read: a
/// decoded block has none).
fn entries(block: &[u8]) -> impl Iterator<Item = Entry<'_>> {
    let mut r = Reader::new(block);
    std::iter::from_fn(move || {
        if r.is_empty() {
            return None;
        }
        entry(&mut r).ok().map(|(_, e)| e)
    })
}

/// Appends a User Property entry (for [`Properties::repeated`]).
pub fn put_user_property(out: &mut Vec<u8>, k: &str, v: &str) {
    out.push(USER_PROPERTY);
    put_str(out, k);
    put_str(out, v);
}

/// Appends a Subscription Identifier entry (for [`Properties::repeated`]).
pub fn put_subscription_id(out: &mut Vec<u8>, id: u32) {
    out.push(SUBSCRIPTION_ID);
    put_varint(out, id);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::DecodeError;

    fn decode(bytes: &[u8], ctx: Ctx) -> Result<Properties<'_>> {
        Properties::decode(&mut Reader::new(bytes), ctx)
    }

    #[test]
    fn a_block_round_trips_with_its_repeated_entries_in_order() {
        let mut rep = Vec::new();
        put_user_property(&mut rep, "a", "1");
        put_subscription_id(&mut rep, 7);
        put_user_property(&mut rep, "a", "2");
        let p = Properties {
            payload_format_utf8: Some(true),
            message_expiry_secs: Some(60),
            content_type: Some("text/plain"),
            correlation_data: Some(b"\x00\x01"),
            topic_alias: Some(3),
            repeated: &rep,
            ..Default::default()
        };
        let mut out = Vec::new();
        p.encode(&mut out);
        assert_eq!(out.len(), p.encoded_len());
        let back = decode(&out, Ctx::Publish).unwrap();
        assert_eq!(back.user_properties().collect::<Vec<_>>(), [("a", "1"), ("a", "2")]);
        assert_eq!(back.subscription_ids().collect::<Vec<_>>(), [7]);
        assert_eq!(
            (back.content_type, back.topic_alias, back.message_expiry_secs),
            (Some("text/plain"), Some(3), Some(60))
        );
        let mut again = Vec::new();
        back.encode(&mut again);
        assert_eq!(again, out, "re-encoding a decoded block gives the same bytes");
    }

    #[test]
    fn the_spec_s_rules_are_checked() {
        let err = |b: &[u8], ctx| decode(b, ctx).unwrap_err();
        // Topic alias in a CONNECT: not allowed there.
        assert!(matches!(
            err(&[3, TOPIC_ALIAS, 0, 1], Ctx::Connect),
            DecodeError::Protocol(_)
        ));
        // Given twice.
        assert!(matches!(
            err(&[4, MAXIMUM_QOS, 0, MAXIMUM_QOS, 1], Ctx::ConnAck),
            DecodeError::Protocol(_)
        ));
        // Out of range.
        assert!(matches!(
            err(&[3, RECEIVE_MAXIMUM, 0, 0], Ctx::Connect),
            DecodeError::Protocol(_)
        ));
        assert!(matches!(
            err(&[2, PAYLOAD_FORMAT, 2], Ctx::Publish),
            DecodeError::Protocol(_)
        ));
        assert!(matches!(
            err(&[2, SUBSCRIPTION_ID, 0], Ctx::Subscribe),
            DecodeError::Protocol(_)
        ));
        assert!(matches!(
            err(&[4, SUBSCRIPTION_ID, 1, SUBSCRIPTION_ID, 2], Ctx::Subscribe),
            DecodeError::Protocol(_)
        ));
        assert!(
            decode(&[4, SUBSCRIPTION_ID, 1, SUBSCRIPTION_ID, 2], Ctx::Publish).is_ok(),
            "many in a PUBLISH"
        );
        // Unknown id, or a block longer than the packet.
        assert!(matches!(err(&[2, 0x7f, 0], Ctx::Publish), DecodeError::Malformed(_)));
        assert!(matches!(
            err(&[9, PAYLOAD_FORMAT, 1], Ctx::Publish),
            DecodeError::Malformed(_)
        ));
        assert!(matches!(
            err(&[3, CONTENT_TYPE, 0, 5], Ctx::Publish),
            DecodeError::Malformed(_)
        ));
    }
}
