//! Stream queues (`x-queue-type: stream`, issue 20) in the model: the log
//! (`ringmq_store::StreamStore`), its readers, and its retention.
//!
//! A consumer of a stream is a reader: the offset of the next message it gets
//! and where the last one it got is, so reading on costs one record header,
//! never a seek. Readers share the log's mapped segments; a reader costs this
//! struct, not a copy of anything. Acks only give the channel its credit back
//! (prefetch); nothing is removed but by retention, whole segments, on the
//! append that starts a new segment and on the stats timer (`x-max-age`).
//!
//! Readers are kept here, by consumer (connection, channel, tag), rather than
//! in the queue's consumer list, which every queue kind shares and which the
//! classic delivery loop clones from: a consumer on another shard (later)
//! would be a reader here too, fed through the remote-consume path.

use std::io;
use std::path::Path;

use ringmq_codec::{FieldValue, ShortString};
use ringmq_store::{FilterKey, FilterQuery, StoreConfig, StoreError, StreamPosition, StreamStore};

use crate::core::model::ids::ConnId;
use crate::core::model::queue::args::QueueSettings;
use crate::core::model::queue::take::{stored_names, ReadError, Taken, TakenAt};
use crate::core::model::queue::Queue;

/// Where a new reader starts (`x-stream-offset` on basic.consume).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamStart {
    First,
    /// The first message of the newest chunk (RabbitMQ's `last`).
    Last,
    /// Only messages published from now on (RabbitMQ's default).
    Next,
    Offset(u64),
    /// The first message published at or after this time (ms since the epoch).
    Time(u64),
}

impl StreamStart {
    /// RabbitMQ's forms: `first`, `last`, `next`, an offset (a negative one is
    /// `first`), an AMQP timestamp (seconds), or an interval back from now
    /// (`1h`, `30m`, `7D`: `x-max-age`'s units). Absent: `absent` (the
    /// broker's `default_stream_offset`: `next` unless set).
    pub fn parse(v: Option<&FieldValue>, now_ms: u64, absent: StreamStart) -> Result<Self, String> {
        let Some(v) = v else { return Ok(absent) };
        if let FieldValue::Void = v {
            // LavinMQ's "track my offset" (see `tracks_offset`): from the start
            // the first time.
            return Ok(StreamStart::First);
        }
        if let FieldValue::Timestamp(secs) = v {
            return Ok(StreamStart::Time(secs.saturating_mul(1000)));
        }
        if let Some(n) = v.as_i64() {
            return Ok(if n < 0 {
                StreamStart::First
            } else {
                StreamStart::Offset(n as u64)
            });
        }
        match v.as_str() {
            Some("first") => Ok(StreamStart::First),
            Some("last") => Ok(StreamStart::Last),
            Some("next") => Ok(StreamStart::Next),
            Some(s) => match crate::core::model::queue::args::parse_max_age(s) {
                Some(ms) => Ok(StreamStart::Time(now_ms.saturating_sub(ms))),
                None => Err(format!("invalid x-stream-offset '{s}'")),
            },
            None => Err(format!("invalid x-stream-offset of type {}", v.type_name())),
        }
    }
}

/// What a consumer asked to be sent of a stream (`x-stream-filter`,
/// `x-stream-match-unfiltered` on basic.consume; RabbitMQ 3.13's): messages
/// whose `x-stream-filter-value` header is one of `values`, and those without
/// one when `match_unfiltered`. Whole segments are skipped by their summaries
/// (`ringmq_store::stream_filter`, Bloom filters, as RabbitMQ skips chunks);
/// the messages of the others are checked one by one, exactly (RabbitMQ leaves
/// that to the client).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamFilter {
    pub values: Vec<String>,
    pub match_unfiltered: bool,
    /// The values hashed for the segments' summaries.
    query: FilterQuery,
}

/// A message's `x-stream-filter-value`: a string header (any other type, as
/// no header, makes it unfiltered). The one reading of it, for the exact check
/// and for the segments' summaries (`StreamStore::open`), so the two agree.
pub fn filter_value(properties: &[u8]) -> Option<&[u8]> {
    let headers = ringmq_codec::BasicProperties::decode(properties).ok()?.headers?;
    Some(headers.get("x-stream-filter-value")?.as_str()?.as_bytes())
}

