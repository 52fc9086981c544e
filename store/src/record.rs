//! The on-disk layout of message segments: the ONE place that defines it.
//!
//! ```text
//! segment file msgs.NNNNNNNNNN
//!   offset 0   SegmentHeader  (8 bytes)  magic "RMQS", format version u32 LE
//!   offset 8   record, record, ...        back to back, no padding
//!   then       a zero length word (version 2), then zeros or stale bytes up to the
//!              preallocated size (or EOF after a clean close or rollover)
//!
//! record (all integers little-endian)
//!   0  u32  total_len        whole record including this header; 0 = end of data
//!   4  u32  crc              CRC32C of the seed, then bytes 0..4 and 8..total_len
//!   8  u64  timestamp_ms
//!   16 u32  properties_len
//!   20 u8   exchange_len
//!   21 u8   routing_key_len
//!   22 u8   kind             RECORD_KIND_MESSAGE or RECORD_KIND_MESSAGE_UNRECOVERED
//!   23 u8   reserved         0
//!   24 exchange | routing key | properties (opaque) | body (the rest)
//! ```
//!
//! Little-endian because every machine we run on is, so decoding is a plain load; the
//! layout is still explicit (zerocopy `little_endian` types), never `repr(Rust)`.
//!
//! Why a zero length means "end of data": segments are preallocated with zeros and
//! written through mmap, so after a crash the tail of the last segment is zeros. A real
//! record is never shorter than [`RECORD_HEADER_BYTES`], so `total_len == 0` cannot be
//! data. The CRC covers the length too, so a torn length word is caught like any other
//! torn byte.
//!
//! Version 2 (recycled segments): a fully acked segment file is reused as a later
//! segment instead of being deleted, because writing into page-cache pages that
//! already exist is ~6x cheaper than into fresh ones (measured here: 4 µs vs 24-38 µs
//! per 64 KiB `pwrite`; a fresh page is allocated, zeroed, and on this VM first
//! touched through the hypervisor). Its tail then holds records of its previous
//! life, with valid CRCs. Two rules keep them from ever being read as data: every
//! writer puts a zero length word right after each record it appends (so the end of
//! the data is marked even over stale bytes), and the CRC is seeded with the
//! segment id ([`CrcSeed`]), which differs between lives, so a stale record behind a
//! torn write fails its check. A recycled file's header says version 3 (what follows
//! the end mark is stale, not damage); fresh files are version 2 (seeded, zero tail).
//! Version 1 files (seed 0, zero tail) are still read.
//!
//! Records of messages that no recovery keeps (a transient message, or any message
//! of a transient queue: RabbitMQ and ringmq drop both at a restart, and a
//! transient queue's folder is wiped at start) are [`RECORD_KIND_MESSAGE_UNRECOVERED`]:
//! their CRC covers the header, exchange, routing key and properties, not the body.
//! Everything recovery needs to walk past such a record and decide about it (the
//! length, the properties' delivery mode) is still checked; a torn body is never
//! delivered because the record is dropped at recovery. Checksumming a 64 KiB body
//! cost 3-5% of the broker's CPU at 64 KiB. (Builds before this kind read such a
//! record as damage.)

use zerocopy::little_endian::{U32, U64};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

/// First bytes of every segment file.
pub const SEGMENT_MAGIC: [u8; 4] = *b"RMQS";
/// Bumped on any change to this file's layout. New segments are written as this.
pub const SEGMENT_FORMAT_VERSION: u32 = 2;
/// The first version: CRCs unseeded, the tail after the data all zeros.
pub const SEGMENT_FORMAT_V1: u32 = 1;
/// A recycled version 2 file: bytes after the end mark are stale, not damage. Fresh
/// files keep the stricter rule (anything non-zero after the data is damage, and
/// reported), so only recycled files give up that check.
pub const SEGMENT_FORMAT_RECYCLED: u32 = 3;
/// Bytes of the end-of-data mark a version 2 writer puts after each record.
pub const END_MARK_BYTES: u32 = 4;
/// Size of [`SegmentHeader`]; the first record starts here.
pub const SEGMENT_HEADER_BYTES: u32 = 8;
/// Size of [`RecordHeader`].
pub const RECORD_HEADER_BYTES: u32 = 24;
/// `kind` of a message record (the only kind so far; others are reserved for e.g.
/// stream index markers, and recovery rejects unknown kinds).
pub const RECORD_KIND_MESSAGE: u8 = 1;
/// `kind` of a message record whose CRC leaves the body out (see the module docs):
/// written only for messages that recovery drops.
pub const RECORD_KIND_MESSAGE_UNRECOVERED: u8 = 2;
/// AMQP short strings (exchange, routing key) are at most this long.
pub const SHORT_STR_MAX_BYTES: usize = 255;
/// Hard ceiling on one record, whatever the configuration: offsets and sizes are u32 and
/// a segment holding one record must still fit [`crate::MAX_SEGMENT_BYTES`].
pub const RECORD_MAX_BYTES: u32 = 1 << 30;

