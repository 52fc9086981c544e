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
