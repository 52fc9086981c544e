//! Focused tests of stream queues (issue 20) in the sans-IO core: every
//! message of a stream is synced before its confirm, persistent or not, so
//! power loss keeps each confirmed one at its offset; consumers read from
//! their own offsets, acks remove nothing, and a consumer that goes leaves no
//! reader; retention by age runs on the stats tick.

use ringmq_codec::*;

use crate::core::model::ids::ConnId;
use crate::core::model::queue::stream::StreamInfo;

use super::client::{self, Event};
use super::harness::Harness;

const CH: u16 = 1;

fn declare(h: &mut Harness, id: ConnId, name: &str, extra: &[(&str, FieldValue)]) {
    let mut args = FieldTable::new();
    args.insert(short!("x-queue-type"), "stream");
    for (k, v) in extra {
        args.insert(ShortStr::new(k).unwrap(), v.clone());
    }
    h.send(id, &client::queue_declare(CH, name, &args.to_bytes()));
    h.sync_all();
}

fn publish(h: &mut Harness, id: ConnId, queue: &str, body: &str) {
    // Transient: a stream keeps it all the same.
    h.send(
        id,
        &client::publish(CH, "", queue, &BasicProperties::default(), body.as_bytes()),
    );
}

fn info(h: &Harness, name: &str) -> StreamInfo {
    let v = &h.broker().model.vhosts["/"];
    v.queues[&v.queue_id(name).expect("declared")]
        .stream_info()
        .expect("a stream")
}

fn readers(h: &Harness, name: &str) -> usize {
    let v = &h.broker().model.vhosts["/"];
    v.queues[&v.queue_id(name).expect("declared")].stream_reader_count()
}

fn consume(h: &mut Harness, id: ConnId, ch: u16, queue: &str, tag: &str, offset: FieldValue) {
    consume_with(h, id, ch, queue, tag, &[("x-stream-offset", offset)]);
}

fn consume_with(h: &mut Harness, id: ConnId, ch: u16, queue: &str, tag: &str, extra: &[(&str, FieldValue)]) {
    h.send(id, &client::channel_open(ch));
    let qos = BasicQos {
        prefetch_size: 0,
        prefetch_count: 100,
        global: false,
    };
    h.send(id, &client::method(ch, Method::BasicQos(qos)));
    let mut args = FieldTable::new();
    for (k, v) in extra {
        args.insert(ShortStr::new(k).unwrap(), v.clone());
    }
    let bytes = args.to_bytes();
    let m = BasicConsume {
        ticket: 0,
        queue: client::name(queue),
        consumer_tag: client::name(tag),
        no_local: false,
        no_ack: false,
        exclusive: false,
        no_wait: false,
        arguments: Table::parse(&bytes).unwrap(),
    };
    h.send(id, &client::method(ch, Method::BasicConsume(m)));
}

/// (consumer tag, x-stream-offset, body) of the deliveries `id` got, acking each.
fn delivered(h: &mut Harness, id: ConnId) -> Vec<(String, i64, String)> {
    let mut out = Vec::new();
    for e in h.events(id) {
        let Event::Delivery(d) = e else { continue };
        let props = BasicProperties::decode(&d.properties).unwrap();
        let offset = props
            .headers
            .and_then(|t| t.get("x-stream-offset"))
            .and_then(|v| v.as_i64());
        out.push((
            d.consumer_tag.unwrap(),
            offset.expect("x-stream-offset"),
            String::from_utf8(d.body).unwrap(),
        ));
        let ack = BasicAck {
            delivery_tag: d.tag,
            multiple: false,
        };
        h.send(id, &client::method(d.channel, Method::BasicAck(ack)));
    }
    out
}

fn got(tag: &str, from: i64, to: i64) -> Vec<(String, i64, String)> {
    (from..to).map(|i| (tag.to_owned(), i, format!("m{i}"))).collect()
}

#[test]
fn transient_messages_of_a_stream_survive_power_loss_at_their_offsets() {
    let mut h = Harness::new(20, true, |c| c.sync = true);
    let id = h.connect(0, &[CH]);
    declare(&mut h, id, "s", &[]);
    for i in 0..5 {
        publish(&mut h, id, "s", &format!("m{i}"));
    }
    let before = h.snapshots_taken();
    assert!(h.sync_wanted(), "the publishes wait for a group commit");
    h.sync_all();
    assert!(h.snapshots_taken() > before);
    assert_eq!(info(&h, "s").messages, 5);
    publish(&mut h, id, "s", "unsynced");
    h.crash();
    let i = info(&h, "s");
    assert_eq!((i.first_offset, i.next_offset, i.messages), (0, 5, 5));
    let id = h.connect(0, &[CH]);
    consume(&mut h, id, 2, "s", "c", "first".into());
    assert_eq!(delivered(&mut h, id), got("c", 0, 5));
    publish(&mut h, id, "s", "m5");
    assert_eq!(delivered(&mut h, id), got("c", 5, 6), "offsets go on after the crash");
}

