//! Large frames received straight into the connection's carry-over buffer.
//!
//! A multishot receive fills 32 KiB ring buffers, so a 64 KiB body frame spans
//! two or three of them and `feed` copies it piece by piece into `carry` to
//! assemble it (the broker's one user-space copy of a large body: 6.5% of its CPU
//! at 1p1c 64 KiB). When `carry` holds the start of a frame with at least
//! [`DIRECT_MIN_BYTES`] still to come, the connection leaves multishot (the armed
//! receive is cancelled; its last completions are fed as usual) and the next
//! receive is a single-shot `recv` into `carry`'s spare capacity, for the rest of
//! the frame and [`DIRECT_EXTRA_BYTES`] more (the next message's method and header
//! frames): the kernel's copy out of the socket is then the only one.
//!
//! The switch rarely catches the frame it was made for (the rest of it is usually
//! in ring buffers already by the time the cancel lands), so a connection stays
//! with direct receives for [`DIRECT_CREDIT`] receives after its last large frame,
//! each receive asking for [`DIRECT_RECV_BYTES`] when no frame is carried; then it
//! goes back to multishot, which costs no SQE per receive for small messages. An
//! idle connection's direct receive is cancelled (it pins `carry`'s capacity).

use std::os::fd::AsRawFd;

use io_uring::{opcode, types};

use super::super::conn::{Conn, Phase};
use super::feed::Fed;
use super::submit::{user_data, Cqe, KIND_RECV, KIND_RECV_INTO};
use super::Driver;
use crate::io::server::Shared;

/// A carried frame with at least this much still to come is received directly.
pub(super) const DIRECT_MIN_BYTES: usize = 16 * 1024;
/// Asked for past the carried frame's end: the next message's method, header and
/// the start of its body frame (what is left over is moved to the front of
/// `carry`, so this bounds that copy).
const DIRECT_EXTRA_BYTES: usize = 4 * 1024;
/// Asked for by a direct receive when no frame is carried: a 64 KiB body frame,
/// its method and header frames, and the extra.
const DIRECT_RECV_BYTES: usize = 64 * 1024 + DIRECT_EXTRA_BYTES;
/// At most this much is asked for by one direct receive that completes a frame.
const DIRECT_BATCH_BYTES: usize = 224 * 1024;
/// Direct receives without a large frame before going back to multishot.
pub(super) const DIRECT_CREDIT: u8 = 32;

/// How many bytes the AMQP frame at the start of `carry` still lacks, if it is
/// incomplete (and its header is all there). Frame: type u8, channel u16, size
/// u32, payload, end u8.
pub(super) fn frame_lacks(carry: &[u8]) -> Option<usize> {
    let h = carry.get(..7)?;
    let size = u32::from_be_bytes([h[3], h[4], h[5], h[6]]) as usize;
    (8 + size).checked_sub(carry.len()).filter(|&n| n > 0)
}

/// A single-shot receive into the spare capacity of a buffer this owns (the
/// connection's carry-over, moved in while the kernel writes to it).
///
/// How the kernel never writes freed or moved memory: the buffer is a heap
/// allocation owned here, not resized or touched until the receive's completion
/// ([`complete`](Self::complete) consumes this); a `Conn` with a receive in
/// flight is never freed (`recv_armed`, see `Driver::try_free`), and the driver
/// leaks its slots rather than free them while anything is in flight.
pub(in crate::io::uring) struct DirectRecv {
    buf: Vec<u8>,
    /// Bytes asked for (at most the spare capacity).
    want: usize,
}

