//! JSON pieces several resource groups share: rate details, message stats,
//! process numbers.

use serde_json::{json, Map, Value};

use crate::core::mgmt::{counter_index, MsgCounters, ObjStats, Sample, VhostStats, COUNTERS};
use crate::http::paging::{self, ListParams, Part, Row};
use crate::http::{ApiError, Reply, Req};

/// RabbitMQ's `{"rate": r}`.
pub(crate) fn details(rate: f64) -> Value {
    json!({ "rate": round(rate) })
}

fn round(r: f64) -> f64 {
    (r * 100.0).round() / 100.0
}

/// `message_stats` of an object: each counter named in `fields` with its
/// `_details`, plus the derived `deliver_get`.
pub(crate) fn message_stats(s: &ObjStats, fields: &[&str]) -> Value {
    let values = s.c.values();
    let mut m = Map::new();
    for (i, name) in MsgCounters::NAMES.iter().enumerate() {
        if fields.contains(name) {
            m.insert((*name).to_owned(), values[i].into());
            m.insert(format!("{name}_details"), details(s.rate(i)));
        }
    }
    if fields.contains(&"deliver") {
        let idx = |n: &str| counter_index(n).expect("counter");
        let rate = ["deliver", "deliver_no_ack", "get", "get_no_ack"]
            .iter()
            .map(|n| s.rate(idx(n)))
            .sum();
        m.insert("deliver_get".into(), s.c.deliver_get().into());
        m.insert("deliver_get_details".into(), details(rate));
    }
    Value::Object(m)
}

/// A cheap sort key for `message_stats.<counter>` and
/// `message_stats.<counter>_details.rate`, so lists sort by rates without
/// rendering every item.
pub(crate) fn stats_sort_key(s: &ObjStats, column: &str) -> Option<f64> {
    let path = column.strip_prefix("message_stats.")?;
    let (name, rate) = match path.strip_suffix("_details.rate") {
        Some(n) => (n, true),
        None => (path, false),
    };
    let i = counter_index(name)?;
    Some(if rate { s.rate(i) } else { s.c.values()[i] as f64 })
}

/// Counters a queue shows.
pub(crate) const QUEUE_FIELDS: &[&str] = &[
    "publish",
    "deliver",
    "deliver_no_ack",
    "get",
    "get_no_ack",
    "get_empty",
    "ack",
    "redeliver",
];
/// Counters a channel shows.
pub(crate) const CHANNEL_FIELDS: &[&str] = &[
    "publish",
    "confirm",
    "return_unroutable",
    "drop_unroutable",
    "deliver",
    "deliver_no_ack",
    "get",
    "get_no_ack",
    "get_empty",
    "ack",
    "redeliver",
];
/// Counters an exchange shows.
pub(crate) const EXCHANGE_FIELDS: &[&str] = &["publish_in", "publish_out"];

/// History of one vhost-level series for `*_details.samples`, when the request
/// asks with `msg_rates_age` / `lengths_age` (seconds) and `*_incr`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Window {
    pub age_ms: u64,
    pub incr_ms: u64,
}

impl Window {
    pub fn from_query(q: &super::super::Query, age: &str, incr: &str) -> Option<Window> {
        let age_s: u64 = q.get(age)?.parse().ok()?;
        let incr_s: u64 = q.get(incr).and_then(|v| v.parse().ok()).unwrap_or(5).max(1);
        Some(Window {
            age_ms: age_s.min(600) * 1000,
            incr_ms: incr_s * 1000,
        })
    }
}

/// `message_stats` of a vhost (or the node) with optional samples.
pub(crate) fn vhost_message_stats(v: &VhostStats, w: Option<Window>) -> Value {
    let values = v.totals.values();
    let mut m = Map::new();
    for (i, name) in MsgCounters::NAMES.iter().enumerate() {
        if *name == "publish_in" || *name == "publish_out" {
            continue;
        }
        m.insert((*name).to_owned(), values[i].into());
        let mut d = details(v.rate_of(i));
        if let Some(w) = w {
            add_samples(&mut d, v, w, |s| s.counters.values()[i]);
        }
        m.insert(format!("{name}_details"), d);
    }
    let dg: f64 = ["deliver", "deliver_no_ack", "get", "get_no_ack"]
        .iter()
        .filter_map(|n| counter_index(n))
        .map(|i| v.rate_of(i))
        .sum();
    m.insert("deliver_get".into(), v.totals.deliver_get().into());
    m.insert("deliver_get_details".into(), details(dg));
    Value::Object(m)
}

type SampleFn = fn(&Sample) -> u64;

