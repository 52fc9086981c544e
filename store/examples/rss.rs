//! Appends N 16-byte messages to a queue in a temp dir and prints throughput and the
//! process's VmRSS / VmHWM: memory must not grow with the queue.
//!
//! `cargo run -p ringmq-store --release --example rss -- 100000000`

use std::time::Instant;

use ringmq_store::{MessageRef, QueueStore, StoreConfig};

/// Group commit every this many appends, as a broker's loop turn would.
const APPENDS_PER_SYNC: u64 = 65_536;

fn proc_status(key: &str) -> String {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with(key))
        .map(|l| l.trim().to_string())
        .unwrap_or_default()
}

fn main() -> std::io::Result<()> {
    let count: u64 = std::env::args()
        .nth(1)
        .map(|s| s.parse().expect("count must be a number"))
        .unwrap_or(10_000_000);
    let dir = tempfile::tempdir_in(std::env::var_os("RINGMQ_BENCH_DIR").unwrap_or_else(|| "/tmp".into()))?;
    let (mut q, _) = QueueStore::open(dir.path(), StoreConfig::default())?;
    let body = [0x42u8; 16];
    let msg = MessageRef {
        timestamp_ms: 1,
        exchange: b"",
        routing_key: b"rss-queue",
        properties: b"",
        body: &body,
    };
    let start = Instant::now();
    for i in 0..count {
        q.append(msg).expect("append");
        if i % APPENDS_PER_SYNC == APPENDS_PER_SYNC - 1 {
            q.sync_all_blocking()?;
        }
    }
    q.sync_all_blocking()?;
    let secs = start.elapsed().as_secs_f64();
    println!(
        "appended {count} msgs ({:.2} GB on disk, {} segments) in {secs:.1} s: {:.0} msgs/s, {:.1} MB/s of records",
        q.total_bytes() as f64 / 1e9,
        q.segment_count(),
        count as f64 / secs,
        q.total_bytes() as f64 / secs / 1e6
    );
    println!(
        "ready_count={} {} {}",
        q.ready_count(),
        proc_status("VmRSS"),
        proc_status("VmHWM")
    );
    let t = Instant::now();
    q.close()?;
    let (q, report) = QueueStore::open(dir.path(), StoreConfig::default())?;
    println!(
        "reopen: {} msgs recovered in {:.2} s; {} {}",
        report.messages_recovered,
        t.elapsed().as_secs_f64(),
        proc_status("VmRSS"),
        proc_status("VmHWM")
    );
    q.delete()
}
