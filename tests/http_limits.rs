//! The management listener under hostile clients (issue 15, defect 7): credentials
//! are checked on the request head before any body is read, bodies are bounded per
//! route, heads are bounded in size and time, and open connections are bounded.
//! Raw sockets, so the tests control exactly what is sent and when.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use base64::Engine as _;
use common::http::Api;
use common::load::closed_within;
use common::Broker;

fn connect(b: &Broker) -> TcpStream {
    let s = TcpStream::connect(("127.0.0.1", b.http_port())).expect("connect to the API");
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s
}

fn basic(user: &str, pass: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"))
    )
}

/// Reads until the end of the response head; gives the status code and the head.
fn read_head(s: &mut TcpStream) -> (u16, String) {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        match s.read(&mut byte) {
            Ok(0) => break,
            Ok(_) => buf.push(byte[0]),
            Err(e) => panic!(
                "reading the response head: {e} (got {:?})",
                String::from_utf8_lossy(&buf)
            ),
        }
    }
    let head = String::from_utf8_lossy(&buf).into_owned();
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {head:?}"));
    (status, head)
}

/// An anonymous client announcing a 60 MB upload gets its 401 without sending a
/// byte of it (before the fix the broker waited for, and buffered, the whole body).
#[test]
fn unauthenticated_uploads_are_refused_on_the_head() {
    let b = Broker::new();
    if b.skip_external("unauthenticated_uploads_are_refused_on_the_head") {
        return;
    }
    for auth in ["", &format!("Authorization: {}\r\n", basic("guest", "wrong"))] {
        let mut s = connect(&b);
        write!(
            s,
            "PUT /api/queues/%2F/q1 HTTP/1.1\r\nHost: x\r\n{auth}Content-Type: application/json\r\nContent-Length: 60000000\r\n\r\n"
        )
        .unwrap();
        let (status, head) = read_head(&mut s);
        assert_eq!(status, 401, "{head}");
    }
    // A user without the tag a route needs is refused the same way.
    let api = Api::new(b.http_url(), b.user(), b.pass());
    assert_eq!(
        api.put("/api/users/plain", serde_json::json!({"password": "p", "tags": ""}))
            .status,
        201
    );
    let mut s = connect(&b);
    write!(
        s,
        "POST /api/definitions HTTP/1.1\r\nHost: x\r\nAuthorization: {}\r\nContent-Length: 60000000\r\n\r\n",
        basic("plain", "p")
    )
    .unwrap();
    let (status, head) = read_head(&mut s);
    assert_eq!(status, 401, "{head}");
}

/// Ordinary routes take 1 MiB; definitions imports take more. A declared length
/// over the limit is refused before the body is sent, a chunked one once it passes.
#[test]
fn bodies_are_bounded_per_route() {
    let b = Broker::new();
    if b.skip_external("bodies_are_bounded_per_route") {
        return;
    }
    let auth = basic(b.user(), b.pass());
    let mut s = connect(&b);
    write!(
        s,
        "PUT /api/queues/%2F/q1 HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\nContent-Type: application/json\r\nContent-Length: 2000000\r\n\r\n"
    )
    .unwrap();
    let (status, head) = read_head(&mut s);
    assert_eq!(status, 413, "{head}");

    // Chunked, no declared length: refused once more than 1 MiB has come.
    let mut s = connect(&b);
    write!(
        s,
        "PUT /api/queues/%2F/q1 HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    .unwrap();
    let chunk = vec![b' '; 64 << 10];
    for _ in 0..20 {
        if write!(s, "{:x}\r\n", chunk.len()).is_err() || s.write_all(&chunk).is_err() || s.write_all(b"\r\n").is_err()
        {
            break;
        }
    }
    let (status, head) = read_head(&mut s);
    assert_eq!(status, 413, "{head}");

    // A definitions import of 3 MB (valid JSON, padded) is accepted.
    let mut defs = String::from(
        r#"{"queues":[{"name":"from-big-import","vhost":"/","durable":true,"auto_delete":false,"arguments":{}}]"#,
    );
    defs.push_str(&" ".repeat(3_000_000));
    defs.push('}');
    let api = Api::new(b.http_url(), b.user(), b.pass());
    let mut s = connect(&b);
    write!(
        s,
        "POST /api/definitions HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        defs.len()
    )
    .unwrap();
    s.write_all(defs.as_bytes()).unwrap();
    let (status, head) = read_head(&mut s);
    assert!((200..300).contains(&status), "{head}");
    assert_eq!(api.get("/api/queues/%2F/from-big-import").status, 200);
}

/// A head that never completes is dropped after the header timeout; a head over
/// the size bound gets 431.
#[test]
fn slow_and_huge_heads_are_cut_off() {
    let b = Broker::new();
    if b.skip_external("slow_and_huge_heads_are_cut_off") {
        return;
    }
    let mut s = connect(&b);
    s.write_all(b"GET /api/overview HTTP/1.1\r\nHost: x\r\n").unwrap();
    let started = Instant::now();
    assert!(
        closed_within(&mut s, Duration::from_secs(30)),
        "a request head left unfinished for 30 s was kept open"
    );
    println!("unfinished head closed after {:.1} s", started.elapsed().as_secs_f64());

    let mut s = connect(&b);
    let big = "a".repeat(100 << 10);
    let _ = write!(s, "GET /api/overview HTTP/1.1\r\nHost: x\r\nX-Big: {big}\r\n\r\n");
    let (status, head) = read_head(&mut s);
    assert_eq!(status, 431, "{head}");
}

/// Connections beyond the bound are closed at once; the API serves again once
/// they go.
#[test]
fn open_connections_are_bounded() {
    let b = Broker::new();
    if b.skip_external("open_connections_are_bounded") {
        return;
    }
    const BOUND: usize = 1024;
    let mut held = Vec::with_capacity(BOUND);
    for _ in 0..BOUND {
        held.push(connect(&b));
    }
    // Let the listener accept them all.
    let api = Api::new(b.http_url(), b.user(), b.pass());
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut extra = connect(&b);
    while !closed_within(&mut extra, Duration::from_millis(500)) {
        assert!(Instant::now() < deadline, "connection {} was kept open", BOUND + 1);
        extra = connect(&b);
    }
    drop(held);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = std::panic::catch_unwind(|| api.get("/api/overview").status);
        if matches!(r, Ok(200)) {
            break;
        }
        assert!(Instant::now() < deadline, "the API did not serve again after the flood");
        std::thread::sleep(Duration::from_millis(100));
    }
}
