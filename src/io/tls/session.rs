//! One connection's TLS state, shared by both backends: ciphertext in and out
//! of buffers the backend owns, plaintext to and from the core.

use std::io::{Read, Write};
use std::sync::Arc;

use rustls::server::{Accepted, Acceptor};
use rustls::ServerConnection;

use super::TlsInfo;
use crate::core::amqp::output::Output;
use crate::tls::Configs;

/// Ciphertext made per [`TlsSession::seal`] call, about (one rustls buffer more
/// at most): what one send carries. The rest of the plaintext the core gave
/// waits in the session, so a connection holds at most this much ciphertext
/// besides the output the core produced (which the core bounds).
pub(crate) const SEAL_BYTES_MAX: usize = 256 * 1024;
/// rustls's own buffer of records not yet taken by `write_tls`, and of
/// plaintext written before the handshake ended (rustls's default is 64 KiB;
/// set here so the bound is ours and visible).
const RUSTLS_SEND_BUFFER_BYTES: usize = 64 * 1024;

/// See the module docs of `io::tls` for how the backends use it.
///
/// Bounded memory: on input, rustls takes ciphertext a record at a time and
/// refuses more once 16 KiB of plaintext is unread (the backend empties it at
/// every [`receive`](Self::receive)); a message bigger than TLS allows is an
/// error, not a bigger buffer. On output, [`seal`](Self::seal) makes at most
/// [`SEAL_BYTES_MAX`] per call, and the backend takes more from the core only
/// once everything queued is sealed ([`plaintext_slot`](Self::plaintext_slot)).
pub(crate) struct TlsSession {
    /// None while `accepting`: no configuration is chosen yet.
    conn: Option<ServerConnection>,
    /// With `[sni:HOST]` sections: the ClientHello is read first, and the
    /// configuration for the name it asks for chosen (`Configs::pick`).
    accepting: Option<(Acceptor, Arc<Configs>)>,
    /// An alert from a failed accept, for the next `seal`.
    alert: Vec<u8>,
    /// Plaintext taken from the core and not yet all encrypted.
    pending: Output,
    /// Bytes of `pending` already encrypted.
    sealed: usize,
    close_sent: bool,
    failed: bool,
    /// The handshake's result was handed out (see `take_new_info`).
    info_taken: bool,
    /// Which name of a client certificate SASL EXTERNAL logs in as (the
    /// listener's setting when the connection came).
    login: crate::tls::CertLogin,
}

impl TlsSession {
    pub(super) fn new(configs: Arc<Configs>, login: crate::tls::CertLogin) -> Result<TlsSession, rustls::Error> {
        let (conn, accepting) = match configs.only() {
            Some(config) => (Some(connection(Arc::clone(config))?), None),
            None => (None, Some((Acceptor::default(), configs))),
        };
        Ok(TlsSession {
            conn,
            accepting,
            alert: Vec::new(),
            pending: Output::default(),
            sealed: 0,
            close_sent: false,
            failed: false,
            info_taken: false,
            login,
        })
    }

    /// Which name of the client's certificate SASL EXTERNAL logs in as.
    pub fn cert_login(&self) -> crate::tls::CertLogin {
        self.login
    }

    /// Decrypts `data` (all of it), appending the plaintext to `plain`. `Ok(true)`:
    /// the peer closed TLS (close_notify). `Err`: the session failed; an alert for
    /// the peer may be waiting in [`seal`](Self::seal), and the connection should
    /// close after it.
    pub fn receive(&mut self, mut data: &[u8], plain: &mut Vec<u8>) -> Result<bool, String> {
        if self.failed {
            return Err("TLS already failed".into());
        }
        let r = self.receive_all(&mut data, plain);
        self.failed = r.is_err();
        r
    }

    fn receive_all(&mut self, data: &mut &[u8], plain: &mut Vec<u8>) -> Result<bool, String> {
        let mut accepted_now = false;
        while !data.is_empty() || accepted_now {
            let conn = match self.conn.as_mut() {
                Some(conn) => conn,
                None => {
                    if !self.accept(data)? {
                        return Ok(false); // the ClientHello is not all there yet
                    }
                    accepted_now = true;
                    continue;
                }
            };
            // Right after the accept, the bytes that came with the ClientHello
            // are in rustls already: processed before anything more is read.
            let took = accepted_now || conn.read_tls(data).map_err(|e| e.to_string())? > 0;
            accepted_now = false;
            let state = conn.process_new_packets().map_err(|e| e.to_string())?;
            let ready = state.plaintext_bytes_to_read();
            if ready > 0 {
                let at = plain.len();
                plain.resize(at + ready, 0);
                conn.reader().read_exact(&mut plain[at..]).map_err(|e| e.to_string())?;
            }
            if state.peer_has_closed() {
                return Ok(true);
            }
            if !took {
                // rustls takes nothing more after close_notify (handled above); a
                // reader that made no progress otherwise would spin.
                return Err("TLS layer took no input".into());
            }
        }
        Ok(false)
    }

    /// Whether plaintext taken from the core still waits to be encrypted.
    pub fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    /// Where the core's next output goes (`Broker::take_output` into it), if
    /// everything taken before is sealed; `None` while some waits, so that a
    /// connection's ciphertext stays bounded and the core keeps the rest.
    pub fn plaintext_slot(&mut self) -> Option<&mut Output> {
        if !self.pending.is_empty() {
            return None;
        }
        self.sealed = 0;
        Some(&mut self.pending)
    }