/// Header at offset 0 of each segment file.
#[repr(C)]
#[derive(Debug, Clone, Copy, FromBytes, IntoBytes, Immutable, KnownLayout, Unaligned)]
pub struct SegmentHeader {
    /// [`SEGMENT_MAGIC`].
    pub magic: [u8; 4],
    /// [`SEGMENT_FORMAT_VERSION`].
    pub version: U32,
}

/// Fixed header of each record.
#[repr(C)]
#[derive(Debug, Clone, Copy, FromBytes, IntoBytes, Immutable, KnownLayout, Unaligned)]
pub struct RecordHeader {
    /// Whole record length including this header.
    pub total_len: U32,
    /// CRC32C over `total_len` and everything after this field.
    pub crc: U32,
    /// Publish time, milliseconds since the Unix epoch (given by the caller: sans-IO).
    pub timestamp_ms: U64,
    /// Length of the encoded basic properties.
    pub properties_len: U32,
    /// Length of the exchange name.
    pub exchange_len: u8,
    /// Length of the routing key.
    pub routing_key_len: u8,
    /// [`RECORD_KIND_MESSAGE`] or [`RECORD_KIND_MESSAGE_UNRECOVERED`].
    pub kind: u8,
    /// Must be 0.
    pub reserved: u8,
}

const _: () = assert!(size_of::<SegmentHeader>() == SEGMENT_HEADER_BYTES as usize);
const _: () = assert!(size_of::<RecordHeader>() == RECORD_HEADER_BYTES as usize);
const _: () = assert!(align_of::<RecordHeader>() == 1);
// The CRC field must sit right after the length so "0..4 and 8.." is the whole header
// except the CRC itself.
const _: () = assert!(core::mem::offset_of!(RecordHeader, crc) == 4);
const _: () = assert!(core::mem::offset_of!(RecordHeader, timestamp_ms) == 8);
const _: () = assert!(RECORD_MAX_BYTES < crate::MAX_SEGMENT_BYTES - SEGMENT_HEADER_BYTES);

/// A message to append: borrowed slices, so the body is copied once, into the segment.
#[derive(Debug, Clone, Copy)]
pub struct MessageRef<'a> {
    /// Publish time in ms since the epoch.
    pub timestamp_ms: u64,
    /// Exchange name (short string).
    pub exchange: &'a [u8],
    /// Routing key (short string).
    pub routing_key: &'a [u8],
    /// Encoded basic properties; opaque to the store.
    pub properties: &'a [u8],
    /// Message body.
    pub body: &'a [u8],
}

/// Whether a record's CRC covers its body (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyCrc {
    /// The whole record is checksummed: a message recovery may keep.
    Checked,
    /// The body is left out: a message no recovery keeps (transient, or in a
    /// transient queue).
    Unrecovered,
}

impl BodyCrc {
    /// [`BodyCrc::Checked`] for a message a recovery may keep, else [`BodyCrc::Unrecovered`].
    pub fn when_kept(kept: bool) -> BodyCrc {
        if kept {
            BodyCrc::Checked
        } else {
            BodyCrc::Unrecovered
        }
    }

    fn kind(self) -> u8 {
        match self {
            BodyCrc::Checked => RECORD_KIND_MESSAGE,
            BodyCrc::Unrecovered => RECORD_KIND_MESSAGE_UNRECOVERED,
        }
    }
}

