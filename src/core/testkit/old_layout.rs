//! Focused tests of the definitions log's replay (`definitions::replay`) at
//! open: data directories written before store generations existed, with
//! queue folders named by the hash of the name alone and plain declare records.

use crate::core::model::ids::VhostName;
use std::path::Path;

use ringmq_codec::{BasicProperties, Method, QueueDeclare, QueueDelete, Table};
use ringmq_store::{layout, DefinitionsLog, LeveledStore, MessageRef};

use crate::core::amqp::broker::Broker;
use crate::core::config::CoreConfig;
use crate::core::definitions::replay;

fn declare(name: &str) -> Vec<u8> {
    let mut out = Vec::new();
    Method::QueueDeclare(QueueDeclare {
        ticket: 0,
        queue: ringmq_codec::ShortStr::new(name).unwrap(),
        passive: false,
        durable: true,
        exclusive: false,
        auto_delete: false,
        no_wait: false,
        arguments: Table::EMPTY,
    })
    .encode_payload(&mut out);
    out
}

fn delete(name: &str) -> Vec<u8> {
    let mut out = Vec::new();
    Method::QueueDelete(QueueDelete {
        ticket: 0,
        queue: ringmq_codec::ShortStr::new(name).unwrap(),
        if_unused: false,
        if_empty: false,
        no_wait: false,
    })
    .encode_payload(&mut out);
    out
}

/// Writes a vhost "/" as older versions did: `records` in its log and
/// `messages` persistent messages in the generation-0 folder of `queue`.
fn old_layout(root: &Path, records: &[Vec<u8>], queue: &str, messages: usize) {
    let vdir = layout::create_vhost_dir(root, "/").unwrap();
    let (mut log, _) = DefinitionsLog::open(&vdir.join(layout::DEFINITIONS_FILE)).unwrap();
    for r in records {
        log.append(r).unwrap();
    }
    let qdir = layout::create_queue_dir(&vdir, queue).unwrap();
    if queue == "q" {
        // The old naming path: the hex SHA-1 of the name, nothing else.
        assert_eq!(qdir, vdir.join("22ea1c649c82946aa6e479e1ffd321e4a318b1b0"));
    }
    let cfg = CoreConfig::for_tests(root);
    let (mut store, _) = LeveledStore::open(&qdir, cfg.store, 0, &|_| true).unwrap();
    let mut props = Vec::new();
    BasicProperties {
        delivery_mode: Some(2),
        ..Default::default()
    }
    .encode(&mut props);
    for i in 0..messages {
        let body = format!("m{i}");
        let msg = MessageRef {
            timestamp_ms: 1,
            exchange: b"",
            routing_key: queue.as_bytes(),
            properties: &props,
            body: body.as_bytes(),
        };
        store.append(msg, 0).unwrap();
    }
    store.close().unwrap();
}

fn ready(b: &Broker, queue: &str) -> Option<u64> {
    let v = &b.model.vhosts["/"];
    v.queue_id(queue).map(|id| v.queues[&id].ready_count())
}

/// Opens the broker, checks `queue` holds `expected`, and does it again
/// after a clean close (the first open compacted the log with generations).
fn check_twice(root: &Path, queue: &str, expected: Option<u64>) {
    for round in 0..2 {
        let mut b = Broker::open(CoreConfig::for_tests(root), 1).unwrap();
        assert_eq!(ready(&b, queue), expected, "open {round}");
        b.close().unwrap();
    }
}

#[test]
fn an_old_queue_folder_still_opens() {
    let root = tempfile::tempdir().unwrap();
    old_layout(root.path(), &[declare("q")], "q", 3);
    check_twice(root.path(), "q", Some(3));
    let b = Broker::open(CoreConfig::for_tests(root.path()), 1).unwrap();
    let v = &b.model.vhosts["/"];
    assert_eq!(
        v.queues[&v.queue_id("q").unwrap()].store_gen(),
        0,
        "read in place, not moved"
    );
}

#[test]
fn an_old_log_that_declares_a_queue_again_keeps_its_messages() {
    // Written by the old code: declare, delete, declare, 7 confirmed messages,
    // never restarted since. The last declare owns the folder.
    let root = tempfile::tempdir().unwrap();
    old_layout(root.path(), &[declare("q"), delete("q"), declare("q")], "q", 7);
    check_twice(root.path(), "q", Some(7));
}

#[test]
fn an_old_log_that_ends_with_a_delete_removes_the_folder() {
    let root = tempfile::tempdir().unwrap();
    old_layout(root.path(), &[declare("q"), delete("q")], "q", 2);
    check_twice(root.path(), "q", None);
    let vdir = layout::vhost_dir(root.path(), "/");
    assert!(!layout::queue_dir(&vdir, "q").exists());
}

#[test]
fn a_queue_declared_again_at_runtime_gets_a_new_folder() {
    let root = tempfile::tempdir().unwrap();
    old_layout(root.path(), &[declare("q")], "q", 3);
    let mut b = Broker::open(CoreConfig::for_tests(root.path()), 1).unwrap();
    let vname = VhostName::new("/").unwrap();
    let id = b.model.vhosts["/"].queue_id("q").unwrap();
    b.delete_queue(&vname, id);
    replay::apply(
        &mut b.model,
        &vname,
        Method::decode(&declare("q")).unwrap(),
        replay::Mode::Import,
    )
    .unwrap();
    let v = &b.model.vhosts["/"];
    let q = &v.queues[&v.queue_id("q").unwrap()];
    assert_eq!(q.store_gen(), 1);
    assert_eq!(q.ready_count(), 0);
    b.close().unwrap();
    check_twice(root.path(), "q", Some(0));
}
