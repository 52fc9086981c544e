//! MQTT sessions' lifecycle against the real binary: CONNACK refusals
//! (credentials, vhost, protocol level, client id), the will on an abrupt
//! end and not after DISCONNECT, the keepalive timeout, a malformed packet
//! (that connection closes, the others go on), and the takeover of a client
//! id by a second CONNECT.

mod common;
#[path = "common/mqtt_raw.rs"]
mod mqtt_raw;

use std::time::{Duration, Instant};

use common::http::Api;
use common::*;
use mqtt_raw::{Client, Got, Login, WAIT};

/// A spawned broker, or the external one (`RINGMQ_TEST_URI`) when
/// `RINGMQ_TEST_MQTT_PORT` names its MQTT listener (RabbitMQ's plugin).
fn broker() -> Option<Broker> {
    let b = Broker::new();
    if b.is_external() && std::env::var_os("RINGMQ_TEST_MQTT_PORT").is_none() {
        eprintln!("skipped against an external broker without RINGMQ_TEST_MQTT_PORT");
        return None;
    }
    Some(b)
}

fn api(b: &Broker) -> Api {
    Api::new(b.http_url(), "guest", "guest")
}

#[test]
fn connect_refusals_carry_the_right_code() {
    let Some(b) = broker() else { return };
    let port = b.mqtt_port();
    let a = api(&b);
    if b.is_external() {
        // Left by an earlier run against the same peer.
        a.delete("/api/users/dev");
        a.delete("/api/vhosts/iot");
    }
    a.add_user("dev", "pw", "", false);
    assert!(a.put("/api/vhosts/iot", serde_json::json!({})).status < 300);
    let code = |login: Login<'_>| Client::connect(port, &login).1;
    // Wrong password, unknown user: 4.
    assert_eq!(
        code(Login {
            password: Some("bad"),
            ..Login::guest("c1")
        }),
        4
    );
    assert_eq!(
        code(Login {
            user: Some("nobody"),
            ..Login::guest("c1")
        }),
        4
    );
    // No user name: 5 (no anonymous login). RabbitMQ 3.10 lets it in as its
    // `mqtt.default_user` (guest) unless `mqtt.allow_anonymous = false`.
    let anonymous = code(Login {
        user: None,
        password: None,
        ..Login::guest("c1")
    });
    assert_eq!(anonymous, if b.is_external() { 0 } else { 5 });
    // `vhost:user`: no permission in iot yet (5), then with one (0).
    assert_eq!(
        code(Login {
            user: Some("iot:dev"),
            password: Some("pw"),
            ..Login::guest("c1")
        }),
        5
    );
    let perm = serde_json::json!({"configure": ".*", "write": ".*", "read": ".*"});
    assert!(a.put("/api/permissions/iot/dev", perm).status < 300);
    let (ok, c) = Client::connect(
        port,
        &Login {
            user: Some("iot:dev"),
            password: Some("pw"),
            ..Login::guest("c1")
        },
    );
    assert_eq!(c, 0);
    ok.disconnect();
    // An unknown vhost: 4, as RabbitMQ answers it.
    assert_eq!(
        code(Login {
            user: Some("nope:guest"),
            ..Login::guest("c1")
        }),
        4
    );
    // MQTT 5 (level 5) is not spoken yet: 1 (unacceptable protocol level),
    // as 3.1.1 says; RabbitMQ 3.10 closes without a CONNACK.
    let mut c5 = Client::open(port);
    c5.send_raw(&[0x10, 13, 0, 4, b'M', b'Q', b'T', b'T', 5, 0x02, 0, 60, 0, 0, 0]);
    if !b.is_external() {
        assert_eq!(c5.recv(WAIT), Some(Got::ConnAck(1)));
    }
    assert!(c5.closed_within(WAIT));
    // An empty client id with a clean session gets one (0).
    let (anon, c) = Client::connect(port, &Login::guest(""));
    assert_eq!(c, 0);
    anon.disconnect();
}