/// A record read back: slices borrow the segment mapping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MessageView<'a> {
    /// Publish time in ms since the epoch.
    pub timestamp_ms: u64,
    /// Exchange name.
    pub exchange: &'a [u8],
    /// Routing key.
    pub routing_key: &'a [u8],
    /// Encoded basic properties.
    pub properties: &'a [u8],
    /// Message body.
    pub body: &'a [u8],
}

/// Why bytes are not a valid record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    /// A zero length word: the preallocated tail, i.e. the end of the data.
    #[error("end of data (zero length)")]
    EndOfData,
    /// The record runs past the end of the segment's data (torn write).
    #[error("record runs past the end of the data")]
    Truncated,
    /// Length smaller than a header or above [`RECORD_MAX_BYTES`].
    #[error("implausible record length")]
    BadLength,
    /// Field lengths do not add up, or unknown kind / nonzero reserved byte.
    #[error("malformed record header")]
    BadHeader,
    /// Checksum mismatch.
    #[error("checksum mismatch")]
    Checksum,
}

/// What a segment's record CRCs start from: 0 in version 1 files, the CRC32C of the
/// segment id in version 2 (see the module docs: a recycled file's stale records
/// carry the seed of its previous id and so fail the check).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CrcSeed(u32);

impl CrcSeed {
    /// Version 1 files: plain CRC32C.
    pub const V1: CrcSeed = CrcSeed(0);

    /// The seed of segment `id` in a version 2 file.
    pub fn for_segment(id: crate::SegmentId) -> CrcSeed {
        CrcSeed(crc32c::crc32c(&id.0.to_le_bytes()))
    }

    /// The seed for a file of `version` with id `id`.
    pub fn for_version(version: u32, id: crate::SegmentId) -> CrcSeed {
        if version == SEGMENT_FORMAT_V1 {
            CrcSeed::V1
        } else {
            CrcSeed::for_segment(id)
        }
    }
}

/// Length on disk of `msg`, validating the short strings and the limit.
pub fn encoded_len(msg: &MessageRef<'_>, max_record_bytes: u32) -> Result<u32, crate::StoreError> {
    for (field, s) in [("exchange", msg.exchange), ("routing key", msg.routing_key)] {
        if s.len() > SHORT_STR_MAX_BYTES {
            return Err(crate::StoreError::ShortStrTooLong { field, len: s.len() });
        }
    }
    let len = u64::from(RECORD_HEADER_BYTES)
        + msg.exchange.len() as u64
        + msg.routing_key.len() as u64
        + msg.properties.len() as u64
        + msg.body.len() as u64;
    let max = max_record_bytes.min(RECORD_MAX_BYTES);
    if len > u64::from(max) {
        return Err(crate::StoreError::MessageTooLarge {
            record_bytes: len,
            max_bytes: u64::from(max),
        });
    }
    Ok(len as u32)
}

/// Records up to this size get their CRC in one pass over the bytes just
/// written, not part by part: each `crc32c_append` call has a fixed cost (~100
/// instructions) that the six parts of a small record paid six times (about
/// 600 instructions, 9% of the broker's per-message total at 16 B). The bytes
/// are in L1 right after the copy. Larger records keep the per-part pass over
/// the caller's slices, where the call cost does not matter.
const CRC_AFTER_COPY_BYTES_MAX: usize = 4096;

/// Writes `msg` into `dst`, which must be exactly [`encoded_len`] bytes. This is the
/// single copy of the body.
pub fn encode_into(dst: &mut [u8], msg: &MessageRef<'_>, seed: CrcSeed, body: BodyCrc) {
    let mut at = RECORD_HEADER_BYTES as usize;
    for part in [msg.exchange, msg.routing_key, msg.properties, msg.body] {
        dst[at..at + part.len()].copy_from_slice(part);
        at += part.len();
    }
    assert_eq!(
        at,
        dst.len(),
        "encode_into: destination must be exactly encoded_len bytes"
    );
    if dst.len() <= CRC_AFTER_COPY_BYTES_MAX {
        let mut header = header_fields(dst.len() as u32, msg, body);
        dst[..RECORD_HEADER_BYTES as usize].copy_from_slice(header.as_bytes());
        // The length word alone through the table: a crate call costs more
        // than its 4 bytes (`crc`).
        let crc = crate::crc::append_short(seed.0, &dst[0..4]);
        let covered = match body {
            BodyCrc::Checked => dst.len(),
            BodyCrc::Unrecovered => dst.len() - msg.body.len(),
        };
        header.crc = U32::new(crc32c::crc32c_append(crc, &dst[8..covered]));
        dst[..RECORD_HEADER_BYTES as usize].copy_from_slice(header.as_bytes());
    } else {
        let header = encode_header(dst.len() as u32, msg, seed, body);
        dst[..RECORD_HEADER_BYTES as usize].copy_from_slice(header.as_bytes());
    }
}

