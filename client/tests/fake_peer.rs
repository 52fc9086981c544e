//! The client against a fake peer on a real socket: a broker that shakes
//! hands (offering 1 s heartbeats) and then only counts what it gets, or
//! falls silent. Heartbeats sent and a dead peer detected; reconnect over a
//! list of URIs where the first refuses.

use std::time::{Duration, Instant};

use ringmq_client::reconnect::{connect_first, connect_retrying};
use ringmq_client::{ClientError, ConnectOptions, Connection, Uri};
use ringmq_codec::frame::FRAME_HEARTBEAT;
use ringmq_codec::{
    encode_method, short, split_frame, ConnectionOpenOk, ConnectionStart, ConnectionTune, Method, Table,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What the fake does after the handshake.
#[derive(Clone, Copy)]
enum After {
    /// Reads and counts heartbeat frames for this long, then reports them.
    CountHeartbeats(Duration),
    /// Sends nothing and reads nothing (a hung peer), holding the socket.
    Silent,
}

async fn read_frame(s: &mut TcpStream, buf: &mut Vec<u8>) -> (u8, Vec<u8>) {
    loop {
        if let Ok((f, used)) = split_frame(buf, 0) {
            let out = (f.frame_type, f.payload.to_vec());
            buf.drain(..used);
            return out;
        }
        let mut chunk = [0u8; 4096];
        let n = s.read(&mut chunk).await.expect("read");
        assert!(n > 0, "client closed");
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// Serves one connection; returns the heartbeats it counted.
async fn fake_broker(l: TcpListener, after: After) -> usize {
    let (mut s, _) = l.accept().await.unwrap();
    let mut hdr = [0u8; 8];
    s.read_exact(&mut hdr).await.unwrap();
    let mut out = Vec::new();
    let start = Method::ConnectionStart(ConnectionStart {
        version_major: 0,
        version_minor: 9,
        server_properties: Table::EMPTY,
        mechanisms: b"PLAIN",
        locales: b"en_US",
    });
    encode_method(&mut out, 0, &start);
    s.write_all(&out).await.unwrap();
    let mut buf = Vec::new();
    read_frame(&mut s, &mut buf).await; // start-ok
    out.clear();
    let tune = ConnectionTune {
        channel_max: 16,
        frame_max: 131_072,
        heartbeat: 1,
    };
    encode_method(&mut out, 0, &Method::ConnectionTune(tune));
    s.write_all(&out).await.unwrap();
    read_frame(&mut s, &mut buf).await; // tune-ok
    read_frame(&mut s, &mut buf).await; // open
    out.clear();
    let ok = ConnectionOpenOk {
        known_hosts: short!(""),
    };
    encode_method(&mut out, 0, &Method::ConnectionOpenOk(ok));
    s.write_all(&out).await.unwrap();
    match after {
        After::CountHeartbeats(d) => {
            let mut n = 0;
            let until = tokio::time::Instant::now() + d;
            while let Ok((t, _)) = tokio::time::timeout_at(until, read_frame(&mut s, &mut buf)).await {
                n += usize::from(t == FRAME_HEARTBEAT);
            }
            n
        }
        After::Silent => {
            tokio::time::sleep(Duration::from_secs(10)).await;
            0
        }
    }
}

fn uri(port: u16) -> Uri {
    Uri::parse(&format!("amqp://guest:guest@127.0.0.1:{port}/")).unwrap()
}

fn heartbeats(secs: u16) -> ConnectOptions {
    ConnectOptions {
        heartbeat_secs: secs,
        ..ConnectOptions::default()
    }
}

#[tokio::test(flavor = "current_thread")]
async fn an_idle_connection_sends_heartbeats() {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    let peer = tokio::spawn(fake_broker(l, After::CountHeartbeats(Duration::from_millis(2600))));
    let mut c = Connection::connect_with(&uri(port), &heartbeats(5)).await.unwrap();
    assert_eq!(c.heartbeat_secs(), 1, "the lower of ours and the peer's");
    // Idle: `next` waits, sending a heartbeat every half second; the fake
    // peer sends none, so it would be "dead" after 2 s: stop before.
    let r = tokio::time::timeout(Duration::from_millis(1900), c.next()).await;
    assert!(r.is_err(), "no event from a silent peer within 1.9 s: {r:?}");
    let counted = peer.await.unwrap();
    assert!(counted >= 3, "heartbeats every 0.5 s for ~1.9 s, got {counted}");
}

#[tokio::test(flavor = "current_thread")]
async fn a_silent_peer_is_declared_dead_after_two_intervals() {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    let _peer = tokio::spawn(fake_broker(l, After::Silent));
    let mut c = Connection::connect_with(&uri(port), &heartbeats(1)).await.unwrap();
    let t0 = Instant::now();
    let r = tokio::time::timeout(Duration::from_secs(5), c.next())
        .await
        .expect("detected in time");
    assert!(matches!(r, Err(ClientError::PeerDead { heartbeat_secs: 1 })), "{r:?}");
    // Not before two heartbeat intervals of silence (how long after that
    // depends on this shared machine's timers: bounded by the test's wait).
    let took = t0.elapsed();
    assert!(took >= Duration::from_millis(1900), "declared dead after {took:?}");
}

#[tokio::test(flavor = "current_thread")]
async fn heartbeats_off_when_we_ask_for_none() {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    let _peer = tokio::spawn(fake_broker(l, After::Silent));
    let c = Connection::connect(&uri(port)).await.unwrap();
    assert_eq!((c.heartbeat_secs(), c.heartbeat_deadline()), (0, None));
}

/// A port nothing listens on.
async fn dead_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    l.local_addr().unwrap().port()
}

#[tokio::test(flavor = "current_thread")]
async fn reconnect_takes_the_first_uri_that_answers() {
    let dead = dead_port().await;
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    let _peer = tokio::spawn(fake_broker(l, After::Silent));
    let (_, i) = connect_first(&[uri(dead), uri(port)], &ConnectOptions::default())
        .await
        .expect("the second answers");
    assert_eq!(i, 1);
    let errs = connect_first(&[uri(dead)], &ConnectOptions::default())
        .await
        .err()
        .unwrap();
    assert_eq!(errs.len(), 1);
    assert!(matches!(errs[0], (0, ClientError::Io(_))));
}

#[tokio::test(flavor = "current_thread")]
async fn reconnect_retries_after_the_delay_until_one_comes_up() {
    let port = dead_port().await;
    let mut failures = 0;
    let t0 = Instant::now();
    // Nothing listens for the first round; the broker comes up during the delay.
    let up = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(150)).await;
        let l = TcpListener::bind(("127.0.0.1", port)).await.unwrap();
        fake_broker(l, After::Silent).await
    });
    let r = connect_retrying(
        &[uri(port)],
        &ConnectOptions::default(),
        Duration::from_millis(400),
        5,
        |_| failures += 1,
    )
    .await;
    assert!(r.is_ok(), "connected on a later round");
    assert_eq!(failures, 1);
    assert!(t0.elapsed() >= Duration::from_millis(400), "waited the delay");
    up.abort();
    let gone = dead_port().await;
    let r = connect_retrying(
        &[uri(gone)],
        &ConnectOptions::default(),
        Duration::from_millis(10),
        3,
        |_| {},
    )
    .await;
    assert_eq!(r.err().map(|e| e.len()), Some(1), "gives up after the rounds");
}
