//! systemd readiness (`Type=notify`) against the real binary, on both transport
//! backends: with `NOTIFY_SOCKET` pointing at a datagram socket the test binds,
//! a `STATUS=` line comes while the data directory opens, `READY=1` arrives only
//! once the AMQP port serves the handshake and the HTTP and metrics ports
//! accept, and `STOPPING=1` arrives on SIGTERM, before a clean exit.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::net::UnixDatagram;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The upper bound for any single wait.
const WAIT: Duration = Duration::from_secs(10);

/// Three distinct free ports: every listener is held until all are chosen.
fn free_ports() -> (u16, u16, u16) {
    let held: Vec<TcpListener> = (0..3).map(|_| TcpListener::bind("127.0.0.1:0").unwrap()).collect();
    let port = |i: usize| held[i].local_addr().unwrap().port();
    (port(0), port(1), port(2))
}

fn receive(socket: &UnixDatagram, what: &str, log: &std::path::Path) -> String {
    let mut buf = [0u8; 4096];
    match socket.recv(&mut buf) {
        Ok(n) => String::from_utf8(buf[..n].to_vec()).expect("UTF-8 notification"),
        Err(e) => panic!(
            "no {what} notification within {WAIT:?}: {e}\n{}",
            std::fs::read_to_string(log).unwrap_or_default()
        ),
    }
}

/// The AMQP handshake's first step: the protocol header in, connection.start
/// (a method frame on channel 0) out. More than the kernel's backlog accepting.
fn amqp_serves(port: u16) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("AMQP port accepts at READY=1");
    s.set_read_timeout(Some(WAIT)).unwrap();
    s.write_all(b"AMQP\x00\x00\x09\x01").unwrap();
    let mut head = [0u8; 7];
    s.read_exact(&mut head).expect("connection.start");
    assert_eq!(head[0], 1, "a method frame");
    assert_eq!(&head[1..3], &[0, 0], "on channel 0");
}

fn sigterm(child: &Child) {
    // SAFETY: plain kill(2) on our own child's pid.
    let rc = unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
    assert_eq!(rc, 0, "kill(SIGTERM)");
}

fn wait_exit(child: &mut Child, log: &std::path::Path) -> std::process::ExitStatus {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "ringmq did not exit within {WAIT:?} of SIGTERM\n{}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Starts the broker with fresh ports until one run gets them all: the ports
/// are free when chosen, but another test may bind one before the broker does
/// (a flake seen once in CI). Only a start that failed on a port in use is
/// retried; anything else fails the test. Returns the child, its ports, and the
/// STATUS and READY notifications.
fn start_ready(
    io: &str,
    dir: &std::path::Path,
    receiver: &UnixDatagram,
    socket_path: &std::path::Path,
    log: &std::path::Path,
) -> (Child, (u16, u16, u16), String, String) {
    for attempt in 1..=5 {
        let (amqp, http, metrics) = free_ports();
        let out = std::fs::File::create(log).unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_ringmq"))
            .arg(format!("--io={io}"))
            .arg("-D")
            .arg(dir.join("data"))
            .args(["--bind", "127.0.0.1", "--mqtt-port=-1"])
            .args(["--amqp-port", &amqp.to_string()])
            .args(["--http-port", &http.to_string()])
            .args(["--metrics-http-port", &metrics.to_string()])
            .env("NOTIFY_SOCKET", socket_path)
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .expect("spawn ringmq");
        let opening = receive(receiver, "STATUS while opening", log);
        let mut buf = [0u8; 4096];
        match receiver.recv(&mut buf) {
            Ok(n) => {
                let ready = String::from_utf8(buf[..n].to_vec()).expect("UTF-8 notification");
                // The HTTP listeners log a port they cannot bind and the broker runs on.
                let text = std::fs::read_to_string(log).unwrap_or_default();
                if text.contains("Address already in use") && attempt < 5 {
                    eprintln!("attempt {attempt}: a port was taken before the broker bound it; again");
                    let _ = child.kill();
                    let _ = child.wait();
                    continue;
                }
                return (child, (amqp, http, metrics), opening, ready);
            }
            Err(e) => {
                let text = std::fs::read_to_string(log).unwrap_or_default();
                let exited = child.try_wait().unwrap().is_some();
                if exited && text.contains("Address already in use") && attempt < 5 {
                    eprintln!("attempt {attempt}: a port was taken before the broker bound it; again");
                    continue;
                }
                let _ = child.kill();
                panic!("no READY=1 notification within {WAIT:?}: {e}\n{text}");
            }
        }
    }
    unreachable!("the last attempt returns or panics")
}

fn ready_then_stopping(io: &str) {
    let dir = tempfile::Builder::new().prefix("ringmq-notify-").tempdir().unwrap();
    let socket_path = dir.path().join("notify.sock");
    let receiver = UnixDatagram::bind(&socket_path).unwrap();
    receiver.set_read_timeout(Some(WAIT)).unwrap();
    let log = dir.path().join("ringmq.log");
    let (mut child, (amqp, http, metrics), opening, ready) = start_ready(io, dir.path(), &receiver, &socket_path, &log);
    assert!(opening.starts_with("STATUS=Starting"), "{opening:?}");
    // Checked before anything else can have happened: the ports must serve now.
    amqp_serves(amqp);
    TcpStream::connect(("127.0.0.1", http)).expect("HTTP API port accepts at READY=1");
    TcpStream::connect(("127.0.0.1", metrics)).expect("metrics port accepts at READY=1");
    let lines: Vec<&str> = ready.lines().collect();
    assert_eq!(lines[0], "READY=1", "{ready:?}");
    assert!(lines.contains(&format!("MAINPID={}", child.id()).as_str()), "{ready:?}");
    let status = lines
        .iter()
        .find_map(|l| l.strip_prefix("STATUS="))
        .expect("a STATUS line");
    assert!(status.contains(&format!("AMQP on 127.0.0.1:{amqp}")), "{status}");
    assert!(status.contains(&format!("HTTP API on 127.0.0.1:{http}")), "{status}");
    assert!(status.contains(&format!("metrics on 127.0.0.1:{metrics}")), "{status}");
    eprintln!("--io={io}: {status}");

    // Nothing more until shutdown begins.
    receiver.set_nonblocking(true).unwrap();
    let mut buf = [0u8; 512];
    assert!(receiver.recv(&mut buf).is_err(), "a second notification before SIGTERM");
    receiver.set_nonblocking(false).unwrap();

    sigterm(&child);
    let stopping = receive(&receiver, "STOPPING=1", &log);
    assert!(stopping.starts_with("STOPPING=1\n"), "{stopping:?}");
    let status = wait_exit(&mut child, &log);
    assert!(status.success(), "ringmq exited with {status} on SIGTERM");
}

#[test]
fn readiness_on_the_epoll_backend() {
    ready_then_stopping("epoll");
}

/// io_uring where the kernel allows it (the status line says which ran).
#[test]
fn readiness_on_the_default_backend() {
    ready_then_stopping("auto");
}
