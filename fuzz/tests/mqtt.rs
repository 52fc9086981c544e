//! The MQTT session target's body on inputs written by hand: a valid
//! session that publishes to itself, noise, and each prelude and piece size.

#[test]
fn the_mqtt_target_runs_on_sessions_and_noise() {
    use ringmq_mqtt_codec as mq;
    let mut publishes = Vec::new();
    for (i, qos) in [0u8, 1, 2].into_iter().enumerate() {
        let p = mq::Publish {
            dup: false,
            qos: mq::QoS::from_bits(qos).unwrap(),
            retain: false,
            topic: "a/b",
            packet_id: (qos > 0).then_some(i as u16 + 1),
            properties: Default::default(),
            payload: b"x",
        };
        mq::encode(&mq::Packet::Publish(p), mq::Version::V3_1_1, &mut publishes);
    }
    mq::encode(&mq::Packet::PingReq, mq::Version::V3_1_1, &mut publishes);
    for flags in [1u8, 3, 0x81, 0xfd, 0] {
        let mut input = vec![flags];
        input.extend_from_slice(&publishes);
        ringmq_fuzz::mqtt::run(&input);
        let mut noise = vec![flags];
        noise.extend((0..300u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8));
        ringmq_fuzz::mqtt::run(&noise);
    }
}
