//! MQTT 3.1.1 against the real binary: publish and subscribe at QoS 0 and 1
//! with wildcards, UNSUBSCRIBE, and MQTT <-> AMQP both ways through
//! amq.topic; with a raw client (`common/mqtt_raw.rs`), Debian's
//! mosquitto_pub / mosquitto_sub and rumqttc.

mod common;
#[path = "common/mqtt_raw.rs"]
mod mqtt_raw;

use std::process::Command;
use std::time::Duration;

use common::*;
use mqtt_raw::{Client, Got, WAIT};

/// A spawned broker, or the external one (`RINGMQ_TEST_URI`) when
/// `RINGMQ_TEST_MQTT_PORT` names its MQTT listener (RabbitMQ's plugin, as
/// the reference for behaviour).
fn broker() -> Option<Broker> {
    let b = Broker::new();
    if b.is_external() && std::env::var_os("RINGMQ_TEST_MQTT_PORT").is_none() {
        eprintln!("skipped against an external broker without RINGMQ_TEST_MQTT_PORT");
        return None;
    }
    Some(b)
}

fn is_publish(g: &Got, topic: &str, payload: &[u8], qos: u8) -> bool {
    matches!(g, Got::Publish { topic: t, payload: p, qos: q, .. } if t == topic && p == payload && *q == qos)
}

#[test]
fn qos0_and_qos1_reach_subscribers_through_wildcards() {
    let Some(b) = broker() else { return };
    let port = b.mqtt_port();
    let mut sub = Client::guest(port, "sub");
    // QoS 2 is granted as 1, as RabbitMQ does.
    assert_eq!(
        sub.subscribe(1, &[("a/+/c", 1), ("x/#", 0), ("q2/t", 2)]),
        vec![1, 0, 1]
    );
    let mut publ = Client::guest(port, "pub");
    publ.publish("a/b/c", b"one", 1, 7);
    // QoS 1: PUBACK once the broker has the message (a publisher confirm).
    assert_eq!(publ.recv(WAIT), Some(Got::PubAck(7)));
    publ.publish("x/y/z", b"two", 0, 0);
    publ.publish("a/b/d", b"not matched", 0, 0);
    publ.publish("q2/t", b"three", 2, 8);
    assert_eq!(publ.recv(WAIT), Some(Got::PubAck(8)), "QoS 2 is answered as QoS 1");
    let first = sub.recv(WAIT).expect("a/b/c");
    let Got::Publish {
        packet_id: Some(pid), ..
    } = first
    else {
        panic!("QoS 1 delivery expected, got {first:?}")
    };
    assert!(is_publish(&first, "a/b/c", b"one", 1), "{first:?}");
    sub.puback(pid);
    // Two queues (the session's QoS 0 and QoS 1 ones): no order between them.
    let mut rest = [sub.recv(WAIT).expect("x/y/z"), sub.recv(WAIT).expect("q2/t")];
    rest.sort_by_key(|g| format!("{g:?}").contains("q2/t"));
    assert!(is_publish(&rest[0], "x/y/z", b"two", 0), "{rest:?}");
    assert!(is_publish(&rest[1], "q2/t", b"three", 1), "{rest:?}");
    // Nothing for a/b/d.
    assert_eq!(sub.recv(Duration::from_millis(300)), None);
    sub.send(&ringmq_mqtt_codec::Packet::PingReq);
    assert_eq!(sub.recv(WAIT), Some(Got::PingResp));
    sub.disconnect();
    publ.disconnect();
}

#[test]
fn unsubscribe_stops_deliveries() {
    let Some(b) = broker() else { return };
    let port = b.mqtt_port();
    let mut sub = Client::guest(port, "unsub");
    assert_eq!(sub.subscribe(1, &[("t/1", 0), ("t/2", 0)]), vec![0, 0]);
    let mut publ = Client::guest(port, "unsub-pub");
    publ.publish("t/1", b"before", 0, 0);
    assert_eq!(
        sub.recv(WAIT),
        Some(Got::Publish {
            topic: "t/1".into(),
            payload: b"before".to_vec(),
            qos: 0,
            dup: false,
            packet_id: None
        })
    );
    sub.unsubscribe(2, &["t/1"]);
    publ.publish("t/1", b"after", 0, 0);
    publ.publish("t/2", b"still", 0, 0);
    let got = sub.recv(WAIT).expect("t/2");
    assert!(
        is_publish(&got, "t/2", b"still", 0),
        "t/1 came after UNSUBSCRIBE: {got:?}"
    );
}

#[test]
fn mqtt_and_amqp_meet_on_amq_topic() {
    let Some(b) = broker() else { return };
    let port = b.mqtt_port();
    run(async {
        let (_conn, ch) = open(&b).await;
        declare_queue(&ch, "from-mqtt", QueueDeclareOptions::default(), FieldTable::default()).await;
        // MQTT's `/` is AMQP's `.`, `+` is `*`.
        bind(&ch, "from-mqtt", "amq.topic", "sensors.*.temp", FieldTable::default()).await;
        let mut consumer = consume_no_ack(&ch, "from-mqtt").await;
        let mut publ = Client::guest(port, "sensor-1");
        publ.publish("sensors/kitchen/temp", b"21.5", 1, 1);
        assert_eq!(publ.recv(WAIT), Some(Got::PubAck(1)));
        let d = next(&mut consumer).await;
        assert_eq!(d.routing_key.as_str(), "sensors.kitchen.temp");
        assert_eq!(d.data, b"21.5");
        // QoS 1 is published persistent, with the QoS in a header (as RabbitMQ).
        assert_eq!(d.properties.delivery_mode(), &Some(2));

        let mut sub = Client::guest(port, "actuator");
        assert_eq!(sub.subscribe(1, &[("cmd/+/set", 1)]), vec![1]);
        publish(&ch, "amq.topic", "cmd.lamp.set", b"on").await;
        match sub.recv(WAIT) {
            Some(Got::Publish {
                topic,
                payload,
                qos: 1,
                packet_id: Some(pid),
                ..
            }) => {
                assert_eq!((topic.as_str(), payload.as_slice()), ("cmd/lamp/set", &b"on"[..]));
                sub.puback(pid);
            }
            other => panic!("expected the AMQP message as a QoS 1 PUBLISH, got {other:?}"),
        }
    });
}

