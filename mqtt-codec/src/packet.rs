//! The fixed header (spec 2.1) and the packet enum: [`decode`] splits one
//! packet off the front of a receive buffer, checking its type, flags and
//! size before its body is read; [`encode`] writes one.

use crate::connect::{ConnAck, Connect, Version};
use crate::control::{Auth, Disconnect};
use crate::error::{malformed, DecodeError, Result};
use crate::properties::Ctx;
use crate::publish::{Ack, Publish};
use crate::subscribe::{SubAck, Subscribe, Unsubscribe};
use crate::wire::{decode_varint, put_varint, varint_len, Reader, VARINT_MAX};

pub(crate) const CONNECT: u8 = 1;
pub(crate) const CONNACK: u8 = 2;
pub(crate) const PUBLISH: u8 = 3;
pub(crate) const PUBACK: u8 = 4;
pub(crate) const PUBREC: u8 = 5;
pub(crate) const PUBREL: u8 = 6;
pub(crate) const PUBCOMP: u8 = 7;
pub(crate) const SUBSCRIBE: u8 = 8;
pub(crate) const SUBACK: u8 = 9;
pub(crate) const UNSUBSCRIBE: u8 = 10;
pub(crate) const UNSUBACK: u8 = 11;
pub(crate) const PINGREQ: u8 = 12;
pub(crate) const PINGRESP: u8 = 13;
pub(crate) const DISCONNECT: u8 = 14;
pub(crate) const AUTH: u8 = 15;