/// Filter values per consumer, at most (a limit on everything).
pub const STREAM_FILTER_VALUES_MAX: usize = 64;
/// Messages a filtered reader skips per call before it lets the delivery loop
/// go on (a rare filter over a long stream must not stall the loop turn).
const FILTER_SKIPS_PER_TAKE_MAX: usize = 4096;

impl StreamFilter {
    /// From basic.consume's arguments; None without `x-stream-filter`.
    pub fn parse(filter: Option<&FieldValue>, unfiltered: Option<&FieldValue>) -> Result<Option<Self>, String> {
        let Some(filter) = filter else { return Ok(None) };
        let values: Vec<String> = match filter {
            FieldValue::Array(vs) => vs.iter().map(|v| v.as_str().map(str::to_owned)).collect::<Option<_>>(),
            v => v.as_str().map(|s| vec![s.to_owned()]),
        }
        .ok_or_else(|| "x-stream-filter must be a string or an array of strings".to_owned())?;
        if values.len() > STREAM_FILTER_VALUES_MAX {
            return Err(format!(
                "x-stream-filter has more than {STREAM_FILTER_VALUES_MAX} values"
            ));
        }
        let match_unfiltered = match unfiltered {
            None => false,
            Some(FieldValue::Bool(b)) => *b,
            Some(_) => return Err("x-stream-match-unfiltered must be a boolean".to_owned()),
        };
        let query = FilterQuery {
            keys: values.iter().map(|v| FilterKey::of(v.as_bytes())).collect(),
            match_unfiltered,
        };
        Ok(Some(StreamFilter {
            values,
            match_unfiltered,
            query,
        }))
    }

    /// Whether a message with these (encoded) properties passes.
    fn passes(&self, properties: &[u8]) -> bool {
        match filter_value(properties) {
            Some(v) => self.values.iter().any(|f| f.as_bytes() == v),
            None => self.match_unfiltered,
        }
    }
}

/// Whether a consumer asks for server-side offset tracking (LavinMQ's):
/// `x-stream-offset` null, or `x-stream-automatic-offset-tracking` true. Its
/// consumer tag names it; it resumes after the last offset it acked.
pub fn tracks_offset(offset: Option<&FieldValue>, automatic: Option<&FieldValue>) -> bool {
    matches!(offset, Some(FieldValue::Void)) || matches!(automatic, Some(FieldValue::Bool(true)))
}

/// One consumer's place in the stream.
struct Reader {
    conn: ConnId,
    channel: u16,
    tag: ShortString,
    /// The offset of the next message it gets.
    next: u64,
    /// The last message it got, for reading on from there.
    last: Option<StreamPosition>,
    filter: Option<Box<StreamFilter>>,
    /// Offset tracking: the deliveries not yet acked, with their offsets
    /// (bounded by the consumer's prefetch); None when not tracked.
    tracked: Option<std::collections::VecDeque<(ringmq_store::SegmentPosition, u64)>>,
}

/// What a view shows of a stream.
#[derive(Debug, Clone, Copy, Default)]
pub struct StreamInfo {
    pub first_offset: u64,
    pub next_offset: u64,
    pub messages: u64,
    pub segments: usize,
    pub bytes: u64,
    pub first_ts_ms: Option<u64>,
    pub last_ts_ms: Option<u64>,
    /// Segments mapped for reading (readers in them, or just seeked).
    pub mapped_segments: usize,
    /// Segments filtered readers passed over unread (their summaries ruled
    /// them out), since the stream was opened.
    pub filter_skipped_segments: u64,
}

/// The segment size `s` asks for (`x-stream-max-segment-size-bytes` or the
/// policy's `stream-max-segment-size-bytes`) within the store's bounds, or
/// `default` when it asks for none.
fn segment_bytes(s: &QueueSettings, default: u32) -> u32 {
    s.stream_segment_bytes.map_or(default, |b| {
        b.clamp(
            ringmq_store::MIN_SEGMENT_BYTES.into(),
            ringmq_store::MAX_SEGMENT_BYTES.into(),
        ) as u32
    })
}

