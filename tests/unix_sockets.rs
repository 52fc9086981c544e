//! Unix domain sockets for AMQP and the HTTP API (issue 19, LavinMQ's
//! `unix_path` under `[amqp]` and `[mgmt]`): AMQP over the socket on both
//! backends (a local peer, so `guest` may log in), the API over it with curl
//! and ringmqctl, the socket files' mode, a stale file from a killed broker
//! replaced, a live one or a regular file refused, both files gone after a
//! clean stop; ringmqctl without connection options on the control socket.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::raw::{plain, RawConn};
use common::tls::BACKENDS;
use common::*;
use serde_json::Value;

/// curl over the Unix socket as guest; (status, body). Fails the test when
/// curl is missing.
fn curl(socket: &Path, method: &str, path: &str, body: Option<&str>) -> (u16, String) {
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "-u", "guest:guest", "-X", method, "-w", "\n%{http_code}"])
        .arg("--unix-socket")
        .arg(socket)
        .arg(format!("http://localhost{path}"));
    if let Some(b) = body {
        cmd.args(["-H", "content-type: application/json", "--data", b]);
    }
    let out = cmd
        .output()
        .expect("curl (Debian's curl package) runs the HTTP checks over the Unix socket");
    assert!(out.status.success(), "curl {method} {path}: {out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    let (body, status) = text.rsplit_once('\n').unwrap();
    (status.parse().unwrap(), body.to_string())
}

fn ringmqctl(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_ringmqctl"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("ringmqctl")
}

/// A queue's message count, as `ringmqctl --socket` lists it (0 if not listed).
fn messages_in(http_socket: &Path, queue: &str) -> u64 {
    let out = ringmqctl(&["--socket", http_socket.to_str().unwrap(), "--json", "list", "queues"]);
    assert!(out.status.success(), "{out:?}");
    let list: Value = serde_json::from_slice(&out.stdout).unwrap();
    let found = list.as_array().unwrap().iter().find(|x| x["name"] == queue);
    found.and_then(|x| x["messages"].as_u64()).unwrap_or(0)
}

/// The socket file's permission bits.
fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

struct Sockets {
    _dir: tempfile::TempDir,
    amqp: PathBuf,
    http: PathBuf,
}

fn sockets() -> Sockets {
    let dir = tempfile::Builder::new().prefix("ringmq-unix-").tempdir().unwrap();
    Sockets {
        amqp: dir.path().join("amqp.sock"),
        http: dir.path().join("http.sock"),
        _dir: dir,
    }
}

