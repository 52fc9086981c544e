//! What the shards of one broker share of each vhost's folder: its definitions
//! log, how it was last stopped, and its `running` marker (`docs/shards.md`,
//! "one data directory").
//!
//! A vhost's folder is made (and removed) by the shard that made the op which
//! created (deleted) the vhost, or by shard 0 at start; it registers the
//! folder's shared part here ([`VhostFiles`]) before it appends the op, so
//! every other shard, applying the op later, finds it. Queue folders inside
//! are each their owner shard's and not shared.
//!
//! The definitions log is one file, written by whichever shard makes an op,
//! inside its metadata section: the metadata log's lock orders the sections,
//! so the file's records are in the log's order, and compaction, which
//! writes the live state from the compacting shard's copy, runs in a section
//! too (that copy then has every op). A shard syncs what it wrote with its own
//! group commit ([`VhostLog::take_sync`]), so a declare-ok on any shard still
//! means its record is on disk. With one shard nothing is shared and the
//! lock is never contended.

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::sync::{Arc, Mutex, MutexGuard};

use ringmq_store::definitions::DefinitionsLog;
use ringmq_store::running::Running;
use ringmq_store::LastStop;

use crate::core::model::ids::VhostName;

/// A vhost's definitions log, as one shard holds it.
#[derive(Debug)]
pub struct VhostLog {
    /// None for a vhost whose folder was removed before this shard applied
    /// its creation (created and deleted by another shard meanwhile): such a
    /// copy is behind the log and never makes an op, so it writes nothing.
    log: Option<Arc<Mutex<DefinitionsLog>>>,
    /// This shard appended records since its last [`Self::take_sync`].
    unsynced: bool,
}

impl VhostLog {
    pub fn new(log: DefinitionsLog) -> VhostLog {
        VhostLog {
            log: Some(Arc::new(Mutex::new(log))),
            unsynced: false,
        }
    }

    /// The log of a vhost whose folder is gone (see the field).
    pub fn gone() -> VhostLog {
        VhostLog {
            log: None,
            unsynced: false,
        }
    }

    /// Another shard's handle on the same log.
    fn share(&self) -> VhostLog {
        VhostLog {
            log: self.log.clone(),
            unsynced: false,
        }
    }

    fn lock(&self) -> io::Result<MutexGuard<'_, DefinitionsLog>> {
        let log = (self.log.as_ref()).ok_or_else(|| io::Error::other("the vhost's folder was removed"))?;
        // A shard that panicked while appending left the file cut back to its
        // last whole record (`DefinitionsLog::append`): go on with it.
        Ok(log.lock().unwrap_or_else(|p| p.into_inner()))
    }

    pub fn append(&mut self, payload: &[u8]) -> io::Result<()> {
        self.lock()?.append(payload)?;
        self.unsynced = true;
        Ok(())
    }

    /// The file to fdatasync for the records this shard appended since the
    /// last call (another shard's sync may have covered them: syncing again
    /// costs little, releasing a reply before its record is durable would not).
    pub fn take_sync(&mut self) -> Option<Arc<File>> {
        if !std::mem::take(&mut self.unsynced) {
            return None;
        }
        let mut log = self.lock().ok()?;
        let _ = log.take_sync();
        Some(log.file())
    }

    /// Makes this shard's records durable now.
    pub fn sync(&mut self) -> io::Result<()> {
        match self.take_sync() {
            Some(f) => f.sync_data(),
            None => Ok(()),
        }
    }

    pub fn live_check_due(&self) -> bool {
        self.lock().is_ok_and(|l| l.live_check_due())
    }

    pub fn live_checked(&self, live: u64, min: u64) {
        if let Ok(mut l) = self.lock() {
            l.live_checked(live, min);
        }
    }

    /// Records in the file (every shard's).
    pub fn record_count(&self) -> u64 {
        self.lock().map_or(0, |l| l.record_count())
    }

    pub fn records_since_compaction(&self) -> u64 {
        self.lock().map_or(0, |l| l.records_since_compaction())
    }

    /// Replaces the log with `live`: the caller's copy must have every op
    /// (a section, see the module's text).
    pub fn compact<I, R>(&mut self, live: I) -> io::Result<()>
    where
        I: IntoIterator<Item = R>,
        R: AsRef<[u8]>,
    {
        self.lock()?.compact(live)?;
        // Every live record is durable in the new file.
        self.unsynced = false;
        Ok(())
    }
}