#[test]
fn mosquitto_clients_publish_and_subscribe() {
    let Some(b) = broker() else { return };
    let port = b.mqtt_port().to_string();
    let sub = Command::new("mosquitto_sub")
        .args([
            "-p", &port, "-u", "guest", "-P", "guest", "-q", "1", "-v", "-C", "2", "-W", "10",
        ])
        .args(["-t", "m/+/x", "-t", "n/#"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("mosquitto_sub (Debian's mosquitto-clients) is installed");
    // Its SUBSCRIBE done before the publishes: wait until its queue is bound.
    std::thread::sleep(Duration::from_millis(700));
    for (topic, msg, qos) in [("m/1/x", "first", "1"), ("n/a/b", "second", "0")] {
        let st = Command::new("mosquitto_pub")
            .args([
                "-p", &port, "-u", "guest", "-P", "guest", "-t", topic, "-m", msg, "-q", qos,
            ])
            .status()
            .expect("mosquitto_pub");
        assert!(st.success(), "mosquitto_pub {topic}");
    }
    let out = sub.wait_with_output().expect("mosquitto_sub output");
    assert!(out.status.success(), "mosquitto_sub: {out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "m/1/x first\nn/a/b second\n");
    // Bad credentials: mosquitto_pub reports CONNACK 4 (exit status 4 here).
    let bad = Command::new("mosquitto_pub")
        .args(["-p", &port, "-u", "guest", "-P", "nope", "-t", "t", "-m", "x"])
        .output()
        .expect("mosquitto_pub");
    assert!(!bad.status.success());
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("bad user name or password"),
        "{bad:?}"
    );
}

#[test]
fn rumqttc_publishes_and_receives_at_qos1() {
    use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
    let Some(b) = broker() else { return };
    let port = b.mqtt_port();
    run(async {
        let mut opts = MqttOptions::new("rumqttc-1", "127.0.0.1", port);
        opts.set_credentials("guest", "guest");
        opts.set_keep_alive(Duration::from_secs(5));
        let (client, mut events) = AsyncClient::new(opts, 10);
        client.subscribe("r/+/s", QoS::AtLeastOnce).await.unwrap();
        let mut published = false;
        let mut got = None;
        let mut pubacks = 0;
        while got.is_none() || pubacks == 0 {
            let ev = within("rumqttc event", events.poll())
                .await
                .expect("rumqttc event loop");
            match ev {
                Event::Incoming(Packet::SubAck(s)) => {
                    assert_eq!(
                        s.return_codes,
                        vec![rumqttc::SubscribeReasonCode::Success(QoS::AtLeastOnce)]
                    );
                    if !published {
                        published = true;
                        client
                            .publish("r/1/s", QoS::AtLeastOnce, false, b"hi".to_vec())
                            .await
                            .unwrap();
                    }
                }
                Event::Incoming(Packet::PubAck(_)) => pubacks += 1,
                Event::Incoming(Packet::Publish(p)) => got = Some((p.topic.clone(), p.payload.to_vec(), p.qos)),
                _ => {}
            }
        }
        assert_eq!(got, Some(("r/1/s".into(), b"hi".to_vec(), QoS::AtLeastOnce)));
        client.disconnect().await.unwrap();
    });
}

#[test]
fn the_api_lists_mqtt_connections() {
    let Some(b) = broker() else { return };
    let port = b.mqtt_port();
    let _c = Client::guest(port, "listed");
    let api = common::http::Api::new(b.http_url(), "guest", "guest");
    // RabbitMQ lists a connection once its stats were emitted (seconds).
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let c = loop {
        let conns = api.ok("/api/connections");
        let list = conns.as_array().expect("a list");
        let mqtt: Vec<_> = list.iter().filter(|c| c["port"] == port).collect();
        if !b.is_external() {
            assert_eq!((list.len(), mqtt.len()), (1, 1), "{conns}");
        }
        if let Some(c) = mqtt.first() {
            break (*c).clone();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no connection on the MQTT port: {conns}"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(c["protocol"], "MQTT 3.1.1", "{c}");
    assert_eq!(c["user"], "guest");
    assert_eq!(c["vhost"], "/");
    assert_eq!(c["port"], port, "{c}");
}

#[test]
fn a_packet_over_max_packet_size_closes_the_connection() {
    let b = Broker::with_args(&["--mqtt-max-packet-size", "1024"]);
    if b.is_external() {
        return;
    }
    let port = b.mqtt_port();
    let mut sub = Client::guest(port, "big-sub");
    assert_eq!(sub.subscribe(1, &[("big", 0)]), vec![0]);
    let mut publ = Client::guest(port, "big-pub");
    publ.publish("big", &[b'x'; 900], 1, 1);
    assert_eq!(publ.recv(WAIT), Some(Got::PubAck(1)), "a packet under the limit");
    // Refused from its header, before its body would be buffered.
    publ.send_raw(&[0x30, 0x80, 0x80, 0x04]);
    assert!(
        publ.closed_within(WAIT),
        "a packet over the limit leaves the connection open"
    );
    match sub.recv(WAIT) {
        Some(Got::Publish { payload, .. }) => assert_eq!(payload.len(), 900),
        other => panic!("{other:?}"),
    }
}
