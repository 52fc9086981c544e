//! Stream queues in `throughput` (issue 20): `--stream` declares the queues as
//! streams (`x-queue-type: stream`, durable, as RabbitMQ requires) and has the
//! consumers read them from `--stream-offset`; `--filter-value V` has them
//! filter on V (`x-stream-filter`, RabbitMQ 3.13+ and ringmq; 3.10 has no
//! filters) and the publishers (and the prefill) put V in the
//! `x-stream-filter-value` header of `--filter-selectivity` percent of their
//! messages, "other" in the rest's; `--filter-run N` puts them in runs of N
//! in a row (values clustered in time, where per-segment filter summaries let
//! a filtered reader pass over whole segments), one in every N x (100 /
//! selectivity).
//!
//! A stream consumer needs manual acks and a prefetch (RabbitMQ refuses
//! auto-ack): `--stream` makes `-a` 100 and `-P` 1000 unless given. Each
//! consumer reads every message, so a run's consume rate is the sum over the
//! consumers, and "consumed all that was published" is no end of a run: a
//! stream run ends at `-z`, `-D`, or when the consumers have been idle 2 s.

use std::time::{SystemTime, UNIX_EPOCH};

use ringmq_codec::{BasicProperties, FieldTable, FieldValue, ShortStr, Table};

use crate::args::Throughput;
use ringmq_client::PublishTemplate;

/// Where consumers start (`x-stream-offset`).
#[derive(Debug, Clone, PartialEq)]
pub enum StreamOffset {
    /// `first`, `last`, `next` or an interval back from now (`30s`, `1h`),
    /// sent as the string.
    Named(String),
    Offset(i64),
    /// The middle of the prefill (the run's start without one), sent as an
    /// AMQP timestamp (seconds: RabbitMQ's resolution).
    Timestamp,
}