#[test]
fn the_will_goes_out_on_an_abrupt_end_only() {
    let Some(b) = broker() else { return };
    let port = b.mqtt_port();
    let mut watcher = Client::guest(port, "watcher-1");
    assert_eq!(watcher.subscribe(1, &[("status/#", 0)]), vec![0]);
    let will = Login {
        will: Some(("status/dev1", b"gone")),
        ..Login::guest("dev1")
    };
    // DISCONNECT: no will.
    let (c, code) = Client::connect(port, &will);
    assert_eq!(code, 0);
    c.disconnect();
    assert_eq!(
        watcher.recv(Duration::from_millis(500)),
        None,
        "a will after DISCONNECT"
    );
    // The socket just goes: the will.
    let (c, code) = Client::connect(port, &will);
    assert_eq!(code, 0);
    c.drop_abruptly();
    match watcher.recv(WAIT) {
        // Published at QoS 1, delivered at the subscription's 0.
        Some(Got::Publish {
            topic, payload, qos: 0, ..
        }) => {
            assert_eq!((topic.as_str(), payload.as_slice()), ("status/dev1", &b"gone"[..]))
        }
        other => panic!("expected the will, got {other:?}"),
    }
}

#[test]
fn a_silent_client_is_closed_after_one_and_a_half_keepalives() {
    let Some(b) = broker() else { return };
    let port = b.mqtt_port();
    let mut watcher = Client::guest(port, "watcher-2");
    assert_eq!(watcher.subscribe(1, &[("lost/+", 0)]), vec![0]);
    let login = Login {
        keepalive_secs: 1,
        will: Some(("lost/quiet", b"timeout")),
        ..Login::guest("quiet")
    };
    // A client that pings stays.
    let (mut pinger, _) = Client::connect(
        port,
        &Login {
            keepalive_secs: 1,
            ..Login::guest("pinger")
        },
    );
    let (mut quiet, code) = Client::connect(port, &login);
    assert_eq!(code, 0);
    let start = Instant::now();
    for _ in 0..5 {
        std::thread::sleep(Duration::from_millis(500));
        pinger.send(&ringmq_mqtt_codec::Packet::PingReq);
        assert_eq!(pinger.recv(WAIT), Some(Got::PingResp));
    }
    assert!(quiet.closed_within(WAIT), "a silent client stays open");
    let after = start.elapsed();
    // 1.5 s, noticed on the broker's 0.5 s tick.
    assert!(after >= Duration::from_millis(1400), "closed after {after:?}");
    if b.is_external() {
        // RabbitMQ 3.10 publishes no will after a keepalive timeout (the
        // spec does: the server closed the connection without DISCONNECT).
        return;
    }
    match watcher.recv(WAIT) {
        Some(Got::Publish { topic, payload, .. }) => {
            assert_eq!((topic.as_str(), payload.as_slice()), ("lost/quiet", &b"timeout"[..]))
        }
        other => panic!("expected the will, got {other:?}"),
    }
    pinger.send(&ringmq_mqtt_codec::Packet::PingReq);
    assert_eq!(
        pinger.recv(WAIT),
        Some(Got::PingResp),
        "the pinging client is still served"
    );
}

