//! An idle connection gives its output buffer back: 10,000 idle connections
//! each kept the ~1 KiB their handshake grew (`ringmqperf connection-count`).

use super::harness::Harness;
use crate::core::amqp::output::{Output, IDLE_RELEASE_MS};

#[test]
fn an_idle_connection_frees_its_output_buffer_and_a_busy_one_keeps_it() {
    let mut h = Harness::new(1, false, |_| {});
    let c = h.connect(0, &[1]);
    // The io layer hands back a buffer that has capacity (its spare, swapped in).
    let now = h.now();
    let mut spare = Output::default();
    spare.reserve(4096);
    assert!(h.broker_mut().take_output(c, &mut spare, now));
    let held = h.broker().connection(c).unwrap().output_capacity();
    assert!(held >= 4096, "the spare is the connection's buffer now: {held}");
    h.advance(IDLE_RELEASE_MS / 2);
    h.fire_timers();
    assert!(
        h.broker().connection(c).unwrap().output_capacity() >= 4096,
        "kept while not idle for long"
    );
    h.advance(IDLE_RELEASE_MS);
    h.fire_timers();
    assert_eq!(h.broker().connection(c).unwrap().output_capacity(), 0, "idle: freed");
}
