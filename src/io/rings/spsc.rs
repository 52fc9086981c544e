//! A bounded single-producer single-consumer ring (Lamport's queue): one
//! shard pushes, one shard pops, no lock and no read-modify-write on either
//! side. Each side keeps a cached copy of the other side's index and reads the
//! shared one only when its copy says full (producer) or empty (consumer), so
//! a push or pop that does not hit the end touches one shared cache line, its
//! own index, with one release store.
//!
//! Indexes count up forever (wrapping): `tail - head` is the number of items
//! in the ring, at most its capacity, a power of two so a slot is `index & mask`.
//!
//! A producer that found the ring full says so (`waiting`); the consumer checks
//! after it popped ([`Consumer::take_producer_waiting`]) and its shard wakes
//! the producer's: back-pressure ends when the ring drains, not at the
//! producer's next chance to look. The flag and the indexes are ordered by a
//! fence on each side (the producer: flag, fence, read head; the consumer:
//! head, fence, read flag), so one of the two sees the other.

use std::cell::UnsafeCell;
use std::mem::MaybeUninit;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// The most slots a ring may have: rings hold batches, and a batch holds a
/// loop turn's messages for one peer, so a few slots are enough; this bounds
/// what a misconfiguration could allocate.
pub const SLOTS_MAX: usize = 1 << 16;

/// One index on its own cache line (128 bytes: adjacent-line prefetch pairs
/// lines on x86), so the producer's and the consumer's stores do not contend.
#[repr(align(128))]
struct Padded(AtomicUsize);

struct Ring<T> {
    /// The next slot to pop: written by the consumer only.
    head: Padded,
    /// The next slot to push: written by the producer only.
    tail: Padded,
    mask: usize,
    /// The producer found the ring full and waits for room.
    waiting: std::sync::atomic::AtomicBool,
    slots: Box<[UnsafeCell<MaybeUninit<T>>]>,
}

// SAFETY: a slot is written by the producer only while it is outside
// `head..tail` (free), and read by the consumer only while inside (full); the
// release store of `tail` after a write and the acquire load before a read
// (and the same for `head` the other way) order every access to a slot. So
// the ring moves `T`s between threads, which needs `T: Send`, and is never
// accessed by both sides at one slot at once.
unsafe impl<T: Send> Sync for Ring<T> {}
// SAFETY: as above; the ring owns the `T`s between head and tail.
unsafe impl<T: Send> Send for Ring<T> {}

impl<T> Drop for Ring<T> {
    fn drop(&mut self) {
        // Both ends are gone (this is the last `Arc`): what is still in the
        // ring is dropped here.
        let (mut head, tail) = (*self.head.0.get_mut(), *self.tail.0.get_mut());
        while head != tail {
            // SAFETY: slots in head..tail were written by a push and not taken
            // by a pop; `&mut self` means no end can touch them any more.
            unsafe { self.slots[head & self.mask].get_mut().assume_init_drop() };
            head = head.wrapping_add(1);
        }
    }
}

/// The pushing end.
pub struct Producer<T> {
    ring: Arc<Ring<T>>,
    tail: usize,
    /// The consumer's `head` as last read: the ring has at least
    /// `capacity - (tail - head_seen)` free slots.
    head_seen: usize,
}

/// The popping end.
pub struct Consumer<T> {
    ring: Arc<Ring<T>>,
    head: usize,
    /// The producer's `tail` as last read: at least `tail_seen - head` items.
    tail_seen: usize,
}

/// A ring of `slots` (rounded up to a power of two, 1 to [`SLOTS_MAX`]).
pub fn ring<T: Send>(slots: usize) -> (Producer<T>, Consumer<T>) {
    assert!((1..=SLOTS_MAX).contains(&slots), "ring of {slots} slots");
    let slots = slots.next_power_of_two();
    let ring = Arc::new(Ring {
        head: Padded(AtomicUsize::new(0)),
        tail: Padded(AtomicUsize::new(0)),
        mask: slots - 1,
        waiting: std::sync::atomic::AtomicBool::new(false),
        slots: (0..slots).map(|_| UnsafeCell::new(MaybeUninit::uninit())).collect(),
    });
    (
        Producer {
            ring: ring.clone(),
            tail: 0,
            head_seen: 0,
        },
        Consumer {
            ring,
            head: 0,
            tail_seen: 0,
        },
    )
}

impl<T> Producer<T> {
    /// Pushes `item`, or gives it back when the ring is full (back-pressure:
    /// the caller keeps it and stops producing for this peer).
    pub fn push(&mut self, item: T) -> Result<(), T> {
        if self.is_full() {
            return Err(item);
        }
        let slot = &self.ring.slots[self.tail & self.ring.mask];
        // SAFETY: the slot is free (tail - head < capacity with a head read
        // with acquire: the consumer's read of it happened before), and only
        // this producer writes slots.
        unsafe { (*slot.get()).write(item) };
        self.tail = self.tail.wrapping_add(1);
        self.ring.tail.0.store(self.tail, Ordering::Release);
        Ok(())
    }

