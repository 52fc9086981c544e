//! One connection's slot in the io_uring driver, and the send buffer the kernel
//! reads from.

use std::net::SocketAddr;
use std::os::fd::AsRawFd;

use io_uring::{opcode, squeue, types};

use crate::core::amqp::output::Output;
use crate::core::model::ids::ConnId;

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

/// Sends at least this large are handed to io_uring's worker threads
/// (`IOSQE_ASYNC`): the kernel's copy into the socket runs on another core than
/// the loop. Smaller ones are sent inline, where a worker's wake-up would cost more
/// than the copy.
const ASYNC_SEND_BYTES_MIN: usize = 64 * 1024;

pub(super) struct Conn {
    pub id: ConnId,
    /// A TCP or Unix stream socket.
    pub sock: socket2::Socket,
    /// The client's address (from its PROXY header, if any), for TLS log lines.
    pub peer: Option<SocketAddr>,
    /// Tells completions for an earlier user of the same slot apart.
    pub gen: u32,
    /// The incomplete tail of the input, for the next receive to complete.
    pub carry: Vec<u8>,
    /// The protocol header is behind us: the input is AMQP frames (whose lengths
    /// `feed` reads to copy no more than a carried frame needs).
    pub framed: bool,
    /// The send the kernel is working on, if any.
    pub send: Option<InFlightSend>,
    /// An empty output (with capacity) to swap with the core's output.
    pub spare: Output,
    /// A multishot receive is armed (its final completion has not come yet).
    pub recv_armed: bool,
    /// Not read while the disk alarm blocks publishers; the input waits in `carry`.
    pub paused: bool,
    pub phase: Phase,
    /// On the AMQPS listener: received bytes are decrypted before the core sees
    /// them, and what is sent is the session's ciphertext (see `driver::tls`).
    pub tls: Option<Box<crate::io::tls::TlsSession>>,
    /// When the last send was submitted: idle slots give their buffers back.
    pub last_send_ms: u64,
    /// A single-shot receive into the carry-over (moved in there meanwhile) is in
    /// flight: a large frame is received in place (see `driver::direct`).
    pub direct: Option<super::driver::DirectRecv>,
    /// The multishot receive was cancelled to receive the carried large frame
    /// directly; its last completion is still to come.
    pub leaving_multishot: bool,
    /// Direct receives left before going back to multishot: refilled whenever a
    /// large frame is carried, counted down by each receive that ends without.
    pub direct_credit: u8,
    /// The last direct receive got all it asked for: the next may ask for more.
    pub direct_backlog: bool,
    /// When the last direct receive completed (an idle one is cancelled: it pins
    /// the carry-over's capacity).
    pub last_recv_ms: u64,
}

impl Conn {
    pub fn new(
        id: ConnId,
        sock: socket2::Socket,
        peer: Option<SocketAddr>,
        gen: u32,
        tls: Option<Box<crate::io::tls::TlsSession>>,
    ) -> Conn {
        Conn {
            id,
            sock,
            peer,
            gen,
            carry: Vec::new(),
            framed: false,
            send: None,
            spare: Output::default(),
            recv_armed: false,
            paused: false,
            phase: Phase::Open,
            tls,
            last_send_ms: 0,
            direct: None,
            leaving_multishot: false,
            direct_credit: 0,
            direct_backlog: false,
            last_recv_ms: 0,
        }
    }

    /// Everything taken from the core went out (with TLS: was also encrypted).
    pub fn output_drained(&self) -> bool {
        self.tls.as_ref().is_none_or(|t| !t.has_pending())
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
        assert!(
            self.direct.is_none() || std::thread::panicking(),
            "connection slot dropped with a receive in flight"
        );
    }
}

/// At most this many iovecs per `sendmsg` (the kernel's UIO_MAXIOV); a longer
/// output goes out in several sends, one after the other.
const IOV_MAX: usize = 1024;