    /// Reads ciphertext into the acceptor until the ClientHello is there
    /// (true), then makes the connection with the configuration for the name
    /// it asks for. A failure leaves its alert for `seal`.
    fn accept(&mut self, data: &mut &[u8]) -> Result<bool, String> {
        let (acceptor, configs) = self.accepting.as_mut().expect("accepting without a connection");
        let mut accepted: Option<Accepted> = None;
        while accepted.is_none() && !data.is_empty() {
            if acceptor.read_tls(data).map_err(|e| e.to_string())? == 0 {
                return Err("TLS layer took no input".into());
            }
            accepted = acceptor.accept().map_err(|(e, mut alert)| {
                let _ = alert.write_all(&mut self.alert);
                e.to_string()
            })?;
        }
        let Some(accepted) = accepted else {
            return Ok(false);
        };
        let config = Arc::clone(configs.pick(accepted.client_hello().server_name()));
        let mut conn = accepted.into_connection(config).map_err(|(e, mut alert)| {
            let _ = alert.write_all(&mut self.alert);
            e.to_string()
        })?;
        conn.set_buffer_limit(Some(RUSTLS_SEND_BUFFER_BYTES));
        self.conn = Some(conn);
        self.accepting = None;
        Ok(true)
    }

    /// Sends close_notify with the next [`seal`](Self::seal) (once).
    pub fn close(&mut self) {
        if !self.close_sent {
            self.close_sent = true;
            if let Some(conn) = &mut self.conn {
                conn.send_close_notify();
            }
        }
    }

    fn handshaking(&self) -> bool {
        self.conn.as_ref().is_none_or(|c| c.is_handshaking())
    }

    pub fn failed(&self) -> bool {
        self.failed
    }

    /// Whether the handshake is still going on.
    #[cfg(test)]
    pub fn is_handshaking(&self) -> bool {
        self.handshaking()
    }

    /// The connection ends: if its handshake never finished and nothing said
    /// why yet (a client that rejected our certificate without an alert, a
    /// probe, a timeout), this says so.
    pub fn log_if_unfinished(&self, peer: Option<std::net::SocketAddr>) {
        if !self.failed && self.handshaking() {
            super::log_failure(peer, "the connection ended before the TLS handshake finished");
        }
    }

    /// Appends ciphertext to `cipher`: TLS's own records (handshake, alerts,
    /// close_notify) and up to about [`SEAL_BYTES_MAX`] of the queued plaintext.
    /// Returns true when no queued plaintext is left: the output taken from
    /// the core is encrypted (and its bodies' mappings released).
    pub fn seal(&mut self, cipher: &mut Vec<u8>) -> bool {
        cipher.append(&mut self.alert);
        let Some(conn) = self.conn.as_mut() else {
            // Still reading the ClientHello: nothing of the core's can go yet.
            return self.pending.is_empty();
        };
        let start = cipher.len();
        let mut skip = self.sealed;
        'pieces: for piece in self.pending.pieces() {
            if skip >= piece.len() {
                skip -= piece.len();
                continue;
            }
            let mut rest = &piece[skip..];
            skip = 0;
            while !rest.is_empty() {
                if cipher.len() - start >= SEAL_BYTES_MAX {
                    break 'pieces;
                }
                let n = conn.writer().write(rest).unwrap_or(0);
                if n == 0 {
                    // rustls's buffer is full, or the handshake is not over yet.
                    let before = cipher.len();
                    drain_records(conn, cipher);
                    if cipher.len() == before {
                        break 'pieces;
                    }
                    continue;
                }
                rest = &rest[n..];
                self.sealed += n;
            }
        }
        drain_records(conn, cipher);
        if self.sealed == self.pending.len() {
            self.pending.clear();
            self.sealed = 0;
        }
        self.pending.is_empty()
    }

    /// The negotiated protocol and suite, once, right after the handshake.
    pub fn take_new_info(&mut self) -> Option<TlsInfo> {
        let conn = self.conn.as_ref()?;
        if self.info_taken || conn.is_handshaking() {
            return None;
        }
        self.info_taken = true;
        let protocol = match conn.protocol_version()? {
            rustls::ProtocolVersion::TLSv1_3 => "tlsv1.3",
            rustls::ProtocolVersion::TLSv1_2 => "tlsv1.2",
            _ => "tls",
        };
        let cipher_suite = conn.negotiated_cipher_suite()?.suite().as_str().unwrap_or("unknown");
        // A certificate is only there if the verifier accepted it.
        let peer_cert = conn
            .peer_certificates()
            .and_then(|chain| chain.first())
            .and_then(|c| crate::tls::CertFacts::from_der(c))
            .map(std::sync::Arc::new);
        Some(TlsInfo {
            protocol,
            cipher_suite,
            peer_cert,
        })
    }
}

/// A connection made with `config` from the first byte (no `[sni:HOST]`).
fn connection(config: Arc<rustls::ServerConfig>) -> Result<ServerConnection, rustls::Error> {
    let mut conn = ServerConnection::new(config)?;
    conn.set_buffer_limit(Some(RUSTLS_SEND_BUFFER_BYTES));
    Ok(conn)
}

/// Moves rustls's finished records to the end of `cipher`.
fn drain_records(conn: &mut ServerConnection, cipher: &mut Vec<u8>) {
    while conn.wants_write() {
        // Writing into a Vec cannot fail; a zero write would mean nothing moved.
        match conn.write_tls(cipher) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
    }
}
