//! Store benches: append throughput per body size, sequential read, recovery of a
//! 256 MiB queue. `cargo bench --bench store`. Appends are measured without syncing
//! (group commit cost is the disk's; see store/examples/rss.rs for appends with a sync
//! every 64 Ki messages).

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use ringmq_store::{MessageRef, QueueStore, StoreConfig};

const BODY_SIZES: [usize; 3] = [16, 1024, 64 * 1024];
const RECOVERY_QUEUE_BYTES: u64 = 256 << 20;

fn message(body: &[u8]) -> MessageRef<'_> {
    MessageRef {
        timestamp_ms: 1,
        exchange: b"amq.direct",
        routing_key: b"bench",
        properties: b"",
        body,
    }
}

fn fresh() -> (tempfile::TempDir, QueueStore) {
    let dir = tempfile::tempdir().expect("tempdir");
    let (q, _) = QueueStore::open(dir.path(), StoreConfig::default()).expect("open");
    (dir, q)
}

fn append(c: &mut Criterion) {
    let mut g = c.benchmark_group("store_append");
    g.sample_size(10).measurement_time(Duration::from_secs(3));
    for size in BODY_SIZES {
        let body = vec![0xA5u8; size];
        g.throughput(Throughput::Elements(1));
        g.bench_with_input(BenchmarkId::new("msgs", size), &body, |b, body| {
            b.iter_custom(|iters| {
                let (_dir, mut q) = fresh();
                let t = Instant::now();
                for _ in 0..iters {
                    black_box(q.append(message(body)).expect("append"));
                }
                let elapsed = t.elapsed();
                q.delete().expect("delete");
                elapsed
            })
        });
        g.throughput(Throughput::Bytes(size as u64));
        g.bench_with_input(BenchmarkId::new("body_bytes", size), &body, |b, body| {
            b.iter_custom(|iters| {
                let (_dir, mut q) = fresh();
                let t = Instant::now();
                for _ in 0..iters {
                    black_box(q.append(message(body)).expect("append"));
                }
                let elapsed = t.elapsed();
                q.delete().expect("delete");
                elapsed
            })
        });
    }
    g.finish();
}

/// next_ready + read (CRC verified, body touched), no ack: the delivery read path.
fn read(c: &mut Criterion) {
    let mut g = c.benchmark_group("store_read_sequential");
    g.sample_size(10).measurement_time(Duration::from_secs(3));
    for size in [16usize, 1024] {
        let body = vec![0x3Cu8; size];
        g.throughput(Throughput::Bytes(size as u64));
        g.bench_with_input(BenchmarkId::from_parameter(size), &body, |b, body| {
            b.iter_custom(|iters| {
                let (_dir, mut q) = fresh();
                for _ in 0..iters {
                    q.append(message(body)).expect("append");
                }
                let t = Instant::now();
                for _ in 0..iters {
                    let pos = q.next_ready().expect("next").expect("ready");
                    let v = q.read(pos).expect("read");
                    black_box(v.body[v.body.len() / 2]);
                }
                let elapsed = t.elapsed();
                q.delete().expect("delete");
                elapsed
            })
        });
    }
    g.finish();
}

fn recovery(c: &mut Criterion) {
    let (dir, mut q) = fresh();
    let body = vec![0x11u8; 1024];
    while q.total_bytes() < RECOVERY_QUEUE_BYTES {
        q.append(message(&body)).expect("append");
    }
    q.close().expect("close");
    let mut g = c.benchmark_group("store_recovery");
    g.sample_size(10).throughput(Throughput::Bytes(RECOVERY_QUEUE_BYTES));
    g.bench_function("open_256MiB_1KiB_msgs", |b| {
        b.iter(|| {
            let (q, report) = QueueStore::open(dir.path(), StoreConfig::default()).expect("open");
            black_box(report.messages_recovered);
            q.close().expect("close");
        })
    });
    g.finish();
}

criterion_group!(benches, append, read, recovery);
criterion_main!(benches);