#[test]
fn a_malformed_packet_closes_only_its_connection() {
    let Some(b) = broker() else { return };
    let port = b.mqtt_port();
    let mut sub = Client::guest(port, "bystander");
    assert_eq!(sub.subscribe(1, &[("ok/t", 0)]), vec![0]);
    for junk in [
        // PUBLISH with QoS 3.
        &[0x36u8, 4, 0, 1, b't', 0][..],
        // SUBSCRIBE with fixed-header flags 0 (must be 2).
        &[0x80, 6, 0, 1, 0, 1, b'x', 0][..],
        // A remaining length of five bytes (four at most).
        &[0x30, 0xff, 0xff, 0xff, 0xff, 0x7f][..],
        // A reserved packet type.
        &[0xf0, 0][..],
    ]
    .into_iter()
    // RabbitMQ 3.10 keeps the last two open (it waits for more, and reads
    // type 15 as MQTT 5's AUTH); 3.1.1 calls both malformed.
    .filter(|j| !(b.is_external() && (j[1] == 0xff || j[0] == 0xf0)))
    {
        let mut bad = Client::guest(port, "bad");
        bad.send_raw(junk);
        assert!(bad.closed_within(WAIT), "{junk:x?} left the connection open");
    }
    // Garbage before CONNECT (RabbitMQ 3.10 waits for more), and a second
    // CONNECT.
    let mut raw = Client::open(port);
    raw.send_raw(b"GET / HTTP/1.1\r\n\r\n");
    assert!(b.is_external() || raw.closed_within(WAIT));
    let mut twice = Client::guest(port, "twice");
    let again = Login::guest("twice");
    let mut connect = Vec::new();
    let p = ringmq_mqtt_codec::Packet::Connect(ringmq_mqtt_codec::Connect {
        version: ringmq_mqtt_codec::Version::V3_1_1,
        clean_start: true,
        keep_alive_secs: again.keepalive_secs,
        properties: Default::default(),
        client_id: again.client_id,
        will: None,
        username: again.user,
        password: again.password.map(str::as_bytes),
    });
    ringmq_mqtt_codec::encode(&p, ringmq_mqtt_codec::Version::V3_1_1, &mut connect);
    twice.send_raw(&connect);
    // A protocol violation in 3.1.1 (RabbitMQ 3.10 ignores it).
    assert!(
        b.is_external() || twice.closed_within(WAIT),
        "a second CONNECT is a protocol violation"
    );
    // The bystander still gets what is published.
    let mut publ = Client::guest(port, "publisher");
    publ.publish("ok/t", b"alive", 1, 1);
    assert_eq!(publ.recv(WAIT), Some(Got::PubAck(1)));
    match sub.recv(WAIT) {
        Some(Got::Publish { payload, .. }) => assert_eq!(payload, b"alive"),
        other => panic!("the bystander lost its session: {other:?}"),
    }
}

#[test]
fn a_second_connect_with_the_client_id_takes_over() {
    let Some(b) = broker() else { return };
    let port = b.mqtt_port();
    let mut watcher = Client::guest(port, "watcher-3");
    assert_eq!(watcher.subscribe(1, &[("will/#", 0)]), vec![0]);
    let login = Login {
        will: Some(("will/first", b"taken over")),
        ..Login::guest("same-id")
    };
    let (mut first, code) = Client::connect(port, &login);
    assert_eq!(code, 0);
    assert_eq!(first.subscribe(1, &[("t/old", 0)]), vec![0]);
    let mut second = Client::guest(port, "same-id");
    // The older connection is closed, its will published.
    assert!(first.closed_within(WAIT), "the first connection stays open");
    // Its will: the spec publishes it whenever the server closes the
    // connection without a DISCONNECT; RabbitMQ 3.10 does not on takeover.
    if !b.is_external() {
        match watcher.recv(WAIT) {
            Some(Got::Publish { topic, .. }) => assert_eq!(topic, "will/first"),
            other => panic!("expected the first connection's will, got {other:?}"),
        }
    }
    // The new session is clean: the old subscription is gone, its own works.
    assert_eq!(second.subscribe(1, &[("t/new", 0)]), vec![0]);
    let mut publ = Client::guest(port, "p-1");
    publ.publish("t/old", b"old", 0, 0);
    publ.publish("t/new", b"new", 0, 0);
    match second.recv(WAIT) {
        Some(Got::Publish { topic, .. }) => assert_eq!(topic, "t/new"),
        other => panic!("{other:?}"),
    }
    // The new connection is served.
    second.send(&ringmq_mqtt_codec::Packet::PingReq);
    assert_eq!(second.recv(WAIT), Some(Got::PingResp));
}