/// A stream queue's messages (`QueueStorage::Stream`).
pub(in crate::core::model) struct Stream {
    pub(super) log: StreamStore,
    readers: Vec<Reader>,
    max_bytes: Option<u64>,
    max_age_ms: Option<u64>,
    /// The broker's segment size, for a stream whose settings name none.
    default_segment_bytes: u32,
    /// See [`StreamInfo::filter_skipped_segments`].
    filter_skipped_segments: u64,
}

impl Stream {
    /// Opens (or recovers) the stream in `dir`, with its segment size.
    pub(in crate::core::model) fn open(dir: &Path, mut cfg: StoreConfig, s: &QueueSettings) -> io::Result<Self> {
        let default_segment_bytes = cfg.segment_bytes;
        cfg.segment_bytes = segment_bytes(s, default_segment_bytes);
        let (log, report) = StreamStore::open(dir, cfg, filter_value)?;
        if report.corrupt() {
            tracing::warn!(dir = %dir.display(), report = ?report, "stream recovered from damaged segments");
        }
        Ok(Self {
            log,
            readers: Vec::new(),
            max_bytes: s.stream_max_bytes,
            max_age_ms: s.max_age_ms,
            default_segment_bytes,
            filter_skipped_segments: 0,
        })
    }

    /// Appends a message; a new segment is when retention may drop old ones
    /// (`now_ms`: the message's publish time). Never inlined: the classic
    /// queues' append, which shares its match, stays small enough to inline.
    #[inline(never)]
    pub(super) fn append(&mut self, msg: ringmq_store::MessageRef<'_>) -> Result<StreamPosition, StoreError> {
        let at = self.log.append(msg)?;
        if at.pos.offset == ringmq_store::record::SEGMENT_HEADER_BYTES {
            self.retain(msg.timestamp_ms);
        }
        Ok(at)
    }

    /// The retention settings changed (a policy): they apply from the next
    /// segment roll or stats tick, a new segment size to the segments made
    /// from now on (the one being written keeps its size).
    pub(super) fn set_retention(&mut self, s: &QueueSettings) {
        (self.max_bytes, self.max_age_ms) = (s.stream_max_bytes, s.max_age_ms);
        if let Err(e) = self.log.set_segment_bytes(segment_bytes(s, self.default_segment_bytes)) {
            tracing::error!(dir = %self.log.dir().display(), error = %e, "cannot change the stream's segment size");
        }
    }

    pub(super) fn retain(&mut self, now_ms: u64) {
        if self.max_bytes.is_none() && self.max_age_ms.is_none() {
            return;
        }
        if let Err(e) = self.log.retain(self.max_bytes, self.max_age_ms, now_ms) {
            tracing::error!(dir = %self.log.dir().display(), error = %e, "stream retention failed");
        }
    }

    fn reader(&mut self, conn: ConnId, channel: u16, tag: &str) -> Option<&mut Reader> {
        (self.readers.iter_mut()).find(|r| r.conn == conn && r.channel == channel && &*r.tag == tag)
    }

    /// The next message the consumer is to be sent: past the segments whose
    /// summaries rule out its filter (unread) and the messages it refuses (the
    /// reader moves over those), up to a bound per call. The segments it left
    /// on the way lose their mapping when no other reader is in them.
    fn next_for(&mut self, conn: ConnId, channel: u16, tag: &str) -> Result<Option<StreamPosition>, StoreError> {
        let mut left = Vec::new();
        let next = self.pass_refused(conn, channel, tag, &mut left);
        for segment in left {
            self.release_unread(segment);
        }
        next
    }

