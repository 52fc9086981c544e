//! The harness itself: a hand-written script reaches a delivery (so the fuzz
//! targets can), and the checks see what the broker sends.

use ringmq_fuzz::amqp::{AmqpOp, Body, Chan, ClientMethod, Publish, Tag};
use ringmq_fuzz::sim::{Setup, Sim};
use ringmq_fuzz::values::{Args, ExchangeName, Name};

#[test]
fn a_script_declares_publishes_and_gets() {
    let mut sim = Sim::new(Setup {
        sync: false,
        channel_max: 0,
        consumer_timeout: false,
        prelude: 0,
    });
    ringmq_fuzz::amqp::prelude(&mut sim, 0x80);
    let q0 = || Name::Core(0);
    let steps = [
        AmqpOp::Method {
            conn: 0,
            channel: Chan::ONE,
            method: ClientMethod::QueueDeclare {
                name: q0(),
                flags: 0,
                args: Args::default(),
            },
        },
        AmqpOp::Publish(Publish {
            conn: 0,
            channel: Chan::ONE,
            exchange: ExchangeName::Known(0),
            key: q0(),
            flags: 0,
            props: Default::default(),
            body: Body::Bytes(b"m".to_vec()),
            chunk: 0,
            size_delta: None,
        }),
        AmqpOp::Method {
            conn: 0,
            channel: Chan::ONE,
            method: ClientMethod::BasicGet {
                queue: q0(),
                no_ack: false,
            },
        },
        AmqpOp::Method {
            conn: 0,
            channel: Chan::ONE,
            method: ClientMethod::BasicAck {
                tag: Tag::Seen(0),
                multiple: false,
            },
        },
    ];
    for step in &steps {
        step.run(&mut sim);
    }
    assert_eq!(sim.clients.len(), 1, "the connection is still open");
    assert_eq!(sim.clients[0].tags, vec![(1, 1)], "one message got, with tag 1");
    sim.restart(false);
}

/// A publish to the durable q1 with delivery mode 2 (its confirm waits for a
/// group commit when `sync` is on).
fn persistent_publish() -> AmqpOp {
    AmqpOp::Publish(Publish {
        conn: 0,
        channel: Chan::ONE,
        exchange: ExchangeName::Any(Name::Any("x0".into())),
        key: Name::Any("a.b".into()),
        flags: 0,
        props: ringmq_fuzz::amqp::Props {
            delivery_mode: Some(2),
            ..Default::default()
        },
        body: Body::Bytes(b"m".to_vec()),
        chunk: 0,
        size_delta: None,
    })
}

fn confirm_select(no_wait: bool) -> AmqpOp {
    AmqpOp::Method {
        conn: 0,
        channel: Chan::ONE,
        method: ClientMethod::ConfirmSelect(no_wait),
    }
}

fn synced_sim() -> Sim {
    let mut sim = Sim::new(Setup {
        sync: true,
        channel_max: 0,
        consumer_timeout: false,
        prelude: 0,
    });
    // Queues, exchange and bindings; no consumer, no confirms yet.
    ringmq_fuzz::amqp::prelude(&mut sim, 0x81);
    sim
}

/// A no-wait confirm.select puts the channel in confirm mode without an
/// answer: a publish after it is confirmed with tag 1, also when a second
/// confirm.select (answered this time) comes before the confirm. The broker
/// is right (RabbitMQ counts from the first select); the harness must count
/// the publish (found by the fuzzer: "confirm of publish 1 on channel 1: 0
/// sent").
#[test]
fn a_no_wait_confirm_select_counts_the_publishes_after_it() {
    let mut sim = synced_sim();
    for step in [confirm_select(true), persistent_publish(), confirm_select(false)] {
        step.run(&mut sim);
    }
    sim.sync(false);
    assert_eq!(sim.clients.len(), 1, "the connection is still open");
}

/// After raw bytes the harness cannot know what the channel published: a
/// confirm.select-ok after that must not restart its count at zero.
#[test]
fn confirms_stay_unchecked_after_raw_bytes_until_the_channel_opens_again() {
    let mut sim = synced_sim();
    let raw = AmqpOp::Raw {
        conn: 0,
        bytes: Vec::new(),
    };
    for step in [confirm_select(false), raw, persistent_publish(), confirm_select(false)] {
        step.run(&mut sim);
    }
    sim.sync(false);
    assert_eq!(sim.clients.len(), 1, "the connection is still open");
}