#[test]
fn a_persistent_session_keeps_its_subscriptions_and_messages_across_a_restart() {
    let Some(mut b) = broker() else { return };
    if b.is_external() {
        return; // no restart of a broker the tests did not start
    }
    let port = b.mqtt_port();
    let login = Login {
        clean: false,
        ..Login::guest("keeper")
    };
    let (mut c, code) = Client::connect(port, &login);
    assert_eq!((code, c.session_present), (0, false));
    assert_eq!(c.subscribe(1, &[("keep/+", 1), ("zero/t", 0)]), vec![1, 0]);
    c.disconnect();
    // Offline: the QoS 1 message waits in the session's durable queue.
    let mut publ = Client::guest(port, "p-2");
    publ.publish("keep/a", b"while away", 1, 1);
    assert_eq!(publ.recv(WAIT), Some(Got::PubAck(1)));
    drop(publ);
    b.restart();
    let port = b.mqtt_port();
    let (mut c, code) = Client::connect(port, &login);
    assert_eq!((code, c.session_present), (0, true));
    match c.recv(WAIT) {
        Some(Got::Publish {
            topic,
            payload,
            qos: 1,
            packet_id: Some(pid),
            ..
        }) => {
            assert_eq!((topic.as_str(), payload.as_slice()), ("keep/a", &b"while away"[..]));
            c.puback(pid);
        }
        other => panic!("the message kept for the session: {other:?}"),
    }
    // The subscription too, and UNSUBSCRIBE of one from the earlier connection.
    c.unsubscribe(2, &["zero/t"]);
    let mut publ = Client::guest(port, "p-3");
    publ.publish("zero/t", b"unsubscribed", 0, 0);
    publ.publish("keep/b", b"live", 0, 0);
    match c.recv(WAIT) {
        Some(Got::Publish { topic, .. }) => assert_eq!(topic, "keep/b"),
        other => panic!("{other:?}"),
    }
    assert_eq!(c.recv(Duration::from_millis(300)), None, "zero/t after UNSUBSCRIBE");
    c.disconnect();
    // A clean session with the id discards it.
    let (c, code) = Client::connect(port, &Login::guest("keeper"));
    assert_eq!((code, c.session_present), (0, false));
    c.disconnect();
    let (c, code) = Client::connect(port, &login);
    assert_eq!((code, c.session_present), (0, false), "the clean session discarded it");
    c.disconnect();
}

#[test]
fn an_unacked_qos1_delivery_comes_again_with_dup() {
    let Some(b) = broker() else { return };
    let port = b.mqtt_port();
    let login = Login {
        clean: false,
        ..Login::guest("duper")
    };
    let (mut c, _) = Client::connect(port, &login);
    assert_eq!(c.subscribe(1, &[("d/1", 1)]), vec![1]);
    let mut publ = Client::guest(port, "p-4");
    publ.publish("d/1", b"again", 1, 1);
    assert_eq!(publ.recv(WAIT), Some(Got::PubAck(1)));
    match c.recv(WAIT) {
        Some(Got::Publish { dup: false, qos: 1, .. }) => {}
        other => panic!("first delivery: {other:?}"),
    }
    // No PUBACK: the message goes back to the session's queue with the connection.
    c.drop_abruptly();
    std::thread::sleep(Duration::from_millis(300));
    let (mut c, _) = Client::connect(port, &login);
    assert!(c.session_present);
    match c.recv(WAIT) {
        Some(Got::Publish {
            dup: true,
            qos: 1,
            payload,
            packet_id: Some(pid),
            ..
        }) => {
            assert_eq!(payload, b"again");
            c.puback(pid);
        }
        other => panic!("the redelivery with DUP: {other:?}"),
    }
    c.disconnect();
    let (mut c, _) = Client::connect(port, &login);
    assert_eq!(c.recv(Duration::from_millis(300)), None, "acked: not sent again");
    c.disconnect();
}

#[test]
fn a_connection_without_connect_is_closed_after_the_handshake_timeout() {
    let b = Broker::with_args(&["--handshake-timeout", "500"]);
    if b.is_external() {
        return;
    }
    let mut silent = Client::open(b.mqtt_port());
    let start = Instant::now();
    assert!(silent.closed_within(WAIT), "a client that never sends CONNECT stays");
    assert!(start.elapsed() >= Duration::from_millis(400), "{:?}", start.elapsed());
}
