//! AMQPS on the driver: received ciphertext is decrypted before the core sees
//! it, and a send carries the TLS session's ciphertext instead of the core's
//! output. The receive buffers, the send path and the per-turn bounds are the
//! plain connection's.

use super::super::conn::{Conn, Phase};
use super::feed::{feed, Fed};
use crate::core::amqp::output::Output;
use crate::core::model::ids::ConnId;
use crate::core::Broker;
use crate::io::server::Shared;
use crate::io::tls::TlsSession;

/// Decrypts received bytes (into `plain`, the driver's scratch) and feeds the
/// plaintext to the core as `feed` does a plain connection's. On a TLS failure the alert goes out at once if no
/// send is in flight (best effort: a fatal alert is a courtesy, and the socket
/// closes next), and the connection ends.
pub(super) fn feed_tls(shared: &Shared, conn: &mut Conn, data: &[u8], plain: &mut Vec<u8>, now_ms: u64) -> Fed {
    if conn.phase != Phase::Open {
        return Fed::Done; // closing: the peer's bytes no longer matter
    }
    let session = conn.tls.as_mut().expect("a TLS connection");
    plain.clear();
    let received = session.receive(data, plain);
    if let Some(info) = session.take_new_info() {
        crate::io::tls::handshake_done(shared, conn.id, info, session.cert_login());
    }
    let fed = if plain.is_empty() {
        Fed::Done
    } else {
        feed(shared, conn, plain, now_ms)
    };
    match received {
        Ok(false) => fed,
        // close_notify: as an EOF (the bytes before it were fed).
        Ok(true) => Fed::TlsEnd,
        Err(why) => {
            crate::io::tls::log_failure(conn.peer, &why);
            let session = conn.tls.as_mut().expect("a TLS connection");
            if conn.send.is_none() {
                let mut alert = Vec::new();
                session.seal(&mut alert);
                let sock = socket2::SockRef::from(&conn.sock);
                let _ = sock.send_with_flags(&alert, libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL);
            }
            Fed::TlsEnd
        }
    }
}

/// Fills `buf` (empty) with what to send: the core's output is taken into the
/// session only once what it gave before is all sealed (so a connection's
/// ciphertext stays bounded), close_notify is queued when a closing
/// connection has nothing left and is ours to close, and one chunk is sealed.
pub(super) fn take_sealed(
    b: &mut Broker,
    id: ConnId,
    phase: Phase,
    session: &mut TlsSession,
    buf: &mut Output,
    now_ms: u64,
) {
    if let Some(slot) = session.plaintext_slot() {
        b.take_output(id, slot, now_ms);
    }
    if let Phase::Closing { fin_sent: false, .. } = phase {
        if !session.has_pending() && !b.should_linger(id) {
            session.close();
        }
    }
    session.seal(buf);
}