/// An output handed to the kernel by a `sendmsg` SQE: frame bytes and bodies in
/// their segment mappings (see `core::output`), as iovecs.
///
/// How the kernel never sees freed or changed memory: the iovecs point into the
/// `Output`'s byte buffer (a heap allocation that moving the `Output` does not
/// move) and into segment mappings that its `SharedBytes` keep mapped and
/// unchanged (the store's invariant I5). The iovec array and the `msghdr` are heap
/// allocations owned here too, and none of the three is touched while a send is
/// in flight: there is no method that gives out `&mut` to `out`, the iovecs are
/// only advanced in [`on_result`](Self::on_result), which the driver calls with the
/// send's CQE, when the kernel is done with them, and the only way back to the
/// `Output` is [`release`](Self::release), which asserts that every send is
/// complete. A `Conn` with a send in flight is never dropped
/// (asserted in `Conn::drop`).
pub(super) struct InFlightSend {
    out: Output,
    iov: Vec<libc::iovec>,
    /// The first iovec not (wholly) sent; the one before it is trimmed in place.
    next: usize,
    msg: Box<libc::msghdr>,
    /// The send failed: nothing more goes out.
    failed: bool,
}

impl InFlightSend {
    pub fn new(out: Output) -> InFlightSend {
        debug_assert!(!out.is_empty());
        let iov: Vec<libc::iovec> = out
            .pieces()
            .map(|p| libc::iovec {
                iov_base: p.as_ptr() as *mut libc::c_void,
                iov_len: p.len(),
            })
            .collect();
        // SAFETY: msghdr is a plain C struct for which all zeroes is a valid value
        // (no name, no control data).
        let msg = Box::new(unsafe { std::mem::zeroed::<libc::msghdr>() });
        InFlightSend {
            out,
            iov,
            next: 0,
            msg,
            failed: false,
        }
    }

    /// The SQE that sends what is not yet sent.
    pub fn sqe(&mut self, sock: &socket2::Socket, user_data: u64) -> squeue::Entry {
        let rest = &mut self.iov[self.next..];
        self.msg.msg_iov = rest.as_mut_ptr();
        self.msg.msg_iovlen = rest.len().min(IOV_MAX) as _;
        // Not SENDMSG_ZC: on loopback the kernel copies zero-copy sends at the
        // receiver anyway ("deferred copy", msg_zerocopy.rst) and adds a
        // notification completion per send; measured at 1p1c 64 KiB: -13% msgs/s,
        // +10% broker CPU per message (README).
        let bytes: usize = rest.iter().take(IOV_MAX).map(|v| v.iov_len).sum();
        let e = opcode::SendMsg::new(types::Fd(sock.as_raw_fd()), &*self.msg)
            .flags(libc::MSG_NOSIGNAL as u32)
            .build()
            .user_data(user_data);
        if bytes >= ASYNC_SEND_BYTES_MIN {
            e.flags(squeue::Flags::ASYNC)
        } else {
            e
        }
    }

    /// A send's result: `n` more bytes went out (or it failed, `n < 0`).
    pub fn on_result(&mut self, n: i32) {
        if n < 0 {
            self.failed = true;
            return;
        }
        let mut n = n as usize;
        while n > 0 {
            let v = self.iov.get_mut(self.next).expect("kernel sent more than it was given");
            if n >= v.iov_len {
                n -= v.iov_len;
                self.next += 1;
            } else {
                // SAFETY: `n < iov_len`, so the advanced pointer stays inside the
                // piece this iovec describes.
                v.iov_base = unsafe { (v.iov_base as *mut u8).add(n) } as *mut libc::c_void;
                v.iov_len -= n;
                n = 0;
            }
        }
    }

    pub fn failed(&self) -> bool {
        self.failed
    }

    /// Everything went out (or the send failed): no further SQE for it.
    pub fn finished(&self) -> bool {
        self.failed || self.next == self.iov.len()
    }

    /// The emptied output back, for reuse (its bodies dropped, which may unmap a
    /// deleted segment). Only once [`finished`](Self::finished): the kernel is done
    /// with the memory when the last send's completion arrived.
    pub fn release(mut self) -> Output {
        assert!(self.finished(), "send memory released while the kernel may use it");
        let mut out = std::mem::take(&mut self.out);
        out.clear();
        out
    }
}
