//! The record-and-replay test of `docs/cluster.md` on the broker: the seeded
//! simulation (`sim`) runs with tiny segments while every change the broker
//! makes to its data directory is recorded as a leader would record it
//! (`cluster::record`), and the replica is compared with the directory byte
//! for byte every few steps, after the final drain and after the broker is
//! dropped; then every change is replayed on disk into an empty directory.
//! Profiles without power loss (which rewinds the directory behind the
//! broker's back): declares, deletes, publishes, acks, rejects, purges,
//! policies, TTL, expiry, delayed messages, transactions, clean restarts.
//! Seeds are printed; `RINGMQ_SIM_SEED` replays one.

use crate::cluster::replica_check::Replica;

use super::scenario::{Profile, POLICIES, TIMERS};
use super::sim::{seeds, Sim};

fn run(seed: u64, profile: Profile, steps: usize) {
    let mut replica = None;
    let mut sim = Sim::configured(seed, profile, |c| {
        c.store.segment_bytes = 512;
        replica = Some(Replica::record(&c.data_dir));
    });
    let mut replica = replica.expect("configured");
    let fail = |e: String| -> ! {
        ringmq_store::changes::uninstall();
        panic!("sim seed {seed} profile {}: {e}", profile.name)
    };
    sim.connect();
    for i in 0..steps {
        sim.h.advance(1);
        sim.random_step();
        sim.check();
        if i % 3 == 0 {
            replica.check(&format!("step {i}")).unwrap_or_else(|e| fail(e));
        }
    }
    let (_, keep) = sim.h.data_dir();
    sim.finish();
    replica.check("after the drain").unwrap_or_else(|e| fail(e));
    replica.replay_on_disk().unwrap_or_else(|e| fail(e));
    let kinds = replica.kinds();
    eprintln!(
        "  {} changes (write, replace, truncate, remove, rename: {kinds:?}), {} checks, up to {} files",
        replica.changes(),
        replica.checks,
        replica.files_max
    );
    replica.stop();
    drop(keep);
    assert!(kinds.iter().take(4).all(|&n| n > 0), "every kind of change: {kinds:?}");
}

#[test]
fn a_simulated_broker_replays_to_an_equal_directory() {
    for (profile, count) in [(POLICIES, 3), (TIMERS, 3)] {
        for seed in seeds(count) {
            eprintln!("sim seed {seed} profile {}", profile.name);
            run(seed, profile, profile.steps);
        }
    }
}
