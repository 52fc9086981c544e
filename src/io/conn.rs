//! One client connection: a reader and a writer around the core, two futures
//! of one task; one ticker ([`tick_task`]) gives every connection its heartbeat
//! tick.
//!
//! On the AMQPS listener both share the connection's [`TlsSession`]: the reader
//! decrypts what it reads before the core sees it, the writer encrypts what the
//! core wrote (and sends TLS's own records) before it goes out.

use std::cell::RefCell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use std::io::IoSlice;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::Notify;

use super::server::{Shared, TICK};
use super::tls::TlsSession;
use crate::core::amqp::output::{Output, IDLE_RELEASE_MS};
use crate::core::model::ids::ConnId;

/// A read's room: it starts at [`READ_BUF_MIN`] and doubles each time a read
/// fills it, up to this (the buffer itself grows further to hold one whole
/// frame when needed; frame_max bounds that). After [`IDLE_RELEASE_MS`] without
/// input the buffer goes back to the allocator and the room to the minimum, so
/// an idle connection keeps ~1 KiB for reading, not the pages 64 KiB of reads
/// touched (10,000 idle connections).
const READ_BUF_BYTES: usize = 64 * 1024;
const READ_BUF_MIN: usize = 1024;
/// Output written in one go below this size is not worth keeping a buffer for.
const SMALL_OUTPUT_BYTES: usize = 4096;
/// How long a closed connection waits for its output to drain and for the peer
/// to close the socket.
const CLOSE_LINGER: Duration = Duration::from_secs(2);

/// How the reader stopped.
enum ReadEnd {
    /// EOF, or the peer closed TLS: nothing more can be written.
    PeerGone,
    /// The core closed the connection: write what is left, then close.
    Closed,
    /// TLS failed: the alert (if any) goes out, then the socket closes.
    TlsFailed,
}

type Tls = Option<Rc<RefCell<TlsSession>>>;

