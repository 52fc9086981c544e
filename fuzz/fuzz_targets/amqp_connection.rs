//! The connection state machine: a script of AMQP steps (methods, publishes,
//! raw and corrupted frames, time, group commits, alarms, disconnects,
//! restarts, some API requests) against a whole broker in memory, starting
//! from one connection through its handshake with queues, bindings and a
//! consumer (`amqp::prelude`). Invariants: see `src/sim.rs`.
//! Every script ends with a clean restart, so what it left on disk must open.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ringmq_fuzz::amqp::{prelude, AmqpOp};
use ringmq_fuzz::sim::{Setup, Sim};

/// Steps per input: enough for declare, bind, consume, publish, ack, restart.
const STEPS_MAX: usize = 64;

fuzz_target!(|input: (Setup, Vec<AmqpOp>)| {
    let (setup, steps) = input;
    let mut sim = Sim::new(setup);
    prelude(&mut sim, setup.prelude);
    for step in steps.iter().take(STEPS_MAX) {
        step.run(&mut sim);
    }
    sim.restart(false);
});
