//! DISCONNECT and AUTH (spec 3.14, 3.15): MQTT 5 gives both a reason code
//! and properties; a 3.1.1 DISCONNECT is empty.

use crate::connect::Version;
use crate::error::Result;
use crate::properties::{Ctx, Properties};
use crate::wire::Reader;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Disconnect<'a> {
    /// 0: normal disconnection (the will is not sent); 0x04: with the will.
    pub reason: u8,
    pub properties: Properties<'a>,
}

impl<'a> Disconnect<'a> {
    pub fn normal() -> Disconnect<'a> {
        Disconnect {
            reason: crate::reason::SUCCESS,
            properties: Properties::default(),
        }
    }

    pub(crate) fn decode(r: &mut Reader<'a>, version: Version) -> Result<Disconnect<'a>> {
        let mut d = Disconnect::normal();
        if version == Version::V5 {
            if !r.is_empty() {
                d.reason = r.u8()?;
            }
            if !r.is_empty() {
                d.properties = Properties::decode(r, Ctx::Disconnect)?;
            }
        }
        Ok(d)
    }

    pub(crate) fn encode_body(&self, out: &mut Vec<u8>, version: Version) {
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

/// MQTT 5's enhanced authentication exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Auth<'a> {
    pub reason: u8,
    pub properties: Properties<'a>,
}

impl<'a> Auth<'a> {
    pub(crate) fn decode(r: &mut Reader<'a>) -> Result<Auth<'a>> {
        let mut a = Auth {
            reason: crate::reason::SUCCESS,
            properties: Properties::default(),
        };
        if !r.is_empty() {
            a.reason = r.u8()?;
        }
        if !r.is_empty() {
            a.properties = Properties::decode(r, Ctx::Auth)?;
        }
        Ok(a)
    }

    pub(crate) fn encode_body(&self, out: &mut Vec<u8>) {
        if self.reason == crate::reason::SUCCESS && self.properties.is_empty() {
            return;
        }
        out.push(self.reason);
        self.properties.encode(out);
    }
}
