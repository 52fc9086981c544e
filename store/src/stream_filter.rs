//! [`SegmentFilter`]: what a stream segment holds of `x-stream-filter-value`s
//! (issue 20), so a filtered reader skips a segment without reading it, as
//! RabbitMQ 3.13 skips chunks: a Bloom filter of the values of its messages,
//! and whether any of them has none ("unfiltered").
//!
//! A Bloom filter answers "maybe" or "certainly not". A "maybe" that is wrong
//! (a false positive) costs reading the segment, whose messages are then
//! checked one by one anyway; a wrong "certainly not" would be a lost
//! delivery, so nothing here may ever say "not" of a value a segment holds,
//! across crashes too.
//!
//! Persisted beside the segment (`filter.N`) when the segment is sealed (the
//! writer moved on: a sealed segment never changes again, recovered ones
//! included: the store writes new records only into new segments). The file
//! names the record count and bytes it covers and carries a CRC; at open it is
//! used only when both equal what recovery found in the segment, else the
//! summary is rebuilt from the records. Recovery only ever removes records (a
//! torn tail, a damaged one), which changes the count, so a stale file is never
//! used. Files of segments that are gone are removed at open, before a new
//! segment could take the id. Not synced: a torn or lost file is rebuilt.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::SegmentId;

/// Bytes of a segment's Bloom filter. Fixed, so a segment's summary has a
/// bound whatever it holds: 4096 bits with [`BLOOM_HASHES`] probes answer
/// "maybe" for a value a segment does not hold about 0.1% of the time when the
/// segment holds 200 distinct values, 2% at 500; past a few thousand values
/// nearly always (the reader then reads the segment: slower, never wrong).
/// Per segment of 8 MiB (the default) it is 0.006% of the data, and a segment
/// whose messages have no filter value holds none (the filter is boxed on the
/// first value).
pub const BLOOM_BYTES: usize = 512;
const BLOOM_BITS: u32 = (BLOOM_BYTES * 8) as u32;
const BLOOM_HASHES: u32 = 4;
const _: () = assert!(BLOOM_BITS.is_power_of_two(), "probes are masked, not divided");

/// A message's filter value, read from its encoded properties: the broker's
/// job (the store does not parse AMQP properties), handed to
/// [`crate::StreamStore::open`] so recovery can rebuild summaries.
pub type FilterValueOf = for<'a> fn(&'a [u8]) -> Option<&'a [u8]>;

/// A filter value hashed once (a reader's values are hashed when it attaches,
/// not per segment). Two CRC32Cs with different seeds, combined as
/// Kirsch-Mitzenmacher double hashing: stable across versions and restarts,
/// which the persisted filters need.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FilterKey {
    h1: u32,
    h2: u32,
}

impl FilterKey {
    pub fn of(value: &[u8]) -> Self {
        Self {
            h1: crc32c::crc32c(value),
            h2: crc32c::crc32c_append(0x9e37_79b9, value) | 1,
        }
    }

    fn bits(self) -> impl Iterator<Item = u32> {
        (0..BLOOM_HASHES).map(move |i| self.h1.wrapping_add(i.wrapping_mul(self.h2)) & (BLOOM_BITS - 1))
    }
}

/// What a reader asks for: messages with one of `keys`' values, and those
/// without one when `match_unfiltered`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilterQuery {
    pub keys: Vec<FilterKey>,
    pub match_unfiltered: bool,
}

/// What one segment holds of filter values. See the module docs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SegmentFilter {
    unfiltered: bool,
    bloom: Option<Box<[u8; BLOOM_BYTES]>>,
}

impl SegmentFilter {
    /// A message with this filter value (None: without one) is in the segment.
    pub fn add(&mut self, value: Option<&[u8]>) {
        let Some(v) = value else {
            self.unfiltered = true;
            return;
        };
        let bloom = self.bloom.get_or_insert_with(|| Box::new([0; BLOOM_BYTES]));
        for b in FilterKey::of(v).bits() {
            bloom[(b / 8) as usize] |= 1 << (b % 8);
        }
    }

    /// Whether the segment may hold a message `q` asks for (false: certainly not).
    pub fn may_match(&self, q: &FilterQuery) -> bool {
        if q.match_unfiltered && self.unfiltered {
            return true;
        }
        let Some(bloom) = &self.bloom else { return false };
        q.keys
            .iter()
            .any(|k| k.bits().all(|b| bloom[(b / 8) as usize] & (1 << (b % 8)) != 0))
    }
}

/// `filter.N`: the summary of segment N.
fn path(dir: &Path, id: SegmentId) -> PathBuf {
    dir.join(format!("filter.{:010}", id.0))
}

const MAGIC: &[u8; 4] = b"RMSF";
/// magic, segment id, count, bytes, flags, the filter, CRC32C of the rest.
const FILE_BYTES: usize = 4 + 4 + 8 + 8 + 1 + BLOOM_BYTES + 4;
const FLAG_UNFILTERED: u8 = 1;
const FLAG_BLOOM: u8 = 2;

/// What the summary covers: it is used only for a segment recovered with
/// exactly these.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Covers {
    pub segment: SegmentId,
    pub count: u64,
    pub bytes: u64,
}

