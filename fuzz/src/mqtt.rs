//! The MQTT session target's body (`fuzz_targets/mqtt_session.rs`): the MQTT session (`core::mqtt`) over a whole broker in memory: any bytes
//! after (or instead of) a valid CONNECT and a SUBSCRIBE to `#`, fed in
//! pieces of any size, with the output taken, time passing (keepalive,
//! timers) and the connection ending at last. Invariant: nothing panics,
//! every input is taken or kept whole (`used <= len`), and the output is
//! MQTT packets the codec decodes.
use std::rc::Rc;

use ringmq::core::amqp::output::Output;
use ringmq::core::mqtt::{Session, Settings};
use ringmq::core::{Broker, CoreConfig};
use ringmq_mqtt_codec as mq;

const START_MS: u64 = 1_000_000;

fn prelude(clean: bool, out: &mut Vec<u8>) {
    let connect = mq::Packet::Connect(mq::Connect {
        version: mq::Version::V3_1_1,
        clean_start: clean,
        keep_alive_secs: 2,
        properties: Default::default(),
        client_id: "fuzz",
        will: Some(mq::Will {
            topic: "will/fuzz",
            payload: b"gone",
            qos: mq::QoS::AtLeastOnce,
            retain: false,
            properties: Default::default(),
        }),
        username: Some("guest"),
        password: Some(b"guest"),
    });
    mq::encode(&connect, mq::Version::V3_1_1, out);
    let all = [("#", mq::SubOptions::qos(mq::QoS::AtLeastOnce))];
    mq::Subscribe::encode(out, mq::Version::V3_1_1, 1, &Default::default(), &all);
}

/// One input: its first byte picks the prelude and the piece size.
pub fn run(data: &[u8]) {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let dir = tempfile::tempdir().expect("scratch directory");
    let config = CoreConfig {
        data_dir: dir.path().join("data"),
        frame_max: 131_072,
        channel_max: 16,
        heartbeat_secs: 0,
        max_message_bytes: 1 << 20,
        store: Default::default(),
        sync: false,
        default_user: ("guest".into(), "guest".into(), true),
        consumer_timeout_ms: None,
        load_definitions: None,
        max_consumers_per_channel: None,
        handshake_timeout_ms: 10_000,
        default_stream_offset: Default::default(),
        internal_secret: None,
    };
    let mut b = Broker::open(config, 1).expect("open a fresh broker");
    let mut now = START_MS;
    let id = b.handle_connect("fuzz".into(), true, now);
    let mut s = Session::new(Rc::new(Settings::default()), true, now);
    let mut input = Vec::new();
    if flags & 1 == 1 {
        prelude(flags & 2 == 0, &mut input);
    }
    let mut got = Vec::new();
    // Pieces of 1..=64 bytes, their sizes from the flags' upper bits.
    let piece = 1 + usize::from(flags >> 2);
    for chunk in rest.chunks(piece) {
        input.extend_from_slice(chunk);
        let used = s.handle_input(&mut b, id, &input, now);
        assert!(used <= input.len());
        input.drain(..used);
        while b.has_pending_work() {
            b.run_pending();
        }
        let mut out = Output::default();
        s.take_output(&mut b, id, &mut out, now);
        got.extend_from_slice(&out);
        now += 300;
        s.handle_tick(&mut b, id, now);
        b.handle_timeout(now);
    }
    s.handle_disconnect(&mut b, id, now);
    // What the session sent is MQTT.
    let mut at = 0;
    while at < got.len() {
        match mq::decode(&got[at..], mq::Version::V3_1_1, usize::MAX) {
            Ok((_, used)) => at += used,
            Err(e) => panic!("the session sent a malformed packet: {e:?}"),
        }
    }
    let _ = b.close();
}
