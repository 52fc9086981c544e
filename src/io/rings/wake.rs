//! A shard's wake-up: an eventfd its loop watches (io_uring or epoll), written
//! by a peer that pushed to one of the shard's inbound rings. A flag makes it
//! one write until the shard has taken the wake, however many peers and turns
//! pushed meanwhile: a peer's push costs a syscall only when the shard may be
//! asleep.

use std::fs::File;
use std::io::{ErrorKind, Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};

pub struct Wake {
    fd: File,
    /// Set by the first peer to wake the shard since it last took the wake.
    pending: AtomicBool,
}

impl std::fmt::Debug for Wake {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Wake").field("pending", &self.pending).finish()
    }
}

impl Wake {
    pub fn new() -> std::io::Result<Wake> {
        Ok(Wake {
            fd: File::from(super::super::uring::eventfd()?),
            pending: AtomicBool::new(false),
        })
    }

    /// A peer pushed to the shard's rings: wake it, unless a wake it has not
    /// taken yet is pending. The swap orders the push before it (release); see
    /// [`Self::take`] for the other side.
    pub fn wake(&self) -> std::io::Result<()> {
        if self.pending.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        match (&self.fd).write(&1u64.to_ne_bytes()) {
            // EAGAIN: the counter is at its maximum, so the fd is readable anyway.
            Err(e) if e.kind() != ErrorKind::WouldBlock => Err(e),
            _ => Ok(()),
        }
    }

    /// The shard takes the wake, before it pops its rings: every push whose
    /// wake found the flag set (and so wrote nothing) happened before this
    /// swap read it, so the pops after it see the item; a push after it wakes
    /// the shard again. Returns whether a wake was pending.
    pub fn take(&self) -> bool {
        let mut counter = [0u8; 8];
        // Non-blocking: WouldBlock when nobody wrote since the last read.
        let _ = (&self.fd).read(&mut counter);
        self.pending.swap(false, Ordering::AcqRel)
    }
}

/// A shard loop's watch on its wake-up (made inside the shard's runtime).
pub struct Watch(tokio::io::unix::AsyncFd<OwnedFd>);

impl std::fmt::Debug for Watch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Watch(..)")
    }
}

impl Wake {
    /// Registers the eventfd (a duplicate the watch owns) with the current
    /// tokio runtime.
    pub fn watch(&self) -> std::io::Result<Watch> {
        let fd = self.fd.as_fd().try_clone_to_owned()?;
        // SAFETY: the AsyncFd owns `fd`, so it stays open for as long as it is
        // registered (tokio's requirement for `register`).
        let fd = unsafe { tokio::io::unix::AsyncFd::register_with_interest(fd, tokio::io::Interest::READABLE) }
            .map_err(|e| e.into_parts().1)?;
        Ok(Watch(fd))
    }
}

impl Watch {
    /// Waits until a peer wakes the shard. Call [`Wake::take`] after it and
    /// before popping: a wake between this return and that take is covered by
    /// the take (its pops see the push), one after it makes the fd readable
    /// again, so the next wait returns at once.
    pub async fn wait(&self) -> std::io::Result<()> {
        let mut ready = self.0.readable().await?;
        ready.clear_ready();
        Ok(())
    }
}

impl AsFd for Wake {
    /// The eventfd the shard's loop waits on (readable: a peer pushed).
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    /// The eventfd's counter, from its fdinfo (reading the fd would reset it).
    fn counter(w: &Wake) -> u64 {
        let info = std::fs::read_to_string(format!("/proc/self/fdinfo/{}", w.as_fd().as_raw_fd())).unwrap();
        let hex = info.lines().find_map(|l| l.strip_prefix("eventfd-count:")).unwrap();
        u64::from_str_radix(hex.trim(), 16).unwrap()
    }

    #[test]
    fn one_write_until_the_wake_is_taken() {
        let w = Wake::new().unwrap();
        assert!(counter(&w) == 0 && !w.take());
        w.wake().unwrap();
        w.wake().unwrap();
        assert_eq!(counter(&w), 1, "the second wake wrote nothing");
        assert!(w.take(), "a wake was pending");
        assert_eq!(counter(&w), 0, "taking it reads the counter");
        assert!(!w.take());
        w.wake().unwrap();
        assert_eq!(counter(&w), 1, "a push after the take wakes again");
    }
}
