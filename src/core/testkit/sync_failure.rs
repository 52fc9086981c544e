//! A group commit that fails, and the broker after it (see the module docs of
//! `ringmq_store::sync` for the store's side):
//! - an fsync error nacks every publish waiting, also those that arrived while
//!   the failing commit ran (their bytes are in the files whose write-back
//!   failed, and the next fsync of those files would report success for them);
//!   a tx.commit waiting for it fails;
//! - more failed commits on one queue than batches may be in flight neither
//!   panic the broker nor stop the queue: the next commit that succeeds
//!   confirms, and what it confirmed survives kill -9;
//! - a queue whose batch cannot be prepared (its folder cannot be opened) has
//!   its publishes nacked, not confirmed as if synced.

use ringmq_codec::*;
use ringmq_store::sync::SYNC_BATCHES_IN_FLIGHT_MAX;

use crate::core::model::ids::ConnId;

use super::client::{self, Event};
use super::harness::Harness;
use super::scenario::{declare, MAIN, PLAIN, TX};

/// A client with `q0` and `q1` declared; channel 1 in confirm mode, channel 2
/// transactional.
fn connect(h: &mut Harness) -> ConnId {
    let id = h.connect(0, &[MAIN, TX]);
    let mut bytes = declare(PLAIN[0]);
    bytes.extend(declare(PLAIN[1]));
    bytes.extend(client::method(
        MAIN,
        Method::ConfirmSelect(ConfirmSelect { no_wait: false }),
    ));
    bytes.extend(client::method(TX, Method::TxSelect(TxSelect)));
    h.send(id, &bytes);
    h.sync_all();
    h.events(id);
    id
}

/// A persistent message to `queue` on `channel`.
fn publish(h: &mut Harness, id: ConnId, channel: u16, queue: &str, body: &[u8]) {
    let props = BasicProperties {
        delivery_mode: Some(2),
        ..Default::default()
    };
    h.send(id, &client::publish(channel, "", queue, &props, body));
}

/// The confirms in `events` as (tag, ack), one per message (a `multiple` ack
/// stands for the tags it covers since the previous confirm).
fn confirms(events: &[Event], last_tag: &mut u64) -> Vec<(u64, bool)> {
    let mut out = Vec::new();
    for e in events {
        if let Event::Confirm { tag, multiple, ack, .. } = *e {
            let first = if multiple { *last_tag + 1 } else { tag };
            out.extend((first..=tag).map(|t| (t, ack)));
            *last_tag = tag;
        }
    }
    out
}

fn tx_outcome(events: &[Event]) -> Option<Result<(), u16>> {
    events.iter().find_map(|e| match e {
        Event::TxCommitOk { channel: TX } => Some(Ok(())),
        Event::ChannelClose { channel: TX, code, .. } => Some(Err(*code)),
        _ => None,
    })
}

/// Every message left in `queue`, taken with no_ack.
fn drain(h: &mut Harness, id: ConnId, queue: &str) -> Vec<Vec<u8>> {
    let get = client::method(
        MAIN,
        Method::BasicGet(BasicGet {
            ticket: 0,
            queue: client::name(queue),
            no_ack: true,
        }),
    );
    std::iter::from_fn(|| {
        h.send(id, &get);
        h.events(id).into_iter().find_map(|e| match e {
            Event::Delivery(d) => Some(d.body),
            _ => None,
        })
    })
    .collect()
}

#[test]
fn a_failed_commit_nacks_every_publish_waiting_also_those_made_while_it_ran() {
    let mut h = Harness::new(7, false, |c| c.sync = true);
    let id = connect(&mut h);
    let mut tag = 0;

    publish(&mut h, id, MAIN, PLAIN[0], b"1");
    assert!(h.start_sync());
    // While the commit runs: a publish and a transaction, both for the next one,
    // both into the file whose write-back is about to fail.
    publish(&mut h, id, MAIN, PLAIN[0], b"2");
    publish(&mut h, id, TX, PLAIN[0], b"t");
    h.send(id, &client::method(TX, Method::TxCommit(TxCommit)));
    h.fail_sync();
    let events = h.events(id);
    assert_eq!(confirms(&events, &mut tag), [(1, false), (2, false)]);
    assert_eq!(tx_outcome(&events), Some(Err(541)), "{events:?}");

    publish(&mut h, id, MAIN, PLAIN[0], b"3");
    h.sync_all();
    assert_eq!(confirms(&h.events(id), &mut tag), [(3, true)]);
}

