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
