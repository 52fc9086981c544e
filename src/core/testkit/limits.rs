//! Connection limits count the connections a client can still use: one the
//! client closed (close-ok sent) holds no slot, though the io layer may not
//! have closed its socket yet when the client connects again (the epoll
//! backend's close ran after a new connection's open on a loaded CI machine:
//! `vhost_connection_limit_refuses_with_530_and_frees_on_close` failed).

use ringmq_codec::*;

use super::client::{self, Event};
use super::harness::Harness;

#[test]
fn a_closed_connection_frees_its_slot_before_its_socket_is_gone() {
    let mut h = Harness::new(7, false, |_| {});
    h.broker_mut()
        .set_vhost_limit("/", "max-connections", Some(1))
        .expect("limit");
    h.broker_mut()
        .set_user_limit("guest", "max-connections", Some(1))
        .expect("limit");
    let first = h.connect(0, &[]);
    h.events(first);
    let close = ConnectionClose {
        reply_code: 200,
        reply_text: ShortStr::lit("bye"),
        class_id: 0,
        method_id: 0,
    };
    h.send(first, &client::method(0, Method::ConnectionClose(close)));
    // The socket of `first` is still open (no disconnect yet).
    let second = h.connect(0, &[]);
    let refused = h
        .events(second)
        .into_iter()
        .find(|e| matches!(e, Event::ConnectionClose { .. }));
    assert!(refused.is_none(), "the second connection was refused: {refused:?}");
}
