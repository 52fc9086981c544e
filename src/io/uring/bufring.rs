//! The provided-buffer ring (IORING_REGISTER_PBUF_RING) that multishot receives
//! pick their buffers from.
//!
//! Ownership of each buffer moves between us and the kernel through the ring:
//! an entry published behind the tail belongs to the kernel, which fills it and
//! hands it back in receive completions (the buffer id in the CQE flags). We
//! turn each completion into a [`RecvBuf`] token, which is not `Copy` or
//! `Clone` and is consumed by [`BufRing::recycle`]: so each piece is given back
//! exactly once, and only after the `&[u8]` borrowed from it (through `&self`)
//! is gone, since `recycle` takes `&mut self`.
//!
//! Incremental consumption (IOU_PBUF_RING_INC, kernel 6.12+): a receive takes
//! only the bytes it needs from the buffer at the ring's head, so sixteen bytes
//! from each of many connections pack into one buffer instead of pinning one
//! buffer each. The kernel keeps a buffer until it is full and says so with
//! IORING_CQE_F_BUF_MORE on every completion but the one that filled it; the
//! pieces of a buffer come back in the order it filled them (the kernel posts
//! receive completions in the order it consumes the ring), so we find each
//! piece's offset by adding up the lengths before it. A buffer goes back to the
//! ring once the kernel is done with it *and* every piece of it was recycled.
//! That lets the pool be small (1 MiB, [`INC_POOL`]): its pages stay resident
//! once touched, and a fast publisher cycles through all of them. Older kernels
//! get the whole-buffer pool ([`WHOLE_POOL`]), where each receive takes a buffer.

use std::alloc::Layout;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU16, Ordering};

use io_uring::types::BufRingEntry;
use io_uring::Submitter;

/// The ring's entries must start on a page (the kernel maps them as pages).
const PAGE_BYTES: usize = 4096;

/// The registration flag for incremental consumption (the `io-uring` crate
/// keeps its `sys` constants private).
const IOU_PBUF_RING_INC: u16 = 2;

/// A pool's shape: `count` buffers of `bytes` each.
#[derive(Debug, Clone, Copy)]
pub(super) struct PoolSize {
    pub count: u16,
    pub bytes: usize,
}

/// With incremental consumption: 32 × 32 KiB (1 MiB). Input is fed at most
/// 256 KiB a loop turn (`INPUT_BYTES_PER_TURN`), so this keeps the kernel
/// three turns ahead; past that a receive ends with ENOBUFS, the bytes wait in
/// the socket (TCP backpressure), and the receive is armed again once buffers
/// are back. A receive still takes at most 32 KiB: larger buffers made one
/// completion exceed the per-connection input bound (see the README's "Copies
/// on receive").
pub(super) const INC_POOL: PoolSize = PoolSize {
    count: 32,
    bytes: 32 * 1024,
};
/// Without it (kernels before 6.12) every receive takes a whole buffer, however
/// few bytes it holds: 256 × 32 KiB, so that many connections can receive in
/// one turn (8 MiB, resident once a fast publisher went through it).
pub(super) const WHOLE_POOL: PoolSize = PoolSize {
    count: 256,
    bytes: 32 * 1024,
};

/// Received bytes in a buffer the kernel filled; return it with `recycle`.
#[derive(Debug)]
pub(super) struct RecvBuf {
    bid: u16,
    off: u32,
    len: u32,
}

/// Where a buffer is between the kernel and us.
#[derive(Debug, Clone, Copy, Default)]
struct BufState {
    /// Bytes the kernel has put in it since it was last provided.
    filled: u32,
    /// Pieces handed out (`note`) and not yet recycled.
    out: u16,
    /// The kernel moved past it: it is ours once `out` is 0.
    kernel_done: bool,
}

pub(super) struct BufRing {
    entries: NonNull<BufRingEntry>,
    entries_layout: Layout,
    bufs: NonNull<u8>,
    bufs_layout: Layout,
    count: u16,
    buf_bytes: usize,
    state: Vec<BufState>,
    /// Registered with IOU_PBUF_RING_INC.
    inc: bool,
    /// Buffers the kernel finished that are not back in the ring.
    done_out: u16,
    /// Our tail: entries before it are the kernel's; published by `publish`.
    tail: u16,
    pub(super) bgid: u16,
}

