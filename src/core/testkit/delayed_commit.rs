//! A publish to a durable delayed exchange joins the group commit: its store is
//! not fsynced on the loop (it was, once per message, stalling every other
//! client), the job syncs it, and the publisher's confirm waits for that job,
//! as for a persistent message in a durable queue; a failed job nacks it.
//!
//! "Not synced on the loop" is seen on the store itself: a sync takes its dirty
//! files, so after the publish it must still have them, until the job does.

use ringmq_codec::*;

use crate::core::model::ids::ConnId;

use super::client::{self, Event};
use super::harness::Harness;
use super::scenario::{declare, DELAYED_EXCHANGE, DELAYED_QUEUE, MAIN, TX};

/// A client with `qd` and the durable delayed exchange declared; channel 1 in
/// confirm mode, channel 2 transactional.
fn connect(h: &mut Harness) -> ConnId {
    let id = h.connect(0, &[MAIN, TX]);
    let mut bytes = declare(DELAYED_QUEUE);
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

/// A message with `x-delay` to the delayed exchange (transient: a delayed
/// store holds every message durably, persistent or not).
fn publish_delayed(h: &mut Harness, id: ConnId, channel: u16) {
    let mut headers = FieldTable::new();
    headers.insert(short!("x-delay"), 10_000i64);
    let headers = headers.to_bytes();
    let props = BasicProperties {
        delivery_mode: Some(1),
        headers: Some(Table::parse(&headers).expect("own table")),
        ..Default::default()
    };
    h.send(
        id,
        &client::publish(channel, DELAYED_EXCHANGE, DELAYED_QUEUE, &props, b"d"),
    );
}

/// Whether the delayed store has writes no sync has taken yet.
fn store_unsynced(h: &Harness) -> bool {
    let x = &h.broker().model.vhosts["/"].exchanges[DELAYED_EXCHANGE];
    x.delayed.as_ref().expect("a delayed store").needs_sync()
}

fn confirms(events: &[Event]) -> Vec<(u64, bool)> {
    (events.iter())
        .filter_map(|e| match e {
            Event::Confirm { tag, ack, .. } => Some((*tag, *ack)),
            _ => None,
        })
        .collect()
}

#[test]
fn a_delayed_publish_is_confirmed_by_the_group_commit_not_synced_inline() {
    let mut h = Harness::new(7, false, |c| c.sync = true);
    let id = connect(&mut h);

    publish_delayed(&mut h, id, MAIN);
    assert_eq!(confirms(&h.events(id)), vec![], "confirmed before any sync");
    assert!(store_unsynced(&h), "the delayed store was synced on the loop");

    assert!(h.start_sync(), "no group commit for the held message");
    assert!(!store_unsynced(&h), "the group commit does not cover the delayed store");
    assert_eq!(confirms(&h.events(id)), vec![], "confirmed before the commit is done");
    h.finish_sync();
    assert_eq!(confirms(&h.events(id)), vec![(1, true)]);
}

#[test]
fn a_failed_group_commit_nacks_the_delayed_publish() {
    let mut h = Harness::new(7, false, |c| c.sync = true);
    let id = connect(&mut h);

    publish_delayed(&mut h, id, MAIN);
    let job = h.broker_mut().poll_sync().expect("a group commit for the held message");
    h.broker_mut()
        .handle_sync_done(job, Err(std::io::Error::other("injected")));
    h.pump();
    assert_eq!(confirms(&h.events(id)), vec![(1, false)]);

    // The next publish is confirmed by the next commit as usual.
    publish_delayed(&mut h, id, MAIN);
    h.sync_all();
    assert_eq!(confirms(&h.events(id)), vec![(2, true)]);
}

#[test]
fn a_delayed_publish_in_a_transaction_is_committed_by_the_group_commit() {
    let mut h = Harness::new(7, false, |c| c.sync = true);
    let id = connect(&mut h);

    publish_delayed(&mut h, id, TX);
    h.send(id, &client::method(TX, Method::TxCommit(TxCommit)));
    let commit_ok = |events: Vec<Event>| events.iter().any(|e| matches!(e, Event::TxCommitOk { .. }));
    assert!(!commit_ok(h.events(id)), "commit-ok before any sync");
    assert!(store_unsynced(&h), "the delayed store was synced on the loop");
    h.sync_all();
    assert!(commit_ok(h.events(id)), "no commit-ok after the group commit");
}

#[test]
fn without_sync_a_delayed_publish_is_confirmed_at_once() {
    let mut h = Harness::new(7, false, |c| c.sync = false);
    let id = connect(&mut h);

    publish_delayed(&mut h, id, MAIN);
    assert_eq!(confirms(&h.events(id)), vec![(1, true)]);
}

/// A group commit that finishes after its delayed exchange was deleted and
/// declared again completes nothing of the new store (it took no batch of it),
/// and the new store's messages are synced by the next commit.
#[test]
fn a_commit_that_outlives_its_delayed_exchange_leaves_the_new_one_alone() {
    let mut h = Harness::new(7, false, |c| c.sync = true);
    let id = connect(&mut h);

    publish_delayed(&mut h, id, MAIN);
    let job = h.broker_mut().poll_sync().expect("a group commit for the held message");
    let delete = Method::ExchangeDelete(ExchangeDelete {
        ticket: 0,
        exchange: client::name(DELAYED_EXCHANGE),
        if_unused: false,
        no_wait: false,
    });
    let mut bytes = client::method(MAIN, delete);
    bytes.extend(declare(DELAYED_QUEUE));
    h.send(id, &bytes);
    publish_delayed(&mut h, id, MAIN);
    assert!(store_unsynced(&h), "the new store's message waits for a commit");

    job.run_blocking().expect("fsync");
    h.broker_mut().handle_sync_done(job, Ok(()));
    h.pump();
    assert!(store_unsynced(&h), "the old commit covered the new store");
    h.sync_all();
    assert!(!store_unsynced(&h));
    assert_eq!(confirms(&h.events(id)), vec![(1, true), (2, true)]);
}
