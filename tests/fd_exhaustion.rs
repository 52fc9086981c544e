//! Out of file descriptors (EMFILE): the broker cannot accept, so it logs, pauses
//! and tries again (it does not spin on the same error), keeps serving the
//! connections it has, and accepts again as soon as descriptors are free.
//!
//! The broker's descriptor limit is lowered from outside with `prlimit(2)` (the
//! tests run as root), to just above what it holds open, so a few extra sockets
//! exhaust it.

mod common;

use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::*;
use lapin::options::{BasicGetOptions, BasicPublishOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use lapin::BasicProperties;

fn open_fds(pid: u32) -> u64 {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("/proc/PID/fd")
        .count() as u64
}

/// Sets the soft and hard RLIMIT_NOFILE of `pid`, returning the old limit.
fn set_nofile(pid: u32, soft: u64, hard: u64) -> libc::rlimit {
    let new = libc::rlimit {
        rlim_cur: soft,
        rlim_max: hard,
    };
    let mut old = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: prlimit reads `new` and writes `old`, both valid for the call.
    let rc = unsafe { libc::prlimit(pid as libc::pid_t, libc::RLIMIT_NOFILE, &new, &mut old) };
    assert_eq!(rc, 0, "prlimit: {}", std::io::Error::last_os_error());
    old
}

fn accept_failures(b: &Broker) -> usize {
    let log = std::fs::read_to_string(b.log_path()).unwrap_or_default();
    log.matches("accept failed").count()
}

#[test]
fn out_of_descriptors_the_broker_pauses_keeps_serving_and_recovers() {
    let b = Broker::new();
    if b.skip_external("out_of_descriptors_the_broker_pauses_keeps_serving_and_recovers") {
        return;
    }
    let pid = b.pid().expect("spawned broker");
    run(async {
        // Made while descriptors are plentiful: a connection; a queue that has
        // stored and delivered (its files are open); a queue holding a message
        // never delivered (its first delivery opens the queue's `delivered`
        // mark); a fresh queue (its first message needs a new segment file).
        let conn = connect(&b).await;
        let ch = confirm_channel(&conn).await;
        let (used, unread, fresh) = (unique("fd-used"), unique("fd-unread"), unique("fd-fresh"));
        for q in [&used, &unread, &fresh] {
            ch.queue_declare(q.as_str().into(), QueueDeclareOptions::default(), FieldTable::default())
                .await
                .unwrap();
        }
        assert!(publish(&ch, &used, b"warm").await, "publish before the limit");
        assert_eq!(get(&ch, &used).await, b"warm");
        assert!(publish(&ch, &unread, b"kept").await, "publish before the limit");

        let held = open_fds(pid);
        let old = set_nofile(pid, held + 2, old_hard(pid));
        // More sockets than the broker has descriptors left: the kernel completes
        // their handshakes in the backlog, the broker's accept gets EMFILE.
        let mut extra: Vec<TcpStream> = (0..12)
            .map(|_| TcpStream::connect(b.addr()).expect("connect"))
            .collect();
        let waited = Instant::now();
        while accept_failures(&b) == 0 {
            assert!(
                waited.elapsed() < WAIT,
                "no \"accept failed\" in the log:\n{}",
                b.log_tail()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }

        // The open connection is still served while accept keeps failing: the
        // queue whose files are open stores and delivers; a message that needs a
        // file the broker cannot open is refused with a nack, not confirmed, and
        // one that cannot be taken stays ready in its queue (the take used to
        // be left half done: the message was neither ready nor unacked).
        assert!(publish(&ch, &used, b"during").await, "publish to an open segment");
        assert_eq!(get(&ch, &used).await, b"during");
        assert!(
            !publish(&ch, &fresh, b"no file").await,
            "confirmed without a file to store it"
        );
        for _ in 0..3 {
            let got = within(
                "basic.get",
                ch.basic_get(unread.as_str().into(), BasicGetOptions { no_ack: true }),
            )
            .await
            .expect("basic.get");
            assert!(got.is_none(), "delivered without its delivered mark");
        }
        let passive = QueueDeclareOptions {
            passive: true,
            ..Default::default()
        };
        let ok = ch
            .queue_declare(unread.as_str().into(), passive, FieldTable::default())
            .await
            .unwrap();
        assert_eq!(
            ok.message_count(),
            1,
            "the message that could not be taken left its queue"
        );

        // A consumer of that queue waits: nothing can be taken for it yet.
        let mut consumer = consume_no_ack(&ch, &unread).await;

        // It pauses between tries: over one second a spinning accept loop logs
        // thousands of failures, a paused one a few dozen at most.
        let before = accept_failures(&b);
        tokio::time::sleep(Duration::from_secs(1)).await;
        let in_a_second = accept_failures(&b) - before;
        assert!(
            in_a_second <= 100,
            "{in_a_second} accept failures logged in one second: spinning"
        );

        // Descriptors back: the waiting consumer gets the message with no new
        // event on its queue (the broker tries the take again by itself), a new
        // client gets in, and the queue that could not open its file stores again.
        set_nofile(pid, old.rlim_cur, old.rlim_max);
        extra.clear();
        let kept = next(&mut consumer).await;
        assert_eq!(kept.data, b"kept", "the message that could not be taken");
        let (_conn2, ch2) = open(&b).await;
        ch2.queue_declare(fresh.as_str().into(), passive, FieldTable::default())
            .await
            .unwrap();
        assert!(
            publish(&ch, &fresh, b"after").await,
            "publish after descriptors came back"
        );
        assert_eq!(get(&ch2, &fresh).await, b"after");
    });
}

/// Publishes `body` to `queue` on a confirm channel: whether it was acked.
async fn publish(ch: &lapin::Channel, queue: &str, body: &[u8]) -> bool {
    let confirm = within(
        "basic.publish",
        ch.basic_publish(
            "".into(),
            queue.into(),
            BasicPublishOptions::default(),
            body,
            BasicProperties::default(),
        ),
    )
    .await
    .expect("basic.publish");
    match within("publisher confirm", confirm).await.expect("confirm") {
        Confirmation::Ack(_) => true,
        Confirmation::Nack(_) => false,
        other => panic!("confirm of a publish to {queue}: {other:?}"),
    }
}

/// The next message of `queue` (basic.get, no-ack), waiting for one.
async fn get(ch: &lapin::Channel, queue: &str) -> Vec<u8> {
    within("basic.get", async {
        loop {
            let got = ch.basic_get(queue.into(), BasicGetOptions { no_ack: true }).await;
            if let Some(m) = got.expect("basic.get") {
                return m.delivery.data;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
}

/// The current hard limit of `pid` (unchanged while the soft one is lowered).
fn old_hard(pid: u32) -> u64 {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).expect("/proc/PID/limits");
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .expect("Max open files");
    let hard = line.split_whitespace().nth(4).expect("hard limit");
    hard.parse().unwrap_or(libc::RLIM_INFINITY)
}
