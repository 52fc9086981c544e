//! The definitions log's group commit, through the io contract: a durable
//! declare's reply (and all a connection is sent after it) waits for the sync
//! job that covers its record; one job syncs every record of a turn; and the
//! compaction check stays amortised while still compacting.

use ringmq_codec::*;

use crate::core::amqp::broker::Broker;
use crate::core::config::CoreConfig;
use crate::core::definitions::compact::{live_count, live_records};
use crate::core::model::ids::ConnId;

fn method(out: &mut Vec<u8>, ch: u16, m: Method<'_>) {
    encode_method(out, ch, &m);
}

fn declare(out: &mut Vec<u8>, name: &str, durable: bool, passive: bool) {
    method(
        out,
        1,
        Method::QueueDeclare(QueueDeclare {
            ticket: 0,
            queue: ShortStr::new(name).expect("short"),
            passive,
            durable,
            exclusive: false,
            auto_delete: false,
            no_wait: false,
            arguments: Table::EMPTY,
        }),
    );
}

fn delete(out: &mut Vec<u8>, name: &str) {
    method(
        out,
        1,
        Method::QueueDelete(QueueDelete {
            ticket: 0,
            queue: ShortStr::new(name).expect("short"),
            if_unused: false,
            if_empty: false,
            no_wait: false,
        }),
    );
}

/// An open connection with channel 1, its handshake output drained.
fn connect(b: &mut Broker) -> ConnId {
    let mut hs = PROTOCOL_HEADER.to_vec();
    method(
        &mut hs,
        0,
        Method::ConnectionStartOk(ConnectionStartOk {
            client_properties: Table::EMPTY,
            mechanism: short!("PLAIN"),
            response: b"\0guest\0guest",
            locale: short!("en_US"),
        }),
    );
    method(
        &mut hs,
        0,
        Method::ConnectionTuneOk(ConnectionTuneOk {
            channel_max: 16,
            frame_max: 131072,
            heartbeat: 0,
        }),
    );
    method(
        &mut hs,
        0,
        Method::ConnectionOpen(ConnectionOpen {
            virtual_host: short!("/"),
            capabilities: short!(""),
            insist: false,
        }),
    );
    method(
        &mut hs,
        1,
        Method::ChannelOpen(ChannelOpen {
            out_of_band: short!(""),
        }),
    );
    let id = b.handle_connect("t".into(), true, 1);
    assert_eq!(b.handle_input(id, &hs, 1), hs.len());
    replies(b, id);
    id
}

/// The names of the methods the connection may be sent now, in order.
fn replies(b: &mut Broker, id: ConnId) -> Vec<String> {
    let mut out = Vec::new();
    b.poll_output(id, &mut out, 2);
    b.handle_output_drained(id);
    let mut names = Vec::new();
    let mut bytes = &out[..];
    while !bytes.is_empty() {
        let (frame, used) = decode_frame(bytes, 0).expect("frame from broker");
        bytes = &bytes[used..];
        if let Frame::Method { method, .. } = frame {
            names.push(match method {
                Method::QueueDeclareOk(ok) => format!("declare-ok {}", ok.queue),
                other => other.name().to_string(),
            });
        }
    }
    names
}

fn run_job(b: &mut Broker) -> usize {
    let job = b.poll_sync().expect("a sync job");
    let files = job.definition_files().len();
    job.run_blocking().expect("fsync");
    b.handle_sync_done(job, Ok(()));
    files
}

fn broker(dir: &std::path::Path, sync: bool) -> Broker {
    let cfg = CoreConfig {
        sync,
        ..CoreConfig::for_tests(dir)
    };
    Broker::open(cfg, 1).expect("open")
}

#[test]
fn a_durable_declare_ok_waits_for_the_sync_of_its_record() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut b = broker(dir.path(), true);
    let id = connect(&mut b);
    assert!(b.poll_sync().is_none(), "nothing to sync");

    // Transient: answered at once, nothing to sync.
    let mut input = Vec::new();
    declare(&mut input, "t", false, false);
    b.handle_input(id, &input, 2);
    assert_eq!(replies(&mut b, id), ["declare-ok t"]);
    assert!(b.poll_sync().is_none());

    // Durable, then a passive declare: neither reply overtakes the sync.
    let mut input = Vec::new();
    declare(&mut input, "d", true, false);
    declare(&mut input, "t", false, true);
    b.handle_input(id, &input, 3);
    assert!(replies(&mut b, id).is_empty(), "declare-ok before the record is synced");
    assert_eq!(run_job(&mut b), 1, "the log's fdatasync is in the job");
    assert_eq!(replies(&mut b, id), ["declare-ok d", "declare-ok t"]);

    // Records written while a job runs wait for the next one.
    let mut input = Vec::new();
    declare(&mut input, "e", true, false);
    b.handle_input(id, &input, 4);
    let running = b.poll_sync().expect("job");
    let mut input = Vec::new();
    declare(&mut input, "f", true, false);
    b.handle_input(id, &input, 5);
    running.run_blocking().expect("fsync");
    b.handle_sync_done(running, Ok(()));
    assert!(
        replies(&mut b, id).is_empty(),
        "f is not covered: e's ok waits behind it"
    );
    assert_eq!(run_job(&mut b), 1);
    assert_eq!(replies(&mut b, id), ["declare-ok e", "declare-ok f"]);
    assert!(b.poll_sync().is_none());

    // A durable queue's delete-ok waits as well.
    let mut input = Vec::new();
    delete(&mut input, "d");
    b.handle_input(id, &input, 6);
    assert!(replies(&mut b, id).is_empty(), "delete-ok before the record is synced");
    assert_eq!(run_job(&mut b), 1);
    assert_eq!(replies(&mut b, id), ["queue.delete-ok"]);
}