fn encode(f: &SegmentFilter, c: Covers) -> Vec<u8> {
    let mut out = Vec::with_capacity(FILE_BYTES);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&c.segment.0.to_le_bytes());
    out.extend_from_slice(&c.count.to_le_bytes());
    out.extend_from_slice(&c.bytes.to_le_bytes());
    let flags = (u8::from(f.unfiltered) * FLAG_UNFILTERED) | (u8::from(f.bloom.is_some()) * FLAG_BLOOM);
    out.push(flags);
    out.extend_from_slice(f.bloom.as_deref().unwrap_or(&[0; BLOOM_BYTES]));
    let crc = crc32c::crc32c(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    debug_assert_eq!(out.len(), FILE_BYTES);
    out
}

fn decode(b: &[u8], c: Covers) -> Option<SegmentFilter> {
    if b.len() != FILE_BYTES || &b[..4] != MAGIC {
        return None;
    }
    let (body, crc) = b.split_at(FILE_BYTES - 4);
    if crc32c::crc32c(body) != u32::from_le_bytes(crc.try_into().ok()?) {
        return None;
    }
    let u32_at = |i: usize| u32::from_le_bytes(body[i..i + 4].try_into().expect("4 bytes"));
    let u64_at = |i: usize| u64::from_le_bytes(body[i..i + 8].try_into().expect("8 bytes"));
    let found = Covers {
        segment: SegmentId(u32_at(4)),
        count: u64_at(8),
        bytes: u64_at(16),
    };
    if found != c {
        return None;
    }
    let flags = body[24];
    let bloom = (flags & FLAG_BLOOM != 0).then(|| Box::new(body[25..].try_into().expect("BLOOM_BYTES")));
    Some(SegmentFilter {
        unfiltered: flags & FLAG_UNFILTERED != 0,
        bloom,
    })
}

/// Writes the summary of a sealed segment (not synced: see the module docs).
pub(crate) fn save(dir: &Path, f: &SegmentFilter, c: Covers) -> io::Result<()> {
    let (p, bytes) = (path(dir, c.segment), encode(f, c));
    fs::write(&p, &bytes)?;
    crate::changes::replaced(&p, &bytes);
    Ok(())
}

/// The saved summary of the segment recovered as `c`; None when missing,
/// damaged or of other records (rebuilt from the records then).
pub(crate) fn load(dir: &Path, c: Covers) -> Option<SegmentFilter> {
    decode(&fs::read(path(dir, c.segment)).ok()?, c)
}

pub(crate) fn remove(dir: &Path, id: SegmentId) -> io::Result<()> {
    match crate::changes::remove_file(&path(dir, id)) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Removes the summaries of segments that are not `live` (their segment went
/// and the crash came before the summary followed).
pub(crate) fn remove_orphans(dir: &Path, live: impl Fn(SegmentId) -> bool) -> io::Result<()> {
    for e in fs::read_dir(dir)? {
        let name = e?.file_name();
        let id = name.to_str().and_then(|n| n.strip_prefix("filter.")?.parse().ok());
        if let Some(id) = id.map(SegmentId).filter(|&id| !live(id)) {
            remove(dir, id)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(values: &[&str], match_unfiltered: bool) -> FilterQuery {
        FilterQuery {
            keys: values.iter().map(|v| FilterKey::of(v.as_bytes())).collect(),
            match_unfiltered,
        }
    }

    #[test]
    fn a_summary_never_denies_what_it_holds_and_denies_most_of_the_rest() {
        let mut f = SegmentFilter::default();
        assert!(!f.may_match(&query(&["a"], true)), "empty");
        let held: Vec<String> = (0..200).map(|i| format!("held-{i}")).collect();
        for v in &held {
            f.add(Some(v.as_bytes()));
        }
        for v in &held {
            assert!(f.may_match(&query(&[v], false)), "{v}");
        }
        let wrong = (0..10_000)
            .filter(|i| f.may_match(&query(&[&format!("other-{i}")], false)))
            .count();
        assert!(wrong < 100, "{wrong} of 10000 absent values said maybe");
        assert!(!f.may_match(&query(&[], true)), "no unfiltered message yet");
        f.add(None);
        assert!(f.may_match(&query(&[], true)));
        assert!(!f.may_match(&query(&[], false)));
    }

    #[test]
    fn a_saved_summary_is_used_only_for_the_records_it_covers() {
        let dir = tempfile::tempdir().unwrap();
        let mut f = SegmentFilter::default();
        f.add(Some(b"x"));
        f.add(None);
        let c = Covers {
            segment: SegmentId(7),
            count: 3,
            bytes: 300,
        };
        save(dir.path(), &f, c).unwrap();
        assert_eq!(load(dir.path(), c), Some(f.clone()));
        assert_eq!(load(dir.path(), Covers { count: 2, ..c }), None, "a torn tail");
        assert_eq!(load(dir.path(), Covers { bytes: 299, ..c }), None);
        let p = path(dir.path(), c.segment);
        let mut b = fs::read(&p).unwrap();
        b[30] ^= 1;
        fs::write(&p, &b).unwrap();
        assert_eq!(load(dir.path(), c), None, "damaged");
        fs::write(&p, &b[..100]).unwrap();
        assert_eq!(load(dir.path(), c), None, "torn");
        remove_orphans(dir.path(), |id| id != SegmentId(7)).unwrap();
        assert!(!p.exists());
    }
}
