//! Message deduplication, as LavinMQ does it for queues and exchanges.
//!
//! Declared with the arguments (LavinMQ `amqp/exchange/exchange.cr`
//! `handle_arguments`, `deduplication.cr` `MemoryCache`/`Deduper`):
//! - `x-message-deduplication`: bool, turns it on.
//! - `x-cache-size`: how many values are remembered (LavinMQ's default is 128
//!   when absent; clients declare queues with only the flag, so it stays
//!   optional). When full, the oldest insertion is forgotten first.
//! - `x-cache-ttl`: milliseconds a value is remembered; without it values are
//!   remembered until evicted. A message's own `x-cache-ttl` header (an integer)
//!   overrides it for that message's value.
//! - `x-deduplication-header`: the header holding the value (default
//!   `x-deduplication-header`).
//!
//! A message whose value is remembered and not expired is a duplicate and is
//! dropped; one without the header is never a duplicate. Values of any field
//! type count, compared by their encoded bytes (type included, as LavinMQ
//! compares `AMQ::Protocol::Field`s by type and value).
//!
//! Differences from LavinMQ, each towards a clear error: a non-bool
//! `x-message-deduplication` is a 406 here (LavinMQ silently leaves it off), and
//! `x-cache-size` 0 or negative or a negative `x-cache-ttl` are 406s (LavinMQ
//! keeps one entry for 0 and fails on negative values while converting them).
//!
//! Sans-IO: time comes in as `now_ms`; nothing here reads a clock.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use ringmq_codec::{FieldTable, FieldValue, FieldValueRef, Table};

use crate::core::model::exchange::field_bytes::encode_field_value;

/// The header read when `x-deduplication-header` is not given.
pub const DEDUP_HEADER_DEFAULT: &str = "x-deduplication-header";

/// The per-message header that overrides the cache TTL for that message.
pub const MESSAGE_TTL_HEADER: &str = "x-cache-ttl";

/// Entries kept when `x-cache-size` is absent (LavinMQ's `MemoryCache` default).
pub const CACHE_SIZE_DEFAULT: u32 = 128;

/// A remembered value: when it stops counting, and which insertion it is (to
/// tell live records in `order` from ones left behind by an expiry).
#[derive(Debug, Clone, Copy)]
struct Entry {
    expires_at_ms: Option<u64>,
    seq: u64,
}

/// The deduplication state of one queue or exchange.
///
/// Memory is bounded by `size_max` entries: the map holds at most that many, and
/// `order` at most twice that (records of expired values are swept when it
/// grows past that). Keys are shared between the map and the order list, so
/// each value is stored once.
#[derive(Debug)]
pub struct DedupCache {
    header: Box<str>,
    size_max: usize,
    ttl_ms: Option<u64>,
    entries: HashMap<Arc<[u8]>, Entry>,
    /// Insertion order, oldest first, for eviction.
    order: VecDeque<(u64, Arc<[u8]>)>,
    next_seq: u64,
    /// The encoded value of the message at hand; reused so a lookup allocates
    /// nothing.
    scratch: Vec<u8>,
}

impl DedupCache {
    /// Reads the deduplication arguments of a queue or exchange. `Ok(None)` when
    /// deduplication is off (absent or false; the other arguments are then not
    /// read, as in LavinMQ). The error is the 406 reply text.
    pub fn from_arguments(args: &FieldTable) -> Result<Option<DedupCache>, String> {
        match args.get("x-message-deduplication") {
            None | Some(FieldValue::Bool(false)) => return Ok(None),
            Some(FieldValue::Bool(true)) => {}
            Some(_) => return Err("x-message-deduplication must be a boolean".to_owned()),
        }
        let size = match int_argument(args, "x-cache-size")? {
            None => u64::from(CACHE_SIZE_DEFAULT),
            Some(n) if (1..=i64::from(u32::MAX)).contains(&n) => n as u64,
            Some(_) => return Err(format!("x-cache-size must be between 1 and {}", u32::MAX)),
        };
        let ttl_ms = match int_argument(args, "x-cache-ttl")? {
            None => None,
            Some(n) if (0..=i64::from(u32::MAX)).contains(&n) => Some(n as u64),
            Some(_) => return Err(format!("x-cache-ttl must be between 0 and {}", u32::MAX)),
        };
        let header = match args.get("x-deduplication-header") {
            None => DEDUP_HEADER_DEFAULT,
            Some(v) => v
                .as_str()
                .ok_or_else(|| "x-deduplication-header must be a string".to_owned())?,
        };
        Ok(Some(DedupCache::new(header, size as usize, ttl_ms)))
    }

