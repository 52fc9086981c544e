//! tx.commit-ok waits for the group commit of the transaction's persistent
//! messages to durable queues, as confirms do (issue 15, defect 11: it was sent
//! at once, before the data was on disk).

use ringmq_codec::*;

use crate::core::amqp::broker::Broker;
use crate::core::config::CoreConfig;
use crate::core::model::ids::ConnId;

fn handshake_and_declare() -> Vec<u8> {
    let mut hs = PROTOCOL_HEADER.to_vec();
    let m = |out: &mut Vec<u8>, ch: u16, m: Method<'_>| encode_method(out, ch, &m);
    m(
        &mut hs,
        0,
        Method::ConnectionStartOk(ConnectionStartOk {
            client_properties: Table::EMPTY,
            mechanism: short!("PLAIN"),
            response: b"\0guest\0guest",
            locale: short!("en_US"),
        }),
    );
    m(
        &mut hs,
        0,
        Method::ConnectionTuneOk(ConnectionTuneOk {
            channel_max: 16,
            frame_max: 131072,
            heartbeat: 0,
        }),
    );
    m(
        &mut hs,
        0,
        Method::ConnectionOpen(ConnectionOpen {
            virtual_host: short!("/"),
            capabilities: short!(""),
            insist: false,
        }),
    );
    m(
        &mut hs,
        1,
        Method::ChannelOpen(ChannelOpen {
            out_of_band: short!(""),
        }),
    );
    m(
        &mut hs,
        1,
        Method::QueueDeclare(QueueDeclare {
            ticket: 0,
            queue: short!("txq"),
            passive: false,
            durable: true,
            exclusive: false,
            auto_delete: false,
            no_wait: false,
            arguments: Table::EMPTY,
        }),
    );
    m(&mut hs, 1, Method::TxSelect(TxSelect));
    hs
}

fn publish_and_commit(persistent: bool) -> Vec<u8> {
    let mut out = Vec::new();
    encode_method(
        &mut out,
        1,
        &Method::BasicPublish(BasicPublish {
            ticket: 0,
            exchange: short!(""),
            routing_key: short!("txq"),
            mandatory: false,
            immediate: false,
        }),
    );
    let mut props = Vec::new();
    BasicProperties {
        delivery_mode: Some(if persistent { 2 } else { 1 }),
        ..Default::default()
    }
    .encode(&mut props);
    encode_content(&mut out, 1, 60, &props, b"m", 131072);
    encode_method(&mut out, 1, &Method::TxCommit(TxCommit));
    out
}

/// Whether the output holds a tx.commit-ok.
fn has_commit_ok(mut bytes: &[u8]) -> bool {
    let mut found = false;
    while !bytes.is_empty() {
        let (frame, used) = decode_frame(bytes, 0).expect("frame from broker");
        bytes = &bytes[used..];
        found |= matches!(
            frame,
            Frame::Method {
                method: Method::TxCommitOk(_),
                ..
            }
        );
    }
    found
}

fn output(b: &mut Broker, id: ConnId) -> Vec<u8> {
    let mut out = Vec::new();
    b.poll_output(id, &mut out, 2);
    b.handle_output_drained(id);
    out
}

#[test]
fn commit_ok_waits_for_the_group_commit() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = CoreConfig {
        sync: true,
        ..CoreConfig::for_tests(dir.path())
    };
    let mut b = Broker::open(cfg, 1).expect("open");
    let id = b.handle_connect("t".into(), true, 1);
    b.handle_input(id, &handshake_and_declare(), 1);
    while let Some(job) = b.poll_sync() {
        b.handle_sync_done(job, Ok(()));
    }
    output(&mut b, id);

    // A transient message needs no disk: commit-ok at once.
    b.handle_input(id, &publish_and_commit(false), 2);
    assert!(has_commit_ok(&output(&mut b, id)), "transient commit-ok at once");

    b.handle_input(id, &publish_and_commit(true), 2);
    assert!(!has_commit_ok(&output(&mut b, id)), "commit-ok before the fsync");
    let job = b.poll_sync().expect("a sync job for the committed message");
    job.run_blocking().expect("fsync");
    b.handle_sync_done(job, Ok(()));
    assert!(has_commit_ok(&output(&mut b, id)), "commit-ok after the fsync");

    // A failed fsync fails the commit: the channel is closed, no commit-ok.
    b.handle_input(id, &publish_and_commit(true), 3);
    let job = b.poll_sync().expect("sync job");
    b.handle_sync_done(job, Err(std::io::Error::other("injected")));
    let out = output(&mut b, id);
    assert!(!has_commit_ok(&out), "commit-ok after a failed fsync");
    let (frame, _) = decode_frame(&out, 0).expect("a frame");
    assert!(
        matches!(frame, Frame::Method { method: Method::ChannelClose(ref c), .. } if c.reply_code == 541),
        "{frame:?}"
    );
}

/// A client may send its next commit before the last commit-ok (AMQP allows
/// pipelining): the commit-oks come in order, each when its own commit is on
/// disk. A second commit with nothing to sync was answered at once, ahead of
/// the first's group commit: the client took it for the first's.
#[test]
fn pipelined_commits_are_answered_in_order_each_when_on_disk() {
    use super::client::{self, method, Event};
    use super::harness::Harness;
    let mut h = Harness::new(7, false, |c| c.sync = true);
    let c = h.connect(0, &[1]);
    let persistent = BasicProperties {
        delivery_mode: Some(2),
        ..Default::default()
    };
    let transient = BasicProperties::default();
    h.send(c, &method(1, Method::QueueDeclare(client::queue_decl("pq", true))));
    h.sync_all();
    let mut bytes = method(1, Method::TxSelect(TxSelect));
    bytes.extend(client::publish(1, "", "pq", &persistent, b"one"));
    bytes.extend(method(1, Method::TxCommit(TxCommit)));
    bytes.extend(client::publish(1, "", "pq", &transient, b"two"));
    bytes.extend(method(1, Method::TxCommit(TxCommit)));
    h.send(c, &bytes);
    let oks = |events: Vec<Event>| events.iter().filter(|e| matches!(e, Event::TxCommitOk { .. })).count();
    assert_eq!(oks(h.events(c)), 0, "a commit-ok before the first commit is on disk");
    h.sync_all();
    assert_eq!(oks(h.events(c)), 2, "both commits answered once the first is on disk");
}
