//! The provided-buffer ring (IORING_REGISTER_PBUF_RING) that multishot receives
//! pick their buffers from.
//!
//! Ownership of each buffer moves between us and the kernel through the ring:
//! an entry published behind the tail belongs to the kernel, which fills it and
//! hands it back in a receive completion (the buffer id in the CQE flags). We
//! turn that id into a [`RecvBuf`] token, which is not `Copy` or `Clone` and is
//! consumed by [`BufRing::recycle`]: so each buffer is given back exactly once,
//! and only after the `&[u8]` borrowed from it (through `&self`) is gone, since
//! `recycle` takes `&mut self`.

use std::alloc::Layout;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU16, Ordering};

use io_uring::types::BufRingEntry;
use io_uring::Submitter;

/// The ring's entries must start on a page (the kernel maps them as pages).
const PAGE_BYTES: usize = 4096;

/// A buffer the kernel filled and gave back to us; return it with `recycle`.
#[derive(Debug)]
pub(super) struct RecvBuf {
    bid: u16,
    len: usize,
}

pub(super) struct BufRing {
    entries: NonNull<BufRingEntry>,
    entries_layout: Layout,
    bufs: NonNull<u8>,
    bufs_layout: Layout,
    count: u16,
    buf_bytes: usize,
    /// Our tail: entries before it are the kernel's; published by `publish`.
    tail: u16,
    pub(super) bgid: u16,
}

impl BufRing {
    /// Allocates `count` buffers of `buf_bytes` (count a power of two ≤ 32768)
    /// and puts all of them in the ring.
    pub(super) fn new(count: u16, buf_bytes: usize, bgid: u16) -> BufRing {
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
            tail: 0,
            bgid,
        };
        for bid in 0..count {
            ring.recycle(RecvBuf { bid, len: 0 });
        }
        ring.publish();
        ring
    }

    /// Registers the ring with `submitter`'s io_uring.
    ///
    /// The caller keeps `self` alive until that ring is gone and no receive is in
    /// flight (the driver drops the ring first and leaks this on an unclean exit).
    pub(super) fn register(&self, submitter: &Submitter<'_>) -> std::io::Result<()> {
        // SAFETY: the entries are `count` valid, page-aligned `BufRingEntry`s that
        // live as long as `self`; the caller keeps `self` alive for the ring's life
        // (see above), so the kernel never reads freed entries.
        unsafe { submitter.register_buf_ring_with_flags(self.entries.as_ptr() as u64, self.count, self.bgid, 0) }
    }

    /// Takes ownership of buffer `bid` from a receive completion of `len` bytes.
    pub(super) fn take(&self, bid: u16, len: usize) -> RecvBuf {
        assert!(
            bid < self.count && len <= self.buf_bytes,
            "kernel returned bad buffer {bid}/{len}"
        );
        RecvBuf { bid, len }
    }

    /// The received bytes of `buf`.
    pub(super) fn bytes(&self, buf: &RecvBuf) -> &[u8] {
        // SAFETY: `buf` is a token for a buffer the kernel handed back and that is
        // not in the ring until `recycle` consumes the token (which needs `&mut
        // self`, so this borrow ends first); the range is inside the allocation
        // (checked in `take`), and the kernel wrote its first `len` bytes.
        unsafe { std::slice::from_raw_parts(self.bufs.as_ptr().add(buf.bid as usize * self.buf_bytes), buf.len) }
    }

    /// Gives a buffer back to the kernel (visible after the next `publish`).
    pub(super) fn recycle(&mut self, buf: RecvBuf) {
        let slot = (self.tail & (self.count - 1)) as usize;
        // SAFETY: `slot < count`, so the entry is inside the allocation. The
        // kernel only reads entries between its head and the published tail; this
        // slot is past the published tail (at most `count` buffers are ever out,
        // and this one was out), so the kernel is not reading it now. We write the
        // fields through set_* which leave the `resv` (tail) word alone.
        let entry = unsafe { &mut *self.entries.as_ptr().add(slot) };
        // SAFETY: `bid < count` (checked in `take` or by construction), so the
        // offset stays inside the buffer allocation.
        let addr = unsafe { self.bufs.as_ptr().add(buf.bid as usize * self.buf_bytes) };
        entry.set_addr(addr as u64);
        entry.set_len(self.buf_bytes as u32);
        entry.set_bid(buf.bid);
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
        // lets this drop once the kernel can no longer use the ring (see `register`).
        unsafe {
            std::alloc::dealloc(self.entries.as_ptr() as *mut u8, self.entries_layout);
            std::alloc::dealloc(self.bufs.as_ptr(), self.bufs_layout);
        }
    }
}
