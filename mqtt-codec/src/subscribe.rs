//! SUBSCRIBE, SUBACK, UNSUBSCRIBE and UNSUBACK (spec 3.8 - 3.11). The lists
//! are checked whole when decoded and then iterated from the packet's bytes.

use crate::connect::Version;
use crate::error::{malformed, protocol, Result};
use crate::properties::{Ctx, Properties};
use crate::publish::packet_id;
use crate::wire::{put_str, put_u16, Reader};
use crate::QoS;

/// A subscription's options byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SubOptions {
    pub qos: QoS,
    /// MQTT 5: do not send the subscriber its own publishes.
    pub no_local: bool,
    /// MQTT 5: keep the RETAIN flag as published.
    pub retain_as_published: bool,
    /// MQTT 5: 0 send retained messages at subscribe, 1 only for a new
    /// subscription, 2 never.
    pub retain_handling: u8,
}

impl SubOptions {
    pub fn qos(qos: QoS) -> SubOptions {
        SubOptions {
            qos,
            no_local: false,
            retain_as_published: false,
            retain_handling: 0,
        }
    }

    fn decode(b: u8, version: Version) -> Result<SubOptions> {
        let qos = QoS::from_bits(b & 0x03).ok_or(crate::DecodeError::Malformed("a subscription QoS of 3"))?;
        let reserved = if version == Version::V5 { 0xc0 } else { 0xfc };
        if b & reserved != 0 {
            return malformed("a subscription's reserved option bits are set");
        }
        let retain_handling = (b >> 4) & 0x03;
        if retain_handling == 3 {
            return protocol("a retain handling of 3");
        }
        Ok(SubOptions {
            qos,
            no_local: b & 0x04 != 0,
            retain_as_published: b & 0x08 != 0,
            retain_handling,
        })
    }

    fn byte(self) -> u8 {
        self.qos as u8
            | u8::from(self.no_local) << 2
            | u8::from(self.retain_as_published) << 3
            | self.retain_handling << 4
    }
}

/// SUBSCRIBE's (filter, options) list, as checked bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Filters<'a> {
    bytes: &'a [u8],
    version: Version,
}

impl<'a> Iterator for Filters<'a> {
    type Item = (&'a str, SubOptions);
    fn next(&mut self) -> Option<Self::Item> {
        if self.bytes.is_empty() {
            return None;
        }
        let mut r = Reader::new(self.bytes);
        // Checked when the packet was decoded: these reads succeed.
        let filter = r.string().ok()?;
        let options = SubOptions::decode(r.u8().ok()?, self.version).ok()?;
        self.bytes = r.rest();
        Some((filter, options))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Subscribe<'a> {
    pub packet_id: u16,
    pub properties: Properties<'a>,
    pub filters: Filters<'a>,
}

impl<'a> Subscribe<'a> {
    pub(crate) fn decode(r: &mut Reader<'a>, version: Version) -> Result<Subscribe<'a>> {
        let packet_id = packet_id(r)?;
        let properties = match version {
            Version::V5 => Properties::decode(r, Ctx::Subscribe)?,
            _ => Properties::default(),
        };
        let bytes = r.rest();
        let mut check = Reader::new(bytes);
        if check.is_empty() {
            return protocol("a SUBSCRIBE without a topic filter");
        }
        while !check.is_empty() {
            crate::topic::check_filter(check.string()?)?;
            SubOptions::decode(check.u8()?, version)?;
        }
        Ok(Subscribe {
            packet_id,
            properties,
            filters: Filters { bytes, version },
        })
    }

    /// Encodes a SUBSCRIBE of `filters` (a client's).
    pub fn encode(
        out: &mut Vec<u8>,
        version: Version,
        packet_id: u16,
        properties: &Properties<'_>,
        filters: &[(&str, SubOptions)],
    ) {
        crate::packet::encode_with(out, crate::packet::SUBSCRIBE << 4 | 0x02, |body| {
            put_u16(body, packet_id);
            if version == Version::V5 {
                properties.encode(body);
            }
            for (f, o) in filters {
                put_str(body, f);
                body.push(o.byte());
            }
        });
    }
}

/// UNSUBSCRIBE's filters, as checked bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unfilters<'a> {
    bytes: &'a [u8],
}

impl<'a> Iterator for Unfilters<'a> {
    type Item = &'a str;
    fn next(&mut self) -> Option<&'a str> {
        if self.bytes.is_empty() {
            return None;
        }
        let mut r = Reader::new(self.bytes);
        let filter = r.string().ok()?;
        self.bytes = r.rest();
        Some(filter)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unsubscribe<'a> {
    pub packet_id: u16,
    pub properties: Properties<'a>,
    pub filters: Unfilters<'a>,
}

impl<'a> Unsubscribe<'a> {
    pub(crate) fn decode(r: &mut Reader<'a>, version: Version) -> Result<Unsubscribe<'a>> {
        let packet_id = packet_id(r)?;
        let properties = match version {
            Version::V5 => Properties::decode(r, Ctx::Unsubscribe)?,
            _ => Properties::default(),
        };
        let bytes = r.rest();
        let mut check = Reader::new(bytes);
        if check.is_empty() {
            return protocol("an UNSUBSCRIBE without a topic filter");
        }
        while !check.is_empty() {
            crate::topic::check_filter(check.string()?)?;
        }
        Ok(Unsubscribe {
            packet_id,
            properties,
            filters: Unfilters { bytes },
        })
    }

    /// Encodes an UNSUBSCRIBE of `filters` (a client's).
    pub fn encode(out: &mut Vec<u8>, version: Version, packet_id: u16, properties: &Properties<'_>, filters: &[&str]) {
        crate::packet::encode_with(out, crate::packet::UNSUBSCRIBE << 4 | 0x02, |body| {
            put_u16(body, packet_id);
            if version == Version::V5 {
                properties.encode(body);
            }
            for f in filters {
                put_str(body, f);
            }
        });
    }
}

/// SUBACK or UNSUBACK: a return or reason code per filter (UNSUBACK has
/// none before MQTT 5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SubAck<'a> {
    pub packet_id: u16,
    pub properties: Properties<'a>,
    pub codes: &'a [u8],
}

impl<'a> SubAck<'a> {
    pub(crate) fn decode(r: &mut Reader<'a>, version: Version, ctx: Ctx) -> Result<SubAck<'a>> {
        let packet_id = packet_id(r)?;
        let properties = match version {
            Version::V5 => Properties::decode(r, ctx)?,
            _ => Properties::default(),
        };
        Ok(SubAck {
            packet_id,
            properties,
            codes: r.rest(),
        })
    }

    pub(crate) fn encode_body(&self, out: &mut Vec<u8>, version: Version) {
        put_u16(out, self.packet_id);
        if version == Version::V5 {
            self.properties.encode(out);
        }
        out.extend_from_slice(self.codes);
    }
}