impl DirectRecv {
    /// Takes `carry` and makes room for the rest of its first frame and a little
    /// more, or for [`DIRECT_RECV_BYTES`] if no frame is incomplete at its start.
    /// `backlog`: the last direct receive got all it asked for, so the peer is
    /// probably ahead of us.
    fn new(mut carry: Vec<u8>, backlog: bool) -> DirectRecv {
        let want = match frame_lacks(&carry) {
            None => DIRECT_RECV_BYTES,
            Some(n) if backlog => {
                // A publisher ahead of us has more such messages queued: ask for
                // up to DIRECT_BATCH_BYTES of them, each guessed as long as this
                // frame and its method and header frames, so what is left over
                // past the last one stays about DIRECT_EXTRA_BYTES. (Only then: a
                // receive waiting for a slow peer pins what it asked for.)
                let msg = carry.len() + n + DIRECT_EXTRA_BYTES / 4;
                let more = DIRECT_BATCH_BYTES.saturating_sub(n) / msg;
                n + DIRECT_EXTRA_BYTES + more * msg
            }
            Some(n) => n + DIRECT_EXTRA_BYTES,
        };
        carry.reserve_exact(want);
        DirectRecv { buf: carry, want }
    }

    fn sqe(&mut self, conn_fd: i32, user_data: u64) -> io_uring::squeue::Entry {
        let spare = self.buf.spare_capacity_mut();
        let len = spare.len().min(self.want).min(u32::MAX as usize) as u32;
        opcode::Recv::new(types::Fd(conn_fd), spare.as_mut_ptr().cast::<u8>(), len)
            .build()
            .user_data(user_data)
    }

    /// The buffer back with the `n` bytes received (`n` from the completion,
    /// 0 on failure) behind what it held.
    fn complete(mut self, n: usize) -> Vec<u8> {
        assert!(
            n <= self.buf.capacity() - self.buf.len(),
            "kernel received past the buffer"
        );
        // SAFETY: the receive completed (this is called with its CQE), so the kernel
        // is done with the buffer and wrote exactly `n` bytes into its spare
        // capacity, right after `len` (the SQE pointed there, with that room);
        // those bytes are initialised now.
        unsafe { self.buf.set_len(self.buf.len() + n) };
        self.buf
    }
}

impl Driver {
    /// Arms a direct receive if the connection's carried frame is large and
    /// incomplete; false if it should receive with multishot instead.
    pub(super) fn arm_direct(&mut self, slot: u32) -> bool {
        let Some(c) = self.slots[slot as usize].as_mut() else {
            return false;
        };
        if c.tls.is_some() || !c.framed || c.paused || c.phase != Phase::Open || c.direct.is_some() {
            return false;
        }
        if is_large(&c.carry) {
            c.direct_credit = DIRECT_CREDIT;
        }
        if c.direct_credit == 0 {
            return false;
        }
        let mut d = DirectRecv::new(std::mem::take(&mut c.carry), c.direct_backlog);
        let e = d.sqe(c.sock.as_raw_fd(), user_data(KIND_RECV_INTO, slot, c.gen));
        c.direct = Some(d);
        c.recv_armed = true;
        self.stats.direct_recvs += 1;
        self.push(e);
        true
    }

    /// After feeding a multishot receive's bytes: leave multishot if the carried
    /// frame now calls for a direct receive (its last completions come first).
    pub(super) fn maybe_leave_multishot(&mut self, slot: u32, now_ms: u64) {
        let Some(c) = self.slots[slot as usize].as_mut() else {
            return;
        };
        if c.tls.is_some() || c.leaving_multishot || c.paused || c.phase != Phase::Open || !c.recv_armed {
            return;
        }
        if is_large(&c.carry) {
            c.direct_credit = DIRECT_CREDIT;
            c.leaving_multishot = true;
            c.last_recv_ms = now_ms; // the idle clock of the direct receive to come
            let gen = c.gen;
            self.cancel(user_data(KIND_RECV, slot, gen));
        }
    }

