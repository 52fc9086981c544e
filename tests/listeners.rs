//! Listeners on several addresses and dual stack (issue 16, item 10): `--bind`
//! takes a list or is repeated, and an IPv4 client of a dual-stack `::` listener
//! (seen as `::ffff:127.0.0.1`) is on loopback, so `guest` may log in.

mod common;

use std::net::SocketAddr;

use common::raw::{plain, RawConn};
use common::*;

async fn guest_logs_in(b: &Broker, addr: SocketAddr) {
    let mut c = RawConn::connect(addr).await;
    c.start().await;
    c.start_ok("PLAIN", &plain("guest", "guest")).await;
    let g = c.expect_frame().await;
    assert_eq!(
        g.name,
        "connection.tune",
        "guest refused on {addr}: {g:?}\n{}",
        b.log_tail()
    );
}

#[test]
fn ipv4_client_of_a_dual_stack_listener_is_loopback() {
    let b = Broker::with_args(&["--amqp-bind", "::"]);
    if b.skip_external("ipv4_client_of_a_dual_stack_listener_is_loopback") {
        return;
    }
    run(async {
        guest_logs_in(&b, b.addr()).await;
        guest_logs_in(&b, format!("[::1]:{}", b.port()).parse().unwrap()).await;
    });
}

#[test]
fn several_addresses_as_a_list_or_repeated() {
    for args in [
        &["--amqp-bind", "127.0.0.1, ::1"][..],
        &["--amqp-bind", "127.0.0.1", "--amqp-bind", "::1"],
    ] {
        let b = Broker::with_args(args);
        if b.skip_external("several_addresses_as_a_list_or_repeated") {
            return;
        }
        run(async {
            guest_logs_in(&b, b.addr()).await;
            guest_logs_in(&b, format!("[::1]:{}", b.port()).parse().unwrap()).await;
        });
        // Not on other addresses: the list is all there is.
        let log = std::fs::read_to_string(b.log_path()).unwrap();
        assert_eq!(log.matches("AMQP listener started").count(), 2, "{log}");
    }
}

/// A port that cannot be bound stops the start, as RabbitMQ's boot fails: the
/// AMQP port, and (was: logged and skipped, so the broker ran without the API
/// or metrics its operator configured) the HTTP API's and the metrics'. The
/// data directory is closed cleanly, so the next start is not taken for one
/// after a crash.
#[test]
fn a_port_in_use_stops_the_start() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let data = tempfile::tempdir().unwrap();
    let ringmq = |args: &[&str]| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_ringmq"));
        if let Ok(io) = std::env::var("RINGMQ_TEST_IO") {
            cmd.arg(format!("--io={io}"));
        }
        cmd.arg("-D")
            .arg(data.path())
            .args(["--bind", "127.0.0.1", "--mqtt-port=-1"])
            .args(args)
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap()
    };
    for (args, says) in [
        (
            ["-p", &port, "--http-port", "-1", "--metrics-http-port", "-1"],
            format!("cannot listen on 127.0.0.1:{port}"),
        ),
        (
            ["-p", "0", "--http-port", &port, "--metrics-http-port", "-1"],
            "cannot start the HTTP API listener".to_string(),
        ),
        (
            ["-p", "0", "--http-port", "-1", "--metrics-http-port", &port],
            "cannot start the metrics listener".to_string(),
        ),
    ] {
        let out = ringmq(&args);
        let err = String::from_utf8_lossy(&out.stderr);
        let log = String::from_utf8_lossy(&out.stdout);
        assert!(!out.status.success(), "{args:?} started: {log}");
        assert!(
            err.contains(&says) && err.contains("Address already in use"),
            "{args:?}: {err}"
        );
        assert!(!log.contains("last stop was not clean"), "{args:?}: {log}");
    }
}