/// A socket's read half that can wait for input without a buffer to put it
/// in: an idle connection then holds no read buffer at all. Polled, not an
/// `async fn`: tokio's `readable()` future (its waiter in the socket's list)
/// took 184 bytes of every idle connection's task; the poll uses the socket's
/// one reader waker, as the reads do (only this task reads the socket).
trait ReadHalf: AsyncRead + Unpin {
    fn poll_readable(&self, cx: &mut std::task::Context<'_>) -> std::task::Poll<std::io::Result<()>>;
}

impl ReadHalf for tokio::net::tcp::OwnedReadHalf {
    fn poll_readable(&self, cx: &mut std::task::Context<'_>) -> std::task::Poll<std::io::Result<()>> {
        self.as_ref().poll_read_ready(cx)
    }
}

impl ReadHalf for tokio::net::unix::OwnedReadHalf {
    fn poll_readable(&self, cx: &mut std::task::Context<'_>) -> std::task::Poll<std::io::Result<()>> {
        self.as_ref().poll_read_ready(cx)
    }
}

/// A byte stream another server handed over (AMQP over WebSocket): it cannot
/// say it is readable without a read, so it keeps its (small) read buffer
/// while it waits.
impl ReadHalf for tokio::io::ReadHalf<tokio::io::DuplexStream> {
    fn poll_readable(&self, _: &mut std::task::Context<'_>) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
}

/// Serves a connection from any AMQP listener (TCP or Unix socket) until it
/// ends: the core learns of it now, and the future returned serves it. Not an
/// `async fn`: one would keep what it was given (the accepted socket, the
/// peer's name) beside the future it awaits, bytes of every idle connection.
pub(crate) fn serve_connection(
    shared: Rc<Shared>,
    acc: super::accept::Accepted,
) -> impl std::future::Future<Output = ()> {
    use futures_util::future::Either;
    let super::accept::Accepted {
        stream,
        peer,
        tls,
        initial,
    } = acc;
    let conn = Conn {
        peer: peer.addr,
        tls: tls.map(|t| Rc::new(RefCell::new(*t))),
    };
    shared.open_connections.set(shared.open_connections.get() + 1);
    let id = shared
        .broker
        .borrow_mut()
        .handle_connect(peer.name, peer.loopback, super::now_ms());
    // Each kind split into its owned halves: no lock between reader and writer.
    match stream {
        crate::sys::stream::Stream::Tcp(s) => {
            let (rd, wr) = s.into_split();
            Either::Left(serve_halves(shared, id, conn, rd, wr, initial))
        }
        crate::sys::stream::Stream::Unix(s) => {
            let (rd, wr) = s.into_split();
            Either::Right(serve_halves(shared, id, conn, rd, wr, initial))
        }
    }
}

/// Serves a byte stream another server on the shard handed over (AMQP over
/// WebSocket, see `crate::shard::StreamConn`) until it ends, as a connection
/// of this backend: the same core session as a socket's, whichever backend
/// serves the sockets.
pub(crate) async fn serve_stream(shared: Rc<Shared>, conn: crate::shard::StreamConn) {
    let crate::shard::StreamConn {
        stream,
        peer,
        loopback,
        via,
    } = conn;
    shared.open_connections.set(shared.open_connections.get() + 1);
    let id = shared
        .broker
        .borrow_mut()
        .handle_connect(peer, loopback, super::now_ms());
    shared.stream_conns.borrow_mut().insert(id, via);
    let (rd, wr) = tokio::io::split(stream);
    let conn = Conn { peer: None, tls: None };
    serve_halves(shared.clone(), id, conn, rd, wr, Vec::new()).await;
    shared.stream_conns.borrow_mut().remove(&id);
}

/// What the reader and the writer of a connection both know.
struct Conn {
    /// The client's address (from its PROXY header, if any), for TLS log lines.
    peer: Option<SocketAddr>,
    tls: Tls,
}

/// Not an `async fn`: its future would keep the arguments twice (as given, and in its body).
#[allow(clippy::manual_async_fn)]
fn serve_halves<R, W>(
    shared: Rc<Shared>,
    id: ConnId,
    conn: Conn,
    mut rd: R,
    wr: W,
    mut initial: Vec<u8>,
) -> impl std::future::Future<Output = ()>
where
    R: ReadHalf,
    W: AsyncWrite + Unpin + 'static,
{
    async move {
        let (peer, tls) = (conn.peer, &conn.tls);
        let notify = Rc::new(Notify::new());
        shared.writers.borrow_mut().insert(id, notify.clone());
        // Reader and writer are two futures of one task, not two tasks: a task
        // costs its header and an allocation aligned to 128 bytes (10,000 idle
        // connections). Both are polled each time the task runs, so a writer
        // blocked on a slow peer never stops the reading, nor the other way round.
        let writer = write_loop(&shared, id, wr, &notify, tls);
        let mut writer = std::pin::pin!(writer);
        // The writer's result: the write half, kept (unshut) while closing.
        let mut written: Option<Option<W>> = None;
        let reader = Reader {
            shared: &shared,
            id,
            tls,
            writer: &notify,
            peer,
        };
        let end = {
            let read = reader.read_loop(&mut rd, &mut initial);
            let mut read = std::pin::pin!(read);
            loop {
                tokio::select! {
                    end = &mut read => break end,
                    w = &mut writer, if written.is_none() => written = Some(w),
                    // The connection ticker: a tick closed a connection (maybe this
                    // one, whose writer may be stuck on a peer that reads nothing),
                    // or readers are paused.
                    _ = shared.conn_wake.notified() => {}
                }
                // The writer ended after the core closed the connection (it closed
                // the socket's sending side, or waits for the peer's FIN), or a tick
                // closed it: the writer gets CLOSE_LINGER to finish, as on input.
                if shared.broker.borrow().is_closed(id) {
                    break Ok(ReadEnd::Closed);
                }
            }
        };
        let closed_by_protocol = match end {
            Ok(ReadEnd::Closed | ReadEnd::TlsFailed) => true,
            Ok(ReadEnd::PeerGone) => false,
            Err(e) => {
                tracing::debug!(?peer, error = %e, "connection read error");
                false
            }
        };
        if closed_by_protocol {
            // Let the writer send what is left (a close-ok, an error close), bounded.
            notify.notify_one();
            if written.is_none() {
                written = tokio::time::timeout(CLOSE_LINGER, &mut writer).await.ok();
            }
            // Read until the peer closes its side: closing a socket with unread bytes
            // makes the kernel send a reset, which clients report as an error instead
            // of the clean close they just negotiated.
            // On the heap: in the future it would take 512 bytes of every idle
            // connection's task, the future's size being that of its largest state.
            let mut sink = vec![0u8; 512];
            let _ = tokio::time::timeout(CLOSE_LINGER, async {
                while let Ok(n) = rd.read(&mut sink).await {
                    if n == 0 {
                        break;
                    }
                }
            })
            .await;
        }
        // The peer is gone (nothing more can be written), or the linger is over.
        drop(written);
        shared.writers.borrow_mut().remove(&id);
        if let Some(tls) = tls {
            tls.borrow().log_if_unfinished(peer);
            shared.tls_conns.borrow_mut().remove(&id);
        }
        shared.broker.borrow_mut().handle_disconnect(id);
        shared.after_core_call();
        shared.open_connections.set(shared.open_connections.get() - 1);
    }
}

/// The heartbeat timer of the connections served here (all on epoll, the byte
/// streams on io_uring), not one each: every [`TICK`] each gets the core's tick;
/// if one closed (heartbeats missed) or a reader is paused, the tasks look again.
pub(crate) async fn tick_task(shared: Rc<Shared>) {
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut ids: Vec<ConnId> = Vec::new();
    loop {
        tick.tick().await;
        ids.extend(shared.writers.borrow().keys().copied());
        if !ids.is_empty() {
            let t = shared.turns.start();
            let now = super::now_ms();
            let mut wake = false;
            {
                let mut b = shared.broker.borrow_mut();
                for &id in &ids {
                    if !b.is_closed(id) {
                        b.handle_tick(id, now);
                        wake |= b.is_closed(id) || b.should_pause_reading(id);
                    }
                }
            }
            shared.after_core_call();
            if wake {
                shared.conn_wake.notify_waiters();
            }
            shared.turns.end(t, "connection ticks", ids.len());
            ids.clear();
        }
    }
}

/// The reading side of a connection.
struct Reader<'a> {
    shared: &'a Shared,
    id: ConnId,
    tls: &'a Tls,
    /// Wakes the connection's writer.
    writer: &'a Notify,
    peer: Option<SocketAddr>,
}

impl Reader<'_> {
    /// Reads until EOF, until the core closed the connection, or until TLS
    /// failed. `initial` (bytes read with a PROXY header) goes first.
    async fn read_loop<R: ReadHalf>(&self, rd: &mut R, initial: &mut Vec<u8>) -> std::io::Result<ReadEnd> {
        let (shared, id) = (self.shared, self.id);
        let mut buf: Vec<u8> = Vec::new();
        // TLS: ciphertext is read here and decrypted into `buf`.
        let mut cipher: Vec<u8> = Vec::new();
        let mut room = ReadRoom::new();
        if !initial.is_empty() {
            let into = if self.tls.is_some() { &mut cipher } else { &mut buf };
            into.extend_from_slice(initial);
            *initial = Vec::new();
            if let Some(end) = self.on_input(&mut cipher, &mut buf) {
                return Ok(end);
            }
        }
        // While a read buffer is kept: frees it IDLE_RELEASE_MS after the last
        // read. Boxed: only a connection that holds a buffer pays for one.
        let mut idle: Option<std::pin::Pin<Box<tokio::time::Sleep>>> = None;
        loop {
            if shared.broker.borrow().is_closed(id) {
                return Ok(ReadEnd::Closed);
            }
            if shared.broker.borrow().should_pause_reading(id) {
                // Flow control: a publisher's socket is not read while the disk alarm
                // is on; TCP backpressure then slows the client down. The ticker
                // wakes the tasks every TICK while a reader is paused.
                tokio::select! {
                    _ = shared.unblocked.notified() => {}
                    _ = NextPoll(false) => {}
                }
                continue;
            }
            let into = if self.tls.is_some() { &mut cipher } else { &mut buf };
            if into.capacity() == 0 {
                // No buffer (new, or released when idle): wait for input first.
                std::future::poll_fn(|cx| rd.poll_readable(cx)).await?;
            }
            let into = if self.tls.is_some() { &mut cipher } else { &mut buf };
            let spare = room.prepare(into);
            let read = match &mut idle {
                None => rd.read_buf(into).await,
                Some(timer) => tokio::select! {
                    r = rd.read_buf(into) => r,
                    _ = timer.as_mut() => {
                        let now = super::now_ms();
                        if room.idle(now) {
                            release_if_empty(&mut buf);
                            release_if_empty(&mut cipher);
                            idle = None;
                        } else {
                            let left = (room.last_read_ms + IDLE_RELEASE_MS).saturating_sub(now);
                            timer.as_mut().reset(tokio::time::Instant::now() + Duration::from_millis(left));
                        }
                        continue;
                    }
                },
            };
            let n = read?;
            if n == 0 {
                return Ok(ReadEnd::PeerGone);
            }
            room.after_read(n, spare, super::now_ms());
            if let Some(end) = self.on_input(&mut cipher, &mut buf) {
                return Ok(end);
            }
            if room.want == READ_BUF_MIN {
                // Not a stream of input (a handshake, acks): the buffer is
                // freed now, for the next connection to reuse, rather than
                // after IDLE_RELEASE_MS, when it would leave a hole.
                release_if_empty(&mut buf);
                release_if_empty(&mut cipher);
            }
            if idle.is_none() && (buf.capacity() > 0 || cipher.capacity() > 0) {
                let at = Duration::from_millis(IDLE_RELEASE_MS);
                idle = Some(Box::pin(tokio::time::sleep(at)));
            }
            // Fairness: a publisher's socket is always readable, and tokio only
            // preempts after ~128 reads (megabytes of publishes); yield after each
            // batch so consumers' acks and writers get their turn. Without it a
            // flooding publisher starved a consumer to ~5k msgs/s (measured with
            // `ringmqperf throughput -x1 -y1 -a100 -P1000`).
            tokio::task::yield_now().await;
        }
    }