impl BufRing {
    /// Allocates `size.count` buffers of `size.bytes` (count a power of two ≤
    /// 32768) and puts all of them in the ring; `inc`: to be registered with
    /// incremental consumption.
    pub(super) fn new(size: PoolSize, bgid: u16, inc: bool) -> BufRing {
        let (count, buf_bytes) = (size.count, size.bytes);
        assert!(count.is_power_of_two() && count <= 32768);
        assert!(buf_bytes > 0 && buf_bytes <= u32::MAX as usize);
        let entries_layout = Layout::from_size_align(count as usize * std::mem::size_of::<BufRingEntry>(), PAGE_BYTES)
            .expect("ring layout");
        let bufs_layout = Layout::from_size_align(count as usize * buf_bytes, PAGE_BYTES).expect("buffer layout");
        // SAFETY: both layouts have a non-zero size (count ≥ 1, buf_bytes ≥ 1).
        let (entries, bufs) = unsafe { (std::alloc::alloc_zeroed(entries_layout), std::alloc::alloc(bufs_layout)) };
        let entries = NonNull::new(entries as *mut BufRingEntry)
            .unwrap_or_else(|| std::alloc::handle_alloc_error(entries_layout));
        let bufs = NonNull::new(bufs).unwrap_or_else(|| std::alloc::handle_alloc_error(bufs_layout));
        let mut ring = BufRing {
            entries,
            entries_layout,
            bufs,
            bufs_layout,
            count,
            buf_bytes,
            state: vec![BufState::default(); count as usize],
            inc,
            done_out: 0,
            tail: 0,
            bgid,
        };
        for bid in 0..count {
            ring.provide(bid);
        }
        ring.publish();
        ring
    }

