//! Frames: the 7-byte header, the payload, the frame-end octet.
//!
//! ```text
//! type u8 | channel u16 | size u32 | payload [size] | 0xCE
//! ```
//! [`decode_frame`] parses one frame in place from the front of a receive buffer and
//! says how many bytes it used; bodies, strings and tables borrow from that buffer.
//! The declared size is checked against the negotiated frame_max before the caller
//! is asked for more bytes, so a peer cannot make us wait for (or buffer) a frame we
//! would refuse anyway.

use zerocopy::byteorder::network_endian::{U16, U32};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

use crate::error::{DecodeError, ProtocolError, ReplyCode};
use crate::methods::Method;
use crate::properties::ContentHeader;
use crate::short::ShortStr;
use crate::wire::*;

pub const FRAME_METHOD: u8 = 1;
pub const FRAME_HEADER: u8 = 2;
pub const FRAME_BODY: u8 = 3;
pub const FRAME_HEARTBEAT: u8 = 8;
pub const FRAME_END: u8 = 0xCE;

/// Smallest frame_max a peer may negotiate, and the limit before tuning.
pub const FRAME_MIN_SIZE: u32 = 4096;
/// Header (7) + frame-end (1): what a frame costs beyond its payload.
pub const FRAME_OVERHEAD: usize = 8;

/// The AMQP 0-9-1 protocol header a client sends first.
pub const PROTOCOL_HEADER: [u8; 8] = *b"AMQP\x00\x00\x09\x01";

/// The fixed 7-byte frame header, read in place.
#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned, Debug, Clone, Copy)]
#[repr(C)]
pub struct FrameHeader {
    pub frame_type: u8,
    pub channel: U16,
    pub size: U32,
}

const _: () = assert!(std::mem::size_of::<FrameHeader>() == 7);

/// One decoded frame, borrowing from the receive buffer.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Frame<'a> {
    Method { channel: u16, method: Method<'a> },
    Header { channel: u16, header: ContentHeader<'a> },
    Body { channel: u16, payload: &'a [u8] },
    Heartbeat,
}

impl Frame<'_> {
    pub fn channel(&self) -> u16 {
        match self {
            Frame::Method { channel, .. } | Frame::Header { channel, .. } | Frame::Body { channel, .. } => *channel,
            Frame::Heartbeat => 0,
        }
    }
}

/// A frame split off the buffer but not interpreted: for code that routes frames
/// by channel before decoding them, or copies them through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawFrame<'a> {
    pub frame_type: u8,
    pub channel: u16,
    pub payload: &'a [u8],
}

/// Checks the protocol header. `Malformed` means: reply with [`PROTOCOL_HEADER`]
/// and close the socket, as the spec asks.
pub fn check_protocol_header(buf: &[u8]) -> Result<(), DecodeError> {
    let n = buf.len().min(PROTOCOL_HEADER.len());
    if buf[..n] != PROTOCOL_HEADER[..n] {
        return Err(DecodeError::Malformed(ProtocolError::new(
            ReplyCode::FrameError,
            "unsupported protocol header, expected AMQP 0-9-1",
        )));
    }
    if n < PROTOCOL_HEADER.len() {
        return Err(DecodeError::Incomplete(PROTOCOL_HEADER.len() - n));
    }
    Ok(())
}

