//! Submission: SQEs onto the ring (the one `unsafe` push), `io_uring_enter`,
//! and the receive and cancel operations; `user_data` says what a completion
//! belongs to.

use std::os::fd::AsRawFd;

use io_uring::{opcode, squeue, types};

use super::super::bufring::BufRing;
use super::super::conn::Phase;
use super::Driver;

pub(super) const KIND_RECV: u64 = 2;
pub(super) const KIND_SEND: u64 = 3;
pub(super) const KIND_SYNC: u64 = 4;
pub(super) const KIND_CANCEL: u64 = 5;
/// A single-shot receive into a connection's carry-over (`direct.rs`).
pub(super) const KIND_RECV_INTO: u64 = 6;

/// user_data: kind (8 bits) | slot generation (24 bits) | slot (32 bits).
pub(super) fn user_data(kind: u64, slot: u32, gen: u32) -> u64 {
    kind << 56 | ((gen & 0xff_ffff) as u64) << 32 | slot as u64
}

#[derive(Debug, Clone, Copy)]
pub(super) struct Cqe {
    pub user_data: u64,
    pub res: i32,
    pub flags: u32,
    /// Where a receive's bytes start in its buffer (`BufRing::note`).
    pub buf_off: u32,
}

impl Cqe {
    /// A completion as reaped: a receive's buffer is accounted for now, in
    /// reaping order, which is the order the kernel filled it in (handling may
    /// come later and in another order, see `Driver::route`).
    pub(super) fn reaped(c: &io_uring::cqueue::Entry, bufs: &mut Option<BufRing>) -> Cqe {
        let (user_data, res, flags) = (c.user_data(), c.result(), c.flags());
        let buf_off = match io_uring::cqueue::buffer_select(flags) {
            Some(bid) if user_data >> 56 == KIND_RECV => bufs.as_mut().expect("buffer ring").note(bid, res, flags),
            _ => 0,
        };
        Cqe {
            user_data,
            res,
            flags,
            buf_off,
        }
    }
}

impl Driver {
    pub(super) fn push(&mut self, e: squeue::Entry) {
        self.inflight += 1;
        loop {
            // SAFETY: every SQE built here points only at memory that outlives its
            // completion: a send's msghdr, iovecs, frame bytes and segment mappings
            // (bodies) all owned by an `InFlightSend` in a connection slot that is
            // not freed before the send's CQE (see `conn.rs`); receive buffers owned by the
            // registered `BufRing` (`self.bufs`, leaked rather than freed while
            // anything is in flight); a direct receive's buffer owned by the
            // `DirectRecv` of a slot that is not freed before its CQE (`direct.rs`); fsync fds kept open by the `Arc<File>`s of the
            // job in `self.sync` until its last CQE; cancel SQEs point at
            // no memory.
            let pushed = unsafe { self.ring.submission().push(&e) };
            if pushed.is_ok() {
                return;
            }
            // Submission queue full: hand what we have to the kernel and retry.
            self.stats.sq_full += 1;
            self.submit();
        }
    }

    /// One `io_uring_enter` for everything queued; also flushes completions the
    /// kernel kept back when the completion queue overflowed.
    pub(super) fn submit(&mut self) {
        loop {
            self.stats.enters += 1;
            match self.ring.submit() {
                Ok(_) => return,
                Err(e) => match e.raw_os_error() {
                    Some(libc::EINTR) => continue,
                    // The completion queue is full (its overflow backlog too): reap
                    // into our own backlog, handled at the next turn, and retry.
                    Some(libc::EBUSY) | Some(libc::EAGAIN) => {
                        self.stats.cq_overflow += 1;
                        let before = self.backlog.len();
                        let bufs = &mut self.bufs;
                        self.backlog
                            .extend(self.ring.completion().map(|c| Cqe::reaped(&c, bufs)));
                        if self.backlog.len() == before {
                            std::thread::yield_now();
                        }
                    }
                    _ => {
                        tracing::error!(error = %e, "io_uring_enter failed");
                        return;
                    }
                },
            }
        }
    }

    pub(super) fn arm_recv(&mut self, slot: u32) {
        let bgid = self.bufs().bgid;
        let Some(c) = self.slots[slot as usize].as_mut() else {
            return;
        };
        if c.recv_armed || c.paused || c.phase == Phase::Dead {
            return;
        }
        if self.arm_direct(slot) {
            return;
        }
        let Some(c) = self.slots[slot as usize].as_mut() else {
            return;
        };
        c.recv_armed = true;
        let e = opcode::RecvMulti::new(types::Fd(c.sock.as_raw_fd()), bgid)
            .build()
            .user_data(user_data(KIND_RECV, slot, c.gen));
        self.push(e);
    }

    pub(super) fn cancel(&mut self, target: u64) {
        let e = opcode::AsyncCancel::new(target)
            .build()
            .user_data(user_data(KIND_CANCEL, 0, 0));
        self.push(e);
    }
}
