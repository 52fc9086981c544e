//! The reading side of a connection: socket → (TLS) → `handle_input`, with
//! a read buffer that grows with a publisher and goes when idle.

use std::cell::RefCell;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::sync::Notify;

use super::super::server::Shared;
use super::super::tls::TlsSession;
use super::{Mqtt, ReadEnd, ReadHalf, Tls};
use crate::core::amqp::output::IDLE_RELEASE_MS;
use crate::core::model::ids::ConnId;

/// A read's room: it starts at [`READ_BUF_MIN`] and doubles each time a read
/// fills it, up to this (the buffer itself grows further to hold one whole
/// frame when needed; frame_max bounds that). After [`IDLE_RELEASE_MS`] without
/// input the buffer goes back to the allocator and the room to the minimum, so
/// an idle connection keeps ~1 KiB for reading, not the pages 64 KiB of reads
/// touched (10,000 idle connections).
const READ_BUF_BYTES: usize = 64 * 1024;
const READ_BUF_MIN: usize = 1024;

/// The reading side of a connection.
pub(super) struct Reader<'a> {
    pub(super) shared: &'a Shared,
    pub(super) id: ConnId,
    pub(super) tls: &'a Tls,
    pub(super) mqtt: &'a Mqtt,
    /// Wakes the connection's writer.
    pub(super) writer: &'a Notify,
    pub(super) peer: Option<SocketAddr>,
}

impl Reader<'_> {
    /// Reads until EOF, until the core closed the connection, or until TLS
    /// failed. `initial` (bytes read with a PROXY header) goes first.
    pub(super) async fn read_loop<R: ReadHalf>(&self, rd: &mut R, initial: &mut Vec<u8>) -> std::io::Result<ReadEnd> {
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
        let mut paused = false;
        loop {
            if shared.broker.borrow().is_closed(id) {
                return Ok(ReadEnd::Closed);
            }
            if shared.broker.borrow().is_leaving(id) {
                // Handed to another shard: what the core did not take goes too
                // (a TLS connection does not move: no ciphertext is left).
                return Ok(ReadEnd::Leaving(std::mem::take(&mut buf)));
            }
            if shared.broker.borrow().should_pause_reading(id) {
                // Flow control: a publisher's socket is not read while the disk alarm
                // is on; TCP backpressure then slows the client down. The ticker
                // wakes the tasks every TICK while a reader is paused. Also while
                // the connection is parked for another shard's answer (its
                // resume wakes this task), or it publishes to other shards and
                // the batches for them are past their credit (`io::shards::cross`).
                tokio::select! {
                    _ = shared.unblocked.notified() => {}
                    _ = NextPoll(false) => {}
                }
                paused = true;
                continue;
            }
            if std::mem::take(&mut paused) && !buf.is_empty() {
                // The input kept while paused (a parked connection's: the core
                // took none of it) goes first.
                if let Some(end) = self.on_input(&mut cipher, &mut buf) {
                    return Ok(end);
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
                        let now = crate::io::now_ms();
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
            room.after_read(n, spare, crate::io::now_ms());
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
                    crate::io::tls::log_failure(self.peer, &why);
                    self.writer.notify_one();
                    return Some(ReadEnd::TlsFailed);
                }
            }
            // Handshake records (or a close_notify) may wait to be sent.
            self.writer.notify_one();
        }
        let t = shared.turns.start();
        let used = match self.mqtt {
            None => shared.broker.borrow_mut().handle_input(id, buf, crate::io::now_ms()),
            Some(m) => {
                let mut m = m.borrow_mut();
                let used = m.handle_input(&mut shared.broker.borrow_mut(), id, buf, crate::io::now_ms());
                if m.take_took_over() {
                    // The connection it took over learns it is closed.
                    shared.conn_wake.notify_waiters();
                }
                // Its answers (CONNACK, PINGRESP) are the session's output,
                // not in the core's dirty list.
                self.writer.notify_one();
                used
            }
        };
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
            last_read_ms: crate::io::now_ms(),
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
        crate::io::tls::handshake_done(shared, id, info, t.cert_login());
    }
    r
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