/// Splits one frame off the front of `buf`; returns it and the bytes it used.
///
/// `frame_max` is the negotiated maximum frame size including header and end
/// octet; 0 means "no limit" as in connection.tune, which we still cap at u32.
pub fn split_frame(buf: &[u8], frame_max: u32) -> Result<(RawFrame<'_>, usize), DecodeError> {
    let Ok((hdr, rest)) = FrameHeader::ref_from_prefix(buf) else {
        return Err(DecodeError::Incomplete(7 - buf.len()));
    };
    let size = hdr.size.get() as u64;
    let frame_max = if frame_max == 0 { u32::MAX } else { frame_max } as u64;
    if size + FRAME_OVERHEAD as u64 > frame_max {
        return Err(ProtocolError::frame("frame size exceeds the negotiated frame_max").into());
    }
    let size = size as usize;
    if rest.len() < size + 1 {
        return Err(DecodeError::Incomplete(size + 1 - rest.len()));
    }
    if rest[size] != FRAME_END {
        return Err(ProtocolError::frame("frame-end octet missing").into());
    }
    let frame = RawFrame {
        frame_type: hdr.frame_type,
        channel: hdr.channel.get(),
        payload: &rest[..size],
    };
    Ok((frame, 7 + size + 1))
}

impl<'a> RawFrame<'a> {
    /// Interprets the payload according to the frame type.
    pub fn decode(&self) -> Result<Frame<'a>, ProtocolError> {
        let channel = self.channel;
        Ok(match self.frame_type {
            FRAME_METHOD => Frame::Method {
                channel,
                method: Method::decode(self.payload)?,
            },
            FRAME_HEADER => Frame::Header {
                channel,
                header: ContentHeader::decode(self.payload)?,
            },
            FRAME_BODY => Frame::Body {
                channel,
                payload: self.payload,
            },
            FRAME_HEARTBEAT => {
                if channel != 0 {
                    return Err(ProtocolError::frame("heartbeat frame on a non-zero channel"));
                }
                // RabbitMQ only recognises `<<>>` as a heartbeat payload and closes with
                // 501 otherwise; accepting one would let a peer slip data past us.
                if !self.payload.is_empty() {
                    return Err(ProtocolError::frame("heartbeat frame with a payload"));
                }
                Frame::Heartbeat
            }
            _ => return Err(ProtocolError::frame("unknown frame type")),
        })
    }
}

/// Decodes one frame from the front of `buf`; returns it and the bytes it used.
pub fn decode_frame(buf: &[u8], frame_max: u32) -> Result<(Frame<'_>, usize), DecodeError> {
    let (raw, used) = split_frame(buf, frame_max)?;
    Ok((raw.decode()?, used))
}

/// Writes a frame header with a zero size and returns where the payload starts;
/// [`end_frame`] patches the size and appends the frame-end octet.
#[inline]
pub fn begin_frame(out: &mut Vec<u8>, frame_type: u8, channel: u16) -> usize {
    // One 7-byte append rather than three: each append is a capacity check.
    let [c0, c1] = channel.to_be_bytes();
    out.extend_from_slice(&[frame_type, c0, c1, 0, 0, 0, 0]);
    out.len()
}

#[inline]
pub fn end_frame(out: &mut Vec<u8>, payload_start: usize) {
    let size = u32::try_from(out.len() - payload_start).expect("frame payload over 4 GiB");
    out[payload_start - 4..payload_start].copy_from_slice(&size.to_be_bytes());
    out.push(FRAME_END);
}

/// Appends one method frame.
pub fn encode_method(out: &mut Vec<u8>, channel: u16, method: &Method<'_>) {
    let at = begin_frame(out, FRAME_METHOD, channel);
    method.encode_payload(out);
    end_frame(out, at);
}

/// Appends a content header frame and the body frames, splitting the body so no
/// frame exceeds `frame_max` (an empty body sends no body frame, as the spec says).
#[inline]
pub fn encode_content(
    out: &mut Vec<u8>,
    channel: u16,
    class_id: u16,
    properties_raw: &[u8],
    body: &[u8],
    frame_max: u32,
) {
    encode_content_header(out, channel, class_id, properties_raw, body.len() as u64);
    encode_body(out, channel, body, frame_max);
}