    /// Hands what was read (decrypted first on TLS) to the core; `Some` when
    /// reading is over.
    fn on_input(&self, cipher: &mut Vec<u8>, buf: &mut Vec<u8>) -> Option<ReadEnd> {
        let (shared, id) = (self.shared, self.id);
        let mut peer_closed = false;
        if let Some(tls) = self.tls {
            match decrypt(shared, id, tls, cipher, buf) {
                Ok(closed) => peer_closed = closed,
                Err(why) => {
                    super::tls::log_failure(self.peer, &why);
                    self.writer.notify_one();
                    return Some(ReadEnd::TlsFailed);
                }
            }
            // Handshake records (or a close_notify) may wait to be sent.
            self.writer.notify_one();
        }
        let t = shared.turns.start();
        let used = shared.broker.borrow_mut().handle_input(id, buf, super::now_ms());
        buf.drain(..used);
        shared.after_core_call();
        shared.turns.end(t, "connection input (bytes)", used);
        peer_closed.then_some(ReadEnd::PeerGone)
    }
}

/// Ready at the next poll of the task, whatever woke it (the ticker, the writer).
struct NextPoll(bool);

impl std::future::Future for NextPoll {
    type Output = ();
    fn poll(mut self: std::pin::Pin<&mut Self>, _: &mut std::task::Context<'_>) -> std::task::Poll<()> {
        if std::mem::replace(&mut self.0, true) {
            std::task::Poll::Ready(())
        } else {
            std::task::Poll::Pending
        }
    }
}