    /// A direct receive completed: its bytes are fed from `carry`.
    pub(super) fn on_recv_into(&mut self, slot: u32, gen: u32, c: Cqe, now_ms: u64) {
        let conn = self.slots[slot as usize]
            .as_mut()
            .filter(|conn| conn.gen == gen)
            .expect("receive completion for a freed slot");
        conn.recv_armed = false;
        let d = conn
            .direct
            .take()
            .expect("direct receive completion without one in flight");
        conn.direct_backlog = c.res > 0 && c.res as usize >= d.want;
        conn.carry = d.complete(c.res.max(0) as usize);
        conn.last_recv_ms = now_ms;
        match c.res {
            n if n > 0 => {
                let fed = feed_carried(&self.shared, conn, now_ms);
                conn.direct_credit = if is_large(&conn.carry) {
                    DIRECT_CREDIT
                } else {
                    conn.direct_credit.saturating_sub(1)
                };
                match fed {
                    Fed::MoreInput => self.more_input.push(slot),
                    Fed::Paused => self.paused.push(slot),
                    Fed::Done | Fed::TlsEnd => {}
                }
                self.want_send.push(slot);
                self.rearm.push(slot);
            }
            0 => self.peer_gone(slot),
            e if e == -libc::ECANCELED => {
                // Idle (see `cancel_idle_direct`) or the connection ends.
                conn.direct_credit = 0;
                self.rearm.push(slot);
                self.try_free(slot);
            }
            e => {
                tracing::debug!(error = %std::io::Error::from_raw_os_error(-e), "connection read error");
                self.peer_gone(slot);
            }
        }
    }

    /// A direct receive that waited `idle_ms` for bytes is cancelled; the
    /// connection goes back to multishot (the heartbeat tick calls this).
    pub(super) fn cancel_idle_direct(&mut self, slot: u32, now_ms: u64, idle_ms: u64) {
        let Some(c) = self.slots[slot as usize].as_ref() else {
            return;
        };
        if c.direct.is_some() && c.phase == Phase::Open && now_ms.saturating_sub(c.last_recv_ms) >= idle_ms {
            let gen = c.gen;
            self.cancel(user_data(KIND_RECV_INTO, slot, gen));
        }
    }
}

/// `carry` starts with a frame that still lacks enough to receive it directly.
fn is_large(carry: &[u8]) -> bool {
    frame_lacks(carry).is_some_and(|n| n >= DIRECT_MIN_BYTES)
}

/// Feeds what `carry` holds (a direct receive just appended to it).
fn feed_carried(shared: &Shared, conn: &mut Conn, now_ms: u64) -> Fed {
    if conn.phase != Phase::Open {
        conn.carry.clear(); // closing: the peer's bytes no longer matter
        return Fed::Done;
    }
    let mut b = shared.broker.borrow_mut();
    if conn.paused || b.should_pause_reading(conn.id) {
        let first = !conn.paused;
        conn.paused = true;
        return if first { Fed::Paused } else { Fed::Done };
    }
    let used = b.handle_input(conn.id, &conn.carry, now_ms);
    conn.carry.drain(..used);
    if used > 0 && !conn.carry.is_empty() && !b.is_closed(conn.id) && frame_lacks(&conn.carry).is_none() {
        Fed::MoreInput
    } else {
        Fed::Done
    }
}

#[cfg(test)]
mod tests {
    use super::frame_lacks;

    #[test]
    fn frame_lacks_counts_what_the_carried_frame_misses() {
        // A body frame of 10 payload bytes is 18 bytes long.
        let frame: Vec<u8> = [3u8, 0, 1, 0, 0, 0, 10]
            .into_iter()
            .chain([7; 10])
            .chain([0xCE])
            .collect();
        for cut in 7..frame.len() {
            assert_eq!(frame_lacks(&frame[..cut]), Some(frame.len() - cut), "cut at {cut}");
        }
        assert_eq!(frame_lacks(&frame), None, "complete");
        assert_eq!(frame_lacks(&frame[..6]), None, "header incomplete");
        let two: Vec<u8> = frame.iter().chain(frame.iter()).copied().collect();
        assert_eq!(frame_lacks(&two[..25]), None, "first frame complete");
    }
}
