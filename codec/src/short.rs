//! AMQP short strings as types: [`ShortStr`] (borrowed) and [`ShortString`]
//! (owned), both at most 255 bytes of UTF-8.
//!
//! The short-string encoder takes only these, and the only ways to make one are a
//! checked constructor ([`ShortStr::new`], [`ShortString::new`], returning
//! [`TooLong`]), decoding (a u8 length cannot say more than 255), or a string
//! literal checked at compile time ([`ShortStr::lit`] in a `const`). So a name that
//! AMQP cannot carry is refused where it enters (an API request, an import, a
//! definitions record), and no input can reach the encoder's bound: issue 15 found
//! a 256-byte queue name from the HTTP API aborting the broker in the old
//! `assert!` of `put_shortstr`.

use std::borrow::Borrow;
use std::fmt;
use std::ops::Deref;
use std::sync::Arc;

/// A [`ShortStr`] from a string literal, checked at compile time:
/// `short!("amq.direct")`. A literal over 255 bytes does not compile.
#[macro_export]
macro_rules! short {
    ($s:expr) => {{
        const S: $crate::ShortStr<'static> = $crate::ShortStr::lit($s);
        S
    }};
}

/// The most bytes a short string holds (its length is one octet).
pub const SHORTSTR_BYTES_MAX: usize = u8::MAX as usize;

/// A string that AMQP cannot carry as a short string: how long it was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooLong {
    pub len: usize,
}

impl TooLong {
    /// RabbitMQ's text for a queue name (its management API says it for queues;
    /// we say it for every name), e.g. `queue should be less than 255 bytes,
    /// actually was 256`, with `what` the field's name.
    pub fn text(&self, what: &str) -> String {
        format!(
            "{what} should be less than {SHORTSTR_BYTES_MAX} bytes, actually was {}",
            self.len
        )
    }
}

impl fmt::Display for TooLong {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text("short string"))
    }
}

impl std::error::Error for TooLong {}

/// A borrowed short string: `&str` of at most 255 bytes. Free to copy; derefs to
/// `str`.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct ShortStr<'a>(&'a str);

impl<'a> ShortStr<'a> {
    /// The empty short string.
    pub const EMPTY: ShortStr<'static> = ShortStr("");

    /// Checks the length. Free beyond one compare: no copy, no UTF-8 walk (a
    /// `&str` is UTF-8 already).
    #[inline]
    pub const fn new(s: &'a str) -> Result<ShortStr<'a>, TooLong> {
        if s.len() > SHORTSTR_BYTES_MAX {
            return Err(TooLong { len: s.len() });
        }
        Ok(ShortStr(s))
    }

    /// A literal, for `const` items: `const X: ShortStr<'static> =
    /// ShortStr::lit("amq.direct");` fails to compile when the literal is too long.
    /// Outside a `const` it panics instead, so keep it to literals.
    pub const fn lit(s: &'static str) -> ShortStr<'static> {
        match ShortStr::new(s) {
            Ok(v) => v,
            Err(_) => panic!("short string literal over 255 bytes"),
        }
    }

    /// Decoded bytes: the length came from one octet, so only UTF-8 is checked.
    #[inline]
    pub(crate) fn from_wire(bytes: &'a [u8]) -> Result<ShortStr<'a>, std::str::Utf8Error> {
        debug_assert!(bytes.len() <= SHORTSTR_BYTES_MAX);
        std::str::from_utf8(bytes).map(ShortStr)
    }

    /// Bytes that were a short string when stored (a record's exchange or routing
    /// key, whose length is one octet on disk too): checks the length and UTF-8.
    #[inline]
    pub fn from_bytes(bytes: &'a [u8]) -> Option<ShortStr<'a>> {
        if bytes.len() > SHORTSTR_BYTES_MAX {
            return None;
        }
        std::str::from_utf8(bytes).ok().map(ShortStr)
    }

    /// The string, with the lifetime of what it borrows (a deref would tie it to
    /// this value).
    #[inline]
    pub const fn as_str(self) -> &'a str {
        self.0
    }

    /// The length as the wire's length octet.
    #[inline]
    pub const fn len_u8(self) -> u8 {
        self.0.len() as u8
    }

    /// The longest prefix of `s` that fits, cut on a character boundary (for
    /// reply texts, which are ours to shorten; names are refused instead).
    pub fn truncate(s: &'a str) -> ShortStr<'a> {
        if s.len() <= SHORTSTR_BYTES_MAX {
            return ShortStr(s);
        }
        let mut end = SHORTSTR_BYTES_MAX;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        ShortStr(&s[..end])
    }
}

impl Deref for ShortStr<'_> {
    type Target = str;
    #[inline]
    fn deref(&self) -> &str {
        self.0
    }
}

impl AsRef<str> for ShortStr<'_> {
    fn as_ref(&self) -> &str {
        self.0
    }
}

impl Borrow<str> for ShortStr<'_> {
    fn borrow(&self) -> &str {
        self.0
    }
}

impl<'a> TryFrom<&'a str> for ShortStr<'a> {
    type Error = TooLong;
    fn try_from(s: &'a str) -> Result<Self, TooLong> {
        ShortStr::new(s)
    }
}

