//! AMQPS: TLS for the AMQP listener, with rustls, for both backends.
//!
//! rustls is buffer-driven, so TLS sits between the socket and the core without
//! owning either: a backend reads ciphertext the way it reads plain text (the
//! io_uring driver into its buffer ring, the epoll backend with `read`), hands it
//! to [`TlsSession::receive`] and feeds the plaintext that comes out to the core
//! exactly as it feeds a plain connection's bytes; the core's output goes into
//! [`TlsSession::plaintext_slot`] and what [`TlsSession::seal`] makes of it is
//! sent as the backend sends any output. The core never knows.
//!
//! The certificate and settings are the crate's `tls` module's, shared with
//! the HTTPS listener.

mod session;

/// Defined beside the shard handle, where the management API reads it.
pub use crate::shard::TlsInfo;
pub use crate::tls::{log_failure, TlsAcceptor, TlsSettings};
pub(crate) use session::TlsSession;

/// The handshake of connection `id` ended: the API learns what it agreed, and
/// the core what the client's verified certificate offers SASL EXTERNAL, the
/// name `login` takes from it (before the plaintext that came with the
/// handshake's last flight is fed to it).
pub(crate) fn handshake_done(
    shared: &crate::shard::Shared,
    id: crate::core::model::ids::ConnId,
    info: TlsInfo,
    login: crate::tls::CertLogin,
) {
    use crate::core::access::auth::CertIdentity;
    if let Some(cert) = &info.peer_cert {
        let identity = match login.name_of(cert) {
            Some(name) => CertIdentity::Name(name),
            None => CertIdentity::NoName,
        };
        shared.broker.borrow_mut().handle_peer_certificate(id, identity);
    }
    shared.tls_conns.borrow_mut().insert(id, info);
}

/// A new connection's TLS state on a listener with `acceptor`'s configuration.
pub(crate) fn session(acceptor: &TlsAcceptor) -> Result<TlsSession, rustls::Error> {
    let (configs, login) = acceptor.session_parts();
    TlsSession::new(configs, login)
}

#[cfg(test)]
mod tests;
