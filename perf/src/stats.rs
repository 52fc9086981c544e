//! Counters shared by the load tasks, rates, percentiles and medians.
//!
//! Tasks add to the atomic counters once per batch (not per message), so the
//! counters cost nothing measurable even at millions of messages per second.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

/// Totals since the start of a run.
#[derive(Debug, Default)]
pub struct Counters {
    pub published: AtomicU64,
    pub consumed: AtomicU64,
    pub confirmed: AtomicU64,
    pub nacked: AtomicU64,
    pub returned: AtomicU64,
    /// Publishes sent but not confirmed yet, over all publishers.
    pub outstanding: AtomicI64,
}

/// A snapshot of the counters at one instant.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Snapshot {
    pub published: u64,
    pub consumed: u64,
    pub confirmed: u64,
    pub outstanding: i64,
}

impl Counters {
    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            published: self.published.load(Relaxed),
            consumed: self.consumed.load(Relaxed),
            confirmed: self.confirmed.load(Relaxed),
            outstanding: self.outstanding.load(Relaxed),
        }
    }
}

/// Messages per second between two counter values; 0 for an empty interval.
pub fn rate(count_before: u64, count_after: u64, elapsed: Duration) -> f64 {
    let secs = elapsed.as_secs_f64();
    if secs <= 0.0 {
        return 0.0;
    }
    count_after.saturating_sub(count_before) as f64 / secs
}

/// The median of a sample (mean of the middle two for an even count).
pub fn median(values: &[f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut v = values.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    let mid = v.len() / 2;
    Some(if v.len() & 1 == 0 {
        (v[mid - 1] + v[mid]) / 2.0
    } else {
        v[mid]
    })
}

/// The percentiles the latency scenario reports, in microseconds.
pub const PERCENTILES: [(&str, f64); 6] = [
    ("p50", 50.0),
    ("p90", 90.0),
    ("p99", 99.0),
    ("p99_9", 99.9),
    ("p99_99", 99.99),
    ("max", 100.0),
];

/// A latency histogram in microseconds, 1 µs to 100 s at 3 significant digits.
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 100_000_000, 3).expect("valid histogram bounds")
}

/// `(name, value in µs)` for each of [`PERCENTILES`]; empty if nothing was recorded.
pub fn percentiles(h: &Histogram<u64>) -> Vec<(&'static str, u64)> {
    if h.is_empty() {
        return Vec::new();
    }
    PERCENTILES
        .iter()
        .map(|&(name, q)| {
            let v = if q >= 100.0 {
                h.max()
            } else {
                h.value_at_quantile(q / 100.0)
            };
            (name, v)
        })
        .collect()
}

/// The clock latency timestamps are taken from: nanoseconds since the first use
/// in this process. Publisher and consumer share the process, so a monotonic
/// clock is both exact and immune to wall-clock steps.
pub fn now_nanos() -> u64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    EPOCH.get_or_init(Instant::now).elapsed().as_nanos() as u64
}

/// Where consumers hand their latency samples to the reporter. Each consumer
/// records into its own histogram and merges it here about once per read batch,
/// and only if the lock is free, so the hot path never waits on the reporter.
#[derive(Debug)]
pub struct LatencySink {
    interval: Mutex<Histogram<u64>>,
}

impl Default for LatencySink {
    fn default() -> Self {
        LatencySink {
            interval: Mutex::new(new_histogram()),
        }
    }
}

impl LatencySink {
    /// Merges `local` in and resets it, unless the reporter holds the lock and
    /// `force` is false.
    pub fn merge(&self, local: &mut Histogram<u64>, force: bool) {
        if local.is_empty() {
            return;
        }
        let guard = if force {
            Some(self.interval.lock().unwrap_or_else(|e| e.into_inner()))
        } else {
            self.interval.try_lock().ok()
        };
        if let Some(mut h) = guard {
            h.add(&*local).expect("same histogram bounds");
            local.reset();
        }
    }

    /// Takes the samples merged since the last call.
    pub fn take(&self) -> Histogram<u64> {
        let mut h = self.interval.lock().unwrap_or_else(|e| e.into_inner());
        let out = h.clone();
        h.reset();
        out
    }
}

/// Reads VmRSS of a process from /proc, in bytes.
pub fn rss_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    parse_vmrss(&status)
}

/// CPU time (user + system) a process has used, in seconds, from
/// /proc/PID/stat. Ticks are taken as 100 a second: USER_HZ on every Linux
/// this runs on (x86-64, arm64), and the tool has no libc to ask sysconf.
pub fn cpu_secs(pid: u32) -> Option<f64> {
    parse_cpu_secs(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

fn parse_cpu_secs(stat: &str) -> Option<f64> {
    // After the command (in parentheses, which may hold spaces): state is
    // field 3, utime 14, stime 15.
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut f = rest.split_whitespace().skip(11);
    let (user, system): (u64, u64) = (f.next()?.parse().ok()?, f.next()?.parse().ok()?);
    Some((user + system) as f64 / 100.0)
}

fn parse_vmrss(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_time_is_read_past_a_command_with_spaces() {
        let stat = "42 (beam smp) S 1 42 42 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 30 0";
        assert_eq!(parse_cpu_secs(stat), Some(3.0));
        assert_eq!(parse_cpu_secs("42 (x"), None);
    }

    #[test]
    fn rates() {
        assert_eq!(rate(100, 1100, Duration::from_millis(500)), 2000.0);
        assert_eq!(rate(5, 5, Duration::from_secs(1)), 0.0);
        assert_eq!(rate(10, 5, Duration::from_secs(1)), 0.0);
        assert_eq!(rate(0, 10, Duration::ZERO), 0.0);
    }

    #[test]
    fn medians() {
        assert_eq!(median(&[]), None);
        assert_eq!(median(&[3.0]), Some(3.0));
        assert_eq!(median(&[5.0, 1.0, 3.0]), Some(3.0));
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), Some(2.5));
    }

    #[test]
    fn percentiles_of_uniform_samples() {
        let mut h = new_histogram();
        for v in 1..=10_000u64 {
            h.record(v).unwrap();
        }
        let p: std::collections::HashMap<_, _> = percentiles(&h).into_iter().collect();
        // 3 significant digits: within 0.1 % of the exact rank value.
        let close = |got: u64, want: u64| (got as f64 - want as f64).abs() <= want as f64 * 0.001 + 1.0;
        assert!(close(p["p50"], 5_000), "{}", p["p50"]);
        assert!(close(p["p90"], 9_000));
        assert!(close(p["p99"], 9_900));
        assert!(close(p["p99_9"], 9_990));
        assert!(close(p["max"], 10_000));
        assert!(percentiles(&new_histogram()).is_empty());
    }

    #[test]
    fn latency_sink_merges_and_takes() {
        let sink = LatencySink::default();
        let mut local = new_histogram();
        local.record(10).unwrap();
        local.record(20).unwrap();
        sink.merge(&mut local, false);
        assert!(local.is_empty());
        let h = sink.take();
        assert_eq!(h.len(), 2);
        assert!(sink.take().is_empty());
    }

    #[test]
    fn vmrss_line() {
        let s = "Name:\tringmq\nVmPeak:\t  100 kB\nVmRSS:\t    2048 kB\nThreads: 3\n";
        assert_eq!(parse_vmrss(s), Some(2048 * 1024));
        assert_eq!(parse_vmrss("Name: x\n"), None);
    }
}