/// How much room the next read gets (see [`READ_BUF_BYTES`]).
#[derive(Debug)]
struct ReadRoom {
    want: usize,
    last_read_ms: u64,
}

impl ReadRoom {
    fn new() -> ReadRoom {
        ReadRoom {
            want: READ_BUF_MIN,
            last_read_ms: super::now_ms(),
        }
    }

    /// Makes room in `into` for the next read; returns the room there is.
    fn prepare(&self, into: &mut Vec<u8>) -> usize {
        if into.capacity() - into.len() < self.want / 4 {
            into.reserve(self.want);
        }
        into.capacity() - into.len()
    }

    /// A read of `n` bytes into `spare` bytes of room: a full one doubles the room.
    fn after_read(&mut self, n: usize, spare: usize, now_ms: u64) {
        if n >= spare && self.want < READ_BUF_BYTES {
            self.want *= 2;
        }
        self.last_read_ms = now_ms;
    }

    /// Nothing read for [`IDLE_RELEASE_MS`]: the room goes back to the minimum
    /// and the caller may release its buffers.
    fn idle(&mut self, now_ms: u64) -> bool {
        if now_ms.saturating_sub(self.last_read_ms) < IDLE_RELEASE_MS {
            return false;
        }
        self.want = READ_BUF_MIN;
        true
    }
}