#[inline]
pub fn encode_content_header(out: &mut Vec<u8>, channel: u16, class_id: u16, properties_raw: &[u8], body_size: u64) {
    let at = begin_frame(out, FRAME_HEADER, channel);
    // class id, weight 0, body size: one append.
    let mut fixed = [0u8; 12];
    fixed[..2].copy_from_slice(&class_id.to_be_bytes());
    fixed[4..].copy_from_slice(&body_size.to_be_bytes());
    out.extend_from_slice(&fixed);
    out.extend_from_slice(properties_raw);
    end_frame(out, at);
}

/// The largest body chunk one frame may carry under `frame_max`.
#[inline]
pub fn body_chunk_max(frame_max: u32) -> usize {
    let frame_max = if frame_max == 0 { u32::MAX } else { frame_max };
    assert!(frame_max >= FRAME_MIN_SIZE, "frame_max below the spec minimum");
    frame_max as usize - FRAME_OVERHEAD
}

#[inline]
pub fn encode_body(out: &mut Vec<u8>, channel: u16, body: &[u8], frame_max: u32) {
    for chunk in body.chunks(body_chunk_max(frame_max)) {
        let at = begin_frame(out, FRAME_BODY, channel);
        out.extend_from_slice(chunk);
        end_frame(out, at);
    }
}

/// Appends a heartbeat frame.
pub fn encode_heartbeat(out: &mut Vec<u8>) {
    out.extend_from_slice(&[FRAME_HEARTBEAT, 0, 0, 0, 0, 0, 0, FRAME_END]);
}

/// The delivery hot path: basic.deliver + content header + body in one go, with
/// names as raw bytes straight from the store (no UTF-8 re-check, no `Method`).
#[allow(clippy::too_many_arguments)]
pub fn encode_deliver(
    out: &mut Vec<u8>,
    channel: u16,
    consumer_tag: ShortStr<'_>,
    delivery_tag: u64,
    redelivered: bool,
    exchange: ShortStr<'_>,
    routing_key: ShortStr<'_>,
    properties_raw: &[u8],
    body: &[u8],
    frame_max: u32,
) {
    encode_deliver_head(
        out,
        channel,
        consumer_tag,
        delivery_tag,
        redelivered,
        exchange,
        routing_key,
        properties_raw,
        body.len() as u64,
    );
    encode_body(out, channel, body, frame_max);
}

/// [`encode_deliver`] without the body frames: basic.deliver and the content
/// header announcing `body_size`, for a writer that sends the body from elsewhere
/// (the segment mapping), framed by [`body_frame_header`] and [`FRAME_END`].
#[allow(clippy::too_many_arguments)]
pub fn encode_deliver_head(
    out: &mut Vec<u8>,
    channel: u16,
    consumer_tag: ShortStr<'_>,
    delivery_tag: u64,
    redelivered: bool,
    exchange: ShortStr<'_>,
    routing_key: ShortStr<'_>,
    properties_raw: &[u8],
    body_size: u64,
) {
    let at = begin_frame(out, FRAME_METHOD, channel);
    let [k0, k1] = crate::methods::BasicDeliver::CLASS_ID.to_be_bytes();
    let [m0, m1] = crate::methods::BasicDeliver::METHOD_ID.to_be_bytes();
    out.extend_from_slice(&[k0, k1, m0, m1]);
    put_shortstr(out, consumer_tag);
    let mut tag_bits = [0u8; 9];
    tag_bits[..8].copy_from_slice(&delivery_tag.to_be_bytes());
    tag_bits[8] = redelivered as u8;
    out.extend_from_slice(&tag_bits);
    put_shortstr(out, exchange);
    put_shortstr(out, routing_key);
    end_frame(out, at);
    encode_content_header(out, channel, 60, properties_raw, body_size);
}