    /// A cache of at most `size_max` (at least 1) values, each remembered for
    /// `ttl_ms` (forever when `None`).
    pub fn new(header: &str, size_max: usize, ttl_ms: Option<u64>) -> DedupCache {
        assert!(size_max > 0, "a dedup cache remembers at least one value");
        DedupCache {
            header: header.into(),
            size_max,
            ttl_ms,
            // Not preallocated: a queue declared with a huge x-cache-size but
            // little traffic should cost little.
            entries: HashMap::new(),
            order: VecDeque::new(),
            next_seq: 0,
            scratch: Vec::new(),
        }
    }

    /// The header whose value identifies a message.
    pub fn header(&self) -> &str {
        &self.header
    }

    /// Remembered values (expired ones count until they are swept or evicted).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// True when the message is a duplicate to drop. Otherwise remembers its
    /// value (if it has one) and returns false, so the first copy passes.
    pub fn is_duplicate(&mut self, headers: Option<Table<'_>>, now_ms: u64) -> bool {
        let Some(headers) = headers else {
            return false;
        };
        let Some(value) = headers.get(&self.header) else {
            return false;
        };
        self.scratch.clear();
        encode_field_value(value, &mut self.scratch);
        if let Some(e) = self.entries.get(self.scratch.as_slice()) {
            if e.expires_at_ms.is_none_or(|t| t > now_ms) {
                return true;
            }
            // Expired: forget it so it is inserted anew at the back of the order,
            // as LavinMQ's `contains?` deletes it before `insert` re-adds it.
            self.entries.remove(self.scratch.as_slice());
        }
        let ttl_ms = message_ttl_ms(headers).or(self.ttl_ms);
        self.insert(now_ms, ttl_ms);
        false
    }

    fn insert(&mut self, now_ms: u64, ttl_ms: Option<u64>) {
        self.sweep_expired_front(now_ms);
        while self.entries.len() >= self.size_max {
            let (seq, key) = self.order.pop_front().expect("order has a record per entry");
            self.remove_if_live(seq, &key);
        }
        let key: Arc<[u8]> = Arc::from(self.scratch.as_slice());
        let seq = self.next_seq;
        self.next_seq += 1;
        let expires_at_ms = ttl_ms.map(|t| now_ms.saturating_add(t));
        self.entries.insert(key.clone(), Entry { expires_at_ms, seq });
        self.order.push_back((seq, key));
        // Records of values that expired and were re-inserted stay in `order`
        // until they reach the front; bound them to one sweep per `size_max`
        // insertions, so the sweep costs O(1) per insert amortised.
        if self.order.len() > 2 * self.size_max {
            let entries = &self.entries;
            self.order
                .retain(|(seq, key)| entries.get(key).is_some_and(|e| e.seq == *seq));
        }
    }

    /// Drops expired values at the old end, so memory follows traffic when a
    /// TTL is set. Each record is popped once, so this is O(1) amortised.
    fn sweep_expired_front(&mut self, now_ms: u64) {
        while let Some((seq, key)) = self.order.front() {
            match self.entries.get(key) {
                Some(e) if e.seq == *seq && e.expires_at_ms.is_some_and(|t| t <= now_ms) => {}
                Some(e) if e.seq == *seq => return,
                // A record left by an expiry: drop it while here.
                _ => {}
            }
            let (seq, key) = self.order.pop_front().expect("front exists");
            self.remove_if_live(seq, &key);
        }
    }

    fn remove_if_live(&mut self, seq: u64, key: &[u8]) {
        if self.entries.get(key).is_some_and(|e| e.seq == seq) {
            self.entries.remove(key);
        }
    }
}

/// An integer argument of any AMQP integer type; Err for another type.
fn int_argument(args: &FieldTable, name: &str) -> Result<Option<i64>, String> {
    match args.get(name) {
        None => Ok(None),
        Some(v) => v.as_i64().map(Some).ok_or_else(|| format!("{name} must be an integer")),
    }
}