    /// [`Self::next_for`]'s walk; `left` gets the segments the reader left.
    fn pass_refused(
        &mut self,
        conn: ConnId,
        channel: u16,
        tag: &str,
        left: &mut Vec<ringmq_store::SegmentId>,
    ) -> Result<Option<StreamPosition>, StoreError> {
        let log = &self.log;
        let reader = (self.readers.iter_mut()).find(|r| r.conn == conn && r.channel == channel && &*r.tag == tag);
        let Some(r) = reader else { return Ok(None) };
        for _ in 0..FILTER_SKIPS_PER_TAKE_MAX {
            if let Some(f) = &r.filter {
                // A binary search over the index per message: small beside
                // the properties' decoding of the exact check below.
                let (next, skipped) = log.skip_segments(r.next, &f.query);
                self.filter_skipped_segments += skipped;
                r.next = next;
            }
            let found = match r.last {
                Some(at) if at.offset + 1 == r.next => log.after(at)?,
                _ => log.seek_offset(r.next)?,
            };
            let Some(at) = found else { return Ok(None) };
            match &r.filter {
                Some(f) if !f.passes(log.read(at.pos)?.properties) => {
                    // Without this a filtered reader kept every segment it
                    // passed mapped: 105 MB of RSS in a 10 s run at 1%.
                    left.extend(r.last.map(|l| l.pos.segment).filter(|&l| l != at.pos.segment));
                    (r.next, r.last) = (at.offset + 1, Some(at));
                }
                _ => return Ok(Some(at)),
            }
        }
        Ok(None)
    }

    pub(super) fn forget_readers(&mut self, f: impl Fn(ConnId, u16, &str) -> bool) {
        let mut left = Vec::new();
        self.readers.retain(|r| {
            let stays = !f(r.conn, r.channel, &r.tag);
            if !stays {
                left.extend(r.last.map(|l| l.pos.segment));
            }
            stays
        });
        for segment in left {
            self.release_unread(segment);
        }
    }

    /// A reader left `segment`: when no other reads in it, its mapping goes
    /// (a stream read from the start must not keep every segment it passed
    /// mapped; the page cache keeps the pages for the next reader).
    fn release_unread(&mut self, segment: ringmq_store::SegmentId) {
        if !self
            .readers
            .iter()
            .any(|r| r.last.is_some_and(|l| l.pos.segment == segment))
        {
            self.log.release_map(segment);
        }
    }

    pub(super) fn info(&self) -> StreamInfo {
        let segs = self.log.segments();
        StreamInfo {
            first_offset: self.log.first_offset(),
            next_offset: self.log.next_offset(),
            messages: self.log.message_count(),
            segments: segs.len(),
            bytes: segs.iter().map(|s| s.bytes).sum(),
            first_ts_ms: segs.front().map(|s| s.first_ts_ms),
            last_ts_ms: segs.back().map(|s| s.last_ts_ms),
            mapped_segments: self.log.mapped_segment_count(),
            filter_skipped_segments: self.filter_skipped_segments,
        }
    }
}

impl Queue {
    /// Whether this is a stream (`x-queue-type: stream`): by its settings,
    /// so that another shard's copy of a stream (which has no log) says so
    /// too, and refuses what the owner would.
    #[inline]
    pub fn is_stream(&self) -> bool {
        self.settings().kind == crate::core::model::queue::args::QueueType::Stream
    }

    /// The stream's offsets, size and times, for views; None for other kinds.
    pub fn stream_info(&self) -> Option<StreamInfo> {
        self.storage.stream().map(Stream::info)
    }

    /// The message count queue.declare-ok gives, on the owner: a stream
    /// counts what it holds (RabbitMQ's, a moment late), other queues their
    /// ready messages.
    pub fn declare_ok_count(&self) -> u32 {
        self.stream_info()
            .map_or(self.message_count(), |i| u32::try_from(i.messages).unwrap_or(u32::MAX))
    }

    /// A consumer starts reading the stream at `start`.
    pub(crate) fn stream_attach(
        &mut self,
        conn: ConnId,
        channel: u16,
        tag: ShortString,
        start: StreamStart,
        filter: Option<StreamFilter>,
        track: bool,
    ) {
        let Some(s) = self.storage.stream_mut() else { return };
        let log = &s.log;
        let resume = track.then(|| log.tracked_offset(&tag)).flatten();
        let start = resume.map_or(start, |o| StreamStart::Offset(o + 1));
        let next = match start {
            StreamStart::First => log.first_offset(),
            StreamStart::Last => log.last_chunk_offset(),
            StreamStart::Next => log.next_offset(),
            // One past the end waits for it (RabbitMQ 3.10 does too).
            StreamStart::Offset(o) => o.max(log.first_offset()),
            StreamStart::Time(t) => log.offset_at_time(t).unwrap_or_else(|e| {
                tracing::error!(queue = %self.name, error = %e, "stream seek by time failed; reading from the end");
                log.next_offset()
            }),
        };
        s.readers.push(Reader {
            conn,
            channel,
            tag,
            next,
            last: None,
            filter: filter.map(Box::new),
            tracked: track.then(Default::default),
        });
    }

