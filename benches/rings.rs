//! The cost of moving a batch between two shard threads through the SPSC ring
//! (`ringmq::io::rings`): a producer thread pushes boxed batches as fast as the
//! ring takes them, the measuring thread pops; time per batch, wake-ups aside
//! (both sides spin, as two busy shards would not sleep).
//!
//! Run: `cargo bench -p ringmq --bench rings`.

use std::hint::black_box;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use ringmq::io::rings::spsc;

/// A batch as a shard would send it: one allocation holding a turn's items.
type Batch = Box<[u64; 8]>;

fn ring_between_threads(c: &mut Criterion) {
    let mut group = c.benchmark_group("spsc");
    group.throughput(Throughput::Elements(1));
    for slots in [8usize, 256] {
        let (mut p, mut consumer) = spsc::ring::<Batch>(slots);
        let stop = Arc::new(AtomicBool::new(false));
        let producer = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut i = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    if p.push(Box::new([i; 8])).is_ok() {
                        i += 1;
                    } else {
                        std::hint::spin_loop();
                    }
                }
            })
        };
        group.bench_function(format!("pop a batch pushed by another thread, {slots} slots"), |b| {
            b.iter(|| loop {
                if let Some(batch) = consumer.pop() {
                    break black_box(batch[0]);
                }
                std::hint::spin_loop();
            })
        });
        stop.store(true, Ordering::Relaxed);
        // Let the producer see the flag even if it is spinning on a full ring.
        while consumer.pop().is_some() {}
        producer.join().unwrap();
    }
    group.finish();
}

criterion_group!(benches, ring_between_threads);
criterion_main!(benches);