/// The record header of `msg` (with its CRC over every part it covers), for writers
/// that gather the parts themselves (`pwritev` of large records).
pub fn encode_header(total_len: u32, msg: &MessageRef<'_>, seed: CrcSeed, body: BodyCrc) -> RecordHeader {
    let mut header = header_fields(total_len, msg, body);
    let hb = header.as_bytes();
    let mut crc = crate::crc::append_short(seed.0, &hb[0..4]);
    crc = crc32c::crc32c_append(crc, &hb[8..]);
    for part in [msg.exchange, msg.routing_key, msg.properties] {
        crc = crc32c::crc32c_append(crc, part);
    }
    if body == BodyCrc::Checked {
        crc = crc32c::crc32c_append(crc, msg.body);
    }
    header.crc = U32::new(crc);
    header
}

/// The header of `msg` with its CRC still 0.
fn header_fields(total_len: u32, msg: &MessageRef<'_>, body: BodyCrc) -> RecordHeader {
    RecordHeader {
        total_len: U32::new(total_len),
        crc: U32::new(0),
        timestamp_ms: U64::new(msg.timestamp_ms),
        properties_len: U32::new(msg.properties.len() as u32),
        exchange_len: msg.exchange.len() as u8,
        routing_key_len: msg.routing_key.len() as u8,
        kind: body.kind(),
        reserved: 0,
    }
}

/// Reads the length word at the start of `buf` (0 if fewer than 4 bytes remain, which
/// is "end of data" too).
pub fn peek_len(buf: &[u8]) -> u32 {
    match buf.get(..4) {
        Some(b) => u32::from_le_bytes([b[0], b[1], b[2], b[3]]),
        None => 0,
    }
}

/// Decodes and fully verifies (lengths and CRC from `seed`) the record at the start
/// of `buf`; `buf` may extend past the record (to the end of the segment's data).
pub fn decode(buf: &[u8], seed: CrcSeed) -> Result<(MessageView<'_>, u32), RecordError> {
    decode_inner(buf, Some(seed))
}

/// Like [`decode`], with every structural check but without the CRC pass: for
/// reads of records that were CRC-checked when written this run or when the
/// segment was recovered at open (recovery checks every record). A 64 KiB
/// delivery spent ~4% of the broker's CPU re-checking it.
pub fn decode_verified(buf: &[u8]) -> Result<(MessageView<'_>, u32), RecordError> {
    decode_inner(buf, None)
}

/// Every check of [`decode`] but the CRC: the length word is in bounds, the record
/// fits in `buf`, and the header's fields are sane. Returns the header and the
/// record's bytes. Cheap (no pass over the record), so recovery can try it at every
/// byte of a damaged span when it looks for the next intact record.
pub(crate) fn check_frame(buf: &[u8]) -> Result<(&RecordHeader, &[u8]), RecordError> {
    if buf.len() < 4 {
        return if buf.iter().all(|&b| b == 0) {
            Err(RecordError::EndOfData)
        } else {
            Err(RecordError::Truncated)
        };
    }
    let total_len = peek_len(buf);
    if total_len == 0 {
        return Err(RecordError::EndOfData);
    }
    if !(RECORD_HEADER_BYTES..=RECORD_MAX_BYTES).contains(&total_len) {
        return Err(RecordError::BadLength);
    }
    let Some(rec) = buf.get(..total_len as usize) else {
        return Err(RecordError::Truncated);
    };
    let (header, rest) = RecordHeader::ref_from_prefix(rec).map_err(|_| RecordError::Truncated)?;
    let ex = header.exchange_len as usize;
    let rk = header.routing_key_len as usize;
    let props = header.properties_len.get() as usize;
    let known = header.kind == RECORD_KIND_MESSAGE || header.kind == RECORD_KIND_MESSAGE_UNRECOVERED;
    if !known || header.reserved != 0 || ex + rk + props > rest.len() {
        return Err(RecordError::BadHeader);
    }
    Ok((header, rec))
}