impl<'a> From<ShortStr<'a>> for &'a str {
    fn from(s: ShortStr<'a>) -> &'a str {
        s.0
    }
}

impl PartialEq<str> for ShortStr<'_> {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl PartialEq<&str> for ShortStr<'_> {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

impl PartialEq<ShortStr<'_>> for str {
    fn eq(&self, other: &ShortStr<'_>) -> bool {
        self == other.0
    }
}

impl PartialEq<ShortStr<'_>> for &str {
    fn eq(&self, other: &ShortStr<'_>) -> bool {
        *self == other.0
    }
}

impl fmt::Debug for ShortStr<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.0, f)
    }
}

impl fmt::Display for ShortStr<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

/// An owned short string, shared (`Arc<str>`): what the broker keeps for names it
/// encodes later (queue and exchange names, binding keys, consumer tags). Hashes,
/// compares and borrows as `str`, so maps keyed by it are looked up with `&str`.
///
/// Equality first asks whether both share one allocation (a name cloned from
/// the map key it is looked up in, the common case on the hot path), then
/// compares with [`names_eq`]: neither calls libc's `memcmp`.
#[derive(Clone, Eq, PartialOrd, Ord)]
pub struct ShortString(Arc<str>);

/// As `str` hashes, so a map keyed by names is looked up with a `&str`.
impl std::hash::Hash for ShortString {
    #[inline]
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        (*self.0).hash(state)
    }
}

impl PartialEq for ShortString {
    #[inline]
    fn eq(&self, other: &ShortString) -> bool {
        Arc::ptr_eq(&self.0, &other.0) || names_eq(&self.0, &other.0)
    }
}

/// Whether two names (at most a few hundred bytes) are equal, compared eight
/// bytes at a time inline, without a call to libc's `memcmp`.
///
/// Why not `==`: slices compare through `memcmp`, and glibc picks its AVX-512
/// variant (`__memcmp_evex_movbe`) on CPUs that have it. On the EPYC VM the
/// project measures on, that variant took 16-20% of the broker's CPU in 1p1c
/// (`perf record`, about 8 name comparisons a message), while the AVX2 variant
/// of the same calls, forced with `GLIBC_TUNABLES=glibc.cpu.hwcaps=-AVX512BW`,
/// took 2%, and the broker consumed 1.20x the messages. Names are short, so a
/// word loop costs a few instructions and no call.
#[inline]
pub fn names_eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let mut wa = a.chunks_exact(8);
    let mut wb = b.chunks_exact(8);
    for (x, y) in (&mut wa).zip(&mut wb) {
        if word(x) != word(y) {
            return false;
        }
    }
    let (ra, rb) = (wa.remainder(), wb.remainder());
    let mut i = 0;
    while i < ra.len() {
        if ra[i] != rb[i] {
            return false;
        }
        i += 1;
    }
    true
}

#[inline(always)]
fn word(b: &[u8]) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(b);
    u64::from_ne_bytes(w)
}

impl ShortString {
    /// Checks the length and copies.
    pub fn new(s: &str) -> Result<ShortString, TooLong> {
        ShortStr::new(s).map(ShortString::from)
    }

    /// Checks the length of an already shared string (no copy).
    pub fn from_arc(s: Arc<str>) -> Result<ShortString, TooLong> {
        ShortStr::new(&s)?;
        Ok(ShortString(s))
    }

    /// The borrowed form, for encoding: free.
    #[inline]
    pub fn as_short(&self) -> ShortStr<'_> {
        ShortStr(&self.0)
    }

    #[inline]
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The shared string inside.
    #[inline]
    pub fn as_arc(&self) -> &Arc<str> {
        &self.0
    }
}