    /// The consumer's next message, read and handed to `send`; returns where
    /// it is, its offset and what `send` returned. None when the consumer has
    /// read everything there is (it gets more as they are published).
    pub(crate) fn stream_take<R>(
        &mut self,
        conn: ConnId,
        channel: u16,
        tag: &str,
        shared_min: usize,
        send: impl FnOnce(u64, Taken<'_>) -> R,
    ) -> Option<(TakenAt, R)> {
        let name = &self.name;
        let s = self.storage.stream_mut()?;
        let at = match s.next_for(conn, channel, tag) {
            Ok(at) => at?,
            Err(e) => {
                tracing::error!(queue = %name, error = %e, "stream read failed");
                return None;
            }
        };
        let read = if at.pos.size as usize >= shared_min {
            s.log.read_shared(at.pos).map(|(v, b)| (v, Some(b)))
        } else {
            s.log.read(at.pos).map(|v| (v, None))
        };
        let read = read
            .map_err(ReadError::from)
            .and_then(|(view, shared)| Ok((view, stored_names(&view)?, shared)));
        let r = match read {
            Ok((view, (exchange, routing_key), shared)) => send(
                at.offset,
                Taken {
                    shared: shared.filter(|b| b.len() >= shared_min),
                    view,
                    exchange,
                    routing_key,
                    delivery_count: None,
                    remaining: 0,
                    redelivered: false,
                },
            ),
            Err(e) => {
                // Skipped, not sent corrupt (see `take`); the reader goes on.
                tracing::error!(queue = %name, offset = at.offset, error = %e, "unreadable stream message skipped");
                let r = s.reader(conn, channel, tag).expect("found above");
                (r.next, r.last) = (at.offset + 1, Some(at));
                return None;
            }
        };
        let reader = s.reader(conn, channel, tag).expect("found above");
        if let Some(t) = reader.tracked.as_mut() {
            t.push_back((at.pos, at.offset));
        }
        let left = reader.last.map(|l| l.pos.segment).filter(|&l| l != at.pos.segment);
        (reader.next, reader.last) = (at.offset + 1, Some(at));
        if let Some(left) = left {
            s.release_unread(left);
        }
        let taken = TakenAt {
            pos: at.pos,
            redelivered: false,
        };
        Some((taken, r))
    }

    /// Consumer `tag` acked the delivery at `pos`: a tracking consumer's
    /// offset moves to it (persisted, see `ringmq_store::stream_offsets`).
    pub(crate) fn stream_acked(&mut self, conn: ConnId, channel: u16, tag: &str, pos: ringmq_store::SegmentPosition) {
        let name = &self.name;
        let Some(s) = self.storage.stream_mut() else { return };
        let Some(r) = s.reader(conn, channel, tag) else { return };
        let Some(t) = r.tracked.as_mut() else { return };
        let Some(i) = t.iter().position(|(p, _)| *p == pos) else {
            return;
        };
        let (_, offset) = t.remove(i).expect("found");
        if let Err(e) = s.log.track(tag, offset) {
            tracing::warn!(queue = %name, error = %e, "cannot write a tracked stream offset");
        }
    }

    /// The offset consumer `tag` reads next: every message before it was sent
    /// to it or passed over by its filter. None when it is no reader here
    /// (not a stream, or another consumer).
    pub fn stream_reader_offset(&self, conn: ConnId, channel: u16, tag: &str) -> Option<u64> {
        let s = self.storage.stream()?;
        let mut readers = s.readers.iter();
        readers
            .find(|r| r.conn == conn && r.channel == channel && &*r.tag == tag)
            .map(|r| r.next)
    }

    /// Every reader of the stream with the offset it reads next: (its
    /// connection, channel, consumer tag, offset). The owner's readers
    /// include those of consumers on other shards, which the API lists by
    /// their connection's shard (`http::routes::connections`).
    pub fn stream_reader_offsets(&self) -> impl Iterator<Item = (ConnId, u16, &str, u64)> + '_ {
        let readers = self.storage.stream().map(|s| s.readers.as_slice()).unwrap_or_default();
        readers.iter().map(|r| (r.conn, r.channel, &*r.tag, r.next))
    }