#[test]
fn more_failed_commits_than_batches_in_flight_and_the_queue_goes_on() {
    let mut h = Harness::new(7, false, |c| c.sync = true);
    let id = connect(&mut h);
    let mut tag = 0;
    publish(&mut h, id, MAIN, PLAIN[0], b"before");
    h.sync_all();
    assert_eq!(confirms(&h.events(id), &mut tag), [(1, true)]);

    let failures = SYNC_BATCHES_IN_FLIGHT_MAX as u64 + 8;
    for i in 0..failures {
        publish(&mut h, id, MAIN, PLAIN[0], &i.to_le_bytes());
        assert!(h.start_sync(), "no commit for publish {i}");
        h.fail_sync();
        assert_eq!(confirms(&h.events(id), &mut tag), [(i + 2, false)], "publish {i}");
    }

    publish(&mut h, id, MAIN, PLAIN[0], b"after");
    h.sync_all();
    assert_eq!(confirms(&h.events(id), &mut tag), [(failures + 2, true)]);
    h.kill9(|_| {});
    let id = connect(&mut h);
    let got = drain(&mut h, id, PLAIN[0]);
    // Nacked ones may come back too (kill -9 keeps every write); the
    // confirmed ones must.
    assert_eq!(got.first().map(Vec::as_slice), Some(&b"before"[..]));
    assert_eq!(got.last().map(Vec::as_slice), Some(&b"after"[..]));
}

#[test]
fn a_queue_whose_batch_cannot_be_prepared_has_its_publishes_nacked() {
    let mut h = Harness::new(7, false, |c| c.sync = true);
    let id = connect(&mut h);
    let mut tag = 0;
    let v = &h.broker().model.vhosts["/"];
    let dir = v.queues[&v.queue_id(PLAIN[0]).expect("q0")].dir().to_path_buf();
    let moved = dir.with_extension("moved");

    // The first message creates the queue's first segment: the commit must sync
    // the folder, which it cannot open.
    publish(&mut h, id, MAIN, PLAIN[0], b"1");
    publish(&mut h, id, TX, PLAIN[0], b"t");
    h.send(id, &client::method(TX, Method::TxCommit(TxCommit)));
    std::fs::rename(&dir, &moved).expect("move the queue folder away");
    h.sync_all();
    let events = h.events(id);
    assert_eq!(confirms(&events, &mut tag), [(1, false)]);
    assert_eq!(tx_outcome(&events), Some(Err(541)), "{events:?}");

    // Another queue is not held back, and q0 goes on once its folder is back.
    publish(&mut h, id, MAIN, PLAIN[1], b"2");
    h.sync_all();
    assert_eq!(confirms(&h.events(id), &mut tag), [(2, true)]);
    std::fs::rename(&moved, &dir).expect("move the queue folder back");
    publish(&mut h, id, MAIN, PLAIN[0], b"3");
    h.sync_all();
    assert_eq!(confirms(&h.events(id), &mut tag), [(3, true)]);
}

/// A durable declare whose commit fails: the definitions log is not trusted
/// again (the next fsync of the file would report success for pages whose
/// write-back failed), it is rewritten from memory into a new file, and the
/// queue declared is in it after a restart.
#[test]
fn a_failed_commit_rewrites_the_definitions_log() {
    use std::os::unix::fs::MetadataExt;
    let mut h = Harness::new(7, false, |c| c.sync = true);
    let id = connect(&mut h);
    let log = h.broker().model.vhosts["/"].dir.join("definitions.amqp");
    let inode = || std::fs::metadata(&log).expect("the log").ino();
    let before = inode();

    h.send(id, &declare("later"));
    assert!(h.start_sync());
    h.fail_sync();
    assert_ne!(inode(), before, "the log was not rewritten after its sync failed");
    let rewritten = inode();

    // A commit that works leaves the log where it is.
    h.send(id, &declare("after"));
    h.sync_all();
    assert_eq!(inode(), rewritten);
    h.kill9(|_| {});
    let v = &h.broker().model.vhosts["/"];
    for q in [PLAIN[0], "later", "after"] {
        assert!(v.queue_id(q).is_some(), "{q} lost");
    }
}