#[test]
fn readers_keep_their_own_offsets_and_leave_with_their_consumer() {
    let mut h = Harness::new(21, false, |_| {});
    let id = h.connect(0, &[CH]);
    declare(&mut h, id, "s", &[]);
    for i in 0..4 {
        publish(&mut h, id, "s", &format!("m{i}"));
    }
    h.sync_all();
    consume(&mut h, id, 2, "s", "a", "first".into());
    consume(&mut h, id, 3, "s", "b", FieldValue::I64(2));
    let mut d = delivered(&mut h, id);
    d.sort();
    let mut want = got("a", 0, 4);
    want.extend(got("b", 2, 4));
    assert_eq!(d, want);
    assert_eq!(info(&h, "s").messages, 4, "acks remove nothing");
    publish(&mut h, id, "s", "m4");
    h.sync_all();
    let mut d = delivered(&mut h, id);
    d.sort();
    assert_eq!(d, [got("a", 4, 5), got("b", 4, 5)].concat());
    assert_eq!(readers(&h, "s"), 2);
    let close = ChannelClose {
        reply_code: 200,
        reply_text: client::name("bye"),
        class_id: 0,
        method_id: 0,
    };
    h.send(id, &client::method(3, Method::ChannelClose(close)));
    assert_eq!(readers(&h, "s"), 1, "a closed channel's consumer leaves no reader");
    h.disconnect(id);
    assert_eq!(readers(&h, "s"), 0);
}

#[test]
fn retention_by_age_runs_on_the_stats_tick() {
    let mut h = Harness::new(22, false, |_| {});
    let id = h.connect(0, &[CH]);
    // A segment per message; messages older than a second go.
    let seg = ("x-stream-max-segment-size-bytes", FieldValue::I64(64));
    declare(&mut h, id, "s", &[seg, ("x-max-age", "1s".into())]);
    for i in 0..3 {
        publish(&mut h, id, "s", &format!("m{i}"));
    }
    h.sync_all();
    assert_eq!(info(&h, "s").segments, 3);
    let now = h.core_now();
    h.broker_mut().handle_stats_tick(now + 500);
    assert_eq!(info(&h, "s").first_offset, 0, "not yet a second old");
    h.broker_mut().handle_stats_tick(now + 5_000);
    let i = info(&h, "s");
    assert_eq!(
        (i.first_offset, i.next_offset, i.segments),
        (2, 3, 1),
        "all but the segment written"
    );
}

/// A consumer reading a long stream from the start leaves no mapping behind
/// in the segments it has passed: what stays mapped is where readers are.
#[test]
fn segments_passed_by_every_reader_are_unmapped() {
    let mut h = Harness::new(23, false, |_| {});
    let id = h.connect(0, &[CH]);
    declare(
        &mut h,
        id,
        "s",
        &[("x-stream-max-segment-size-bytes", FieldValue::I64(128))],
    );
    for i in 0..40 {
        publish(&mut h, id, "s", &format!("m{i}"));
    }
    h.sync_all();
    assert!(info(&h, "s").segments >= 10, "{:?}", info(&h, "s"));
    consume(&mut h, id, 2, "s", "a", "first".into());
    consume(&mut h, id, 3, "s", "b", "first".into());
    assert_eq!(delivered(&mut h, id).len(), 80);
    h.pump();
    let mapped = info(&h, "s").mapped_segments;
    assert!(
        mapped <= 2,
        "{mapped} segments still mapped after both readers passed them"
    );
}

/// A filtered reader leaves no mapping behind in the segments it passed over
/// messages it refused (it kept them all mapped: 105 MB of RSS in a 10 s
/// ringmqperf run at 1%).
#[test]
fn segments_passed_by_a_filtered_reader_are_unmapped() {
    let mut h = Harness::new(24, false, |_| {});
    let id = h.connect(0, &[CH]);
    let seg = [("x-stream-max-segment-size-bytes", FieldValue::I64(256))];
    declare(&mut h, id, "s", &seg);
    for i in 0..60 {
        let mut headers = FieldTable::new();
        headers.insert(short!("x-stream-filter-value"), if i % 3 == 0 { "a" } else { "b" });
        let bytes = headers.to_bytes();
        let props = BasicProperties {
            headers: Some(Table::parse(&bytes).unwrap()),
            ..Default::default()
        };
        let body = format!("m{i}");
        h.send(id, &client::publish(CH, "", "s", &props, body.as_bytes()));
    }
    h.sync_all();
    assert!(info(&h, "s").segments >= 10, "{:?}", info(&h, "s"));
    let args = [("x-stream-offset", "first".into()), ("x-stream-filter", "a".into())];
    consume_with(&mut h, id, 2, "s", "f", &args);
    assert_eq!(delivered(&mut h, id).len(), 20);
    h.pump();
    let mapped = info(&h, "s").mapped_segments;
    assert!(
        mapped <= 2,
        "{mapped} segments still mapped after the filtered reader passed them"
    );
}
