//! MQTT's data representations (spec 1.5): two- and four-byte integers,
//! variable byte integers, UTF-8 strings and binary data, each length
//! checked against the bytes present before it is trusted. The reader works
//! inside one packet (whose length the fixed header gave): running out is
//! malformed, never "incomplete".

use crate::error::{malformed, Result};

/// The largest variable byte integer (four bytes of seven bits).
pub const VARINT_MAX: u32 = 268_435_455;

/// Reads one packet's fields, borrowing from its bytes.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf }
    }

    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    pub fn remaining(&self) -> usize {
        self.buf.len()
    }

    pub fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        if n > self.buf.len() {
            return malformed("a field runs past the packet's end");
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }

    /// What is left of the packet (a PUBLISH's payload).
    pub fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.buf)
    }

    pub fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }

    pub fn u16(&mut self) -> Result<u16> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    pub fn u32(&mut self) -> Result<u32> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    pub fn varint(&mut self) -> Result<u32> {
        match decode_varint(self.buf)? {
            Some((v, used)) => {
                self.buf = &self.buf[used..];
                Ok(v)
            }
            None => malformed("a variable byte integer runs past the packet's end"),
        }
    }

    /// Binary data: a two-byte length and the bytes.
    pub fn binary(&mut self) -> Result<&'a [u8]> {
        let n = self.u16()?;
        self.take(n.into())
    }

    /// A UTF-8 string (spec 1.5.4): well-formed, without U+0000.
    pub fn string(&mut self) -> Result<&'a str> {
        let b = self.binary()?;
        let s = std::str::from_utf8(b).or(malformed("a string is not UTF-8"))?;
        if b.contains(&0) {
            return malformed("a string holds U+0000");
        }
        Ok(s)
    }
}

/// A variable byte integer at the start of `buf`: its value and length, or
/// None when `buf` ends inside it. A fifth byte is malformed.
pub fn decode_varint(buf: &[u8]) -> Result<Option<(u32, usize)>> {
    let mut value = 0u32;
    for (i, &b) in buf.iter().enumerate() {
        if i == 4 {
            return malformed("a variable byte integer longer than four bytes");
        }
        value |= u32::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Ok(Some((value, i + 1)));
        }
    }
    if buf.len() >= 4 {
        return malformed("a variable byte integer longer than four bytes");
    }
    Ok(None)
}

/// How many bytes `v` takes as a variable byte integer.
pub const fn varint_len(v: u32) -> usize {
    match v {
        0..=127 => 1,
        128..=16_383 => 2,
        16_384..=2_097_151 => 3,
        _ => 4,
    }
}

pub fn put_varint(out: &mut Vec<u8>, mut v: u32) {
    debug_assert!(v <= VARINT_MAX, "{v} fits no variable byte integer");
    loop {
        let b = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(b);
            return;
        }
        out.push(b | 0x80);
    }
}

pub fn put_u16(out: &mut Vec<u8>, v: u16) {
    out.extend_from_slice(&v.to_be_bytes());
}

pub fn put_u32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_be_bytes());
}

/// Binary data or a string: a two-byte length and the bytes. Callers keep
/// them under 64 KiB (the encoders' inputs are checked where they are made).
pub fn put_binary(out: &mut Vec<u8>, b: &[u8]) {
    debug_assert!(b.len() <= usize::from(u16::MAX), "a field of {} bytes", b.len());
    put_u16(out, b.len().min(usize::from(u16::MAX)) as u16);
    out.extend_from_slice(&b[..b.len().min(usize::from(u16::MAX))]);
}

pub fn put_str(out: &mut Vec<u8>, s: &str) {
    put_binary(out, s.as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::DecodeError;

    #[test]
    fn variable_byte_integers_as_the_spec_tabulates_them() {
        for (v, bytes) in [
            (0u32, &[0x00][..]),
            (127, &[0x7f]),
            (128, &[0x80, 0x01]),
            (16_383, &[0xff, 0x7f]),
            (16_384, &[0x80, 0x80, 0x01]),
            (2_097_151, &[0xff, 0xff, 0x7f]),
            (2_097_152, &[0x80, 0x80, 0x80, 0x01]),
            (VARINT_MAX, &[0xff, 0xff, 0xff, 0x7f]),
        ] {
            let mut out = Vec::new();
            put_varint(&mut out, v);
            assert_eq!(out, bytes, "{v}");
            assert_eq!(varint_len(v), bytes.len());
            assert_eq!(decode_varint(bytes), Ok(Some((v, bytes.len()))));
            assert_eq!(decode_varint(&bytes[..bytes.len() - 1]), Ok(None));
        }
        assert!(matches!(
            decode_varint(&[0xff, 0xff, 0xff, 0xff, 0x01]),
            Err(DecodeError::Malformed(_))
        ));
        assert!(matches!(
            decode_varint(&[0x80, 0x80, 0x80, 0x80]),
            Err(DecodeError::Malformed(_))
        ));
    }

    #[test]
    fn strings_are_utf8_without_nul_and_fit_the_packet() {
        let mut r = Reader::new(&[0, 2, b'h', b'i', 0, 1, 0]);
        assert_eq!(r.string(), Ok("hi"));
        assert!(matches!(r.string(), Err(DecodeError::Malformed(_))), "U+0000");
        assert!(matches!(
            Reader::new(&[0, 1, 0xff]).string(),
            Err(DecodeError::Malformed(_))
        ));
        assert!(matches!(
            Reader::new(&[0, 5, b'a']).string(),
            Err(DecodeError::Malformed(_))
        ));
        assert!(matches!(Reader::new(&[0]).u16(), Err(DecodeError::Malformed(_))));
    }
}