impl StreamOffset {
    fn parse(s: &str) -> StreamOffset {
        match (s, s.parse()) {
            (_, Ok(n)) => StreamOffset::Offset(n),
            ("timestamp", _) => StreamOffset::Timestamp,
            _ => StreamOffset::Named(s.to_owned()),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct StreamOpts {
    pub offset: StreamOffset,
    pub filter_value: Option<String>,
    /// Percent of published messages that carry `filter_value`.
    pub selectivity_pct: f64,
    /// They come in runs of this many in a row (1: spread evenly).
    pub filter_run: u64,
}

impl Default for StreamOpts {
    fn default() -> Self {
        StreamOpts {
            offset: StreamOffset::Named("first".into()),
            filter_value: None,
            selectivity_pct: 100.0,
            filter_run: 1,
        }
    }
}

/// Applies a stream flag (each implies `--stream`); false if `f` is not one.
pub(crate) fn flag(
    o: &mut Throughput,
    f: &str,
    value: impl FnOnce() -> Result<String, String>,
) -> Result<bool, String> {
    let s = || StreamOpts::default();
    match f {
        "--stream" => drop(o.stream.get_or_insert_with(s)),
        "--stream-offset" => o.stream.get_or_insert_with(s).offset = StreamOffset::parse(&value()?),
        "--filter-value" => o.stream.get_or_insert_with(s).filter_value = Some(value()?),
        "--filter-selectivity" => {
            let v = value()?;
            let pct = v.parse().map_err(|_| format!("{f}: {v:?} is not a number"))?;
            o.stream.get_or_insert_with(s).selectivity_pct = pct;
        }
        "--filter-run" => {
            let v = value()?;
            let run = v.parse().ok().filter(|&n: &u64| n > 0);
            o.stream.get_or_insert_with(s).filter_run = run.ok_or_else(|| format!("{f}: {v:?} is not a count > 0"))?;
        }
        _ => return Ok(false),
    }
    Ok(true)
}

/// Checks a stream run's options and gives it what streams need: the queue
/// type, manual acks, a prefetch.
pub(crate) fn finish(o: &mut Throughput) -> Result<(), String> {
    let Some(s) = &o.stream else { return Ok(()) };
    if !(s.selectivity_pct > 0.0 && s.selectivity_pct <= 100.0) {
        return Err("--filter-selectivity must be in (0, 100]".into());
    }
    if s.filter_value.is_none() && s.selectivity_pct < 100.0 {
        return Err("--filter-selectivity needs --filter-value".into());
    }
    if s.filter_value.is_none() && s.filter_run > 1 {
        return Err("--filter-run needs --filter-value".into());
    }
    if o.get {
        return Err("--stream: streams refuse basic.get".into());
    }
    if o.ack == 0 {
        o.ack = 100;
    }
    o.prefetch.get_or_insert(1000);
    let mut t = FieldTable::new();
    t.insert(ringmq_codec::short!("x-queue-type"), "stream");
    o.queue_args.extend(t.to_bytes());
    Ok(())
}

/// What a stream consumer adds to `--consumer-args`; `prefill` is when the
/// prefill started and ended (for `--stream-offset timestamp`).
pub fn consumer_args(s: &StreamOpts, prefill: (SystemTime, SystemTime)) -> Vec<u8> {
    let mut t = FieldTable::new();
    let offset = match &s.offset {
        StreamOffset::Named(n) => FieldValue::LongString(n.as_bytes().to_vec()),
        StreamOffset::Offset(n) => FieldValue::I64(*n),
        StreamOffset::Timestamp => {
            let secs = |t: SystemTime| t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
            FieldValue::Timestamp((secs(prefill.0) + secs(prefill.1)) / 2)
        }
    };
    t.insert(ringmq_codec::short!("x-stream-offset"), offset);
    if let Some(v) = &s.filter_value {
        t.insert(ringmq_codec::short!("x-stream-filter"), v.as_str());
    }
    t.to_bytes()
}

/// A publisher's templates: with a filter value, one carrying it for runs
/// of `run` messages, a run in every `every`, and one carrying "other" for
/// the rest.
pub struct Templates {
    rest: PublishTemplate,
    picked: Option<Picked>,
}

struct Picked {
    template: PublishTemplate,
    every: u64,
    run: u64,
}

impl Templates {
    pub fn new(
        o: &Throughput,
        ch: u16,
        names: (ShortStr<'_>, ShortStr<'_>),
        props: &BasicProperties<'_>,
        body: &[u8],
        frame_max: u32,
    ) -> Templates {
        let (x, rk) = names;
        let filter = o
            .stream
            .as_ref()
            .and_then(|s| Some((s.filter_value.as_deref()?, s.selectivity_pct, s.filter_run)));
        let Some((value, pct, run)) = filter else {
            let rest = PublishTemplate::new(ch, x, rk, props, body, frame_max);
            return Templates { rest, picked: None };
        };
        let with = |v: &str| {
            let mut h = FieldTable::new();
            h.insert(ringmq_codec::short!("x-stream-filter-value"), v);
            let bytes = h.to_bytes();
            let headers = Table::parse(&bytes).expect("encoded above");
            let props = BasicProperties {
                headers: Some(headers),
                ..*props
            };
            PublishTemplate::new(ch, x, rk, &props, body, frame_max)
        };
        let every = (100.0 / pct).round().max(1.0) as u64;
        Templates {
            rest: with("other"),
            picked: Some(Picked {
                template: with(value),
                every,
                run,
            }),
        }
    }

    /// The template of the publisher's `seq`-th message.
    pub fn get(&self, seq: u64) -> &PublishTemplate {
        match &self.picked {
            Some(p) if (seq / p.run).is_multiple_of(p.every) => &p.template,
            _ => &self.rest,
        }
    }

    /// The template most messages use (sizes, the latency stamp).
    pub fn common(&self) -> &PublishTemplate {
        &self.rest
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::args::{parse, Command};
    use ringmq_codec::FieldValueRef;

    fn throughput(s: &str) -> Result<Throughput, String> {
        let args: Vec<String> = s.split_whitespace().map(String::from).collect();
        match parse(&args)? {
            Command::Throughput(_, t) => Ok(t),
            c => panic!("{c:?}"),
        }
    }

    #[test]
    fn stream_flags_declare_a_stream_with_acks_and_a_prefetch() {
        let t = throughput("throughput --stream -y 10").unwrap();
        let s = t.stream.clone().unwrap();
        assert_eq!(s, StreamOpts::default());
        assert_eq!((t.ack, t.prefetch), (100, Some(1000)));
        let args = Table::parse(&t.queue_args).unwrap();
        assert_eq!(args.get("x-queue-type"), Some(FieldValueRef::LongString(b"stream")));
        let c = consumer_args(&s, (UNIX_EPOCH, UNIX_EPOCH));
        let c = Table::parse(&c).unwrap();
        assert_eq!(c.get("x-stream-offset"), Some(FieldValueRef::LongString(b"first")));
        assert_eq!(c.get("x-stream-filter"), None);
        let t = throughput("throughput --filter-value v --filter-selectivity 1 -a 10 -P 20").unwrap();
        assert_eq!((t.ack, t.prefetch), (10, Some(20)));
        let s = t.stream.unwrap();
        assert_eq!((s.filter_value.as_deref(), s.selectivity_pct), (Some("v"), 1.0));
        let t = throughput("throughput --stream-offset timestamp").unwrap();
        let at = |secs| UNIX_EPOCH + std::time::Duration::from_secs(secs);
        let c = consumer_args(t.stream.as_ref().unwrap(), (at(100), at(110)));
        assert_eq!(
            Table::parse(&c).unwrap().get("x-stream-offset"),
            Some(FieldValueRef::Timestamp(105))
        );
        let t = throughput("throughput --stream-offset 42").unwrap();
        assert_eq!(t.stream.unwrap().offset, StreamOffset::Offset(42));
        assert!(throughput("throughput --stream --filter-selectivity 1").is_err());
        assert!(throughput("throughput --filter-value v --filter-selectivity 0").is_err());
        assert!(throughput("throughput --stream -g").is_err());
    }

    #[test]
    fn one_message_in_every_hundred_carries_the_value_at_one_percent() {
        let t = throughput("throughput --filter-value v --filter-selectivity 1").unwrap();
        let names = (ringmq_codec::short!(""), ringmq_codec::short!("q"));
        let tpls = Templates::new(&t, 1, names, &BasicProperties::default(), b"body", 131072);
        let has = |tpl: &PublishTemplate, v: &[u8]| tpl.bytes.windows(v.len()).any(|w| w == v);
        let picked = (0..1000).filter(|&i| std::ptr::eq(tpls.get(i), tpls.get(0))).count();
        assert_eq!(picked, 10);
        assert!(has(tpls.get(0), b"x-stream-filter-valueS\0\0\0\x01v"));
        assert!(has(tpls.common(), b"x-stream-filter-valueS\0\0\0\x05other"));
        assert!(std::ptr::eq(tpls.get(1), tpls.common()));
    }

    #[test]
    fn a_filter_run_clusters_the_value_without_changing_its_share() {
        let t = throughput("throughput --filter-value v --filter-selectivity 1 --filter-run 50").unwrap();
        let names = (ringmq_codec::short!(""), ringmq_codec::short!("q"));
        let tpls = Templates::new(&t, 1, names, &BasicProperties::default(), b"body", 131072);
        let picked: Vec<u64> = (0..20_000)
            .filter(|&i| !std::ptr::eq(tpls.get(i), tpls.common()))
            .collect();
        assert_eq!(picked.len(), 200, "still 1%");
        let want: Vec<u64> = (0..50)
            .chain(5000..5050)
            .chain(10_000..10_050)
            .chain(15_000..15_050)
            .collect();
        assert_eq!(picked, want, "in runs of 50, one run in every 5,000");
        assert!(throughput("throughput --stream --filter-run 10").is_err());
        assert!(throughput("throughput --filter-value v --filter-run 0").is_err());
    }
}