/// `messages`, `messages_ready`, `messages_unacknowledged` with details.
pub(crate) fn queue_totals(v: &VhostStats, ready: u64, unacked: u64, w: Option<Window>) -> Value {
    let mut m = Map::new();
    let series: [(&str, u64, f64, SampleFn); 3] = [
        (
            "messages",
            ready + unacked,
            v.messages_ready_rate + v.messages_unacknowledged_rate,
            |s| s.messages_ready + s.messages_unacknowledged,
        ),
        ("messages_ready", ready, v.messages_ready_rate, |s| s.messages_ready),
        (
            "messages_unacknowledged",
            unacked,
            v.messages_unacknowledged_rate,
            |s| s.messages_unacknowledged,
        ),
    ];
    for (name, now, rate, f) in series {
        m.insert(name.into(), now.into());
        let mut d = details(rate);
        if let Some(w) = w {
            add_samples(&mut d, v, w, f);
        }
        m.insert(format!("{name}_details"), d);
    }
    Value::Object(m)
}

fn add_samples(d: &mut Value, v: &VhostStats, w: Window, f: impl Fn(&Sample) -> u64) {
    let Some(last) = v.history.back() else { return };
    let since = last.at_ms.saturating_sub(w.age_ms);
    let mut samples = Vec::new();
    let mut next_at = u64::MAX;
    // Newest first, as RabbitMQ lists them, one per `incr`.
    for s in v.history.iter().rev().take_while(|s| s.at_ms >= since) {
        if s.at_ms <= next_at {
            samples.push(json!({"sample": f(s), "timestamp": s.at_ms}));
            next_at = s.at_ms.saturating_sub(w.incr_ms) + 500;
        }
    }
    let avg = if samples.is_empty() {
        0.0
    } else {
        samples.iter().map(|s| s["sample"].as_f64().unwrap_or(0.0)).sum::<f64>() / samples.len() as f64
    };
    let avg_rate = match (samples.first(), samples.last()) {
        (Some(a), Some(b)) if a["timestamp"] != b["timestamp"] => {
            let dv = a["sample"].as_f64().unwrap_or(0.0) - b["sample"].as_f64().unwrap_or(0.0);
            let dt = (a["timestamp"].as_f64().unwrap_or(0.0) - b["timestamp"].as_f64().unwrap_or(0.0)) / 1000.0;
            dv / dt
        }
        _ => 0.0,
    };
    d["samples"] = Value::Array(samples);
    d["avg"] = json!(round(avg));
    d["avg_rate"] = json!(round(avg_rate));
}

/// Unused counter slots are kept so indexes line up with `MsgCounters::NAMES`.
const _: () = assert!(COUNTERS == 13);

/// Numbers about this process, from /proc (Linux).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct ProcStats {
    pub rss_bytes: u64,
    pub open_fds: u64,
    pub fd_limit: u64,
    pub uptime_ms: u64,
    pub disk_free_bytes: u64,
    pub cpu_secs: f64,
}

impl ProcStats {
    pub fn read(info: &crate::http::server::ServerInfo) -> ProcStats {
        let page = 4096u64;
        let rss_bytes = std::fs::read_to_string("/proc/self/statm")
            .ok()
            .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
            .map_or(0, |p| p * page);
        let open_fds = std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count() as u64);
        let fd_limit = std::fs::read_to_string("/proc/self/limits")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("Max open files"))
                    .and_then(|l| l.split_whitespace().nth(3)?.parse().ok())
            })
            .unwrap_or(0);
        // utime + stime in clock ticks (100 Hz on Linux).
        let cpu_secs = std::fs::read_to_string("/proc/self/stat")
            .ok()
            .and_then(|s| {
                let rest = s.rsplit_once(')')?.1;
                let f: Vec<&str> = rest.split_whitespace().collect();
                Some((f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?) / 100.0)
            })
            .unwrap_or(0.0);
        ProcStats {
            rss_bytes,
            open_fds,
            fd_limit,
            uptime_ms: info.started.elapsed().as_millis() as u64,
            disk_free_bytes: crate::sys::disk::free_bytes(&info.data_dir).unwrap_or(0),
            cpu_secs,
        }
    }
}