fn decode_inner(buf: &[u8], check_crc: Option<CrcSeed>) -> Result<(MessageView<'_>, u32), RecordError> {
    let (header, rec) = check_frame(buf)?;
    let total_len = rec.len() as u32;
    let rest = &rec[RECORD_HEADER_BYTES as usize..];
    let ex = header.exchange_len as usize;
    let rk = header.routing_key_len as usize;
    let props = header.properties_len.get() as usize;
    if let Some(seed) = check_crc {
        let mut crc = crate::crc::append_short(seed.0, &rec[0..4]);
        let covered = if header.kind == RECORD_KIND_MESSAGE_UNRECOVERED {
            RECORD_HEADER_BYTES as usize + ex + rk + props
        } else {
            rec.len()
        };
        crc = crc32c::crc32c_append(crc, &rec[8..covered]);
        if crc != header.crc.get() {
            return Err(RecordError::Checksum);
        }
    }
    let (exchange, rest) = rest.split_at(ex);
    let (routing_key, rest) = rest.split_at(rk);
    let (properties, body) = rest.split_at(props);
    let view = MessageView {
        timestamp_ms: header.timestamp_ms.get(),
        exchange,
        routing_key,
        properties,
        body,
    };
    Ok((view, total_len))
}

/// The header a new segment starts with: [`SEGMENT_FORMAT_VERSION`], or
/// [`SEGMENT_FORMAT_RECYCLED`] for a reused file.
pub fn segment_header(recycled: bool) -> SegmentHeader {
    let version = if recycled {
        SEGMENT_FORMAT_RECYCLED
    } else {
        SEGMENT_FORMAT_VERSION
    };
    SegmentHeader {
        magic: SEGMENT_MAGIC,
        version: U32::new(version),
    }
}

