//! Times `QueueStore::open` (full checksum verification) of a large queue.
//!
//! `cargo run -p ringmq-store --release --example recover -- 1024 1024`
//! (queue size in MiB, body size in bytes). Drops the page cache first if run as root
//! and `--cold` is given, to show the disk-bound case too.

use std::time::Instant;

use ringmq_store::{MessageRef, QueueStore, StoreConfig};

fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let mib: u64 = args.next().map(|s| s.parse().expect("MiB")).unwrap_or(1024);
    let body_bytes: usize = args.next().map(|s| s.parse().expect("body bytes")).unwrap_or(1024);
    let cold = args.next().as_deref() == Some("--cold");
    let dir = tempfile::tempdir_in(std::env::var_os("RINGMQ_BENCH_DIR").unwrap_or_else(|| "/tmp".into()))?;
    let (mut q, _) = QueueStore::open(dir.path(), StoreConfig::default())?;
    let body = vec![0x17u8; body_bytes];
    let msg = MessageRef {
        timestamp_ms: 1,
        exchange: b"amq.direct",
        routing_key: b"recover",
        properties: b"",
        body: &body,
    };
    let mut n = 0u64;
    while q.total_bytes() < mib << 20 {
        q.append(msg).expect("append");
        n += 1;
    }
    // Consume and ack a quarter so recovery also reads ack files.
    for _ in 0..n / 4 {
        let p = q.next_ready().expect("next").expect("ready");
        q.ack(p).expect("ack");
    }
    q.close()?;
    if cold {
        std::fs::write("/proc/sys/vm/drop_caches", b"3")?;
    }
    let t = Instant::now();
    let (q, report) = QueueStore::open(dir.path(), StoreConfig::default())?;
    let secs = t.elapsed().as_secs_f64();
    println!(
        "open of {:.0} MiB queue ({n} msgs of {body_bytes} B, {} ready, {} segments){}: {:.3} s, {:.0} MB/s",
        mib,
        report.messages_recovered,
        q.segment_count(),
        if cold { " cold cache" } else { " warm cache" },
        secs,
        (mib << 20) as f64 / secs / 1e6
    );
    q.delete()
}
