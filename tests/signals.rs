//! SIGHUP (issue 15, defect 13): the broker reloads what it can (the log level),
//! says what it did, and keeps serving; a broken file reloads nothing and stops
//! nothing.

mod common;

use std::time::{Duration, Instant};

use common::*;

fn wait_for_log(b: &Broker, needle: &str) -> String {
    let deadline = Instant::now() + WAIT;
    loop {
        let log = std::fs::read_to_string(b.log_path()).unwrap_or_default();
        if log.contains(needle) {
            return log;
        }
        assert!(Instant::now() < deadline, "no {needle:?} in the log:\n{log}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn sighup_reloads_the_log_level_and_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let ini = dir.path().join("ringmq.ini");
    std::fs::write(&ini, "[main]\nlog_level = info\n").unwrap();
    let mut b = Broker::with_args(&["-c", ini.to_str().unwrap()]);
    if b.skip_external("sighup_reloads_the_log_level_and_keeps_serving") {
        return;
    }
    b.signal(libc::SIGHUP);
    wait_for_log(&b, "SIGHUP: log level info -> info");
    assert!(b.is_running(), "SIGHUP stopped the broker");

    std::fs::write(&ini, "[main]\nlog_level = debug\n").unwrap();
    b.signal(libc::SIGHUP);
    wait_for_log(&b, "SIGHUP: log level info -> debug");
    // Debug lines now appear (a client's connection.close is logged at debug).
    run(async {
        let (conn, ch) = open(&b).await;
        temp_queue(&ch, &unique("after-hup")).await;
        conn.close(200, "bye".into()).await.expect("close");
    });
    wait_for_log(&b, "client closed connection");

    std::fs::write(&ini, "[main]\nlog_level = loud\n").unwrap();
    b.signal(libc::SIGHUP);
    wait_for_log(&b, "SIGHUP: nothing reloaded");
    assert!(b.is_running());
    run(async {
        let (_conn, ch) = open(&b).await;
        temp_queue(&ch, &unique("after-bad-hup")).await;
    });
    b.stop();
}
