//! The group commit through the ring: every fdatasync of a job in parallel,
//! the job done when the last completes. The loop never blocks on the disk.

use std::os::fd::AsRawFd;

use io_uring::{opcode, types};

use super::submit::{user_data, Cqe, KIND_SYNC};
use super::Driver;
use crate::core::amqp::confirm::SyncJob;

/// The group commit in flight: the job and its fsyncs still running.
pub(super) struct SyncInFlight {
    job: SyncJob,
    remaining: usize,
    error: Option<std::io::Error>,
}

impl Driver {
    /// Group commit through the ring: one fdatasync SQE per data file and per
    /// definitions log with new records (and an
    /// fsync per new directory entry), all in parallel; the job completes when
    /// the last one does. The loop never blocks on the disk.
    pub(super) fn start_sync(&mut self, job: SyncJob) {
        let mut fds = Vec::new();
        for b in &job.batches {
            fds.extend(b.files().iter().map(|f| (f.as_raw_fd(), true)));
            fds.extend(b.dir().map(|d| (d.as_raw_fd(), false)));
        }
        fds.extend(job.definition_files().iter().map(|f| (f.as_raw_fd(), true)));
        if fds.is_empty() {
            self.shared.broker.borrow_mut().handle_sync_done(job, Ok(()));
            return;
        }
        self.sync = Some(SyncInFlight {
            job,
            remaining: fds.len(),
            error: None,
        });
        for (fd, data_only) in fds {
            let mut op = opcode::Fsync::new(types::Fd(fd));
            if data_only {
                op = op.flags(types::FsyncFlags::DATASYNC);
            }
            self.push(op.build().user_data(user_data(KIND_SYNC, 0, 0)));
        }
    }

    pub(super) fn on_sync(&mut self, c: Cqe) {
        let s = self.sync.as_mut().expect("fsync completion without a group commit");
        s.remaining -= 1;
        if c.res < 0 && s.error.is_none() {
            s.error = Some(std::io::Error::from_raw_os_error(-c.res));
        }
        if s.remaining == 0 {
            let s = self.sync.take().expect("checked above");
            let result = s.error.map_or(Ok(()), Err);
            self.shared.broker.borrow_mut().handle_sync_done(s.job, result);
        }
    }
}