#[test]
fn one_sync_covers_every_record_of_a_turn_and_of_every_connection() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut b = broker(dir.path(), true);
    let (c1, c2) = (connect(&mut b), connect(&mut b));
    for (id, prefix) in [(c1, "a"), (c2, "b")] {
        let mut input = Vec::new();
        for i in 0..50 {
            declare(&mut input, &format!("{prefix}{i}"), true, false);
        }
        b.handle_input(id, &input, 2);
    }
    assert!(replies(&mut b, c1).is_empty() && replies(&mut b, c2).is_empty());
    assert_eq!(run_job(&mut b), 1, "one vhost, one log, one fdatasync");
    assert_eq!(replies(&mut b, c1).len(), 50);
    assert_eq!(replies(&mut b, c2).len(), 50);
    assert!(b.poll_sync().is_none());
}

#[test]
fn a_connection_closed_behind_a_held_reply_closes_after_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut b = broker(dir.path(), true);
    let id = connect(&mut b);
    let mut input = Vec::new();
    declare(&mut input, "d", true, false);
    method(
        &mut input,
        0,
        Method::ConnectionClose(ConnectionClose {
            reply_code: 200,
            reply_text: short!("bye"),
            class_id: 0,
            method_id: 0,
        }),
    );
    b.handle_input(id, &input, 2);
    assert!(!b.is_closed(id), "the socket must stay until the held replies are sent");
    assert!(replies(&mut b, id).is_empty());
    run_job(&mut b);
    assert_eq!(replies(&mut b, id), ["declare-ok d", "connection.close-ok"]);
    assert!(b.is_closed(id));

    // A connection gone while held leaves nothing behind.
    let id = connect(&mut b);
    let mut input = Vec::new();
    declare(&mut input, "e", true, false);
    b.handle_input(id, &input, 3);
    b.handle_disconnect(id);
    run_job(&mut b);
    assert!(b.poll_sync().is_none());
}

#[test]
fn without_sync_replies_do_not_wait_but_the_log_is_still_synced() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut b = broker(dir.path(), false);
    let id = connect(&mut b);
    let mut input = Vec::new();
    declare(&mut input, "d", true, false);
    b.handle_input(id, &input, 2);
    assert_eq!(replies(&mut b, id), ["declare-ok d"]);
    assert_eq!(run_job(&mut b), 1);
}

#[test]
fn churn_compacts_the_log_and_live_count_matches_the_records() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut b = broker(dir.path(), false);
    let id = connect(&mut b);
    let min = crate::core::definitions::log::DEAD_RECORDS_COMPACT_MIN;
    // Some live state, with bindings, then churn: declare and delete.
    let mut input = Vec::new();
    for i in 0..300 {
        declare(&mut input, &format!("keep{i}"), true, false);
        method(
            &mut input,
            1,
            Method::QueueBind(QueueBind {
                ticket: 0,
                queue: ShortStr::new(&format!("keep{i}")).expect("short"),
                exchange: short!("amq.direct"),
                routing_key: short!("k"),
                no_wait: false,
                arguments: Table::EMPTY,
            }),
        );
    }
    b.handle_input(id, &input, 2);
    let mut most = 0;
    for i in 0..1200 {
        let mut input = Vec::new();
        declare(&mut input, &format!("churn{i}"), true, false);
        delete(&mut input, &format!("churn{i}"));
        b.handle_input(id, &input, 3);
        most = most.max(b.model.vhosts["/"].definitions.record_count());
    }
    let v = &b.model.vhosts["/"];
    let live = live_count(v);
    assert_eq!(live, 600, "300 queues, 300 bindings");
    assert_eq!(live, live_records(v).len() as u64);
    // Checked every max(live, MIN) records, compacted past live + MIN dead:
    // the log never holds more than about 2 x (live + MIN) records.
    assert!(most <= 2 * (live + min) + 2, "log grew to {most} records");
    assert!(most > live + min, "compaction is not eager either: {most}");
    b.close().expect("close");
    let b = broker(dir.path(), false);
    assert_eq!(b.model.vhosts["/"].queues.len(), 300);
}