fn broker_on(s: &Sockets, extra: &[&str]) -> Broker {
    let mut args = vec![
        "--amqp-unix-path",
        s.amqp.to_str().unwrap(),
        "--http-unix-path",
        s.http.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    Broker::with_args(&args)
}

#[test]
fn amqp_and_the_api_over_unix_sockets_on_both_backends() {
    for io in BACKENDS {
        let s = sockets();
        let mut b = broker_on(&s, &[&format!("--io={io}")]);
        if b.skip_external("amqp_and_the_api_over_unix_sockets_on_both_backends") {
            return;
        }
        assert_eq!(mode(&s.amqp), 0o666);
        assert_eq!(mode(&s.http), 0o666);
        let q = unique("unix");
        let (status, body) = curl(&s.http, "PUT", &format!("/api/queues/%2F/{q}"), Some("{}"));
        assert_eq!(status, 201, "{body}");
        run(async {
            let mut c = RawConn::unix_guest(&s.amqp).await;
            let mut out = Vec::new();
            RawConn::encode_publish(&mut out, 1, "", &q);
            c.send(&out).await;
            // The API (over its own socket) shows the connection at the socket's path.
            let deadline = Instant::now() + WAIT;
            loop {
                let (status, body) = curl(&s.http, "GET", "/api/connections", None);
                assert_eq!(status, 200, "{body}");
                let all: Value = serde_json::from_str(&body).unwrap();
                let shown = all
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|c| c["peer_host"] == s.amqp.to_str().unwrap());
                if let Some(c) = shown {
                    assert!(c["peer_port"].as_u64().unwrap() >= 1, "{c:#}");
                    assert_eq!(c["user"], "guest");
                    break;
                }
                assert!(Instant::now() < deadline, "no Unix socket connection in {all:#}");
                std::thread::sleep(Duration::from_millis(20));
            }
            // The message is there (ringmqctl over the HTTP socket), then taken.
            eventually("the message in the queue", || {
                std::future::ready(messages_in(&s.http, &q) == 1)
            })
            .await;
            let (status, body) = curl(
                &s.http,
                "POST",
                &format!("/api/queues/%2F/{q}/get"),
                Some(r#"{"count":1,"ackmode":"ack_requeue_false","encoding":"auto"}"#),
            );
            assert_eq!(status, 200, "{body}");
            assert_eq!(
                serde_json::from_str::<Value>(&body).unwrap().as_array().unwrap().len(),
                1
            );
        });
        // ringmqctl ping on the AMQP socket needs no login.
        let out = ringmqctl(&["ping", s.amqp.to_str().unwrap()]);
        assert!(out.status.success(), "{out:?}");
        // A wrong password over the socket is the API's 401, not a transport error.
        let out = ringmqctl(&[
            "--socket",
            s.http.to_str().unwrap(),
            "--password",
            "nope",
            "list",
            "queues",
        ]);
        assert_eq!(out.status.code(), Some(1), "{out:?}");
        b.stop();
        assert!(
            !s.amqp.exists() && !s.http.exists(),
            "socket files left after a clean stop"
        );
        // And ringmqctl says the API is unreachable, not something else.
        let out = ringmqctl(&["--socket", s.http.to_str().unwrap(), "list", "queues"]);
        assert_eq!(out.status.code(), Some(69), "{out:?}");
    }
}

/// Starts a second broker process on its own data directory and ports with
/// `args`; returns its exit status and output (it must exit by itself).
fn second_broker(args: &[&str]) -> (std::process::ExitStatus, String) {
    let dir = tempfile::tempdir().unwrap();
    let [p1, p2] = free_ports::<2>();
    let mut child = Command::new(env!("CARGO_BIN_EXE_ringmq"))
        .arg("-D")
        .arg(dir.path().join("data"))
        .args([
            "--bind",
            "127.0.0.1",
            "--metrics-http-port",
            "-1",
            "--mqtt-port=-1",
            "--amqp-port",
        ])
        .arg(p1.to_string())
        .arg("--http-port")
        .arg(p2.to_string())
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + WAIT;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the second broker kept running");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    (
        out.status,
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

#[test]
fn stale_sockets_are_replaced_live_ones_and_other_files_are_not() {
    let s = sockets();
    // A socket file nobody listens on, as a crashed broker leaves it.
    drop(std::os::unix::net::UnixListener::bind(&s.amqp).unwrap());
    let mut b = broker_on(&s, &[]);
    if b.skip_external("stale_sockets_are_replaced_live_ones_and_other_files_are_not") {
        return;
    }
    assert!(
        b.log_tail().contains("removing a stale Unix socket"),
        "{}",
        b.log_tail()
    );
    let ping = |path: &Path| ringmqctl(&["ping", path.to_str().unwrap()]).status.success();
    assert!(ping(&s.amqp));
    // Another broker on the same socket: refused, and the first keeps it.
    let (status, out) = second_broker(&["--amqp-unix-path", s.amqp.to_str().unwrap()]);
    assert!(!status.success(), "{out}");
    assert!(out.contains("a process is listening on this socket"), "{out}");
    assert!(ping(&s.amqp), "the first broker lost its socket");
    // kill -9 leaves both files; the next start takes them over.
    b.kill9();
    assert!(s.amqp.exists() && s.http.exists());
    assert!(!ping(&s.amqp));
    b.start();
    assert!(ping(&s.amqp));
    let out = ringmqctl(&["--socket", s.http.to_str().unwrap(), "list", "vhosts"]);
    assert!(out.status.success(), "{out:?}");
    b.stop();
    // Something that is not a socket is never removed.
    std::fs::write(&s.amqp, b"precious").unwrap();
    let (status, out) = second_broker(&["--amqp-unix-path", s.amqp.to_str().unwrap()]);
    assert!(!status.success(), "{out}");
    assert!(out.contains("exists and is not a socket"), "{out}");
    assert_eq!(std::fs::read(&s.amqp).unwrap(), b"precious");
}

#[test]
fn proxy_header_on_the_unix_socket_when_asked() {
    let s = sockets();
    let b = broker_on(&s, &["--amqp-unix-proxy-protocol", "1"]);
    if b.skip_external("proxy_header_on_the_unix_socket_when_asked") {
        return;
    }
    run(async {
        // A local proxy names its client: shown, and subject to the loopback rule.
        let stream = tokio::net::UnixStream::connect(&s.amqp).await.unwrap();
        let mut c = RawConn::over(stream);
        c.send(b"PROXY TCP4 198.51.100.9 127.0.0.1 6000 5672\r\n").await;
        c.start().await;
        c.start_ok("PLAIN", &plain("guest", "guest")).await;
        let (code, _, _, _) = c.expect_connection_close().await;
        assert_eq!(code, 403, "guest from a remote client behind a local proxy");
        // Without the header: closed.
        let stream = tokio::net::UnixStream::connect(&s.amqp).await.unwrap();
        let mut c = RawConn::over(stream);
        c.send(&ringmq_codec::PROTOCOL_HEADER).await;
        assert!(c.recv().await.is_none());
    });
    let log = std::fs::read_to_string(b.log_path()).unwrap();
    assert!(
        log.contains("no valid PROXY header") && log.contains("listener=\"AMQP (Unix socket)\""),
        "{log}"
    );
}

/// ringmqctl given no connection option reaches the broker through its
/// control socket (`--control-unix-path`; by default both sides use
/// /run/ringmq/ringmqctl.sock, here a temporary one named to ringmqctl by
/// `RINGMQCTL_CONTROL_UNIX_PATH`), made 0660; with the socket gone (a stale
/// file left) it uses TCP, http://127.0.0.1:15672.
#[test]
fn ringmqctl_without_options_uses_the_control_socket_else_tcp() {
    let s = sockets();
    let control = s.http.with_file_name("ctl.sock");
    let mut b = Broker::with_args(&["--control-unix-path", control.to_str().unwrap()]);
    if b.skip_external("ringmqctl_without_options_uses_the_control_socket_else_tcp") {
        return;
    }
    assert_eq!(mode(&control), 0o660);
    let q = unique("ctl");
    let (status, body) = curl(&control, "PUT", &format!("/api/queues/%2F/{q}"), Some("{}"));
    assert_eq!(status, 201, "{body}");
    let ctl = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_ringmqctl"))
            .env("RINGMQCTL_CONTROL_UNIX_PATH", &control)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("ringmqctl")
    };
    // No --uri, --host, --port or --socket: the control socket, where the queue is.
    let out = ctl(&["--json", "list", "queues"]);
    assert!(out.status.success(), "{out:?}");
    let list: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(list.as_array().unwrap().iter().any(|x| x["name"] == q), "{list}");
    // A connection option: TCP at that address, the socket is not used.
    let out = ctl(&["--port", &b.http_port().to_string(), "--json", "list", "queues"]);
    assert!(out.status.success(), "{out:?}");
    b.stop();
    assert!(!control.exists(), "the control socket left after a clean stop");
    // A stale file where the socket was: ringmqctl falls back to TCP's default
    // (where nothing of this test listens; if another broker answers there,
    // it is not this one).
    drop(std::os::unix::net::UnixListener::bind(&control).unwrap());
    let out = ctl(&["--json", "list", "queues"]);
    let err = String::from_utf8_lossy(&out.stderr);
    if out.status.success() {
        assert!(!String::from_utf8_lossy(&out.stdout).contains(&q), "{out:?}");
    } else {
        assert_eq!(out.status.code(), Some(69), "{out:?}");
        assert!(err.contains("127.0.0.1:15672"), "{err}");
    }
    assert!(!err.contains("ctl.sock"), "{err}");
}
