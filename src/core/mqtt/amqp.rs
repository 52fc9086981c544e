//! What an MQTT session says to the broker, as the AMQP 0-9-1 client frames
//! its connection handles: the handshake, channels 1 (QoS 0 publishes,
//! subscriptions, deliveries) and 2 (QoS 1 publishes, in confirm mode), the
//! subscription queue's declare, bindings, consumers and acks.
//!
//! Encoded into the session's buffer and handed to `Broker::handle_input`:
//! the same checks (permissions, topic permissions, limits, alarms) and the
//! same paths (routing, group commit, confirms, delivery) as an AMQP client's.

use ringmq_codec::{
    encode_content, encode_method, short, BasicAck, BasicConsume, BasicProperties, BasicPublish, BasicQos, ChannelOpen,
    ConfirmSelect, ConnectionOpen, ConnectionStartOk, ConnectionTuneOk, FieldTable, FieldValue, Method, QueueBind,
    QueueDeclare, QueueDelete, QueueUnbind, ShortStr, Table, PROTOCOL_HEADER,
};

/// QoS 0 publishes, the subscription queues' methods and their deliveries.
pub(super) const CH_MAIN: u16 = 1;
/// QoS 1 publishes: confirm mode, each basic.ack a PUBACK.
pub(super) const CH_CONFIRM: u16 = 2;
/// Unacknowledged QoS 1 deliveries per session (RabbitMQ's `mqtt.prefetch`).
pub(super) const PREFETCH: u16 = 10;
/// The header RabbitMQ's MQTT plugin gives a message with its PUBLISH's QoS.
pub(super) const QOS_HEADER: &str = "x-mqtt-publish-qos";

/// The consumer tag of the subscription queue of `qos` (0 or 1).
pub(super) fn consumer_tag(qos: u8) -> ShortStr<'static> {
    if qos == 0 {
        short!("mqtt-qos0")
    } else {
        short!("mqtt-qos1")
    }
}

/// The properties of a message published with `qos` (0 or 1): transient or
/// persistent, and the QoS header.
pub(super) fn publish_properties(qos: u8) -> Vec<u8> {
    let mut headers = FieldTable::new();
    headers.insert(ShortStr::lit(QOS_HEADER), FieldValue::U8(qos));
    let raw = headers.to_bytes();
    let props = BasicProperties {
        headers: Some(Table::parse(&raw).expect("own table")),
        delivery_mode: Some(if qos == 0 { 1 } else { 2 }),
        ..Default::default()
    };
    let mut out = Vec::new();
    props.encode(&mut out);
    out
}

/// The connection's handshake as `user` into `vhost`, then its two channels.
pub(super) fn handshake(out: &mut Vec<u8>, user: &str, password: &str, vhost: ShortStr<'_>, frame_max: u32) {
    let response = format!("\0{user}\0{password}");
    out.extend_from_slice(&PROTOCOL_HEADER);
    let mut m = |ch, m: Method<'_>| encode_method(out, ch, &m);
    m(
        0,
        Method::ConnectionStartOk(ConnectionStartOk {
            client_properties: Table::EMPTY,
            mechanism: short!("PLAIN"),
            response: response.as_bytes(),
            locale: short!("en_US"),
        }),
    );
    // No AMQP heartbeats: the MQTT keepalive is the session's.
    m(
        0,
        Method::ConnectionTuneOk(ConnectionTuneOk {
            channel_max: CH_CONFIRM,
            frame_max,
            heartbeat: 0,
        }),
    );
    m(
        0,
        Method::ConnectionOpen(ConnectionOpen {
            virtual_host: vhost,
            capabilities: short!(""),
            insist: false,
        }),
    );
    for ch in [CH_MAIN, CH_CONFIRM] {
        m(
            ch,
            Method::ChannelOpen(ChannelOpen {
                out_of_band: short!(""),
            }),
        );
    }
    m(CH_CONFIRM, Method::ConfirmSelect(ConfirmSelect { no_wait: false }));
    m(
        CH_MAIN,
        Method::BasicQos(BasicQos {
            prefetch_size: 0,
            prefetch_count: PREFETCH,
            global: false,
        }),
    );
}

/// How many replies [`handshake`] gets on [`CH_MAIN`] (channel.open-ok, basic.qos-ok).
pub(super) const HANDSHAKE_MAIN_REPLIES: usize = 2;

/// basic.publish with its content on `channel`.
#[allow(clippy::too_many_arguments)]
pub(super) fn publish(
    out: &mut Vec<u8>,
    channel: u16,
    exchange: ShortStr<'_>,
    routing_key: ShortStr<'_>,
    properties: &[u8],
    body: &[u8],
    frame_max: u32,
) {
    let m = Method::BasicPublish(BasicPublish {
        ticket: 0,
        exchange,
        routing_key,
        mandatory: false,
        immediate: false,
    });
    encode_method(out, channel, &m);
    encode_content(out, channel, 60, properties, body, frame_max);
}

/// The session's subscription queue, then consumed (QoS 0 without acks):
/// a persistent session's is durable (it outlives the connection and the
/// broker), a clean one's exclusive (it goes with the connection).
pub(super) fn declare_and_consume(out: &mut Vec<u8>, queue: ShortStr<'_>, qos: u8, persistent: bool) {
    let declare = Method::QueueDeclare(QueueDeclare {
        ticket: 0,
        queue,
        passive: false,
        durable: persistent,
        exclusive: !persistent,
        auto_delete: false,
        no_wait: false,
        arguments: Table::EMPTY,
    });
    encode_method(out, CH_MAIN, &declare);
    let consume = Method::BasicConsume(BasicConsume {
        ticket: 0,
        queue,
        consumer_tag: consumer_tag(qos),
        no_local: false,
        no_ack: qos == 0,
        exclusive: false,
        no_wait: false,
        arguments: Table::EMPTY,
    });
    encode_method(out, CH_MAIN, &consume);
}

/// queue.delete: a persistent session a clean one replaces.
pub(super) fn delete_queue(out: &mut Vec<u8>, queue: ShortStr<'_>) {
    let m = Method::QueueDelete(QueueDelete {
        ticket: 0,
        queue,
        if_unused: false,
        if_empty: false,
        no_wait: false,
    });
    encode_method(out, CH_MAIN, &m);
}

/// queue.bind (`bind`) or queue.unbind of `queue` to `exchange` with `key`.
pub(super) fn binding(out: &mut Vec<u8>, bind: bool, queue: ShortStr<'_>, exchange: ShortStr<'_>, key: ShortStr<'_>) {
    let m = if bind {
        Method::QueueBind(QueueBind {
            ticket: 0,
            queue,
            exchange,
            routing_key: key,
            no_wait: false,
            arguments: Table::EMPTY,
        })
    } else {
        Method::QueueUnbind(QueueUnbind {
            ticket: 0,
            queue,
            exchange,
            routing_key: key,
            arguments: Table::EMPTY,
        })
    };
    encode_method(out, CH_MAIN, &m);
}

/// basic.ack of one delivery on [`CH_MAIN`].
pub(super) fn ack(out: &mut Vec<u8>, delivery_tag: u64) {
    let m = Method::BasicAck(BasicAck {
        delivery_tag,
        multiple: false,
    });
    encode_method(out, CH_MAIN, &m);
}
