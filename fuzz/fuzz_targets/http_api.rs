//! The management API: a script of requests (any route, method, path, login,
//! headers and body) with some AMQP steps and restarts in between, against a
//! whole broker in memory (starting from `amqp::prelude`: a connection,
//! queues, bindings, a consumer). No request may answer 5xx or panic; JSON replies
//! parse; what an import or a PUT accepted must open again after a restart
//! (every script ends with one). Invariants: see `src/sim.rs`.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use ringmq_fuzz::amqp::{prelude, AmqpOp};
use ringmq_fuzz::http::HttpOp;
use ringmq_fuzz::sim::{Setup, Sim};

/// Steps per input.
const STEPS_MAX: usize = 32;

/// Three request variants to one AMQP step: `arbitrary` picks variants
/// evenly, so this makes three steps in four requests.
#[derive(Debug, Arbitrary)]
enum Step {
    Request(HttpOp),
    Request2(HttpOp),
    Request3(HttpOp),
    Amqp(Box<AmqpOp>),
}

fuzz_target!(|input: (Setup, Vec<Step>)| {
    let (setup, steps) = input;
    let mut sim = Sim::new(setup);
    prelude(&mut sim, setup.prelude);
    for step in steps.iter().take(STEPS_MAX) {
        match step {
            Step::Request(r) | Step::Request2(r) | Step::Request3(r) => r.run(&mut sim),
            Step::Amqp(op) => op.run(&mut sim),
        }
    }
    sim.restart(false);
});
