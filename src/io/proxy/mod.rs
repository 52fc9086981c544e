//! The PROXY protocol (HAProxy's, versions 1 and 2) on the AMQP listeners
//! that ask for it (`tcp_proxy_protocol` and its siblings): a load balancer in
//! front of the broker sends a header naming the real client before the
//! client's first byte, and the broker shows, logs and checks (the default
//! user's loopback rule) that client instead of the balancer.
//!
//! The header is read here, on the accept side, before either backend takes
//! the socket; [`header`] parses it without I/O. Reading is bounded: at most
//! [`header::HEADER_BYTES_MAX`] bytes, within the handshake timeout. Bytes the
//! same read brought past the header are the client's (AMQP, or a TLS
//! ClientHello on AMQPS) and go to the backend with the socket.

mod header;

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt};

#[cfg(test)]
pub(crate) use header::Version;
pub(crate) use header::{Header, HeaderError};
use header::{Parsed, HEADER_BYTES_MAX};

/// Why a connection had no usable PROXY header.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ReadError {
    #[error(transparent)]
    Header(#[from] HeaderError),
    #[error("closed after {got} bytes, before a complete PROXY header")]
    Closed { got: usize },
    #[error("no complete PROXY header within {ms} ms ({got} bytes came)")]
    Timeout { ms: u128, got: usize },
    #[error("reading the PROXY header: {0}")]
    Io(#[from] io::Error),
}

/// Reads a PROXY header off `stream` within `timeout`. Returns the header and
/// the bytes read past it (the client's own first bytes, possibly none).
pub(crate) async fn read_header<S: AsyncRead + Unpin>(
    stream: &mut S,
    timeout: Duration,
) -> Result<(Header, Vec<u8>), ReadError> {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut buf: Vec<u8> = Vec::with_capacity(256);
    let mut chunk = [0u8; 512];
    loop {
        if let Parsed::Complete { header, len } = header::parse(&buf)? {
            buf.drain(..len);
            return Ok((header, buf));
        }
        // `parse` answers before the limit, so there is always room for a byte.
        let room = HEADER_BYTES_MAX.saturating_sub(buf.len()).clamp(1, chunk.len());
        let n = match tokio::time::timeout_at(deadline, stream.read(&mut chunk[..room])).await {
            Ok(r) => r?,
            Err(_) => {
                return Err(ReadError::Timeout {
                    ms: timeout.as_millis(),
                    got: buf.len(),
                })
            }
        };
        if n == 0 {
            return Err(ReadError::Closed { got: buf.len() });
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// WARN lines per [`REFUSED_WINDOW_MS`] for refused connections; the rest go
/// to DEBUG and are counted in the next window's first WARN line, so a client
/// that keeps connecting without the proxy cannot flood the log.
const REFUSED_WARN_LINES: u64 = 10;
const REFUSED_WINDOW_MS: u64 = 10_000;

/// Logs a connection closed for want of a PROXY header: the listener, the
/// peer as the socket shows it (the proxy, or whoever connected directly) and
/// why. A connection closed before sending a byte is a load balancer's TCP
/// health check as often as not: DEBUG only.
pub(crate) fn log_refused(listener: &str, peer: &str, why: &ReadError) {
    static WINDOW_START_MS: AtomicU64 = AtomicU64::new(0);
    static IN_WINDOW: AtomicU64 = AtomicU64::new(0);
    static NOT_LOGGED: AtomicU64 = AtomicU64::new(0);
    if matches!(why, ReadError::Closed { got: 0 }) {
        tracing::debug!(listener, peer, reason = %why, "connection closed before its PROXY header");
        return;
    }
    let now = crate::sys::now_ms();
    if now.saturating_sub(WINDOW_START_MS.load(Ordering::Relaxed)) >= REFUSED_WINDOW_MS {
        WINDOW_START_MS.store(now, Ordering::Relaxed);
        IN_WINDOW.store(0, Ordering::Relaxed);
    }
    if IN_WINDOW.fetch_add(1, Ordering::Relaxed) >= REFUSED_WARN_LINES {
        NOT_LOGGED.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(listener, peer, reason = %why, "connection refused: no valid PROXY header");
        return;
    }
    let not_logged_before = NOT_LOGGED.swap(0, Ordering::Relaxed);
    tracing::warn!(
        listener,
        peer,
        reason = %why,
        not_logged_before,
        "connection refused: no valid PROXY header (this listener requires one)"
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    async fn read_from(parts: &[&[u8]], timeout: Duration) -> Result<(Header, Vec<u8>), ReadError> {
        let (mut client, mut server) = tokio::io::duplex(64);
        let parts: Vec<Vec<u8>> = parts.iter().map(|p| p.to_vec()).collect();
        let writer = tokio::spawn(async move {
            for p in parts {
                if client.write_all(&p).await.is_err() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            // Held open past the reader's deadline: EOF is not what ends it.
            tokio::time::sleep(Duration::from_millis(300)).await;
        });
        let r = read_header(&mut server, timeout).await;
        writer.abort();
        r
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_header_in_pieces_and_the_bytes_after_it() {
        let (h, rest) = read_from(
            &[
                b"PRO",
                b"XY TCP4 203.0.113.7 ",
                b"192.0.2.1 50412 5672\r\nAMQP",
                b"\0\0\x09\x01",
            ],
            Duration::from_secs(5),
        )
        .await
        .unwrap();
        assert!(matches!(h, Header::Proxied { source, .. } if source.to_string() == "203.0.113.7:50412"));
        // The client's bytes that came with the header's last piece are kept.
        assert_eq!(rest, b"AMQP");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_partial_header_times_out_and_eof_is_closed() {
        let r = read_from(&[b"PROXY TCP4 1.2.3.4"], Duration::from_millis(100)).await;
        assert!(matches!(r, Err(ReadError::Timeout { got: 18, .. })), "{r:?}");
        let (mut client, mut server) = tokio::io::duplex(64);
        client.write_all(b"\r\n\r\n\0").await.unwrap();
        drop(client);
        let r = read_header(&mut server, Duration::from_secs(5)).await;
        assert!(matches!(r, Err(ReadError::Closed { got: 5 })), "{r:?}");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_direct_client_is_refused_without_waiting() {
        let started = std::time::Instant::now();
        let r = read_from(&[b"AMQP\0\0\x09\x01"], Duration::from_secs(5)).await;
        assert!(matches!(r, Err(ReadError::Header(HeaderError::NotProxy(_)))), "{r:?}");
        assert!(started.elapsed() < Duration::from_secs(1));
    }

    #[tokio::test(flavor = "current_thread")]
    async fn no_more_than_the_limit_is_read() {
        // A v1 line that never ends: refused at 107 bytes, not read on.
        let endless = vec![b'x'; 10_000];
        let r = read_from(&[b"PROXY UNKNOWN ", &endless], Duration::from_secs(5)).await;
        assert!(matches!(r, Err(ReadError::Header(HeaderError::V1TooLong))), "{r:?}");
    }
}