impl From<ShortStr<'_>> for ShortString {
    fn from(s: ShortStr<'_>) -> ShortString {
        ShortString(Arc::from(s.0))
    }
}

impl From<ShortString> for Arc<str> {
    fn from(s: ShortString) -> Arc<str> {
        s.0
    }
}

impl TryFrom<&str> for ShortString {
    type Error = TooLong;
    fn try_from(s: &str) -> Result<Self, TooLong> {
        ShortString::new(s)
    }
}

impl TryFrom<String> for ShortString {
    type Error = TooLong;
    fn try_from(s: String) -> Result<Self, TooLong> {
        ShortStr::new(&s)?;
        Ok(ShortString(Arc::from(s)))
    }
}

impl Default for ShortString {
    fn default() -> Self {
        ShortString(Arc::from(""))
    }
}

impl Deref for ShortString {
    type Target = str;
    #[inline]
    fn deref(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for ShortString {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl Borrow<str> for ShortString {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl PartialEq<str> for ShortString {
    fn eq(&self, other: &str) -> bool {
        names_eq(&self.0, other)
    }
}

impl PartialEq<&str> for ShortString {
    fn eq(&self, other: &&str) -> bool {
        names_eq(&self.0, other)
    }
}

impl PartialEq<ShortStr<'_>> for ShortString {
    fn eq(&self, other: &ShortStr<'_>) -> bool {
        names_eq(&self.0, other.0)
    }
}

impl PartialEq<ShortString> for ShortStr<'_> {
    fn eq(&self, other: &ShortString) -> bool {
        names_eq(self.0, &other.0)
    }
}

impl<'a> From<&'a ShortString> for ShortStr<'a> {
    fn from(s: &'a ShortString) -> ShortStr<'a> {
        s.as_short()
    }
}

impl fmt::Debug for ShortString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl fmt::Display for ShortString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A reusable owned short string: its buffer is kept across [`ShortBuf::set`]s,
/// so a message being received holds its exchange and routing key without an
/// allocation per publish. Set only from a [`ShortStr`], so it stays one.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct ShortBuf(String);

impl ShortBuf {
    #[inline]
    pub fn set(&mut self, s: ShortStr<'_>) {
        self.0.clear();
        self.0.push_str(s.0);
    }

    #[inline]
    pub fn as_short(&self) -> ShortStr<'_> {
        ShortStr(&self.0)
    }
}

impl Deref for ShortBuf {
    type Target = str;
    #[inline]
    fn deref(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ShortBuf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_and_texts() {
        let s255 = "q".repeat(255);
        assert_eq!(ShortStr::new(&s255).unwrap().len(), 255);
        let s256 = "q".repeat(256);
        let e = ShortStr::new(&s256).unwrap_err();
        assert_eq!(e.text("queue"), "queue should be less than 255 bytes, actually was 256");
        assert!(ShortString::new(&s256).is_err());
        const LIT: ShortStr<'static> = ShortStr::lit("amq.direct");
        assert_eq!(LIT, "amq.direct");
    }

    #[test]
    fn truncate_cuts_on_a_character_boundary() {
        let s = format!("{}é", "a".repeat(254));
        assert_eq!(s.len(), 256);
        assert_eq!(ShortStr::truncate(&s).len(), 254);
        assert_eq!(ShortStr::truncate("short"), "short");
    }

    #[test]
    fn names_eq_is_byte_equality_at_every_length_and_position() {
        for len in 0..=40usize {
            let a: String = (0..len).map(|i| (b'a' + (i % 26) as u8) as char).collect();
            assert!(names_eq(&a, &a.clone()), "len {len}");
            for at in 0..len {
                let mut b = a.clone().into_bytes();
                b[at] = b'#';
                let b = String::from_utf8(b).unwrap();
                assert!(!names_eq(&a, &b), "len {len}, differs at {at}");
            }
            let longer = format!("{a}x");
            assert!(!names_eq(&a, &longer) && !names_eq(&longer, &a), "len {len}");
        }
        let a = ShortString::new("orders").unwrap();
        let b = ShortString::new("orders").unwrap();
        assert!(a == b && a == a.clone() && a == "orders" && a != "order");
        assert!(a != ShortString::new("orderz").unwrap());
    }
}
