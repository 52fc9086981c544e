//! One client connection: a reader loop and a writer task around the core.

use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use std::io::IoSlice;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Notify;

use super::server::{Shared, TICK};
use crate::core::amqp::output::Output;
use crate::core::model::ids::ConnId;

/// Initial receive buffer; it grows to hold one whole frame when needed
/// (frame_max bounds that), and is reused for the life of the connection.
const READ_BUF_BYTES: usize = 64 * 1024;
/// How long a closed connection waits for its output to drain and for the peer
/// to close the socket.
const CLOSE_LINGER: Duration = Duration::from_secs(2);

pub(crate) async fn serve_connection(shared: Rc<Shared>, stream: TcpStream, peer: SocketAddr) {
    shared.open_connections.set(shared.open_connections.get() + 1);
    let id = shared.broker.borrow_mut().handle_connect(
        peer.to_string(),
        crate::io::listeners::is_loopback(&peer),
        super::now_ms(),
    );
    let notify = Rc::new(Notify::new());
    shared.writers.borrow_mut().insert(id, notify.clone());
    let (mut rd, wr) = stream.into_split();
    let writer = tokio::task::spawn_local(write_loop(shared.clone(), id, wr, notify.clone()));
    let closed_by_protocol = match read_loop(&shared, id, &mut rd).await {
        Ok(closed) => closed,
        Err(e) => {
            tracing::debug!(%peer, error = %e, "connection read error");
            false
        }
    };
    if closed_by_protocol {
        // Let the writer send what is left (a close-ok, an error close), bounded.
        notify.notify_one();
        let wr = tokio::time::timeout(CLOSE_LINGER, writer).await;
        // Read until the peer closes its side: closing a socket with unread bytes
        // makes the kernel send a reset, which clients report as an error instead
        // of the clean close they just negotiated.
        let mut sink = [0u8; 512];
        let _ = tokio::time::timeout(CLOSE_LINGER, async {
            while let Ok(n) = rd.read(&mut sink).await {
                if n == 0 {
                    break;
                }
            }
        })
        .await;
        drop(wr);
    } else {
        // The peer is gone: nothing more can be written.
        writer.abort();
    }
    shared.writers.borrow_mut().remove(&id);
    shared.broker.borrow_mut().handle_disconnect(id);
    shared.after_core_call();
    shared.open_connections.set(shared.open_connections.get() - 1);
}

/// Reads until EOF (`Ok(false)`) or until the core closed the connection (`Ok(true)`).
async fn read_loop(shared: &Shared, id: ConnId, rd: &mut tokio::net::tcp::OwnedReadHalf) -> std::io::Result<bool> {
    let mut buf: Vec<u8> = Vec::with_capacity(READ_BUF_BYTES);
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        if shared.broker.borrow().should_pause_reading(id) {
            // Flow control: a publisher's socket is not read while the disk alarm
            // is on; TCP backpressure then slows the client down.
            tokio::select! {
                _ = shared.unblocked.notified() => {}
                _ = tick.tick() => {
                    shared.broker.borrow_mut().handle_tick(id, super::now_ms());
                    shared.after_core_call();
                }
            }
            continue;
        }
        if buf.capacity() - buf.len() < READ_BUF_BYTES / 4 {
            buf.reserve(READ_BUF_BYTES);
        }
        tokio::select! {
            r = rd.read_buf(&mut buf) => {
                let n = r?;
                if n == 0 {
                    return Ok(false);
                }
                let t = shared.turns.start();
                let used = shared.broker.borrow_mut().handle_input(id, &buf, super::now_ms());
                buf.drain(..used);
                shared.after_core_call();
                shared.turns.end(t, "connection input (bytes)", used);
                // Fairness: a publisher's socket is always readable, and tokio only
                // preempts after ~128 reads (megabytes of publishes); yield after each
                // batch so consumers' acks and writers get their turn. Without it a
                // flooding publisher starved a consumer to ~5k msgs/s (measured with
                // `ringmqperf throughput -x1 -y1 -a100 -P1000`).
                tokio::task::yield_now().await;
            }
            _ = tick.tick() => {
                shared.broker.borrow_mut().handle_tick(id, super::now_ms());
                shared.after_core_call();
            }
        }
        if shared.broker.borrow().is_closed(id) {
            return Ok(true);
        }
    }
}

/// Writes all of `out` (frame bytes and bodies in segment mappings, see
/// `core::output`) with as few `writev` calls as the socket allows.
async fn write_all_vectored(wr: &mut tokio::net::tcp::OwnedWriteHalf, out: &Output) -> std::io::Result<()> {
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
async fn write_loop(
    shared: Rc<Shared>,
    id: ConnId,
    mut wr: tokio::net::tcp::OwnedWriteHalf,
    notify: Rc<Notify>,
) -> Option<tokio::net::tcp::OwnedWriteHalf> {
    let mut buf = Output::default();
    loop {
        notify.notified().await;
        loop {
            let (known, closed) = {
                let mut b = shared.broker.borrow_mut();
                let known = b.take_output(id, &mut buf, super::now_ms());
                (known, b.is_closed(id))
            };
            if !buf.is_empty() {
                if write_all_vectored(&mut wr, &buf).await.is_err() {
                    return None;
                }
                // Drops the bodies' hold on their segment mappings: written.
                buf.clear();
                shared.broker.borrow_mut().handle_output_drained(id);
                shared.after_core_call();
                continue;
            }
            if !known || closed {
                // We received close-ok (or gave up): the socket is ours to close,
                // so FIN right after the last frame. When we *sent* close-ok the
                // client closes first (the spec gives the receiver of close-ok
                // that job, and clients such as lapin report an early EOF as an
                // error), so we wait for its FIN instead.
                if !shared.broker.borrow().should_linger(id) {
                    let _ = wr.shutdown().await;
                }
                return Some(wr);
            }
            break;
        }
    }
}
