//! Finding the intact records past a damaged one, and counting what a damaged span
//! held (issue 15, defect 5).
//!
//! Recovery used to end a segment's data at the first record that failed its checks,
//! so one damaged record lost every intact record after it (a 3-byte flip in an 8 MiB
//! segment lost 12,190 messages). Records lie back to back with no padding, so after
//! a bad one the next good one can start at any byte: [`Resync::next_intact`] tries
//! each byte in turn and takes the first where a record passes every check of
//! [`record::decode`]: a length word in bounds, a record that fits, a sane header
//! (kind, reserved byte, field lengths), and the CRC32C seeded with the segment id.
//!
//! Why the first such byte, and not where the damaged record's own length word
//! points: when the length word is what was hit, it can point past intact records
//! (or anywhere); the earliest intact position is never past one.
//!
//! Why a false match is practically impossible: random bytes pass the header checks
//! at about one position in 2^25 (the kind and reserved bytes alone are 1 in 2^16)
//! and must then match a 32-bit CRC, about 10^-10 per 8 MiB of garbage. Stale records
//! behind a recycled file's end mark fail the CRC because they carry the seed of an
//! earlier segment id, and ids are never reused while such a file exists
//! (recovery.rs). What the checks cannot tell from data is a valid record of the
//! same segment id copied into a message body (someone publishing segment files):
//! if exactly that message's length word is damaged, the copy is read as messages.
//!
//! Bounded work: the header checks are a few loads per byte; the CRC pass a candidate
//! costs is its length, and all the CRC passes of one segment's search together may
//! cover [`CRC_WORK_PER_BYTE`] times its bytes. Random damage needs about one pass
//! (the real next record); crafted bytes that pass the header checks at every
//! position would otherwise cost a pass per byte (quadratic), so past the budget the
//! search gives up and the rest of the segment counts as unreadable.

use crate::record::{self, CrcSeed};

/// CRC work allowed for one segment's search, per byte of the segment.
pub const CRC_WORK_PER_BYTE: u64 = 4;
/// Length words followed by all [`count_records`] calls of one span.
const COUNT_STEPS_MAX: u32 = 1 << 20;

/// The search for intact records in one segment's bytes.
pub(crate) struct Resync<'a> {
    data: &'a [u8],
    /// Past the last non-zero byte: no record starts at or after it (its length
    /// word would be zero).
    used: usize,
    seed: CrcSeed,
    crc_budget: u64,
    gave_up: bool,
}

impl<'a> Resync<'a> {
    /// A search over `data` (a segment from its start to its end of data).
    pub fn new(data: &'a [u8], seed: CrcSeed) -> Self {
        Self {
            data,
            used: used_len(data),
            seed,
            crc_budget: CRC_WORK_PER_BYTE * data.len() as u64,
            gave_up: false,
        }
    }

    /// The first offset at or after `from` where an intact record starts.
    pub fn next_intact(&mut self, from: usize) -> Option<usize> {
        for p in from..self.used {
            let Ok((_, rec)) = record::check_frame(&self.data[p..]) else {
                continue;
            };
            let cost = rec.len() as u64;
            if cost > self.crc_budget {
                self.gave_up = true;
                return None;
            }
            self.crc_budget -= cost;
            if record::decode(&self.data[p..], self.seed).is_ok() {
                return Some(p);
            }
        }
        None
    }

    /// Bytes up to and including the last non-zero one: past them lie only zeros.
    pub fn used(&self) -> usize {
        self.used
    }

    /// Whether a search stopped at the CRC budget rather than at the end of data.
    pub fn gave_up(&self) -> bool {
        self.gave_up
    }
}

/// Bytes of `data` up to and including its last non-zero byte.
pub(crate) fn used_len(data: &[u8]) -> usize {
    data.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1)
}

/// Follows length words from the start of `span` while each frame passes the header
/// checks (no CRC); returns how many it followed and where it stopped.
pub(crate) fn follow_frames(span: &[u8], steps: &mut u32) -> (u64, usize) {
    let mut at = 0;
    let mut n = 0;
    while *steps > 0 {
        let Ok((_, rec)) = record::check_frame(&span[at..]) else {
            break;
        };
        *steps -= 1;
        n += 1;
        at += rec.len();
    }
    (n, at)
}