/// A reply made from every shard's part (`http::gather`).
pub(crate) fn gather(
    part: fn(&Req<'_>) -> Result<Part, ApiError>,
    merge: fn(&Req<'_>, Vec<Part>) -> Result<Reply, ApiError>,
) -> Result<Reply, ApiError> {
    Ok(Reply::Gather(crate::http::gather::Gather { part, merge }))
}

/// The merge of a list: every shard's items, sorted and paged as one list.
pub(crate) fn merge_list(req: &Req<'_>, parts: Vec<Part>) -> Result<Reply, ApiError> {
    paging::merge(parts, &ListParams::parse(&req.query)?)
}

/// The part of an object that is one shard's: its rendering where it is.
pub(crate) fn one_part(v: Option<Value>) -> Result<Part, ApiError> {
    Ok(match v {
        Some(v) => Part {
            rows: vec![Row::new(v, "", "")],
            total: 1,
            filtered: 1,
            found: true,
            aside: Vec::new(),
        },
        None => Part::default(),
    })
}

/// The merge of an object that is one shard's: its rendering, or 404.
pub(crate) fn merge_one(_: &Req<'_>, parts: Vec<Part>) -> Result<Reply, ApiError> {
    match parts.into_iter().flat_map(|p| p.rows).next() {
        Some(row) => Reply::ok(row.v),
        None => Err(ApiError::not_found()),
    }
}

/// The part of a command run where its object is: the command's reply,
/// carried as a row ([`merge_done`] makes it the reply again).
pub(crate) fn done_part(r: Result<Reply, ApiError>) -> Result<Part, ApiError> {
    let v = match r? {
        Reply::Empty(status) => json!({"status": status}),
        Reply::Json(status, body) => json!({"status": status, "body": body}),
        other => {
            debug_assert!(false, "a command answered {other:?}");
            return Err(ApiError::new(500, "internal_error", "an unexpected reply"));
        }
    };
    one_part(Some(v))
}

/// The merge of a command: the reply of the shard that ran it, or 404 when
/// none had its object.
pub(crate) fn merge_done(_: &Req<'_>, parts: Vec<Part>) -> Result<Reply, ApiError> {
    let Some(mut row) = parts.into_iter().flat_map(|p| p.rows).next() else {
        return Err(ApiError::not_found());
    };
    let status = row.v["status"].as_u64().unwrap_or(500) as u16;
    Ok(match row.v.get_mut("body").map(Value::take) {
        Some(body) => Reply::Json(status, body),
        None => Reply::Empty(status),
    })
}

/// Adds the numbers of `b` into `a`, in objects and arrays alike (the
/// overview of every shard's counts and rates); a `timestamp` stays `a`'s,
/// and what is not a number in both stays `a`'s.
pub(crate) fn sum_json(a: &mut Value, b: &Value) {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            let sum = match (x.as_u64(), y.as_u64()) {
                (Some(x), Some(y)) => Value::from(x.saturating_add(y)),
                _ => Value::from(round(x.as_f64().unwrap_or(0.0) + y.as_f64().unwrap_or(0.0))),
            };
            *x = match sum {
                Value::Number(n) => n,
                _ => unreachable!("a number"),
            };
        }
        (Value::Object(x), Value::Object(y)) => {
            for (k, v) in y {
                match x.get_mut(k) {
                    Some(_) if k == "timestamp" => {}
                    Some(mine) => sum_json(mine, v),
                    None => {
                        x.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        (Value::Array(x), Value::Array(y)) => {
            for (mine, v) in x.iter_mut().zip(y) {
                sum_json(mine, v);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
#[test]
fn sums_numbers_and_keeps_the_rest() {
    let mut a = json!({"n": 1, "r": {"rate": 0.5}, "s": [{"timestamp": 10, "sample": 2}], "name": "x"});
    let b = json!({"n": 2, "r": {"rate": 0.25}, "s": [{"timestamp": 11, "sample": 3}], "name": "y", "new": 4});
    sum_json(&mut a, &b);
    assert_eq!(
        a,
        json!({"n": 3, "r": {"rate": 0.75}, "s": [{"timestamp": 10, "sample": 5}], "name": "x", "new": 4})
    );
}

/// The part of a list every shard has all of (exchanges, vhosts), each with
/// its own counts and rates: every row the filter keeps, for [`merge_summed`].
pub(crate) fn all_part<I: paging::Item>(items: Vec<I>, req: &Req<'_>) -> Result<Part, ApiError> {
    let mut p = ListParams::parse(&req.query)?;
    p.page = None;
    paging::part(items, &p)
}

/// The merge of [`all_part`]s: each object once, its `keys` (counts, rates,
/// message stats) summed over the shards, sorted and paged as one list.
pub(crate) fn merge_summed(req: &Req<'_>, parts: Vec<Part>, keys: &[&str]) -> Result<Reply, ApiError> {
    let (total, filtered) = parts.first().map_or((0, 0), |p| (p.total, p.filtered));
    let mut rows: Vec<Row> = Vec::new();
    let mut at: std::collections::HashMap<(String, String), usize> = Default::default();
    for part in parts {
        for mut row in part.rows {
            match at.get(&(row.vhost.clone(), row.name.clone())) {
                Some(&i) => {
                    for k in keys {
                        if let (Some(mine), Some(theirs)) = (rows[i].v.get_mut(*k), row.v.get(*k)) {
                            sum_json(mine, theirs);
                        }
                    }
                    rows[i].forget_key();
                }
                None => {
                    row.forget_key();
                    at.insert((row.vhost.clone(), row.name.clone()), rows.len());
                    rows.push(row);
                }
            }
        }
    }
    let part = Part {
        rows,
        total,
        filtered,
        found: false,
        aside: Vec::new(),
    };
    paging::merge(vec![part], &ListParams::parse(&req.query)?)
}

/// The merge of one object every shard has (an exchange, a vhost): its
/// `keys` summed over the shards; 404 when none has it.
pub(crate) fn merge_one_summed(parts: Vec<Part>, keys: &[&str]) -> Result<Reply, ApiError> {
    let mut rows = parts.into_iter().flat_map(|p| p.rows);
    let mut one = rows.next().ok_or_else(ApiError::not_found)?.v;
    for row in rows {
        for k in keys {
            if let (Some(mine), Some(theirs)) = (one.get_mut(*k), row.v.get(*k)) {
                sum_json(mine, theirs);
            }
        }
    }
    Reply::ok(one)
}