    /// Readers of the stream (one per consumer).
    pub fn stream_reader_count(&self) -> usize {
        self.storage.stream().map_or(0, |s| s.readers.len())
    }

    /// Whether the consumer has messages it has not been sent.
    pub(crate) fn stream_has_more(&mut self, conn: ConnId, channel: u16, tag: &str) -> bool {
        let Some(s) = self.storage.stream_mut() else {
            return false;
        };
        let end = s.log.next_offset();
        s.reader(conn, channel, tag).is_some_and(|r| r.next < end)
    }

    /// Retention by age, on a timer (the stats tick): a stream that nobody
    /// publishes to still loses what is older than `x-max-age`.
    pub fn retain_stream(&mut self, now_ms: u64) {
        if let Some(s) = self.storage.stream_mut() {
            s.retain(now_ms);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_offsets_parse_as_rabbitmq_reads_them() {
        let p = |v: FieldValue| StreamStart::parse(Some(&v), 10_000_000, StreamStart::Next);
        assert_eq!(StreamStart::parse(None, 0, StreamStart::Next), Ok(StreamStart::Next));
        assert_eq!(StreamStart::parse(None, 0, StreamStart::First), Ok(StreamStart::First));
        assert_eq!(p("first".into()), Ok(StreamStart::First));
        assert_eq!(p("last".into()), Ok(StreamStart::Last));
        assert_eq!(p("next".into()), Ok(StreamStart::Next));
        assert_eq!(p(FieldValue::I64(42)), Ok(StreamStart::Offset(42)));
        assert_eq!(p(FieldValue::I32(-1)), Ok(StreamStart::First));
        assert_eq!(p(FieldValue::Timestamp(5)), Ok(StreamStart::Time(5000)));
        assert_eq!(p("1h".into()), Ok(StreamStart::Time(10_000_000 - 3_600_000)));
        assert_eq!(p("30m".into()), Ok(StreamStart::Time(10_000_000 - 1_800_000)));
        assert!(p("bogus".into()).is_err());
        assert!(p(FieldValue::Bool(true)).is_err());
    }

    fn with_filter_value(v: Option<&str>) -> Vec<u8> {
        let mut headers = ringmq_codec::FieldTable::new();
        if let Some(v) = v {
            headers.insert(ringmq_codec::short!("x-stream-filter-value"), v);
        }
        headers.insert(ringmq_codec::short!("other"), FieldValue::I32(1));
        let bytes = headers.to_bytes();
        let props = ringmq_codec::BasicProperties {
            headers: Some(ringmq_codec::Table::parse(&bytes).unwrap()),
            ..Default::default()
        };
        let mut out = Vec::new();
        props.encode(&mut out);
        out
    }

    #[test]
    fn filters_pass_their_values_and_maybe_the_unfiltered() {
        let one = StreamFilter::parse(Some(&"a".into()), None).unwrap().unwrap();
        assert!(one.passes(&with_filter_value(Some("a"))));
        assert!(!one.passes(&with_filter_value(Some("b"))));
        assert!(!one.passes(&with_filter_value(None)));
        let list = FieldValue::Array(vec!["a".into(), "b".into()]);
        let two = StreamFilter::parse(Some(&list), Some(&FieldValue::Bool(true)))
            .unwrap()
            .unwrap();
        assert!(two.passes(&with_filter_value(Some("b"))));
        assert!(two.passes(&with_filter_value(None)));
        assert!(!two.passes(&with_filter_value(Some("c"))));
        assert_eq!(StreamFilter::parse(None, Some(&FieldValue::Bool(true))), Ok(None));
        assert!(StreamFilter::parse(Some(&FieldValue::I32(1)), None).is_err());
        assert!(StreamFilter::parse(Some(&"a".into()), Some(&"yes".into())).is_err());
    }
}
