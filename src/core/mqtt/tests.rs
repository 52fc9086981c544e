//! The session over a real broker core, without sockets: CONNACK, the
//! PUBACK of a QoS 1 publish held until its group commit, deliveries and
//! their acks, the keepalive, refusals, and arbitrary input (no panic).

use std::rc::Rc;

use mq::{Packet, QoS, Version};
use ringmq_mqtt_codec as mq;

use super::{Session, Settings};
use crate::core::amqp::output::Output;
use crate::core::model::ids::ConnId;
use crate::core::testkit::client;
use crate::core::testkit::harness::Harness;

/// A session on connection `id` of the harness's broker.
struct Mqtt {
    s: Session,
    id: ConnId,
    /// MQTT bytes the client has not decoded yet.
    got: Vec<u8>,
}

fn open(h: &mut Harness) -> Mqtt {
    let now = h.now();
    let id = h.broker_mut().handle_connect("sim".into(), true, now);
    Mqtt {
        s: Session::new(Rc::new(Settings::default()), true, now),
        id,
        got: Vec::new(),
    }
}

fn bytes(p: &Packet<'_>) -> Vec<u8> {
    let mut out = Vec::new();
    mq::encode(p, Version::V3_1_1, &mut out);
    out
}

fn connect_packet(client_id: &str, clean: bool, keepalive: u16) -> Vec<u8> {
    bytes(&Packet::Connect(mq::Connect {
        version: Version::V3_1_1,
        clean_start: clean,
        keep_alive_secs: keepalive,
        properties: Default::default(),
        client_id,
        will: None,
        username: Some("guest"),
        password: Some(b"guest"),
    }))
}

fn publish(topic: &str, qos: u8, packet_id: u16, payload: &[u8]) -> Vec<u8> {
    bytes(&Packet::Publish(mq::Publish {
        dup: false,
        qos: QoS::from_bits(qos).unwrap(),
        retain: false,
        topic,
        packet_id: (qos > 0).then_some(packet_id),
        properties: Default::default(),
        payload,
    }))
}

fn subscribe(packet_id: u16, filter: &str, qos: u8) -> Vec<u8> {
    let mut out = Vec::new();
    let f = [(filter, mq::SubOptions::qos(QoS::from_bits(qos).unwrap()))];
    mq::Subscribe::encode(&mut out, Version::V3_1_1, packet_id, &Default::default(), &f);
    out
}

/// Feeds `input` to session `m`: how much it took.
fn feed(h: &mut Harness, m: &mut Mqtt, input: &[u8]) -> usize {
    let now = h.now();
    m.s.handle_input(h.broker_mut(), m.id, input, now)
}

/// Runs the broker's pending work, then what session `m` has for its
/// client, decoded (as the io layer's writer takes it).
fn take(h: &mut Harness, m: &mut Mqtt) -> Vec<String> {
    let now = h.now();
    let b = h.broker_mut();
    let mut dirty = Vec::new();
    b.take_dirty(&mut dirty);
    while b.has_pending_work() {
        b.run_pending();
        b.take_dirty(&mut dirty);
    }
    let mut out = Output::default();
    m.s.take_output(b, m.id, &mut out, now);
    m.got.extend_from_slice(&out);
    let mut names = Vec::new();
    loop {
        match mq::decode(&m.got, Version::V3_1_1, usize::MAX) {
            Ok((p, used)) => {
                names.push(describe(&p));
                m.got.drain(..used);
            }
            Err(mq::DecodeError::Incomplete(_)) => return names,
            Err(e) => panic!("the session sent a malformed packet: {e:?}"),
        }
    }
}

fn describe(p: &Packet<'_>) -> String {
    match p {
        Packet::ConnAck(c) => format!("connack {}", c.code),
        Packet::PubAck(a) => format!("puback {}", a.packet_id),
        Packet::SubAck(s) => format!("suback {} {:?}", s.packet_id, s.codes),
        Packet::Publish(p) => format!(
            "publish {} q{} {:?} {}",
            p.topic,
            p.qos as u8,
            p.packet_id,
            String::from_utf8_lossy(p.payload)
        ),
        other => other.name().to_owned(),
    }
}

fn connected(h: &mut Harness, client_id: &str, keepalive: u16) -> Mqtt {
    let mut m = open(h);
    let input = connect_packet(client_id, true, keepalive);
    assert_eq!(feed(h, &mut m, &input), input.len());
    assert_eq!(take(h, &mut m), ["connack 0"]);
    m
}

