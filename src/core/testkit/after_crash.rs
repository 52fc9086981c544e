//! What comes back after an unclean stop, in focused steps (the simulation
//! finds these by chance; `sim::redelivered_flag_after_power_loss` and
//! `sim::delayed_messages_and_power_loss` replay its seeds):
//! - a message delivered after a clean restart is flagged redelivered after a
//!   power loss that lost the queue's unsynced `delivered` write: the vhost's
//!   `running` marker, synced at open, says the stop was unclean;
//! - a clean stop removes the marker: nothing is flagged that was not delivered;
//! - a delayed message routed before a crash is not routed again (its ack is
//!   synced after its copy), and when the ack is lost anyway (a crash between
//!   the two syncs, played here by putting the delayed store's files back) the
//!   second copy is flagged, as is the first;
//! - a delayed message due after the restart was never routed: not flagged.

use ringmq_codec::*;

use crate::core::model::ids::ConnId;

use super::client::{self, Delivery, Event};
use super::harness::Harness;
use super::scenario::{declare, DELAYED_EXCHANGE, DELAYED_QUEUE, MAIN, PLAIN};

fn harness(crashable: bool) -> Harness {
    Harness::new(7, crashable, |c| c.sync = true)
}

/// A client with `q0`, `qd` and the delayed exchange declared (all durable).
fn connect(h: &mut Harness) -> ConnId {
    let id = h.connect(0, &[MAIN]);
    let mut bytes = declare(PLAIN[0]);
    bytes.extend(declare(DELAYED_QUEUE));
    h.send(id, &bytes);
    h.sync_all();
    h.events(id);
    id
}

/// A persistent message, with `x-delay` when given (then to the delayed
/// exchange, routed to `qd`), synced.
fn publish(h: &mut Harness, id: ConnId, queue: &str, body: &[u8], delay_ms: Option<i64>) {
    let mut headers = FieldTable::new();
    if let Some(d) = delay_ms {
        headers.insert(short!("x-delay"), d);
    }
    let headers = headers.to_bytes();
    let props = BasicProperties {
        delivery_mode: Some(2),
        headers: delay_ms.map(|_| Table::parse(&headers).expect("own table")),
        ..Default::default()
    };
    let exchange = if delay_ms.is_some() { DELAYED_EXCHANGE } else { "" };
    h.send(id, &client::publish(MAIN, exchange, queue, &props, body));
    h.sync_all();
}

/// basic.get; `no_ack` false leaves the message unacked.
fn get(h: &mut Harness, id: ConnId, queue: &str, no_ack: bool) -> Option<Delivery> {
    let bytes = client::method(
        MAIN,
        Method::BasicGet(BasicGet {
            ticket: 0,
            queue: client::name(queue),
            no_ack,
        }),
    );
    h.send(id, &bytes);
    h.events(id).into_iter().find_map(|e| match e {
        Event::Delivery(d) => Some(d),
        _ => None,
    })
}

/// Every message left in `queue` as (body, redelivered), taken with no_ack.
fn drain(h: &mut Harness, id: ConnId, queue: &str) -> Vec<(Vec<u8>, bool)> {
    std::iter::from_fn(|| get(h, id, queue, true).map(|d| (d.body, d.redelivered))).collect()
}

fn pair(body: &[u8], redelivered: bool) -> (Vec<u8>, bool) {
    (body.to_vec(), redelivered)
}

fn ready(h: &Harness, queue: &str) -> u64 {
    let v = &h.broker().model.vhosts["/"];
    v.queue_id(queue).map_or(0, |id| v.queues[&id].ready_count())
}

/// The folder of the vhost's durable delayed exchanges' stores.
fn delayed_dir(h: &Harness) -> std::path::PathBuf {
    h.broker().model.vhosts["/"].dir.join("delayed")
}

#[test]
fn delivered_after_a_clean_restart_is_flagged_after_a_power_loss() {
    let mut h = harness(true);
    let id = connect(&mut h);
    publish(&mut h, id, PLAIN[0], b"m1", None);
    h.restart();
    let id = connect(&mut h);
    let d = get(&mut h, id, PLAIN[0], false).expect("m1");
    assert!(!d.redelivered, "never delivered before");
    // The delivery's unsynced write to the queue's `delivered` file is lost;
    // the marker, synced at the open, is not.
    h.crash();
    let id = connect(&mut h);
    assert_eq!(drain(&mut h, id, PLAIN[0]), vec![pair(b"m1", true)]);
}

