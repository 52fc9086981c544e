//! Primitive AMQP field encodings: a borrowing reader and appending writers.
//!
//! All integers are big-endian (network order). Short strings are a u8 length and
//! UTF-8 bytes; long strings a u32 length and raw bytes. Every length is checked
//! against the bytes actually present before anything is sliced, so a lying length
//! is a [`ProtocolError`] (502), never a panic or an allocation.

use crate::error::ProtocolError;
use crate::short::ShortStr;
use crate::table::Table;

/// A cursor over a complete method or header payload.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf }
    }

    /// The bytes not read yet.
    pub fn rest(&self) -> &'a [u8] {
        self.buf
    }

    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    #[inline]
    pub fn take(&mut self, n: usize) -> Result<&'a [u8], ProtocolError> {
        if self.buf.len() < n {
            return Err(ProtocolError::syntax("field runs past the end of the frame"));
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }

    #[inline]
    fn array<const N: usize>(&mut self) -> Result<[u8; N], ProtocolError> {
        let b = self.take(N)?;
        let mut a = [0u8; N];
        a.copy_from_slice(b);
        Ok(a)
    }

    #[inline]
    pub fn u8(&mut self) -> Result<u8, ProtocolError> {
        Ok(self.array::<1>()?[0])
    }

    #[inline]
    pub fn u16(&mut self) -> Result<u16, ProtocolError> {
        Ok(u16::from_be_bytes(self.array()?))
    }

    #[inline]
    pub fn u32(&mut self) -> Result<u32, ProtocolError> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    #[inline]
    pub fn u64(&mut self) -> Result<u64, ProtocolError> {
        Ok(u64::from_be_bytes(self.array()?))
    }

    /// A short string: u8 length, then that many bytes of UTF-8. The length
    /// octet bounds it, so the [`ShortStr`] costs only the UTF-8 check.
    #[inline]
    pub fn shortstr(&mut self) -> Result<ShortStr<'a>, ProtocolError> {
        let len = self.u8()? as usize;
        let bytes = self.take(len)?;
        ShortStr::from_wire(bytes).map_err(|_| ProtocolError::syntax("short string is not UTF-8"))
    }

    /// A long string: u32 length, then that many raw bytes.
    #[inline]
    pub fn longstr(&mut self) -> Result<&'a [u8], ProtocolError> {
        let len = self.u32()? as usize;
        self.take(len)
    }

    /// A field table: u32 length, then validated entries (walked once, not copied).
    #[inline]
    pub fn table(&mut self) -> Result<Table<'a>, ProtocolError> {
        let len = self.u32()? as usize;
        Table::parse(self.take(len)?)
    }
}

#[inline]
pub fn put_u8(out: &mut Vec<u8>, v: u8) {
    out.push(v);
}

#[inline]
pub fn put_u16(out: &mut Vec<u8>, v: u16) {
    out.extend_from_slice(&v.to_be_bytes());
}

#[inline]
pub fn put_u32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_be_bytes());
}

#[inline]
pub fn put_u64(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(&v.to_be_bytes());
}

/// Writes a short string. It takes only a [`ShortStr`], whose constructors
/// check the length, so nothing here can be too long.
#[inline]
pub fn put_shortstr(out: &mut Vec<u8>, s: ShortStr<'_>) {
    out.push(s.len_u8());
    out.extend_from_slice(s.as_bytes());
}

#[inline]
pub fn put_longstr(out: &mut Vec<u8>, s: &[u8]) {
    let len = u32::try_from(s.len()).expect("long string over 4 GiB");
    put_u32(out, len);
    out.extend_from_slice(s);
}

/// Writes a field table from its already-encoded (validated) entry bytes.
#[inline]
pub fn put_table(out: &mut Vec<u8>, t: &Table<'_>) {
    put_longstr(out, t.as_bytes());
}
