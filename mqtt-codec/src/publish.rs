//! PUBLISH and its acknowledgements, PUBACK, PUBREC, PUBREL and PUBCOMP
//! (spec 3.3 - 3.7).

use crate::connect::Version;
use crate::error::{malformed, Result};
use crate::properties::{Ctx, Properties};
use crate::wire::{put_str, put_u16, Reader};

/// Quality of service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum QoS {
    AtMostOnce = 0,
    AtLeastOnce = 1,
    ExactlyOnce = 2,
}

impl QoS {
    /// From two bits; 3 is no QoS (malformed wherever it appears).
    pub fn from_bits(b: u8) -> Option<QoS> {
        match b {
            0 => Some(QoS::AtMostOnce),
            1 => Some(QoS::AtLeastOnce),
            2 => Some(QoS::ExactlyOnce),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Publish<'a> {
    pub dup: bool,
    pub qos: QoS,
    pub retain: bool,
    /// Empty only in MQTT 5 with a topic alias.
    pub topic: &'a str,
    /// Set for QoS 1 and 2, never 0.
    pub packet_id: Option<u16>,
    pub properties: Properties<'a>,
    pub payload: &'a [u8],
}

impl<'a> Publish<'a> {
    /// `flags`: the fixed header's low four bits.
    pub(crate) fn decode(r: &mut Reader<'a>, flags: u8, version: Version) -> Result<Publish<'a>> {
        let dup = flags & 0x08 != 0;
        let qos = QoS::from_bits((flags >> 1) & 0x03).ok_or(crate::DecodeError::Malformed("a PUBLISH QoS of 3"))?;
        let retain = flags & 0x01 != 0;
        if dup && qos == QoS::AtMostOnce {
            return malformed("DUP set on a QoS 0 PUBLISH");
        }
        let topic = r.string()?;
        let packet_id = match qos {
            QoS::AtMostOnce => None,
            _ => Some(packet_id(r)?),
        };
        let properties = match version {
            Version::V5 => Properties::decode(r, Ctx::Publish)?,
            _ => Properties::default(),
        };
        if !(topic.is_empty() && properties.topic_alias.is_some()) {
            crate::topic::check_name(topic)?;
        }
        Ok(Publish {
            dup,
            qos,
            retain,
            topic,
            packet_id,
            properties,
            payload: r.rest(),
        })
    }

    pub(crate) fn flags(&self) -> u8 {
        u8::from(self.dup) << 3 | (self.qos as u8) << 1 | u8::from(self.retain)
    }

    /// The variable header (the payload follows it, written by the caller:
    /// see [`crate::encode_publish`]).
    pub(crate) fn encode_head(&self, out: &mut Vec<u8>, version: Version) {
        put_str(out, self.topic);
        if let Some(id) = self.packet_id {
            put_u16(out, id);
        }
        if version == Version::V5 {
            self.properties.encode(out);
        }
    }
}

/// A packet identifier: never 0 (spec 2.2.1).
pub(crate) fn packet_id(r: &mut Reader<'_>) -> Result<u16> {
    match r.u16()? {
        0 => malformed("a packet identifier of 0"),
        id => Ok(id),
    }
}

/// PUBACK, PUBREC, PUBREL or PUBCOMP: a packet identifier and, in MQTT 5, a
/// reason code (0: success) and properties.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ack<'a> {
    pub packet_id: u16,
    pub reason: u8,
    pub properties: Properties<'a>,
}

impl<'a> Ack<'a> {
    pub fn new(packet_id: u16) -> Ack<'a> {
        Ack {
            packet_id,
            reason: crate::reason::SUCCESS,
            properties: Properties::default(),
        }
    }

    pub(crate) fn decode(r: &mut Reader<'a>, version: Version) -> Result<Ack<'a>> {
        let packet_id = packet_id(r)?;
        let mut a = Ack::new(packet_id);
        if version == Version::V5 {
            if !r.is_empty() {
                a.reason = r.u8()?;
            }
            if !r.is_empty() {
                a.properties = Properties::decode(r, Ctx::Ack)?;
            }
        }
        if !r.is_empty() {
            return malformed("bytes after an acknowledgement");
        }
        Ok(a)
    }

    pub(crate) fn encode_body(&self, out: &mut Vec<u8>, version: Version) {
        put_u16(out, self.packet_id);
        if version != Version::V5 {
            return;
        }
        let no_props = self.properties.is_empty();
        if self.reason == crate::reason::SUCCESS && no_props {
            return;
        }
        out.push(self.reason);
        if !no_props {
            self.properties.encode(out);
        }
    }
}