/// How many records an unreadable span held, best effort: follow the length words
/// from its start; when they do not lead to its end (only zeros left), the damage
/// hit a length word or header, so take the first later byte from which they do,
/// plus one for the damaged record before it. At least 1: a span is unreadable
/// because something was written there.
pub(crate) fn count_records(span: &[u8]) -> u64 {
    let used = used_len(span);
    let mut steps = COUNT_STEPS_MAX;
    let (n, at) = follow_frames(span, &mut steps);
    if at >= used {
        return n.max(1);
    }
    for p in 1..used {
        if steps == 0 {
            break;
        }
        let (n, at) = follow_frames(&span[p..], &mut steps);
        if n > 0 && p + at >= used {
            return n + 1;
        }
    }
    1
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{encode_into, encoded_len, MessageRef};
    use crate::SegmentId;

    fn records(n: usize, seed: CrcSeed) -> (Vec<u8>, Vec<usize>) {
        let mut out = Vec::new();
        let mut starts = Vec::new();
        for i in 0..n {
            let body = vec![i as u8; 10 + i * 7];
            let m = MessageRef {
                timestamp_ms: i as u64,
                exchange: b"x",
                routing_key: b"key",
                properties: b"",
                body: &body,
            };
            let len = encoded_len(&m, u32::MAX).unwrap() as usize;
            starts.push(out.len());
            out.resize(out.len() + len, 0);
            let at = starts[i];
            encode_into(&mut out[at..], &m, seed, crate::record::BodyCrc::Checked);
        }
        (out, starts)
    }

    #[test]
    fn finds_the_next_intact_record_whatever_byte_was_hit() {
        let seed = CrcSeed::for_segment(SegmentId(9));
        let (clean, starts) = records(6, seed);
        for hit in starts[2]..starts[3] {
            let mut data = clean.clone();
            data[hit] ^= 0x5a;
            let mut r = Resync::new(&data, seed);
            assert_eq!(r.next_intact(starts[2] + 1), Some(starts[3]), "byte {hit}");
            assert_eq!(count_records(&data[starts[2]..starts[3]]), 1, "byte {hit}");
        }
        // Two damaged records in a row, the first one's length word hit: both counted.
        let mut data = clean.clone();
        data[starts[1]] ^= 0x40;
        data[starts[2] + 30] ^= 1;
        let mut r = Resync::new(&data, seed);
        assert_eq!(r.next_intact(starts[1] + 1), Some(starts[3]));
        assert_eq!(count_records(&data[starts[1]..starts[3]]), 2);
        // Another segment's records are never intact here.
        let mut r = Resync::new(&clean, CrcSeed::for_segment(SegmentId(10)));
        assert_eq!(r.next_intact(0), None);
        assert!(!r.gave_up());
    }

    #[test]
    fn crafted_headers_cost_a_bounded_search() {
        // A plausible header (a 512 KiB record, bad CRC) every 32 bytes of 1 MiB:
        // without the budget, 16 Ki candidates of a 512 KiB CRC pass each (8 GiB).
        let mut data = vec![0u8; 1 << 20];
        let header = crate::record::RecordHeader {
            total_len: (512 * 1024u32).into(),
            crc: 0u32.into(),
            timestamp_ms: 0u64.into(),
            properties_len: 0u32.into(),
            exchange_len: 0,
            routing_key_len: 0,
            kind: crate::record::RECORD_KIND_MESSAGE,
            reserved: 0,
        };
        for at in (0..data.len()).step_by(32) {
            data[at..at + 24].copy_from_slice(zerocopy::IntoBytes::as_bytes(&header));
        }
        let mut r = Resync::new(&data, CrcSeed::V1);
        assert_eq!(r.next_intact(0), None);
        assert!(r.gave_up());
        assert_eq!(count_records(&data), 2);
    }
}
