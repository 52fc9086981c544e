//! Transient queues leave no files behind (issue 15, defect 8): a deleted queue's
//! files go with it, a clean stop removes the rest, and what a crash leaves is
//! removed after the listeners are up, not before.

mod common;

use std::path::Path;

use common::*;

/// Files under `dir` (recursively).
fn files_under(dir: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
    entries
        .flatten()
        .map(|e| {
            let p = e.path();
            if p.is_dir() {
                files_under(&p)
            } else {
                1
            }
        })
        .sum()
}

/// Files of transient queues: under `transient*` folders of any vhost.
fn transient_files(data: &Path) -> usize {
    let mut n = 0;
    for vhost in std::fs::read_dir(data).unwrap().flatten() {
        if !vhost.path().is_dir() {
            continue;
        }
        for e in std::fs::read_dir(vhost.path()).unwrap().flatten() {
            if e.file_name().to_string_lossy().starts_with("transient") {
                n += files_under(&e.path());
            }
        }
    }
    n
}

const QUEUES: usize = 200;

async fn declare_transient_queues_with_a_message(b: &Broker) {
    let conn = connect(b).await;
    let ch = confirm_channel(&conn).await;
    for i in 0..QUEUES {
        let q = format!("transient-{i}");
        declare_queue(&ch, &q, QueueDeclareOptions::default(), FieldTable::default()).await;
        publish(&ch, "", &q, b"m").await;
    }
}

#[test]
fn a_clean_stop_removes_transient_queue_files() {
    let mut b = Broker::new();
    if b.skip_external("a_clean_stop_removes_transient_queue_files") {
        return;
    }
    run(async { declare_transient_queues_with_a_message(&b).await });
    let data = b.data_dir();
    assert!(transient_files(&data) > 0, "the queues hold files while they live");
    b.stop();
    assert_eq!(
        transient_files(&data),
        0,
        "transient queue files left after a clean stop"
    );
}

#[test]
fn files_left_by_a_crash_go_after_the_listeners_are_up() {
    let mut b = Broker::new();
    if b.skip_external("files_left_by_a_crash_go_after_the_listeners_are_up") {
        return;
    }
    run(async { declare_transient_queues_with_a_message(&b).await });
    b.kill9();
    let data = b.data_dir();
    assert!(transient_files(&data) > 0);
    b.start();
    run(async {
        eventually("leftover transient files removed", || async {
            transient_files(&data) == 0
        })
        .await;
        // The broker serves, and the old queues are gone.
        let (_conn, ch) = open(&b).await;
        let r = ch
            .queue_declare(
                "transient-0".into(),
                QueueDeclareOptions {
                    passive: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await;
        assert_amqp_err(r, 404, "NOT_FOUND");
    });
    let log = std::fs::read_to_string(b.log_path()).unwrap();
    let listening = log.rfind("AMQP listener started").expect("listener line");
    let removed = log
        .rfind("removed the files of transient queues")
        .expect("removal line");
    assert!(listening < removed, "files removed before the listener was up:\n{log}");
}

#[test]
fn deleting_a_transient_queue_removes_its_files() {
    let b = Broker::new();
    if b.skip_external("deleting_a_transient_queue_removes_its_files") {
        return;
    }
    run(async {
        declare_transient_queues_with_a_message(&b).await;
        let (_conn, ch) = open(&b).await;
        for i in 0..QUEUES {
            ch.queue_delete(format!("transient-{i}").as_str().into(), Default::default())
                .await
                .expect("queue.delete");
        }
        let data = b.data_dir();
        assert_eq!(transient_files(&data), 0, "files of deleted transient queues");
    });
}