/// One decoded packet, borrowing from the receive buffer. A CONNECT's two
/// property blocks make it the largest variant (~540 bytes, a PUBLISH ~260):
/// kept inline rather than boxed so decoding never allocates; a property
/// view over the raw block would shrink all of them (left for the broker's
/// MQTT work, when a profile says it matters).
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Packet<'a> {
    Connect(Connect<'a>),
    ConnAck(ConnAck<'a>),
    Publish(Publish<'a>),
    PubAck(Ack<'a>),
    PubRec(Ack<'a>),
    PubRel(Ack<'a>),
    PubComp(Ack<'a>),
    Subscribe(Subscribe<'a>),
    SubAck(SubAck<'a>),
    Unsubscribe(Unsubscribe<'a>),
    UnsubAck(SubAck<'a>),
    PingReq,
    PingResp,
    Disconnect(Disconnect<'a>),
    Auth(Auth<'a>),
}

impl Packet<'_> {
    /// The packet's name as the spec writes it.
    pub fn name(&self) -> &'static str {
        match self {
            Packet::Connect(_) => "CONNECT",
            Packet::ConnAck(_) => "CONNACK",
            Packet::Publish(_) => "PUBLISH",
            Packet::PubAck(_) => "PUBACK",
            Packet::PubRec(_) => "PUBREC",
            Packet::PubRel(_) => "PUBREL",
            Packet::PubComp(_) => "PUBCOMP",
            Packet::Subscribe(_) => "SUBSCRIBE",
            Packet::SubAck(_) => "SUBACK",
            Packet::Unsubscribe(_) => "UNSUBSCRIBE",
            Packet::UnsubAck(_) => "UNSUBACK",
            Packet::PingReq => "PINGREQ",
            Packet::PingResp => "PINGRESP",
            Packet::Disconnect(_) => "DISCONNECT",
            Packet::Auth(_) => "AUTH",
        }
    }
}

/// The fixed header at the front of `buf`: (first byte, remaining length,
/// header length), or how many more bytes it needs.
fn fixed_header(buf: &[u8]) -> Result<(u8, usize, usize)> {
    let Some(&first) = buf.first() else {
        return Err(DecodeError::Incomplete(2));
    };
    match decode_varint(&buf[1..])? {
        Some((len, used)) => Ok((first, len as usize, 1 + used)),
        None => Err(DecodeError::Incomplete(1)),
    }
}

/// Decodes the packet at the front of `buf` of a connection speaking
/// `version` (a CONNECT says its own): the packet and the bytes it took. A
/// packet larger than `max_bytes` (fixed header included) is refused from
/// its header, before its body arrives.
pub fn decode(buf: &[u8], version: Version, max_bytes: usize) -> Result<(Packet<'_>, usize)> {
    let (first, len, head) = fixed_header(buf)?;
    let size = head + len;
    if size > max_bytes {
        return Err(DecodeError::TooLarge { size, max: max_bytes });
    }
    if buf.len() < size {
        return Err(DecodeError::Incomplete(size - buf.len()));
    }
    let (kind, flags) = (first >> 4, first & 0x0f);
    let want_flags = match kind {
        PUBLISH => flags,
        PUBREL | SUBSCRIBE | UNSUBSCRIBE => 0x02,
        _ => 0,
    };
    if flags != want_flags {
        return malformed("the fixed header's flags are not this packet type's");
    }
    let mut r = Reader::new(&buf[head..size]);
    let v5 = version == Version::V5;
    let packet = match kind {
        CONNECT => Packet::Connect(Connect::decode(&mut r)?),
        CONNACK => Packet::ConnAck(ConnAck::decode(&mut r, version)?),
        PUBLISH => Packet::Publish(Publish::decode(&mut r, flags, version)?),
        PUBACK => Packet::PubAck(Ack::decode(&mut r, version)?),
        PUBREC => Packet::PubRec(Ack::decode(&mut r, version)?),
        PUBREL => Packet::PubRel(Ack::decode(&mut r, version)?),
        PUBCOMP => Packet::PubComp(Ack::decode(&mut r, version)?),
        SUBSCRIBE => Packet::Subscribe(Subscribe::decode(&mut r, version)?),
        SUBACK => Packet::SubAck(SubAck::decode(&mut r, version, Ctx::SubAck)?),
        UNSUBSCRIBE => Packet::Unsubscribe(Unsubscribe::decode(&mut r, version)?),
        UNSUBACK => Packet::UnsubAck(SubAck::decode(&mut r, version, Ctx::UnsubAck)?),
        PINGREQ => Packet::PingReq,
        PINGRESP => Packet::PingResp,
        DISCONNECT => Packet::Disconnect(Disconnect::decode(&mut r, version)?),
        AUTH if v5 => Packet::Auth(Auth::decode(&mut r)?),
        _ => return malformed("a reserved packet type"),
    };
    if !r.is_empty() {
        return malformed("bytes after the packet's last field");
    }
    Ok((packet, size))
}

/// Appends a packet whose first byte is `first` and whose body `body`
/// writes, with the remaining length in front (the body is written in
/// place and moved back over the unused length bytes: no allocation).
pub(crate) fn encode_with(out: &mut Vec<u8>, first: u8, body: impl FnOnce(&mut Vec<u8>)) {
    let start = out.len();
    out.push(first);
    out.extend_from_slice(&[0; 4]);
    let body_start = out.len();
    body(out);
    let len = out.len() - body_start;
    assert!(
        len <= VARINT_MAX as usize,
        "a packet body of {len} bytes: over MQTT's limit"
    );
    let (head, n) = varint_bytes(len as u32);
    out[start + 1..start + 1 + n].copy_from_slice(&head[..n]);
    out.copy_within(body_start.., start + 1 + n);
    out.truncate(start + 1 + n + len);
}

/// `v` as a variable byte integer: its bytes and how many there are.
fn varint_bytes(mut v: u32) -> ([u8; 4], usize) {
    let mut b = [0u8; 4];
    for (i, slot) in b.iter_mut().enumerate() {
        *slot = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            return (b, i + 1);
        }
        *slot |= 0x80;
    }
    (b, 4)
}

/// Appends `p` as a connection speaking `version` sends it.
pub fn encode(p: &Packet<'_>, version: Version, out: &mut Vec<u8>) {
    match p {
        Packet::Connect(c) => encode_with(out, CONNECT << 4, |b| c.encode_body(b)),
        Packet::ConnAck(c) => encode_with(out, CONNACK << 4, |b| c.encode_body(b, version)),
        Packet::Publish(pb) => encode_publish(out, version, pb),
        Packet::PubAck(a) => encode_with(out, PUBACK << 4, |b| a.encode_body(b, version)),
        Packet::PubRec(a) => encode_with(out, PUBREC << 4, |b| a.encode_body(b, version)),
        Packet::PubRel(a) => encode_with(out, PUBREL << 4 | 0x02, |b| a.encode_body(b, version)),
        Packet::PubComp(a) => encode_with(out, PUBCOMP << 4, |b| a.encode_body(b, version)),
        Packet::Subscribe(s) => {
            let filters: Vec<_> = s.filters.collect();
            Subscribe::encode(out, version, s.packet_id, &s.properties, &filters)
        }
        Packet::SubAck(s) => encode_with(out, SUBACK << 4, |b| s.encode_body(b, version)),
        Packet::Unsubscribe(u) => {
            let filters: Vec<_> = u.filters.collect();
            Unsubscribe::encode(out, version, u.packet_id, &u.properties, &filters)
        }
        Packet::UnsubAck(s) => encode_with(out, UNSUBACK << 4, |b| s.encode_body(b, version)),
        Packet::PingReq => out.extend_from_slice(&[PINGREQ << 4, 0]),
        Packet::PingResp => out.extend_from_slice(&[PINGRESP << 4, 0]),
        Packet::Disconnect(d) => encode_with(out, DISCONNECT << 4, |b| d.encode_body(b, version)),
        Packet::Auth(a) => encode_with(out, AUTH << 4, |b| a.encode_body(b)),
    }
}

/// Appends a PUBLISH, its length computed first so the payload is copied
/// once, straight to its place.
pub fn encode_publish(out: &mut Vec<u8>, version: Version, p: &Publish<'_>) {
    let props = if version == Version::V5 {
        p.properties.encoded_len()
    } else {
        0
    };
    let len = 2 + p.topic.len() + if p.packet_id.is_some() { 2 } else { 0 } + props + p.payload.len();
    assert!(
        len <= VARINT_MAX as usize,
        "a PUBLISH of {len} bytes: over MQTT's limit"
    );
    out.reserve(1 + varint_len(len as u32) + len);
    out.push(PUBLISH << 4 | p.flags());
    put_varint(out, len as u32);
    p.encode_head(out, version);
    out.extend_from_slice(p.payload);
}
