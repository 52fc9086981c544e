//! A queue's store is opened at its first message (issue 18): a queue that
//! never got one holds no store, no open file and no segment; durable ones
//! still have their folder and name file, so a restart recovers them, empty or
//! not; purge and delete work on a queue whose store was never opened.

use std::path::{Path, PathBuf};

use ringmq_codec::*;

use crate::core::model::ids::ConnId;
use crate::core::model::queue::Queue;

use super::client::{self, Event};
use super::harness::Harness;

const CH: u16 = 1;

fn queue<'a>(h: &'a Harness, name: &str) -> &'a Queue {
    let v = &h.broker().model.vhosts["/"];
    &v.queues[&v.queue_id(name).expect("declared")]
}

fn exists(h: &Harness, name: &str) -> bool {
    h.broker().model.vhosts["/"].queue_id(name).is_some()
}

/// Files of this process open under `dir`.
fn open_files_under(dir: &Path) -> Vec<PathBuf> {
    let fds = std::fs::read_dir("/proc/self/fd").expect("/proc/self/fd");
    fds.filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter(|p| p.starts_with(dir))
        .collect()
}

fn declare(h: &mut Harness, id: ConnId, name: &str, durable: bool) {
    let bytes = client::method(CH, Method::QueueDeclare(client::queue_decl(name, durable)));
    h.send(id, &bytes);
    h.sync_all();
}

fn publish(h: &mut Harness, id: ConnId, queue: &str, body: &[u8]) {
    let props = BasicProperties {
        delivery_mode: Some(2),
        ..Default::default()
    };
    h.send(id, &client::publish(CH, "", queue, &props, body));
    h.sync_all();
}

fn replies(h: &mut Harness, id: ConnId) -> Vec<&'static str> {
    h.events(id)
        .into_iter()
        .map(|e| match e {
            Event::Other { name, .. } | Event::QueueOk { name, .. } => name,
            other => panic!("unexpected {other:?}"),
        })
        .collect()
}

#[test]
fn a_queue_opens_its_store_at_its_first_message() {
    let mut h = Harness::new(1, false, |_| {});
    let id = h.connect(0, &[CH]);
    declare(&mut h, id, "durable", true);
    declare(&mut h, id, "transient", false);
    for (name, durable) in [("durable", true), ("transient", false)] {
        let q = queue(&h, name);
        assert!(!q.is_store_open(), "{name}: store opened at declare");
        let dir = q.dir();
        // A durable queue's folder (with its name file) is what recovery finds;
        // a transient one's waits for the first message.
        assert_eq!(dir.exists(), durable, "{name}: folder at declare");
        assert!(!ringmq_store::layout::holds_store_files(&dir).unwrap(), "{name}");
        assert_eq!(open_files_under(&dir), Vec::<PathBuf>::new(), "{name}");
        assert_eq!((q.ready_count(), q.unacked_count(), q.total_bytes()), (0, 0, 0));

        publish(&mut h, id, name, b"first");
        let q = queue(&h, name);
        assert!(q.is_store_open(), "{name}: the first message opens the store");
        assert_eq!(q.message_count(), 1, "{name}");
        assert!(
            ringmq_store::layout::holds_store_files(&q.dir()).unwrap(),
            "{name}: a segment"
        );
    }
}

#[test]
fn a_restart_recovers_durable_queues_empty_or_not() {
    let mut h = Harness::new(2, false, |_| {});
    let id = h.connect(0, &[CH]);
    declare(&mut h, id, "idle", true);
    declare(&mut h, id, "busy", true);
    publish(&mut h, id, "busy", b"kept");
    h.restart();
    assert!(exists(&h, "idle"), "an empty durable queue survives a restart");
    assert!(!queue(&h, "idle").is_store_open(), "and stays without a store");
    let busy = queue(&h, "busy");
    assert!(busy.is_store_open(), "a queue with messages is recovered at start");
    assert_eq!(busy.message_count(), 1);

    // The recovered empty queue opens its store at its first message, and
    // keeps it across the next restart.
    let id = h.connect(0, &[CH]);
    publish(&mut h, id, "idle", b"late");
    h.restart();
    assert_eq!(queue(&h, "idle").message_count(), 1);
    assert_eq!(queue(&h, "busy").message_count(), 1);
}

#[test]
fn purge_and_delete_of_a_queue_never_opened() {
    let mut h = Harness::new(3, false, |_| {});
    let id = h.connect(0, &[CH]);
    declare(&mut h, id, "d", true);
    declare(&mut h, id, "t", false);
    h.events(id);
    for name in ["d", "t"] {
        let dir = queue(&h, name).dir();
        let purge = Method::QueuePurge(QueuePurge {
            ticket: 0,
            queue: client::name(name),
            no_wait: false,
        });
        h.send(id, &client::method(CH, purge));
        assert_eq!(replies(&mut h, id), ["queue.purge-ok"], "{name}");
        assert!(!queue(&h, name).is_store_open(), "{name}: a purge opens nothing");
        let delete = Method::QueueDelete(QueueDelete {
            ticket: 0,
            queue: client::name(name),
            if_unused: false,
            if_empty: true,
            no_wait: false,
        });
        h.send(id, &client::method(CH, delete));
        h.sync_all();
        assert_eq!(replies(&mut h, id), ["queue.delete-ok"], "{name}");
        assert!(!exists(&h, name), "{name}");
        assert!(!dir.exists(), "{name}: its folder is gone");
    }
    h.restart();
    assert!(!exists(&h, "d"), "a deleted durable queue stays deleted");
}
