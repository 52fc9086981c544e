//! The writing side of a connection: `take_output` → (TLS) → socket, one
//! `writev` per batch of output.

use std::cell::RefCell;
use std::io::IoSlice;
use std::time::Duration;

use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::Notify;

use super::super::server::Shared;
use super::super::tls::TlsSession;
use super::{Mqtt, Tls};
use crate::core::amqp::output::{Output, IDLE_RELEASE_MS};
use crate::core::model::ids::ConnId;

/// Output written in one go below this size is not worth keeping a buffer for.
const SMALL_OUTPUT_BYTES: usize = 4096;

/// Writes all of `out` (frame bytes and bodies in segment mappings, see
/// `core::output`) with as few `writev` calls as the socket allows.
async fn write_all_vectored<W: AsyncWrite + Unpin>(wr: &mut W, out: &Output) -> std::io::Result<()> {
    let mut slices: Vec<IoSlice<'_>> = out.pieces().map(IoSlice::new).collect();
    let mut rest: &mut [IoSlice<'_>] = &mut slices;
    while !rest.is_empty() {
        // writev takes at most IOV_MAX (1024) iovecs; EINVAL beyond.
        let n = wr.write_vectored(&rest[..rest.len().min(1024)]).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        IoSlice::advance_slices(&mut rest, n);
    }
    Ok(())
}

/// Writes the core's output until the connection is closed; returns the write
/// half (unshut) so the caller decides when the socket goes.
pub(super) async fn write_loop<W: AsyncWrite + Unpin>(
    shared: &Shared,
    id: ConnId,
    mut wr: W,
    notify: &Notify,
    tls: &Tls,
    mqtt: &Mqtt,
) -> Option<W> {
    let mut buf = Output::default();
    let mut cipher: Vec<u8> = Vec::new();
    // A buffer kept after a large write goes back to the allocator after
    // IDLE_RELEASE_MS without output (small writes free theirs at once). The
    // timer is boxed: only a connection that holds a buffer pays for one.
    let mut holding = false;
    loop {
        if holding {
            let mut idle = Box::pin(tokio::time::sleep(Duration::from_millis(IDLE_RELEASE_MS)));
            tokio::select! {
                _ = notify.notified() => {}
                _ = &mut idle => {
                    buf.release_if_empty();
                    cipher = Vec::new();
                    holding = false;
                    notify.notified().await;
                }
            }
        } else {
            notify.notified().await;
        }
        loop {
            if shared.broker.borrow().is_leaving(id) {
                // Handed to another shard: its output goes with it, the write
                // half back to be joined to the read half (`serve_halves`).
                return Some(wr);
            }
            let (known, closed) = {
                let mut b = shared.broker.borrow_mut();
                let known = match (tls, mqtt) {
                    (None, None) => b.take_output(id, &mut buf, crate::io::now_ms()),
                    // The session reads the core's output into MQTT.
                    (None, Some(m)) => m.borrow_mut().take_output(&mut b, id, &mut buf, crate::io::now_ms()),
                    // With TLS, more is taken from the core only once what it gave
                    // is sealed: the ciphertext per connection stays bounded.
                    (Some(t), _) => match t.borrow_mut().plaintext_slot() {
                        Some(slot) => b.take_output(id, slot, crate::io::now_ms()),
                        None => true,
                    },
                };
                (known, b.is_closed(id))
            };
            let wrote = match tls {
                None if buf.is_empty() => false,
                None => {
                    if write_all_vectored(&mut wr, &buf).await.is_err() {
                        return None;
                    }
                    let small = buf.len() < SMALL_OUTPUT_BYTES;
                    // Drops the bodies' hold on their segment mappings: written.
                    buf.clear();
                    if small {
                        // Freed now, not after IDLE_RELEASE_MS: the allocator hands
                        // it to the next connection's handshake instead of leaving
                        // a hole between long-lived allocations.
                        buf.release_if_empty();
                    }
                    holding = !small;
                    true
                }
                // Drained once everything taken is encrypted and sent (the
                // plaintext may wait for the end of the handshake).
                Some(tls) => {
                    holding = true;
                    write_sealed(&mut wr, tls, &mut cipher).await? == (true, true)
                }
            };
            if wrote {
                shared.broker.borrow_mut().handle_output_drained(id);
                shared.after_core_call();
                continue;
            }
            let tls_failed = tls.as_ref().is_some_and(|t| t.borrow().failed());
            if !known || closed || tls_failed {
                // We received close-ok (or gave up): the socket is ours to close,
                // so FIN right after the last frame. When we *sent* close-ok the
                // client closes first (the spec gives the receiver of close-ok
                // that job, and clients such as lapin report an early EOF as an
                // error), so we wait for its FIN instead.
                if !shared.broker.borrow().should_linger(id) || tls_failed {
                    if let Some(tls) = tls {
                        // close_notify before the FIN (after an alert, nothing).
                        if !tls_failed {
                            tls.borrow_mut().close();
                        }
                        let _ = write_sealed(&mut wr, tls, &mut cipher).await;
                    }
                    let _ = wr.shutdown().await;
                }
                return Some(wr);
            }
            break;
        }
    }
}

/// Seals and writes what the TLS session has (its own records, and queued
/// plaintext one bounded chunk at a time). Returns whether anything was written
/// and whether no plaintext is left queued (it may wait for the handshake);
/// `None` if the socket failed.
async fn write_sealed<W: AsyncWrite + Unpin>(
    wr: &mut W,
    tls: &RefCell<TlsSession>,
    cipher: &mut Vec<u8>,
) -> Option<(bool, bool)> {
    let mut sent = false;
    loop {
        cipher.clear();
        let all = tls.borrow_mut().seal(cipher);
        if !cipher.is_empty() {
            wr.write_all(cipher).await.ok()?;
            sent = true;
        }
        if all || cipher.is_empty() {
            return Some((sent, all));
        }
    }
}