#[test]
fn a_qos1_puback_waits_for_the_group_commit_that_stores_it() {
    let mut h = Harness::new(1, false, |c| c.sync = true);
    // A durable queue bound to amq.topic by an AMQP client.
    let amqp = h.connect(0, &[1]);
    h.send(amqp, &client::queue_declare(1, "stored", &[]));
    let bind = ringmq_codec::QueueBind {
        ticket: 0,
        queue: client::name("stored"),
        exchange: client::name("amq.topic"),
        routing_key: client::name("plant.#"),
        no_wait: false,
        arguments: ringmq_codec::Table::EMPTY,
    };
    h.send(amqp, &client::method(1, ringmq_codec::Method::QueueBind(bind)));
    let mut m = connected(&mut h, "dev", 60);
    feed(&mut h, &mut m, &publish("plant/a/temp", 1, 9, b"20"));
    assert_eq!(
        take(&mut h, &mut m),
        Vec::<String>::new(),
        "PUBACK before the message is durable"
    );
    let job = h.broker_mut().poll_sync().expect("a group commit is due");
    job.run_blocking().expect("fsync");
    h.broker_mut().handle_sync_done(job, Ok(()));
    assert_eq!(take(&mut h, &mut m), ["puback 9"]);
    // A QoS 0 publish gets nothing back.
    feed(&mut h, &mut m, &publish("plant/a/temp", 0, 0, b"21"));
    assert_eq!(take(&mut h, &mut m), Vec::<String>::new());
}

#[test]
fn deliveries_take_the_lower_qos_and_pubacks_ack_them() {
    let mut h = Harness::new(2, false, |_| {});
    let mut sub = connected(&mut h, "sub", 60);
    feed(&mut h, &mut sub, &subscribe(3, "a/#", 1));
    assert_eq!(take(&mut h, &mut sub), ["suback 3 [1]"]);
    let mut publ = connected(&mut h, "pub", 60);
    // Published at QoS 0: delivered at QoS 0 (and acked by the session).
    feed(&mut h, &mut publ, &publish("a/b", 0, 0, b"zero"));
    assert_eq!(take(&mut h, &mut sub), ["publish a/b q0 None zero"]);
    feed(&mut h, &mut publ, &publish("a/c", 1, 5, b"one"));
    assert_eq!(take(&mut h, &mut publ), ["puback 5"]);
    assert_eq!(take(&mut h, &mut sub), ["publish a/c q1 Some(1) one"]);
    let queue = "mqtt-subscription-subqos1";
    let unacked = |h: &Harness| {
        let b = h.broker();
        let v = b.model().vhosts.get("/").expect("vhost");
        let id = v.queue_id(queue).expect("the session's queue");
        v.queues.get(&id).expect("the queue").unacked_count()
    };
    assert_eq!(unacked(&h), 1);
    feed(&mut h, &mut sub, &bytes(&Packet::PubAck(mq::Ack::new(1))));
    take(&mut h, &mut sub);
    assert_eq!(unacked(&h), 0, "PUBACK acks the delivery");
}

#[test]
fn keepalive_closes_after_one_and_a_half_intervals() {
    let mut h = Harness::new(3, false, |_| {});
    let mut m = connected(&mut h, "ka", 2);
    h.advance(2_900);
    let now = h.now();
    m.s.handle_tick(h.broker_mut(), m.id, now);
    assert!(!h.broker().is_closed(m.id));
    h.advance(200);
    let now = h.now();
    m.s.handle_tick(h.broker_mut(), m.id, now);
    assert!(h.broker().is_closed(m.id), "3.1 s of silence at keepalive 2 s");
}

#[test]
fn refusals() {
    let mut h = Harness::new(4, false, |_| {});
    // A persistent session without a client id: identifier rejected.
    let mut m = open(&mut h);
    feed(&mut h, &mut m, &connect_packet("", false, 60));
    assert_eq!(take(&mut h, &mut m), ["connack 2"]);
    assert!(h.broker().is_closed(m.id));
    // A client id too long for the queue's name.
    let mut m = open(&mut h);
    let long = "x".repeat(super::connect::CLIENT_ID_BYTES_MAX + 1);
    feed(&mut h, &mut m, &connect_packet(&long, true, 60));
    assert_eq!(take(&mut h, &mut m), ["connack 2"]);
    // Anything but CONNECT first.
    let mut m = open(&mut h);
    feed(&mut h, &mut m, &bytes(&Packet::PingReq));
    assert!(h.broker().is_closed(m.id));
}

#[test]
fn no_input_panics() {
    // Seeded: a failure names its seed.
    let mut h = Harness::new(5, false, |_| {});
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let prefix = connect_packet("fuzz", true, 60);
    for round in 0..300 {
        let mut m = open(&mut h);
        let mut input = if round % 2 == 0 { prefix.clone() } else { Vec::new() };
        // Valid packet starts with random tails, and plain noise.
        for _ in 0..(next() % 64) {
            let kind = [0x30u8, 0x32, 0x82, 0xa2, 0x40, 0xc0, 0xe0, 0x10][(next() % 8) as usize];
            input.push(kind);
            let len = (next() % 20) as u8;
            input.push(len);
            input.extend((0..len).map(|_| next() as u8));
        }
        let used = feed(&mut h, &mut m, &input);
        assert!(used <= input.len(), "round {round}");
        take(&mut h, &mut m);
        let now = h.now();
        m.s.handle_disconnect(h.broker_mut(), m.id, now);
    }
}