    /// Whether a push would fail now. When it would, the consumer is told to
    /// report the room it makes ([`Consumer::take_producer_waiting`]).
    pub fn is_full(&mut self) -> bool {
        let capacity = self.ring.mask + 1;
        if self.tail.wrapping_sub(self.head_seen) < capacity {
            return false;
        }
        self.head_seen = self.ring.head.0.load(Ordering::Acquire);
        if self.tail.wrapping_sub(self.head_seen) < capacity {
            return false;
        }
        self.ring.waiting.store(true, Ordering::Relaxed);
        // Flag, then head: a pop that this load misses sees the flag.
        std::sync::atomic::fence(Ordering::SeqCst);
        self.head_seen = self.ring.head.0.load(Ordering::Acquire);
        // Room after all (the flag stays: one spurious wake-up, harmless).
        self.tail.wrapping_sub(self.head_seen) == capacity
    }
}

impl<T> Consumer<T> {
    /// Pops the oldest item, if any.
    pub fn pop(&mut self) -> Option<T> {
        if self.head == self.tail_seen {
            self.tail_seen = self.ring.tail.0.load(Ordering::Acquire);
            if self.head == self.tail_seen {
                return None;
            }
        }
        let slot = &self.ring.slots[self.head & self.ring.mask];
        // SAFETY: the slot is full (head < tail, read with acquire: the
        // producer's write happened before), only this consumer reads slots,
        // and moving `head` past it below makes it free, so it is read once.
        let item = unsafe { (*slot.get()).assume_init_read() };
        self.head = self.head.wrapping_add(1);
        self.ring.head.0.store(self.head, Ordering::Release);
        Some(item)
    }

    /// After pops: whether the producer had found the ring full since it was
    /// last told (the caller wakes the producer's shard). Clears the flag.
    pub fn take_producer_waiting(&self) -> bool {
        // Head (stored by the pops), then flag: see the module's text.
        std::sync::atomic::fence(Ordering::SeqCst);
        self.ring.waiting.load(Ordering::Relaxed) && self.ring.waiting.swap(false, Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_come_out_in_order_and_a_full_ring_gives_the_item_back() {
        let (mut p, mut c) = ring::<u32>(3);
        for i in 0..4 {
            p.push(i).unwrap();
        }
        assert_eq!(p.push(4), Err(4), "4 slots (3 rounded up) are full");
        assert!(p.is_full());
        assert_eq!(c.pop(), Some(0));
        assert!(!p.is_full());
        p.push(4).unwrap();
        let got: Vec<u32> = std::iter::from_fn(|| c.pop()).collect();
        assert_eq!(got, [1, 2, 3, 4]);
        assert_eq!(c.pop(), None);
    }

    #[test]
    fn indexes_wrap_around() {
        let (mut p, mut c) = ring::<usize>(2);
        // Start both ends just below the wrap of usize.
        let near = usize::MAX - 3;
        p.tail = near;
        p.head_seen = near;
        c.head = near;
        c.tail_seen = near;
        p.ring.head.0.store(near, Ordering::Relaxed);
        p.ring.tail.0.store(near, Ordering::Relaxed);
        for i in 0..10 {
            p.push(i).unwrap();
            p.push(i + 100).unwrap();
            assert_eq!(p.push(0), Err(0));
            assert_eq!((c.pop(), c.pop(), c.pop()), (Some(i), Some(i + 100), None));
        }
    }

    #[test]
    fn what_is_left_is_dropped_with_the_ring() {
        let item = Arc::new(());
        let (mut p, mut c) = ring(4);
        for _ in 0..3 {
            p.push(item.clone()).unwrap();
        }
        drop(c.pop());
        assert_eq!(Arc::strong_count(&item), 3);
        drop((p, c));
        assert_eq!(Arc::strong_count(&item), 1, "the two left in the ring were dropped");
    }

    #[test]
    fn two_threads_move_every_item_once_in_order() {
        const ITEMS: u64 = 2_000_000;
        let (mut p, mut c) = ring::<Box<u64>>(8);
        let producer = std::thread::spawn(move || {
            let mut full = 0u64;
            for i in 0..ITEMS {
                let mut item = Box::new(i);
                loop {
                    match p.push(item) {
                        Ok(()) => break,
                        Err(back) => {
                            item = back;
                            full += 1;
                            std::hint::spin_loop();
                        }
                    }
                }
            }
            full
        });
        let mut next = 0u64;
        while next < ITEMS {
            match c.pop() {
                Some(item) => {
                    assert_eq!(*item, next, "out of order or lost");
                    next += 1;
                }
                None => std::hint::spin_loop(),
            }
        }
        let _full = producer.join().unwrap();
        assert_eq!(c.pop(), None, "nothing more than was pushed");
    }
}
