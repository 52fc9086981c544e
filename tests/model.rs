//! A seeded model-based test of durable state through the real binary (issue
//! 15, robustness): random declares, deletes and re-declares of queues and
//! exchanges, bindings, policies, confirmed persistent and transient
//! publishes, gets, consumes, acks, rejects, nacks, requeues, purges,
//! dead-lettering and length limits, with clean and kill -9 restarts. After
//! each restart every queue, binding, count, body, order and redelivered flag
//! is compared with what the model allows (`model/restart.rs` says which
//! states those are and why).
//!
//! `MODEL_SEED` picks the first seed (random otherwise; printed at the start
//! and on a failure), `MODEL_SEEDS` how many seeds in a row, `MODEL_OPS` the
//! operations per seed, `MODEL_TRACE=1` prints each operation (2: and the model's queues after each), and
//! `MODEL_REPLAY=FILE` runs the operations of a log or script instead (cut a
//! failing seed's log down by hand; `model/script.rs`). The default run
//! is 3 seeds x 250 operations; `tests/model/run.sh N` runs N seeds and lists
//! the failing ones. With `RINGMQ_TEST_URI` the same operations run against
//! that broker without restarts, to check the model against RabbitMQ.

mod common;

#[path = "model/client.rs"]
mod client;
#[path = "model/ops.rs"]
mod ops;
#[path = "model/restart.rs"]
mod restart;
#[path = "model/runner.rs"]
mod runner;
#[path = "model/script.rs"]
mod script;
#[path = "model/semantics.rs"]
mod semantics;
#[path = "model/state.rs"]
mod state;

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().map(|v| {
        v.trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name} must be a number, got {v:?}"))
    })
}

#[test]
fn model_seeds() {
    let first = env_u64("MODEL_SEED").unwrap_or_else(rand::random);
    let seeds = env_u64("MODEL_SEEDS").unwrap_or(3);
    let ops = env_u64("MODEL_OPS").unwrap_or(250) as usize;
    let trace = env_u64("MODEL_TRACE").unwrap_or(0) as u8;
    if let Ok(path) = std::env::var("MODEL_REPLAY") {
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("MODEL_REPLAY={path}: {e}"));
        let ops: Vec<ops::Op> = text
            .lines()
            .filter_map(ops::Op::parse)
            .map(|r| r.unwrap_or_else(|e| panic!("MODEL_REPLAY={path}: {e}")))
            .collect();
        eprintln!(
            "model: replaying {} operations of {path} with MODEL_SEED={first}",
            ops.len()
        );
        let s = runner::run_seed(first, runner::Source::Script(ops), trace);
        eprintln!("model: replay passed: {s:?}");
        return;
    }
    let mut total = runner::Stats::default();
    for seed in first..first.saturating_add(seeds) {
        eprintln!("model: MODEL_SEED={seed} MODEL_OPS={ops}");
        let s = runner::run_seed(seed, runner::Source::Generated { ops }, trace);
        eprintln!("model: seed {seed} passed: {s:?}");
        total.ops += s.ops;
        total.clean += s.clean;
        total.kill9 += s.kill9;
        total.kill9_settled += s.kill9_settled;
        total.kill9_with_maybe += s.kill9_with_maybe;
        total.looks += s.looks;
        total.published += s.published;
        total.delivered += s.delivered;
        total.model.dead_lettered += s.model.dead_lettered;
        total.model.dropped_head += s.model.dropped_head;
        total.model.refused_publish += s.model.refused_publish;
        total.model.requeued += s.model.requeued;
        total.model.maybe_at_kill += s.model.maybe_at_kill;
    }
    eprintln!("model: {seeds} seed(s) from {first}: {total:?}");
}
