//! For tests: a replica fed by recording this thread's changes
//! ([`super::record::Recorder`]), checked against the data directory byte
//! for byte. [`Replica::check`] reads what is pending (as the leader does at
//! a group commit), applies the new changes to files in memory (as a
//! follower would) and compares; [`Replica::replay_on_disk`] replays every
//! change from the first into an empty directory on disk.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use super::dir_files::DirFiles;
use super::files::{Files, MemFiles};
use super::log::ReplLog;
use super::record::Recorder;
use super::wire::Op;

pub(crate) struct Replica {
    root: PathBuf,
    log: Arc<Mutex<ReplLog>>,
    applied: u64,
    files: MemFiles,
    pub checks: usize,
    pub files_max: usize,
}

impl Replica {
    /// Records this thread's changes to `root` from now on (`root` empty).
    pub fn record(root: &Path) -> Replica {
        let log = Arc::new(Mutex::new(ReplLog::new(usize::MAX)));
        ringmq_store::changes::install(Box::new(Recorder::new(root, log.clone())));
        Replica {
            root: root.to_path_buf(),
            log,
            applied: 0,
            files: MemFiles::default(),
            checks: 0,
            files_max: 0,
        }
    }

    /// The changes recorded so far.
    pub fn changes(&self) -> u64 {
        self.log.lock().unwrap().last_seq()
    }

    /// How many changes of each kind were recorded (write, replace,
    /// truncate, remove, rename), and the most files the replica held.
    pub fn kinds(&self) -> [u64; 5] {
        let log = self.log.lock().unwrap();
        let mut n = [0; 5];
        for op in log.since(1, usize::MAX, usize::MAX).expect("kept") {
            n[match op {
                Op::Write { .. } => 0,
                Op::Replace { .. } => 1,
                Op::Truncate { .. } => 2,
                Op::Remove { .. } => 3,
                Op::Rename { .. } => 4,
            }] += 1;
        }
        n
    }

    /// Flushes, applies what is new, compares with the directory.
    pub fn check(&mut self, when: &str) -> Result<(), String> {
        ringmq_store::changes::synced();
        let log = self.log.lock().unwrap();
        let ops = log.since(self.applied + 1, usize::MAX, usize::MAX).expect("kept");
        for op in &ops {
            self.files
                .apply(op)
                .map_err(|e| format!("{when}: applying {op:?}: {e}"))?;
        }
        self.applied = log.last_seq();
        drop(log);
        self.checks += 1;
        self.files_max = self.files_max.max(self.files.files.len());
        diff(&self.files.files, &walk(&self.root)).map_err(|d| format!("{when}: {d}"))
    }

    /// Every change from the first, applied on disk to an empty directory.
    pub fn replay_on_disk(&self) -> Result<(), String> {
        let dir = tempfile::tempdir().unwrap();
        let mut disk = DirFiles::new(dir.path(), &[]);
        let log = self.log.lock().unwrap();
        for op in log.since(1, usize::MAX, usize::MAX).expect("kept") {
            disk.apply(&op).map_err(|e| format!("on disk: applying {op:?}: {e}"))?;
        }
        disk.sync().map_err(|e| e.to_string())?;
        diff(&walk(dir.path()), &walk(&self.root)).map_err(|d| format!("replayed on disk: {d}"))
    }

    pub fn stop(self) {
        ringmq_store::changes::uninstall();
    }
}

/// Whether a path (relative, by components) is replicated: not the lock, not
/// a vhost's `transient/` or its `transient.trash.N` leftovers. Written apart
/// from the recorder's rule, so a test checks that one.
fn replicated(parts: &[&str]) -> bool {
    match parts {
        [".lock"] => false,
        [_, second, ..] => *second != "transient" && !second.starts_with("transient.trash."),
        _ => true,
    }
}

/// The replicated files under `root`, with their bytes.
pub(crate) fn walk(root: &Path) -> BTreeMap<String, Vec<u8>> {
    fn go(dir: &Path, rel: &mut Vec<String>, out: &mut BTreeMap<String, Vec<u8>>) {
        let Ok(entries) = std::fs::read_dir(dir) else { return };
        for e in entries.flatten() {
            rel.push(e.file_name().to_string_lossy().into_owned());
            let parts: Vec<&str> = rel.iter().map(String::as_str).collect();
            if replicated(&parts) {
                let kind = e.file_type().unwrap();
                if kind.is_dir() {
                    go(&e.path(), rel, out);
                } else if kind.is_file() {
                    out.insert(parts.join("/"), std::fs::read(e.path()).unwrap());
                }
            }
            rel.pop();
        }
    }
    let mut out = BTreeMap::new();
    go(root, &mut Vec::new(), &mut out);
    out
}

/// The first difference between a replica and the source, said plainly.
pub(crate) fn diff(replica: &BTreeMap<String, Vec<u8>>, source: &BTreeMap<String, Vec<u8>>) -> Result<(), String> {
    for (path, want) in source {
        match replica.get(path) {
            None => return Err(format!("{path} ({} bytes) missing from the replica", want.len())),
            Some(got) if got != want => {
                let at = got.iter().zip(want).position(|(a, b)| a != b);
                return Err(format!(
                    "{path}: replica {} bytes, source {}, first difference at {at:?}",
                    got.len(),
                    want.len()
                ));
            }
            Some(_) => {}
        }
    }
    match replica.keys().find(|p| !source.contains_key(*p)) {
        Some(extra) => Err(format!("{extra} in the replica only")),
        None => Ok(()),
    }
}
