//! Connections that never finish the handshake (issue 15, defect 6): silent
//! sockets and clients that dribble the protocol header are closed after the
//! handshake timeout, and a flood of them cannot lock out a real client.

mod common;

use std::io::Write;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::load::closed_within;
use common::*;

#[test]
fn silent_and_dribbling_sockets_are_closed_after_the_handshake_timeout() {
    let b = Broker::with_args(&["--handshake-timeout", "1000"]);
    if b.skip_external("silent_and_dribbling_sockets_are_closed_after_the_handshake_timeout") {
        return;
    }
    // Sends nothing.
    let mut silent = TcpStream::connect(b.addr()).unwrap();
    // Sends the protocol header a byte every 300 ms: each byte is progress, but
    // the deadline is from accept.
    let mut dribble = TcpStream::connect(b.addr()).unwrap();
    // Logs in but never sends connection.open.
    let mut stalled = TcpStream::connect(b.addr()).unwrap();
    stalled.write_all(b"AMQP\x00\x00\x09\x01").unwrap();
    let started = Instant::now();
    let header = b"AMQP\x00\x00\x09\x01";
    let mut dribble_closed = false;
    for byte in header.iter().cycle().take(20) {
        if dribble.write_all(&[*byte]).is_err() {
            dribble_closed = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(300));
        if started.elapsed() > Duration::from_secs(4) {
            break;
        }
    }
    assert!(
        dribble_closed || closed_within(&mut dribble, Duration::from_secs(3)),
        "dribbler kept open"
    );
    assert!(
        closed_within(&mut silent, Duration::from_secs(3)),
        "silent socket kept open"
    );
    assert!(
        closed_within(&mut stalled, Duration::from_secs(3)),
        "a handshake stalled after the header kept open"
    );
    // A real client still connects and works.
    run(async {
        let (_conn, ch) = open(&b).await;
        let q = unique("after-timeouts");
        temp_queue(&ch, &q).await;
    });
    // An open connection is past the handshake: the timeout no longer applies.
    run(async {
        let (conn, ch) = open(&b).await;
        tokio::time::sleep(Duration::from_millis(2500)).await;
        let q = unique("still-open");
        temp_queue(&ch, &q).await;
        assert!(conn.status().connected());
    });
    let log = std::fs::read_to_string(b.log_path()).unwrap_or_default();
    assert!(log.contains("handshake_timeout"), "the drop is logged:\n{log}");
}

/// More silent sockets than the handshake bound (4096): the oldest are closed to
/// make room, and a real client connects in the middle of the flood.
#[test]
fn a_flood_of_silent_sockets_does_not_lock_out_clients() {
    let b = Broker::new();
    if b.skip_external("a_flood_of_silent_sockets_does_not_lock_out_clients") {
        return;
    }
    const FLOOD: usize = 4096 + 400;
    let mut flood = Vec::with_capacity(FLOOD);
    for _ in 0..FLOOD {
        match TcpStream::connect(b.addr()) {
            Ok(s) => flood.push(s),
            Err(e) => panic!("connect {} failed: {e}", flood.len()),
        }
    }
    // The first ones are evicted (well before the 10 s timeout).
    let mut first = flood.remove(0);
    assert!(
        closed_within(&mut first, Duration::from_secs(5)),
        "the oldest silent socket was not evicted"
    );
    run(async {
        let (_conn, ch) = open(&b).await;
        let q = unique("during-flood");
        temp_queue(&ch, &q).await;
    });
    drop(flood);
}