/// The 7 bytes before a body frame's payload of `len` bytes (the payload and
/// [`FRAME_END`] follow); `len` is at most [`body_chunk_max`].
#[inline]
pub fn body_frame_header(channel: u16, len: usize) -> [u8; 7] {
    let [c0, c1] = channel.to_be_bytes();
    let [s0, s1, s2, s3] = u32::try_from(len).expect("body frame over 4 GiB").to_be_bytes();
    [FRAME_BODY, c0, c1, s0, s1, s2, s3]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::methods::*;
    use crate::properties::BasicProperties;

    #[test]
    fn publish_round_trip_and_incomplete() {
        let mut out = Vec::new();
        let m = Method::BasicPublish(BasicPublish {
            ticket: 0,
            exchange: crate::short!("amq.direct"),
            routing_key: crate::short!("rk"),
            mandatory: true,
            immediate: false,
        });
        encode_method(&mut out, 5, &m);
        let mut props = Vec::new();
        BasicProperties {
            delivery_mode: Some(2),
            ..Default::default()
        }
        .encode(&mut props);
        encode_content(&mut out, 5, 60, &props, b"0123456789abcdef", 4096);
        for cut in 0..out.len() {
            // Every strict prefix of the first frame is "need more", never an error.
            match decode_frame(&out[..cut], 4096) {
                Err(DecodeError::Incomplete(n)) => assert!(n > 0),
                Ok((_, used)) => assert!(used <= cut),
                Err(e) => panic!("prefix {cut}: {e}"),
            }
        }
        let (f, used) = decode_frame(&out, 4096).unwrap();
        assert_eq!(f, Frame::Method { channel: 5, method: m });
        let (f, used2) = decode_frame(&out[used..], 4096).unwrap();
        let Frame::Header { header, .. } = f else { panic!() };
        assert_eq!(header.body_size, 16);
        assert!(header.properties().is_persistent());
        let (f, _) = decode_frame(&out[used + used2..], 4096).unwrap();
        assert_eq!(
            f,
            Frame::Body {
                channel: 5,
                payload: b"0123456789abcdef"
            }
        );
    }

    #[test]
    fn oversize_and_bad_end_are_frame_errors() {
        let mut out = Vec::new();
        encode_body(&mut out, 1, &[7u8; 5000], 131072);
        let err = decode_frame(&out[..7], 4096).unwrap_err();
        assert!(matches!(err, DecodeError::Malformed(ref e) if e.code == ReplyCode::FrameError));
        let last = out.len() - 1;
        out[last] = 0;
        let err = decode_frame(&out, 131072).unwrap_err();
        assert!(matches!(err, DecodeError::Malformed(ref e) if e.code == ReplyCode::FrameError));
    }

    #[test]
    fn body_is_split_at_frame_max() {
        let mut out = Vec::new();
        encode_body(&mut out, 1, &[1u8; 10_000], 4096);
        let mut at = 0;
        let mut sizes = vec![];
        while at < out.len() {
            let (f, used) = decode_frame(&out[at..], 4096).unwrap();
            let Frame::Body { payload, .. } = f else { panic!() };
            sizes.push(payload.len());
            at += used;
        }
        assert_eq!(sizes, vec![4088, 4088, 1824]);
    }

    #[test]
    fn protocol_header() {
        assert_eq!(check_protocol_header(b"AMQ"), Err(DecodeError::Incomplete(5)));
        assert!(check_protocol_header(&PROTOCOL_HEADER).is_ok());
        assert!(matches!(
            check_protocol_header(b"HTTP/1.1"),
            Err(DecodeError::Malformed(_))
        ));
        assert!(matches!(
            check_protocol_header(b"AMQP\x00\x00\x09\x00"),
            Err(DecodeError::Malformed(_))
        ));
    }

    #[test]
    fn heartbeat_on_channel_is_error() {
        let f = [FRAME_HEARTBEAT, 0, 1, 0, 0, 0, 0, FRAME_END];
        assert!(decode_frame(&f, 4096).is_err());
        let mut hb = Vec::new();
        encode_heartbeat(&mut hb);
        assert_eq!(decode_frame(&hb, 4096).unwrap(), (Frame::Heartbeat, 8));
    }
}
