//! At-least-once dead-lettering: the original stays (taken, not acked) until the
//! group commit that makes its dead letter durable; a failed fsync puts it back.

use ringmq_codec::*;

use crate::core::amqp::broker::Broker;
use crate::core::config::CoreConfig;
use crate::core::model::ids::ConnId;

fn frames(f: impl FnOnce(&mut dyn FnMut(u16, Method<'_>))) -> Vec<u8> {
    let mut out = Vec::new();
    f(&mut |ch, m| encode_method(&mut out, ch, &m));
    out
}

fn declare<'a>(queue: ShortStr<'a>, arguments: Table<'a>) -> Method<'a> {
    Method::QueueDeclare(QueueDeclare {
        ticket: 0,
        queue,
        passive: false,
        durable: true,
        exclusive: false,
        auto_delete: false,
        no_wait: false,
        arguments,
    })
}

fn setup(b: &mut Broker) -> ConnId {
    let mut args = FieldTable::new();
    args.insert(short!("x-queue-type"), "quorum");
    args.insert(short!("x-dead-letter-exchange"), "");
    args.insert(short!("x-dead-letter-routing-key"), "dlq");
    args.insert(short!("x-dead-letter-strategy"), "at-least-once");
    args.insert(short!("x-overflow"), "reject-publish");
    let args = args.to_bytes();
    let mut input = PROTOCOL_HEADER.to_vec();
    input.extend(frames(|m| {
        m(
            0,
            Method::ConnectionStartOk(ConnectionStartOk {
                client_properties: Table::EMPTY,
                mechanism: short!("PLAIN"),
                response: b"\0guest\0guest",
                locale: short!("en_US"),
            }),
        );
        m(
            0,
            Method::ConnectionTuneOk(ConnectionTuneOk {
                channel_max: 16,
                frame_max: 131072,
                heartbeat: 0,
            }),
        );
        m(
            0,
            Method::ConnectionOpen(ConnectionOpen {
                virtual_host: short!("/"),
                capabilities: short!(""),
                insist: false,
            }),
        );
        m(
            1,
            Method::ChannelOpen(ChannelOpen {
                out_of_band: short!(""),
            }),
        );
        m(1, declare(short!("dlq"), Table::EMPTY));
        m(1, declare(short!("src"), Table::parse(&args).unwrap()));
    }));
    let id = b.handle_connect("t".into(), true, 1);
    b.handle_input(id, &input, 1);
    id
}

/// A persistent message to `queue`.
fn publish(b: &mut Broker, id: ConnId, queue: &str) {
    let mut input = frames(|m| {
        m(
            1,
            Method::BasicPublish(BasicPublish {
                ticket: 0,
                exchange: short!(""),
                routing_key: ShortStr::new(queue).expect("short"),
                mandatory: false,
                immediate: false,
            }),
        )
    });
    let mut props = Vec::new();
    BasicProperties {
        delivery_mode: Some(2),
        ..Default::default()
    }
    .encode(&mut props);
    encode_content(&mut input, 1, 60, &props, b"m", 131072);
    b.handle_input(id, &input, 2);
}

fn publish_get_reject(b: &mut Broker, id: ConnId, tag: u64) {
    publish(b, id, "src");
    sync_all(b);
    get_reject(b, id, tag);
}

/// basic.get of `src` and basic.reject (dead-letters it).
fn get_reject(b: &mut Broker, id: ConnId, tag: u64) {
    let get = frames(|m| {
        m(
            1,
            Method::BasicGet(BasicGet {
                ticket: 0,
                queue: short!("src"),
                no_ack: false,
            }),
        );
        m(
            1,
            Method::BasicReject(BasicReject {
                delivery_tag: tag,
                requeue: false,
            }),
        );
    });
    b.handle_input(id, &get, 3);
}

fn sync_all(b: &mut Broker) {
    while let Some(job) = b.poll_sync() {
        job.run_blocking().expect("fsync");
        b.handle_sync_done(job, Ok(()));
    }
}

/// (ready, unacked) of a queue.
fn counts(b: &Broker, name: &str) -> (u64, u64) {
    let v = &b.model.vhosts["/"];
    let q = &v.queues[&v.queue_id(name).expect("queue")];
    (q.ready_count(), q.unacked_count())
}

#[test]
fn the_original_waits_for_its_dead_letter_to_be_synced() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = CoreConfig {
        sync: true,
        ..CoreConfig::for_tests(dir.path())
    };
    let mut b = Broker::open(cfg, 1).expect("open");
    let id = setup(&mut b);
    sync_all(&mut b);

    publish_get_reject(&mut b, id, 1);
    assert_eq!(counts(&b, "dlq"), (1, 0), "the dead letter is stored");
    assert_eq!(
        counts(&b, "src"),
        (0, 1),
        "the original is held until the copy is synced"
    );
    let job = b.poll_sync().expect("a sync job for the dead letter");
    job.run_blocking().expect("fsync");
    b.handle_sync_done(job, Ok(()));
    assert_eq!(counts(&b, "src"), (0, 0), "released by the group commit");

    // A failed fsync: the copy may not be on disk, so the original comes back.
    publish_get_reject(&mut b, id, 2);
    assert_eq!(counts(&b, "src"), (0, 1));
    let job = b.poll_sync().expect("sync job");
    b.handle_sync_done(job, Err(std::io::Error::other("injected")));
    assert_eq!(counts(&b, "src"), (1, 0), "back as ready after a failed fsync");
}

/// A dead letter stored while a commit that syncs its queue's file runs is in
/// that file: when the commit fails, the next one cannot vouch for it either
/// (the failed pages may be clean, not written), so the original comes back.
#[test]
fn a_dead_letter_stored_while_a_failing_commit_ran_puts_the_original_back() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = CoreConfig {
        sync: true,
        ..CoreConfig::for_tests(dir.path())
    };
    let mut b = Broker::open(cfg, 1).expect("open");
    let id = setup(&mut b);
    publish(&mut b, id, "src");
    sync_all(&mut b);

    publish(&mut b, id, "dlq");
    let job = b.poll_sync().expect("a sync job for dlq");
    get_reject(&mut b, id, 1);
    assert_eq!(counts(&b, "src"), (0, 1), "held for the next commit");
    b.handle_sync_done(job, Err(std::io::Error::other("injected")));
    sync_all(&mut b);
    assert_eq!(counts(&b, "src"), (1, 0), "back as ready after a failed fsync");
}