#[test]
fn a_clean_stop_leaves_no_marker_and_flags_nothing_undelivered() {
    let mut h = harness(false);
    let id = connect(&mut h);
    let marker = h.broker().model.vhosts["/"]
        .dir
        .join(ringmq_store::running::RUNNING_FILE);
    assert!(marker.exists(), "the marker is there while the vhost is open");
    publish(&mut h, id, PLAIN[0], b"m1", None);
    h.restart();
    let id = connect(&mut h);
    assert_eq!(drain(&mut h, id, PLAIN[0]), vec![pair(b"m1", false)]);
    // After kill -9 every recovered message may have been delivered.
    publish(&mut h, id, PLAIN[0], b"m2", None);
    h.kill9(|_| {});
    let id = connect(&mut h);
    assert_eq!(drain(&mut h, id, PLAIN[0]), vec![pair(b"m2", true)]);
}

#[test]
fn a_delayed_message_routed_before_kill9_is_not_routed_again() {
    let mut h = harness(false);
    let id = connect(&mut h);
    publish(&mut h, id, DELAYED_QUEUE, b"d1", Some(100));
    h.advance(200);
    h.fire_timers();
    h.kill9(|_| {});
    let id = connect(&mut h);
    h.fire_timers();
    // One copy, flagged: recovered after an unclean stop.
    assert_eq!(drain(&mut h, id, DELAYED_QUEUE), vec![pair(b"d1", true)]);
    assert_eq!(
        h.broker().model.vhosts["/"].exchanges[DELAYED_EXCHANGE]
            .delayed
            .as_ref()
            .map(|d| d.len()),
        Some(0)
    );
}

#[test]
fn a_delayed_message_whose_ack_was_lost_comes_twice_both_flagged() {
    let mut h = harness(false);
    let id = connect(&mut h);
    publish(&mut h, id, DELAYED_QUEUE, b"d1", Some(100));
    let held = tempfile::tempdir().expect("tempdir");
    super::disk::copy_tree(&delayed_dir(&h), &held.path().join("delayed")).expect("copy");
    h.advance(200);
    h.fire_timers();
    assert_eq!(ready(&h, DELAYED_QUEUE), 1, "routed");
    // A crash after the copy's sync and before the ack's: the delayed store
    // as it was before the firing.
    let dir = delayed_dir(&h);
    h.kill9(|_| {
        std::fs::remove_dir_all(&dir).expect("remove");
        super::disk::copy_tree(&held.path().join("delayed"), &dir).expect("restore");
    });
    let id = connect(&mut h);
    h.fire_timers();
    assert_eq!(
        drain(&mut h, id, DELAYED_QUEUE),
        vec![pair(b"d1", true), pair(b"d1", true)],
        "at least once, and never unflagged"
    );
    // A clean restart keeps nothing and flags nothing new.
    publish(&mut h, id, DELAYED_QUEUE, b"d2", Some(100));
    h.restart();
    let id = connect(&mut h);
    h.advance(200);
    h.fire_timers();
    assert_eq!(drain(&mut h, id, DELAYED_QUEUE), vec![pair(b"d2", false)]);
}

#[test]
fn a_delayed_message_due_after_the_restart_was_never_routed_and_is_not_flagged() {
    let mut h = harness(false);
    let id = connect(&mut h);
    publish(&mut h, id, DELAYED_QUEUE, b"late", Some(10_000));
    publish(&mut h, id, DELAYED_QUEUE, b"early", Some(50));
    h.advance(100);
    h.kill9(|_| {});
    // The broker's first `now` after the open: "early" was due before it, may
    // have been routed (it was not: no timer fired) and is flagged; "late" not.
    let id = connect(&mut h);
    h.fire_timers();
    assert_eq!(drain(&mut h, id, DELAYED_QUEUE), vec![pair(b"early", true)]);
    h.advance(20_000);
    h.fire_timers();
    assert_eq!(drain(&mut h, id, DELAYED_QUEUE), vec![pair(b"late", false)]);
}