/// Gives an empty buffer's memory back to the allocator.
fn release_if_empty(buf: &mut Vec<u8>) {
    if buf.is_empty() && buf.capacity() > 0 {
        *buf = Vec::new();
    }
}

/// Decrypts the ciphertext read (emptying `cipher`) onto the end of `plain`;
/// records the handshake's result for the API once it is known. `Ok(true)`:
/// the peer closed TLS.
fn decrypt(
    shared: &Shared,
    id: ConnId,
    tls: &RefCell<TlsSession>,
    cipher: &mut Vec<u8>,
    plain: &mut Vec<u8>,
) -> Result<bool, String> {
    let mut t = tls.borrow_mut();
    let r = t.receive(cipher, plain);
    cipher.clear();
    if let Some(info) = t.take_new_info() {
        super::tls::handshake_done(shared, id, info, t.cert_login());
    }
    r
}

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
async fn write_loop<W: AsyncWrite + Unpin>(
    shared: &Shared,
    id: ConnId,
    mut wr: W,
    notify: &Notify,
    tls: &Tls,
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
            let (known, closed) = {
                let mut b = shared.broker.borrow_mut();
                let known = match tls {
                    None => b.take_output(id, &mut buf, super::now_ms()),
                    // With TLS, more is taken from the core only once what it gave
                    // is sealed: the ciphertext per connection stays bounded.
                    Some(t) => match t.borrow_mut().plaintext_slot() {
                        Some(slot) => b.take_output(id, slot, super::now_ms()),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_room_grows_on_full_reads_and_shrinks_when_idle() {
        let mut room = ReadRoom::new();
        let mut buf = Vec::new();
        let spare = room.prepare(&mut buf);
        assert!((READ_BUF_MIN..READ_BUF_BYTES).contains(&spare), "{spare}");
        // A publisher's reads fill the room: it doubles up to the maximum.
        for _ in 0..20 {
            buf.clear();
            let spare = room.prepare(&mut buf);
            room.after_read(spare, spare, 1_000);
        }
        buf.clear();
        assert!(room.prepare(&mut buf) >= READ_BUF_BYTES);
        assert_eq!(room.want, READ_BUF_BYTES);
        // A short read does not grow it.
        room.after_read(10, READ_BUF_BYTES, 1_500);
        assert_eq!(room.want, READ_BUF_BYTES);
        // Idle: nothing read for IDLE_RELEASE_MS releases the buffer.
        assert!(!room.idle(1_500 + IDLE_RELEASE_MS - 1));
        assert!(room.idle(1_500 + IDLE_RELEASE_MS));
        release_if_empty(&mut buf);
        assert_eq!(buf.capacity(), 0);
        assert!(room.prepare(&mut buf) < READ_BUF_BYTES / 4);
        // A partial frame is kept.
        let mut part = vec![1u8; 3];
        release_if_empty(&mut part);
        assert_eq!(part, [1, 1, 1]);
    }
}