/// The message's own `x-cache-ttl`, when it is a non-negative integer that fits
/// u32 (LavinMQ reads an Int32 and converts it to u32); anything else falls back
/// to the cache's TTL, as in LavinMQ.
fn message_ttl_ms(headers: Table<'_>) -> Option<u64> {
    let v: FieldValueRef<'_> = headers.get(MESSAGE_TTL_HEADER)?;
    let ms = v.as_i64()?;
    (0..=i64::from(u32::MAX)).contains(&ms).then_some(ms as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(pairs: &[(&str, FieldValue)]) -> FieldTable {
        pairs
            .iter()
            .map(|(k, v)| (ringmq_codec::ShortString::new(k).unwrap(), v.clone()))
            .collect()
    }

    /// Encoded headers with the dedup header set to `value` (plus extras).
    fn msg(value: FieldValue, extra: &[(&str, FieldValue)]) -> Vec<u8> {
        let mut t = args(extra);
        t.insert(ringmq_codec::ShortString::new(DEDUP_HEADER_DEFAULT).unwrap(), value);
        t.to_bytes()
    }

    fn dup(c: &mut DedupCache, bytes: &[u8], now_ms: u64) -> bool {
        c.is_duplicate(Some(Table::parse(bytes).unwrap()), now_ms)
    }

    fn cache(size: i64, ttl: Option<i64>) -> DedupCache {
        let mut a = args(&[("x-message-deduplication", true.into()), ("x-cache-size", size.into())]);
        if let Some(ttl) = ttl {
            a.insert(ringmq_codec::short!("x-cache-ttl"), ttl);
        }
        DedupCache::from_arguments(&a).unwrap().unwrap()
    }

    #[test]
    fn second_copy_is_a_duplicate_other_values_are_not() {
        let mut c = cache(10, None);
        let a = msg("a".into(), &[]);
        assert!(!dup(&mut c, &a, 0));
        assert!(dup(&mut c, &a, 1));
        assert!(dup(&mut c, &a, u64::MAX));
        assert!(!dup(&mut c, &msg("b".into(), &[]), 2));
        // Same number, other type: another value (compared by encoded bytes).
        assert!(!dup(&mut c, &msg(FieldValue::I32(1), &[]), 3));
        assert!(!dup(&mut c, &msg(FieldValue::I64(1), &[]), 3));
        assert!(dup(&mut c, &msg(FieldValue::I64(1), &[]), 4));
        // Any type works as a key, even NaN and tables.
        let nan = msg(FieldValue::F64(f64::NAN), &[]);
        assert!(!dup(&mut c, &nan, 5));
        assert!(dup(&mut c, &nan, 5));
        let t = msg(FieldValue::Table(args(&[("k", "v".into())])), &[]);
        assert!(!dup(&mut c, &t, 6));
        assert!(dup(&mut c, &t, 6));
        assert_eq!(c.len(), 6);
    }

    #[test]
    fn messages_without_the_header_are_never_duplicates() {
        let mut c = cache(10, None);
        assert!(!c.is_duplicate(None, 0));
        assert!(!c.is_duplicate(None, 0));
        let other = args(&[("x-other", "a".into())]).to_bytes();
        assert!(!dup(&mut c, &other, 0));
        assert!(!dup(&mut c, &other, 0));
        assert!(c.is_empty());
    }

    #[test]
    fn values_expire_after_the_ttl() {
        let mut c = cache(10, Some(1000));
        let a = msg("a".into(), &[]);
        assert!(!dup(&mut c, &a, 5000));
        assert!(dup(&mut c, &a, 5999));
        assert!(!dup(&mut c, &a, 6000), "expired at insert + ttl");
        // Re-inserted with a fresh TTL.
        assert!(dup(&mut c, &a, 6999));
        assert!(!dup(&mut c, &a, 7000));
    }

    #[test]
    fn message_header_overrides_the_ttl() {
        let mut c = cache(10, Some(1000));
        let long = msg("a".into(), &[(MESSAGE_TTL_HEADER, FieldValue::I32(5000))]);
        assert!(!dup(&mut c, &long, 0));
        assert!(dup(&mut c, &long, 4999));
        assert!(!dup(&mut c, &long, 5000));
        // Without a cache TTL a message can still ask for one.
        let mut forever = cache(10, None);
        let short = msg("b".into(), &[(MESSAGE_TTL_HEADER, FieldValue::I64(10))]);
        assert!(!dup(&mut forever, &short, 0));
        assert!(!dup(&mut forever, &short, 10));
        // A negative or non-integer override falls back to the cache's TTL.
        for bad in [FieldValue::I32(-1), "100".into()] {
            let m = msg("c".into(), &[(MESSAGE_TTL_HEADER, bad)]);
            let mut c = cache(10, Some(1000));
            assert!(!dup(&mut c, &m, 0));
            assert!(dup(&mut c, &m, 999));
            assert!(!dup(&mut c, &m, 1000));
        }
    }

    #[test]
    fn full_cache_forgets_the_oldest_insertion() {
        let mut c = cache(3, None);
        let m: Vec<Vec<u8>> = (0..5).map(|i| msg(FieldValue::I32(i), &[])).collect();
        for v in &m[..3] {
            assert!(!dup(&mut c, v, 0));
        }
        // A duplicate hit does not refresh its place (insertion order, not LRU).
        assert!(dup(&mut c, &m[0], 1));
        assert!(!dup(&mut c, &m[3], 2)); // evicts 0
        assert_eq!(c.len(), 3);
        assert!(dup(&mut c, &m[1], 3) && dup(&mut c, &m[2], 3) && dup(&mut c, &m[3], 3));
        assert!(!dup(&mut c, &m[0], 4)); // evicts 1, re-inserts 0
        assert!(!dup(&mut c, &m[1], 5)); // evicts 2
        assert!(dup(&mut c, &m[3], 6) && dup(&mut c, &m[0], 6) && dup(&mut c, &m[1], 6));
        assert_eq!(c.len(), 3);
    }

    #[test]
    fn expired_values_reinserted_move_to_the_back_and_memory_stays_bounded() {
        let mut c = cache(2, Some(10));
        let a_short = msg("a".into(), &[(MESSAGE_TTL_HEADER, FieldValue::I32(1))]);
        let a = msg("a".into(), &[]);
        let b = msg("b".into(), &[]);
        assert!(!dup(&mut c, &a_short, 0));
        assert!(!dup(&mut c, &b, 0));
        // a expired at 1 and comes back (the key is the header value only, not
        // the TTL header): now newer than b, so b goes first.
        assert!(!dup(&mut c, &a, 5));
        assert!(!dup(&mut c, &msg("x".into(), &[]), 6));
        assert!(dup(&mut c, &a, 7));
        assert!(!dup(&mut c, &b, 7));
        // A value that keeps expiring and returning behind one that never
        // expires leaves stale order records; they never pass 2× the size.
        let mut c = cache(2, None);
        let keep = msg("keep".into(), &[]);
        assert!(!dup(&mut c, &keep, 0));
        for now in (100..10_000).step_by(2) {
            assert!(!dup(&mut c, &a_short, now));
            assert!(c.order.len() <= 4 && c.len() <= 2);
        }
        assert!(dup(&mut c, &keep, 10_000));
    }

    #[test]
    fn expired_values_are_swept_from_the_old_end() {
        let mut c = cache(100, Some(10));
        for i in 0..50 {
            assert!(!dup(&mut c, &msg(FieldValue::I32(i), &[]), 0));
        }
        assert!(!dup(&mut c, &msg("late".into(), &[]), 10));
        assert_eq!(c.len(), 1);
    }

    #[test]
    fn arguments() {
        let on = |extra: &[(&str, FieldValue)]| {
            let mut a = args(extra);
            a.insert(ringmq_codec::short!("x-message-deduplication"), true);
            DedupCache::from_arguments(&a).map(|c| c.map(|c| (c.header.to_string(), c.size_max, c.ttl_ms)))
        };
        assert!(DedupCache::from_arguments(&FieldTable::new()).unwrap().is_none());
        let off = args(&[
            ("x-message-deduplication", false.into()),
            ("x-cache-size", "junk".into()),
        ]);
        assert!(DedupCache::from_arguments(&off).unwrap().is_none());
        assert_eq!(on(&[]), Ok(Some((DEDUP_HEADER_DEFAULT.to_owned(), 128, None))));
        assert_eq!(
            on(&[
                ("x-cache-size", FieldValue::I16(5)),
                ("x-cache-ttl", FieldValue::U32(60_000)),
                ("x-deduplication-header", "msg-id".into()),
            ]),
            Ok(Some(("msg-id".to_owned(), 5, Some(60_000))))
        );
        assert_eq!(
            DedupCache::from_arguments(&args(&[("x-message-deduplication", "true".into())])).unwrap_err(),
            "x-message-deduplication must be a boolean"
        );
        for size in [0i64, -1, i64::from(u32::MAX) + 1] {
            assert_eq!(
                on(&[("x-cache-size", size.into())]).unwrap_err(),
                "x-cache-size must be between 1 and 4294967295"
            );
        }
        assert_eq!(
            on(&[("x-cache-size", "10".into())]).unwrap_err(),
            "x-cache-size must be an integer"
        );
        assert_eq!(
            on(&[("x-cache-ttl", FieldValue::I32(-5))]).unwrap_err(),
            "x-cache-ttl must be between 0 and 4294967295"
        );
        assert_eq!(
            on(&[("x-cache-ttl", FieldValue::F64(1.0))]).unwrap_err(),
            "x-cache-ttl must be an integer"
        );
        assert_eq!(
            on(&[("x-deduplication-header", FieldValue::I32(1))]).unwrap_err(),
            "x-deduplication-header must be a string"
        );
    }

    #[test]
    fn custom_header_is_the_one_read() {
        let a = args(&[
            ("x-message-deduplication", true.into()),
            ("x-deduplication-header", "msg-id".into()),
        ]);
        let mut c = DedupCache::from_arguments(&a).unwrap().unwrap();
        assert_eq!(c.header(), "msg-id");
        let m = args(&[("msg-id", "1".into())]).to_bytes();
        assert!(!dup(&mut c, &m, 0));
        assert!(dup(&mut c, &m, 0));
        // The default header name means nothing to this cache.
        let d = msg("1".into(), &[]);
        assert!(!dup(&mut c, &d, 0));
        assert!(!dup(&mut c, &d, 0));
    }
}