/// The format version if `buf` starts with a valid segment header.
pub fn check_segment_header(buf: &[u8]) -> Option<u32> {
    match SegmentHeader::ref_from_prefix(buf) {
        Ok((h, _)) if h.magic == SEGMENT_MAGIC => {
            let v = h.version.get();
            [SEGMENT_FORMAT_V1, SEGMENT_FORMAT_VERSION, SEGMENT_FORMAT_RECYCLED]
                .contains(&v)
                .then_some(v)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg<'a>(body: &'a [u8]) -> MessageRef<'a> {
        MessageRef {
            timestamp_ms: 42,
            exchange: b"amq.direct",
            routing_key: b"rk",
            properties: b"\x00\x01",
            body,
        }
    }

    /// The one-pass CRC of small records and the per-part CRC of large ones
    /// (and of `pwritev` writers) are the same checksum, on both sides of the
    /// threshold.
    #[test]
    fn small_and_large_records_carry_the_per_part_crc() {
        let seed = CrcSeed::for_segment(crate::SegmentId(3));
        let limit = CRC_AFTER_COPY_BYTES_MAX;
        for body_len in [
            0,
            1,
            16,
            limit - 60,
            limit - 48,
            limit - 47,
            limit,
            limit + 1,
            3 * limit,
        ] {
            let body: Vec<u8> = (0..body_len).map(|i| (i * 7) as u8).collect();
            let m = msg(&body);
            let len = encoded_len(&m, u32::MAX).unwrap();
            let mut buf = vec![0u8; len as usize];
            encode_into(&mut buf, &m, seed, BodyCrc::Checked);
            let header = encode_header(len, &m, seed, BodyCrc::Checked);
            assert_eq!(
                &buf[..RECORD_HEADER_BYTES as usize],
                header.as_bytes(),
                "body {body_len}"
            );
            let (v, l) = decode(&buf, seed).unwrap();
            assert_eq!((v.body, l), (&body[..], len));
        }
    }

    #[test]
    fn round_trip_and_every_bit_flip_is_caught() {
        let m = msg(b"hello world");
        let len = encoded_len(&m, u32::MAX).unwrap();
        let mut buf = vec![0u8; len as usize];
        let seed = CrcSeed::for_segment(crate::SegmentId(7));
        encode_into(&mut buf, &m, seed, BodyCrc::Checked);
        let (v, l) = decode(&buf, seed).unwrap();
        assert_eq!(l, len);
        assert_eq!(
            (v.timestamp_ms, v.exchange, v.routing_key, v.properties, v.body),
            (
                42,
                &b"amq.direct"[..],
                &b"rk"[..],
                &b"\x00\x01"[..],
                &b"hello world"[..]
            )
        );
        for bit in 0..buf.len() * 8 {
            let mut c = buf.clone();
            c[bit / 8] ^= 1 << (bit % 8);
            assert!(decode(&c, seed).is_err(), "bit {bit} flip not detected");
        }
    }

    /// A record of a message no recovery keeps: its header, exchange, routing key
    /// and properties are checked (a flipped bit there is caught, so recovery can
    /// trust its length and delivery mode), its body is not; small and large
    /// records agree, and another segment's seed still fails it.
    #[test]
    fn an_unrecovered_record_checks_all_but_its_body() {
        let seed = CrcSeed::for_segment(crate::SegmentId(5));
        for body_len in [0, 11, CRC_AFTER_COPY_BYTES_MAX, 3 * CRC_AFTER_COPY_BYTES_MAX] {
            let body: Vec<u8> = (0..body_len).map(|i| (i * 13) as u8).collect();
            let m = msg(&body);
            let len = encoded_len(&m, u32::MAX).unwrap();
            let mut buf = vec![0u8; len as usize];
            encode_into(&mut buf, &m, seed, BodyCrc::Unrecovered);
            let header = encode_header(len, &m, seed, BodyCrc::Unrecovered);
            assert_eq!(
                &buf[..RECORD_HEADER_BYTES as usize],
                header.as_bytes(),
                "body {body_len}"
            );
            assert_eq!(header.kind, RECORD_KIND_MESSAGE_UNRECOVERED);
            let (v, l) = decode(&buf, seed).unwrap();
            assert_eq!((v.body, v.properties, l), (&body[..], &b"\x00\x01"[..], len));
            let meta_end = buf.len() - body.len();
            for bit in 0..buf.len() * 8 {
                let mut c = buf.clone();
                c[bit / 8] ^= 1 << (bit % 8);
                if bit / 8 < meta_end {
                    assert!(
                        decode(&c, seed).is_err(),
                        "body {body_len}: bit {bit} flip not detected"
                    );
                } else {
                    assert!(
                        decode(&c, seed).is_ok(),
                        "body {body_len}: bit {bit}: the body is not checked"
                    );
                }
            }
            assert_eq!(
                decode(&buf, CrcSeed::for_segment(crate::SegmentId(6))).unwrap_err(),
                RecordError::Checksum
            );
        }
    }

    #[test]
    fn a_record_of_another_segment_life_fails_its_crc() {
        let m = msg(b"stale");
        let len = encoded_len(&m, u32::MAX).unwrap();
        let mut buf = vec![0u8; len as usize];
        encode_into(
            &mut buf,
            &m,
            CrcSeed::for_segment(crate::SegmentId(3)),
            BodyCrc::Checked,
        );
        assert!(decode(&buf, CrcSeed::for_segment(crate::SegmentId(3))).is_ok());
        assert_eq!(
            decode(&buf, CrcSeed::for_segment(crate::SegmentId(4))).unwrap_err(),
            RecordError::Checksum
        );
        assert_eq!(decode(&buf, CrcSeed::V1).unwrap_err(), RecordError::Checksum);
    }

    #[test]
    fn limits_are_enforced() {
        let long = [b'x'; 256];
        let m = MessageRef {
            exchange: &long,
            ..msg(b"")
        };
        assert!(matches!(
            encoded_len(&m, u32::MAX),
            Err(crate::StoreError::ShortStrTooLong { .. })
        ));
        assert!(matches!(
            encoded_len(&msg(&[0; 100]), 64),
            Err(crate::StoreError::MessageTooLarge { .. })
        ));
        assert_eq!(decode(&[0u8; 16], CrcSeed::V1).unwrap_err(), RecordError::EndOfData);
        assert_eq!(decode(&[], CrcSeed::V1).unwrap_err(), RecordError::EndOfData);
    }
}
