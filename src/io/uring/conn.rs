//! One connection's slot in the io_uring driver, and the send buffer the kernel
//! reads from.

use std::net::TcpStream;
use std::os::fd::AsRawFd;

use io_uring::{opcode, squeue, types};

use crate::core::ids::ConnId;

/// Where a connection is in its life on the driver.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Phase {
    /// Reading and writing.
    Open,
    /// The core closed it: write what is left, FIN unless we linger, then read
    /// until the peer's FIN or the deadline.
    Closing { deadline_ms: u64, fin_sent: bool },
    /// The core forgot it; the slot waits for its last completions to be freed.
    Dead,
}

pub(super) struct Conn {
    pub id: ConnId,
    pub sock: TcpStream,
    /// Tells completions for an earlier user of the same slot apart.
    pub gen: u32,
    /// The incomplete tail of the input, for the next receive to complete.
    pub carry: Vec<u8>,
    /// The send the kernel is working on, if any.
    pub send: Option<InFlightSend>,
    /// An empty buffer (with capacity) to swap with the core's output.
    pub spare: Vec<u8>,
    /// A multishot receive is armed (its final completion has not come yet).
    pub recv_armed: bool,
    /// Not read while the disk alarm blocks publishers; the input waits in `carry`.
    pub paused: bool,
    pub phase: Phase,
}

impl Conn {
    pub fn new(id: ConnId, sock: TcpStream, gen: u32) -> Conn {
        Conn {
            id,
            sock,
            gen,
            carry: Vec::new(),
            send: None,
            spare: Vec::new(),
            recv_armed: false,
            paused: false,
            phase: Phase::Open,
        }
    }

    /// No completion can still arrive for this slot, so it may be freed.
    pub fn is_idle(&self) -> bool {
        !self.recv_armed && self.send.is_none()
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        // The kernel may still be reading `send`'s bytes until its completion: a
        // slot is only dropped after that (the driver's `try_free`, or leaked on
        // an unclean exit). A violation would be a use-after-free by the kernel,
        // so this is checked in release builds too.
        assert!(
            self.send.is_none() || std::thread::panicking(),
            "connection slot dropped with a send in flight"
        );
    }
}

/// Output bytes handed to the kernel by a send SQE.
///
/// How the kernel never sees freed or changed memory: the bytes live in the
/// heap allocation of `buf`, which moving an `InFlightSend` (or the `Conn` that
/// holds it, or the slab that holds the `Conn`) does not move. There is no
/// method that gives out `&mut` to `buf`, so nothing can write or reallocate it
/// while the send is in flight; the only way back to the `Vec` is
/// [`complete`](Self::complete), which the driver calls with the send's CQE,
/// when the kernel is done with it. A `Conn` with a send in flight is never
/// dropped (asserted in `Conn::drop`).
pub(super) struct InFlightSend {
    buf: Vec<u8>,
    sent: usize,
}

impl InFlightSend {
    pub fn new(buf: Vec<u8>) -> InFlightSend {
        debug_assert!(!buf.is_empty());
        InFlightSend { buf, sent: 0 }
    }

    /// The SQE that sends the bytes not yet sent.
    pub fn sqe(&self, sock: &TcpStream, user_data: u64) -> squeue::Entry {
        let rest = &self.buf[self.sent..];
        let len = rest.len().min(u32::MAX as usize) as u32;
        opcode::Send::new(types::Fd(sock.as_raw_fd()), rest.as_ptr(), len)
            .flags(libc::MSG_NOSIGNAL)
            .build()
            .user_data(user_data)
    }

    /// The kernel sent `n` more bytes. All sent: the emptied buffer back, for
    /// reuse. Otherwise the rest, to send again.
    pub fn complete(mut self, n: usize) -> Result<Vec<u8>, InFlightSend> {
        self.sent += n;
        assert!(self.sent <= self.buf.len(), "kernel sent more than it was given");
        if self.sent == self.buf.len() {
            let mut buf = std::mem::take(&mut self.buf);
            buf.clear();
            Ok(buf)
        } else {
            Err(self)
        }
    }
}
