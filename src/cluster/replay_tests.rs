//! The record-and-replay test of `docs/cluster.md` at the store's level:
//! seeded random work on every kind of durable file (queues with priority
//! levels and delivery counts, streams with offsets, filters and retention,
//! the definitions log and its compaction, atomic JSON files, the `running`
//! marker; a transient queue beside them), every change recorded, and the
//! replica compared with the data directory byte for byte after every few
//! operations. A failure names its seed (`RINGMQ_REPLAY_SEED` runs one).
//! The broker's own workload: `core::testkit::replicated`.

use rand::Rng;
use ringmq_store::MessageRef;

use super::replay_world::World;
use super::replica_check::Replica;

/// Runs `steps` random operations for `seed`, checking the replica every few.
fn run(seed: u64, steps: usize) -> Result<Replica, String> {
    let root = tempfile::tempdir().unwrap();
    let mut replica = Replica::record(root.path());
    let mut w = World::new(root.path(), seed);
    let mut transient = w.transient();
    let mut trail = Vec::new();
    for i in 0..steps {
        trail.push(w.step());
        if i % 7 == 0 {
            let body = w.body();
            transient
                .append(
                    MessageRef {
                        timestamp_ms: 1,
                        exchange: b"",
                        routing_key: b"t",
                        properties: b"",
                        body: &body,
                    },
                    0,
                )
                .unwrap();
        }
        if i % 5 == 0 || w.rng.random_bool(0.1) {
            replica
                .check(&format!(
                    "seed {seed} step {i} ({})",
                    trail[trail.len().saturating_sub(5)..].join("; ")
                ))
                .inspect_err(|_| drop(replica_stop()))?;
        }
    }
    drop(transient);
    w.close();
    replica.check(&format!("seed {seed} after the clean close"))?;
    replica.replay_on_disk().map_err(|e| format!("seed {seed}: {e}"))?;
    drop(root);
    Ok(replica)
}

fn replica_stop() -> Option<Box<dyn ringmq_store::changes::ChangeSink>> {
    ringmq_store::changes::uninstall()
}

fn seeds(count: u64) -> Vec<u64> {
    if let Some(seed) = std::env::var("RINGMQ_REPLAY_SEED").ok().and_then(|s| s.parse().ok()) {
        return vec![seed];
    }
    let base: u64 = rand::random();
    (0..count).map(|i| base.wrapping_add(i)).collect()
}

#[test]
fn random_store_work_replays_to_an_equal_directory() {
    for seed in seeds(8) {
        eprintln!("replay seed {seed}");
        let replica = run(seed, 1500).unwrap_or_else(|e| panic!("{e}"));
        assert!(replica.checks > 200, "checked {} times", replica.checks);
        let kinds = replica.kinds();
        eprintln!(
            "  {} changes (write, replace, truncate, remove, rename: {kinds:?}), {} checks, up to {} files",
            replica.changes(),
            replica.checks,
            replica.files_max
        );
        assert!(kinds.iter().all(|&n| n > 0), "every kind of change: {kinds:?}");
        assert!(replica.files_max > 20, "{} files", replica.files_max);
        replica.stop();
    }
}
