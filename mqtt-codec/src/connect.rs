//! CONNECT and CONNACK (spec 3.1, 3.2; 3.1.1's and 3.1's forms beside 5's).

use crate::error::{malformed, protocol, DecodeError, Result};
use crate::properties::{Ctx, Properties};
use crate::wire::{put_binary, put_str, put_u16, Reader};
use crate::QoS;

/// The protocol level a connection speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Version {
    /// MQTT 3.1 (level 3, protocol name `MQIsdp`).
    V3_1,
    /// MQTT 3.1.1 (level 4).
    V3_1_1,
    /// MQTT 5 (level 5).
    V5,
}

impl Version {
    pub fn level(self) -> u8 {
        match self {
            Version::V3_1 => 3,
            Version::V3_1_1 => 4,
            Version::V5 => 5,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Version::V3_1 => "MQIsdp",
            _ => "MQTT",
        }
    }
}

/// The last will: published by the server when the connection ends without
/// a DISCONNECT.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Will<'a> {
    pub topic: &'a str,
    pub payload: &'a [u8],
    pub qos: QoS,
    pub retain: bool,
    pub properties: Properties<'a>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Connect<'a> {
    pub version: Version,
    pub clean_start: bool,
    pub keep_alive_secs: u16,
    pub properties: Properties<'a>,
    /// May be empty (the server assigns one, if it allows).
    pub client_id: &'a str,
    pub will: Option<Will<'a>>,
    pub username: Option<&'a str>,
    pub password: Option<&'a [u8]>,
}

impl<'a> Connect<'a> {
    /// A CONNECT's variable header and payload (after the fixed header).
    pub(crate) fn decode(r: &mut Reader<'a>) -> Result<Connect<'a>> {
        let name = r.string()?;
        let level = r.u8()?;
        let version = match (name, level) {
            ("MQIsdp", 3) => Version::V3_1,
            ("MQTT", 4) => Version::V3_1_1,
            ("MQTT", 5) => Version::V5,
            ("MQTT" | "MQIsdp", other) => return Err(DecodeError::UnsupportedVersion(other)),
            _ => return protocol("not an MQTT protocol name"),
        };
        let flags = r.u8()?;
        if flags & 0x01 != 0 {
            return malformed("the CONNECT flags' reserved bit is set");
        }
        let clean_start = flags & 0x02 != 0;
        let will_flag = flags & 0x04 != 0;
        let will_qos = QoS::from_bits((flags >> 3) & 0x03).ok_or(DecodeError::Malformed("a will QoS of 3"))?;
        let will_retain = flags & 0x20 != 0;
        let has_password = flags & 0x40 != 0;
        let has_username = flags & 0x80 != 0;
        if !will_flag && (will_qos != QoS::AtMostOnce || will_retain) {
            return malformed("will QoS or retain set without a will");
        }
        if version < Version::V5 && has_password && !has_username {
            return malformed("a password without a user name");
        }
        let keep_alive_secs = r.u16()?;
        let properties = match version {
            Version::V5 => Properties::decode(r, Ctx::Connect)?,
            _ => Properties::default(),
        };
        let client_id = r.string()?;
        let will = if will_flag {
            let properties = match version {
                Version::V5 => Properties::decode(r, Ctx::Will)?,
                _ => Properties::default(),
            };
            let topic = r.string()?;
            crate::topic::check_name(topic)?;
            Some(Will {
                topic,
                payload: r.binary()?,
                qos: will_qos,
                retain: will_retain,
                properties,
            })
        } else {
            None
        };
        let username = if has_username { Some(r.string()?) } else { None };
        let password = if has_password { Some(r.binary()?) } else { None };
        if !r.is_empty() {
            return malformed("bytes after the CONNECT payload");
        }
        Ok(Connect {
            version,
            clean_start,
            keep_alive_secs,
            properties,
            client_id,
            will,
            username,
            password,
        })
    }

    pub(crate) fn encode_body(&self, out: &mut Vec<u8>) {
        put_str(out, self.version.name());
        out.push(self.version.level());
        let mut flags = 0u8;
        flags |= u8::from(self.clean_start) << 1;
        if let Some(w) = &self.will {
            flags |= 0x04 | (w.qos as u8) << 3 | u8::from(w.retain) << 5;
        }
        flags |= u8::from(self.password.is_some()) << 6;
        flags |= u8::from(self.username.is_some()) << 7;
        out.push(flags);
        put_u16(out, self.keep_alive_secs);
        if self.version == Version::V5 {
            self.properties.encode(out);
        }
        put_str(out, self.client_id);
        if let Some(w) = &self.will {
            if self.version == Version::V5 {
                w.properties.encode(out);
            }
            put_str(out, w.topic);
            put_binary(out, w.payload);
        }
        if let Some(u) = self.username {
            put_str(out, u);
        }
        if let Some(p) = self.password {
            put_binary(out, p);
        }
    }
}

/// The server's answer to CONNECT. `code` is a 3.1.1 return code
/// (`reason::v3`) or an MQTT 5 reason code, as the version says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnAck<'a> {
    pub session_present: bool,
    pub code: u8,
    pub properties: Properties<'a>,
}

impl<'a> ConnAck<'a> {
    pub(crate) fn decode(r: &mut Reader<'a>, version: Version) -> Result<ConnAck<'a>> {
        let flags = r.u8()?;
        if flags & 0xfe != 0 {
            return malformed("the CONNACK flags' reserved bits are set");
        }
        let code = r.u8()?;
        let properties = match version {
            Version::V5 => Properties::decode(r, Ctx::ConnAck)?,
            _ => Properties::default(),
        };
        Ok(ConnAck {
            session_present: flags & 1 != 0,
            code,
            properties,
        })
    }

    pub(crate) fn encode_body(&self, out: &mut Vec<u8>, version: Version) {
        out.push(u8::from(self.session_present));
        out.push(self.code);
        if version == Version::V5 {
            self.properties.encode(out);
        }
    }
}