/// The shared part of one vhost's folder.
#[derive(Debug)]
struct SharedVhost {
    log: VhostLog,
    last_stop: LastStop,
    /// The marker and how many shards have closed the vhost cleanly: the
    /// last one releases it, so a crash of any shard before that leaves it.
    running: Mutex<(Option<Running>, u16)>,
}

/// The vhost folders of one broker's shards, by vhost name.
#[derive(Debug)]
pub struct VhostFiles {
    shards: u16,
    vhosts: Mutex<HashMap<VhostName, Arc<SharedVhost>>>,
}

/// What a shard holds of a shared vhost folder besides its log handle.
#[derive(Debug, Clone)]
pub struct VhostShare(Arc<SharedVhost>);

impl VhostFiles {
    pub fn new(shards: u16) -> Arc<VhostFiles> {
        Arc::new(VhostFiles {
            shards,
            vhosts: Mutex::new(HashMap::new()),
        })
    }

    fn map(&self) -> MutexGuard<'_, HashMap<VhostName, Arc<SharedVhost>>> {
        self.vhosts.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The shard that made the folder registers it (replacing a deleted
    /// vhost's entry of the same name); returns its share.
    pub fn register(&self, name: &VhostName, log: &VhostLog, last_stop: LastStop, running: Running) -> VhostShare {
        let shared = Arc::new(SharedVhost {
            log: log.share(),
            last_stop,
            running: Mutex::new((Some(running), 0)),
        });
        self.map().insert(name.clone(), shared.clone());
        VhostShare(shared)
    }

    /// Another shard's handle on a registered folder: its log and how it was
    /// last stopped; None when its maker removed it already.
    pub fn follow(&self, name: &VhostName) -> Option<(VhostLog, LastStop, VhostShare)> {
        let shared = self.map().get(name)?.clone();
        Some((shared.log.share(), shared.last_stop, VhostShare(shared)))
    }

    /// The maker of a vhost's delete: the folder is to be removed.
    pub fn unregister(&self, name: &VhostName) {
        self.map().remove(name);
    }

    /// A shard closed the vhost cleanly; the last of the broker's shards to do
    /// so releases the `running` marker.
    pub fn closed_cleanly(&self, share: &VhostShare) -> io::Result<()> {
        let mut running = share.0.running.lock().unwrap_or_else(|p| p.into_inner());
        running.1 += 1;
        if running.1 < self.shards {
            return Ok(());
        }
        running.0.take().map_or(Ok(()), |r| r.release())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_shard_to_close_releases_the_marker_and_records_of_all_land_in_one_file() {
        let dir = tempfile::tempdir().unwrap();
        let name = VhostName::new("/").unwrap();
        let running = Running::acquire(dir.path()).unwrap();
        let (log, _) = DefinitionsLog::open(&dir.path().join("definitions.amqp")).unwrap();
        let mut mine = VhostLog::new(log);
        let files = VhostFiles::new(2);
        let share0 = files.register(&name, &mine, LastStop::Clean, running);
        let (mut theirs, last_stop, share1) = files.follow(&name).unwrap();
        assert_eq!(last_stop, LastStop::Clean);
        mine.append(b"zero").unwrap();
        theirs.append(b"one").unwrap();
        // Each shard syncs what it wrote, whoever synced last.
        assert!(mine.take_sync().is_some());
        assert!(theirs.take_sync().is_some());
        assert!(mine.take_sync().is_none());
        files.closed_cleanly(&share0).unwrap();
        let marker = dir.path().join(ringmq_store::running::RUNNING_FILE);
        assert!(marker.exists(), "one shard is still open");
        files.closed_cleanly(&share1).unwrap();
        assert!(!marker.exists());
        let (_, records) = DefinitionsLog::open(&dir.path().join("definitions.amqp")).unwrap();
        assert_eq!(records, vec![b"zero".to_vec(), b"one".to_vec()]);
        files.unregister(&name);
        assert!(files.follow(&name).is_none());
    }
}
