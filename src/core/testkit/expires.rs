//! x-expires counts a redeclare and the end of the last consumer as use, as
//! RabbitMQ does ("unused: no consumers, not redeclared, no basic.get"). Found
//! by the simulation: a queue expired 3 ms after a client redeclared it, and a
//! queue consumed from for longer than its x-expires expired the moment its
//! consumer went.

use ringmq_codec::{short, BasicCancel, BasicConsume, FieldTable, Method, Table};

use super::client::{self, method, name};
use super::harness::Harness;

const EXPIRES_MS: u64 = 300;

fn declare() -> Vec<u8> {
    let mut args = FieldTable::new();
    args.insert(short!("x-expires"), EXPIRES_MS as i64);
    client::queue_declare(1, "qx", &args.to_bytes())
}

fn exists(h: &Harness) -> bool {
    h.broker().model.vhosts["/"].queue_id("qx").is_some()
}

#[test]
fn a_redeclare_renews_the_lease() {
    let mut h = Harness::new(1, false, |_| {});
    let c = h.connect(0, &[1]);
    h.send(c, &declare());
    h.advance(EXPIRES_MS - 10);
    h.send(c, &declare());
    h.advance(20);
    h.fire_timers();
    assert!(exists(&h), "expired {} ms after a redeclare", 20);
    h.advance(EXPIRES_MS);
    h.fire_timers();
    assert!(!exists(&h), "unused for its x-expires after the redeclare");
}

#[test]
fn the_lease_starts_when_the_last_consumer_goes() {
    let mut h = Harness::new(1, false, |_| {});
    let c = h.connect(0, &[1]);
    h.send(c, &declare());
    let consume = method(
        1,
        Method::BasicConsume(BasicConsume {
            ticket: 0,
            queue: name("qx"),
            consumer_tag: short!("t"),
            no_local: false,
            no_ack: false,
            exclusive: false,
            no_wait: false,
            arguments: Table::EMPTY,
        }),
    );
    h.send(c, &consume);
    // In use for three times its x-expires: the timer must not take it.
    for _ in 0..3 {
        h.advance(EXPIRES_MS);
        h.fire_timers();
        assert!(exists(&h), "expired with a consumer");
    }
    let cancel = method(
        1,
        Method::BasicCancel(BasicCancel {
            consumer_tag: short!("t"),
            no_wait: false,
        }),
    );
    h.send(c, &cancel);
    h.advance(10);
    h.fire_timers();
    assert!(exists(&h), "expired 10 ms after its last consumer went");
    h.advance(EXPIRES_MS);
    h.fire_timers();
    assert!(!exists(&h), "unused for its x-expires after the cancel");
}