    /// The pool for this kernel, registered with `submitter`'s io_uring:
    /// incremental consumption where the kernel has it, whole buffers elsewhere.
    ///
    /// The caller keeps the result alive until that ring is gone and no receive
    /// is in flight (the driver drops the ring first and leaks this on an
    /// unclean exit).
    pub(super) fn setup(submitter: &Submitter<'_>, bgid: u16) -> std::io::Result<BufRing> {
        let ring = BufRing::new(INC_POOL, bgid, true);
        match ring.register(submitter) {
            Ok(()) => Ok(ring),
            // Before 6.12 the flag is unknown: EINVAL, and nothing registered.
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
                drop(ring);
                let ring = BufRing::new(WHOLE_POOL, bgid, false);
                ring.register(submitter)?;
                Ok(ring)
            }
            Err(e) => Err(e),
        }
    }

    /// Registers the ring with `submitter`'s io_uring (see `setup` for how long
    /// `self` must then live).
    pub(super) fn register(&self, submitter: &Submitter<'_>) -> std::io::Result<()> {
        let flags = if self.inc { IOU_PBUF_RING_INC } else { 0 };
        // SAFETY: the entries are `count` valid, page-aligned `BufRingEntry`s that
        // live as long as `self`; the caller keeps `self` alive for the ring's life
        // (see `setup`), so the kernel never reads freed entries.
        unsafe { submitter.register_buf_ring_with_flags(self.entries.as_ptr() as u64, self.count, self.bgid, flags) }
    }

    /// Whether receives take pieces of buffers (IOU_PBUF_RING_INC).
    pub(super) fn incremental(&self) -> bool {
        self.inc
    }

    /// The pool's bytes (what it may keep resident).
    pub(super) fn pool_bytes(&self) -> usize {
        self.count as usize * self.buf_bytes
    }

    /// Accounts for a receive completion that carried buffer `bid` (`res`
    /// bytes, CQE `flags`); returns where its bytes start in the buffer. Called
    /// for every such completion in the order they were reaped, which is the
    /// order the kernel filled the buffer in; `take` then makes the token.
    pub(super) fn note(&mut self, bid: u16, res: i32, flags: u32) -> u32 {
        assert!(bid < self.count, "kernel returned bad buffer {bid}");
        let len = res.max(0) as u32;
        let s = &mut self.state[bid as usize];
        assert!(!s.kernel_done, "kernel returned buffer {bid} that it had finished");
        let off = s.filled;
        assert!(
            off as usize + len as usize <= self.buf_bytes,
            "kernel overfilled buffer {bid}: {off}+{len}"
        );
        s.filled += len;
        s.out += 1;
        // Incremental: a completion without BUF_MORE means the buffer is full
        // and the kernel moved past it. One of 0 bytes (end of stream) consumed
        // nothing: the buffer stays at the ring's head, still the kernel's.
        s.kernel_done = !self.inc || (len > 0 && !io_uring::cqueue::buffer_more(flags));
        self.done_out += u16::from(s.kernel_done);
        off
    }

    /// The token for a piece `note` accounted for.
    pub(super) fn take(&self, bid: u16, off: u32, len: usize) -> RecvBuf {
        assert!(
            bid < self.count && off as usize + len <= self.buf_bytes,
            "kernel returned bad buffer {bid}/{off}/{len}"
        );
        RecvBuf {
            bid,
            off,
            len: len as u32,
        }
    }

    /// The received bytes of `buf`.
    pub(super) fn bytes(&self, buf: &RecvBuf) -> &[u8] {
        let start = buf.bid as usize * self.buf_bytes + buf.off as usize;
        // SAFETY: `buf` is a token for a piece the kernel filled and handed back:
        // the kernel writes no byte it has reported (later receives fill the
        // bytes after it), and the buffer is not in the ring again until its
        // last token is recycled, which needs `&mut self`, so this borrow ends
        // first; the range is inside the allocation (checked in `take`).
        unsafe { std::slice::from_raw_parts(self.bufs.as_ptr().add(start), buf.len as usize) }
    }

    /// Gives a piece back; its buffer returns to the kernel (visible after the
    /// next `publish`) once the kernel is done with it and no piece is out.
    pub(super) fn recycle(&mut self, buf: RecvBuf) {
        let s = &mut self.state[buf.bid as usize];
        s.out -= 1;
        if s.out == 0 && s.kernel_done {
            *s = BufState::default();
            self.done_out -= 1;
            self.provide(buf.bid);
        }
    }

    /// Buffers given out by the kernel and not back in the ring yet.
    #[cfg(test)]
    pub(super) fn out(&self) -> usize {
        self.state.iter().filter(|s| s.kernel_done || s.out > 0).count()
    }

    /// At least half the buffers are in the ring (published or about to be).
    pub(super) fn half_free(&self) -> bool {
        self.done_out <= self.count / 2
    }

    /// Puts buffer `bid`, which is not in the ring, at its tail.
    fn provide(&mut self, bid: u16) {
        let slot = (self.tail & (self.count - 1)) as usize;
        // SAFETY: `slot < count`, so the entry is inside the allocation. The
        // kernel only reads and writes entries between its head and the
        // published tail; this slot is past the published tail (each buffer is
        // in the ring at most once, so at most `count` entries are the
        // kernel's, and `bid` is not among them), so the kernel is not using it
        // now. We write the fields through set_* which leave the `resv` (tail)
        // word alone.
        let entry = unsafe { &mut *self.entries.as_ptr().add(slot) };
        // SAFETY: `bid < count` (checked in `note` or by construction), so the
        // offset stays inside the buffer allocation.
        let addr = unsafe { self.bufs.as_ptr().add(bid as usize * self.buf_bytes) };
        entry.set_addr(addr as u64);
        entry.set_len(self.buf_bytes as u32);
        entry.set_bid(bid);
        self.tail = self.tail.wrapping_add(1);
    }

    /// Publishes recycled buffers to the kernel: one store per loop turn.
    pub(super) fn publish(&self) {
        // SAFETY: the base pointer is the first entry of a ring we allocated, so
        // `tail` gives the address of its shared tail word, which is u16-aligned
        // and lives as long as `self`. The kernel reads it concurrently, hence the
        // atomic Release store: our entry writes above happen before it.
        let tail = unsafe { &*(BufRingEntry::tail(self.entries.as_ptr()) as *const AtomicU16) };
        tail.store(self.tail, Ordering::Release);
    }
}

impl Drop for BufRing {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with exactly these layouts; the driver only
        // lets this drop once the kernel can no longer use the ring (see `setup`).
        unsafe {
            std::alloc::dealloc(self.entries.as_ptr() as *mut u8, self.entries_layout);
            std::alloc::dealloc(self.bufs.as_ptr(), self.bufs_layout);
        }
    }
}

#[cfg(test)]
#[path = "bufring_tests.rs"]
mod tests;
