//! The data directory: one folder per vhost, one per queue inside it, each named by
//! the hex SHA-1 of the name so that any name (slashes, dots, non-ASCII, 255 bytes) is
//! a safe, fixed-length path component. The real name is kept in a small file inside
//! (`.vhost` / `.queue`), so listing does not need a separate index.
//!
//! A queue's folder is not named by the name alone: a queue deleted and declared
//! again is a new queue with new data, and the definitions log replays both
//! (issue 15: with one folder per name, replaying declare, delete, declare wiped
//! the new queue's confirmed messages). Each durable queue has a generation, which
//! its declare in the definitions log records: generation 0 is the folder
//! `<sha1>` that versions before generations wrote (still opened as it is), and
//! generation `n > 0` is `<sha1>-g<n>`.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use sha1::{Digest, Sha1};

use crate::meta::write_atomic;

/// File in a vhost folder holding the vhost's name.
pub const VHOST_NAME_FILE: &str = ".vhost";
/// File in a queue folder holding the queue's name.
pub const QUEUE_NAME_FILE: &str = ".queue";
/// The definitions log of a vhost.
pub const DEFINITIONS_FILE: &str = "definitions.amqp";

fn hashed(name: &str) -> String {
    hex::encode(Sha1::digest(name.as_bytes()))
}

/// Folder of vhost `name` under the data directory `root`.
pub fn vhost_dir(root: &Path, name: &str) -> PathBuf {
    root.join(hashed(name))
}

/// Folder of queue `name` in a vhost folder (generation 0).
pub fn queue_dir(vhost_dir: &Path, name: &str) -> PathBuf {
    queue_dir_gen(vhost_dir, name, 0)
}

/// Folder of generation `gen` of queue `name` in a vhost folder.
pub fn queue_dir_gen(vhost_dir: &Path, name: &str, gen: u32) -> PathBuf {
    vhost_dir.join(folder_name(name, gen))
}

fn folder_name(name: &str, gen: u32) -> String {
    match gen {
        0 => hashed(name),
        g => format!("{}-g{g}", hashed(name)),
    }
}

/// Whether `folder` is the folder of some generation of `name`.
fn is_folder_of(folder: &str, name: &str) -> bool {
    let h = hashed(name);
    match folder.strip_prefix(h.as_str()) {
        Some("") => true,
        Some(rest) => rest
            .strip_prefix("-g")
            .and_then(|g| g.parse::<u32>().ok())
            .is_some_and(|g| g > 0 && folder_name(name, g) == folder),
        None => false,
    }
}

fn create_named(dir: PathBuf, name_file: &str, name: &str) -> io::Result<PathBuf> {
    fs::create_dir_all(&dir)?;
    let name_path = dir.join(name_file);
    if !name_path.exists() {
        write_atomic(&name_path, name.as_bytes())?;
    }
    Ok(dir)
}

/// Creates (if needed) the folder of a transient queue (or transient delayed
/// exchange) `name` under `parent` and its name file, without fsyncs: the
/// folder is set aside and removed at the next start whatever it holds, so a
/// crash can leave nothing here that is read back. The name file is written
/// only for an operator looking at the folder. (Durable creation's fsyncs made
/// 80% of a transient declare's time on ext4.)
pub fn create_transient_dir(parent: &Path, name: &str) -> io::Result<PathBuf> {
    let dir = queue_dir(parent, name);
    fs::create_dir_all(&dir)?;
    // Under `transient/`: not told (`changes`).
    fs::write(dir.join(QUEUE_NAME_FILE), name.as_bytes())?;
    Ok(dir)
}

/// Files of a queue folder that are not its store's: the name file and the
/// broker's `paused` marker.
const NOT_STORE_FILES: &[&str] = &[QUEUE_NAME_FILE, "paused"];

/// Whether a queue folder holds anything of a message store (segments, ack
/// files, spares, marks, priority levels' folders, anything unknown): a folder
/// with only its name file (and a `paused` marker) is a queue whose store was
/// never opened, which recovery leaves unopened. A missing folder holds none.
pub fn holds_store_files(dir: &Path) -> io::Result<bool> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let name = entry?.file_name();
        if !NOT_STORE_FILES.iter().any(|f| name.as_encoded_bytes() == f.as_bytes()) {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Creates (if needed) the vhost folder and its name file; returns the folder.
pub fn create_vhost_dir(root: &Path, name: &str) -> io::Result<PathBuf> {
    create_named(vhost_dir(root, name), VHOST_NAME_FILE, name)
}

/// Creates (if needed) the queue folder (generation 0) and its name file; returns
/// the folder.
pub fn create_queue_dir(vhost_dir: &Path, name: &str) -> io::Result<PathBuf> {
    create_queue_dir_gen(vhost_dir, name, 0)
}

/// Creates (if needed) the folder of generation `gen` of queue `name` and its name
/// file; returns the folder.
pub fn create_queue_dir_gen(vhost_dir: &Path, name: &str, gen: u32) -> io::Result<PathBuf> {
    create_named(queue_dir_gen(vhost_dir, name, gen), QUEUE_NAME_FILE, name)
}

fn list_named(parent: &Path, name_file: &str) -> io::Result<Vec<(String, PathBuf)>> {
    let mut out = Vec::new();
    let entries = match fs::read_dir(parent) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        if !entry.file_type()?.is_dir() {
            continue;
        }
        let dir = entry.path();
        match fs::read(dir.join(name_file)) {
            Ok(bytes) => match String::from_utf8(bytes) {
                // A folder whose hash does not match its name file was not made by us.
                Ok(name)
                    if dir
                        .file_name()
                        .and_then(|f| f.to_str())
                        .is_some_and(|f| is_folder_of(f, &name)) =>
                {
                    out.push((name, dir))
                }
                _ => tracing::warn!(dir = %dir.display(), "name file does not match folder; skipping"),
            },
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    out.sort();
    Ok(out)
}

/// Vhosts under `root`: (name, folder), sorted by name.
pub fn list_vhosts(root: &Path) -> io::Result<Vec<(String, PathBuf)>> {
    list_named(root, VHOST_NAME_FILE)
}

/// Queues of a vhost: (name, folder), sorted by name (a name may have folders of
/// several generations).
pub fn list_queues(vhost_dir: &Path) -> io::Result<Vec<(String, PathBuf)>> {
    list_named(vhost_dir, QUEUE_NAME_FILE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_folder_with_only_its_name_file_holds_no_store() {
        let root = tempfile::tempdir().unwrap();
        assert!(!holds_store_files(&root.path().join("missing")).unwrap());
        let dir = create_queue_dir_gen(root.path(), "q", 1).unwrap();
        fs::write(dir.join("paused"), b"").unwrap();
        assert!(!holds_store_files(&dir).unwrap());
        let (mut s, _) = crate::QueueStore::open(&dir, crate::StoreConfig::default()).unwrap();
        s.append(crate::MessageRef {
            timestamp_ms: 0,
            exchange: b"",
            routing_key: b"q",
            properties: b"",
            body: b"m",
        })
        .unwrap();
        s.close().unwrap();
        assert!(holds_store_files(&dir).unwrap());
    }

    #[test]
    fn names_round_trip_through_hashed_folders() {
        let root = tempfile::tempdir().unwrap();
        let vh = create_vhost_dir(root.path(), "/").unwrap();
        assert_eq!(vh, vhost_dir(root.path(), "/"));
        create_vhost_dir(root.path(), "prod/eu").unwrap();
        for q in ["a", "../../etc/passwd", "ünïcode", ""] {
            create_queue_dir(&vh, q).unwrap();
        }
        fs::create_dir(root.path().join("stray")).unwrap();
        let vhosts: Vec<String> = list_vhosts(root.path()).unwrap().into_iter().map(|(n, _)| n).collect();
        assert_eq!(vhosts, ["/", "prod/eu"]);
        let queues: Vec<String> = list_queues(&vh).unwrap().into_iter().map(|(n, _)| n).collect();
        assert_eq!(queues, ["", "../../etc/passwd", "a", "ünïcode"]);
    }

    #[test]
    fn transient_folders_are_named_as_generation_zero() {
        let root = tempfile::tempdir().unwrap();
        let dir = create_transient_dir(root.path(), "q/ü").unwrap();
        assert_eq!(dir, queue_dir(root.path(), "q/ü"));
        assert_eq!(fs::read(dir.join(QUEUE_NAME_FILE)).unwrap(), "q/ü".as_bytes());
        let again = create_transient_dir(root.path(), "q/ü").unwrap();
        assert_eq!(again, dir, "an existing folder is taken as it is");
        let listed: Vec<String> = list_queues(root.path()).unwrap().into_iter().map(|(n, _)| n).collect();
        assert_eq!(listed, ["q/ü"]);
    }

    #[test]
    fn generations_have_their_own_folders() {
        let root = tempfile::tempdir().unwrap();
        let vh = create_vhost_dir(root.path(), "/").unwrap();
        let g0 = create_queue_dir(&vh, "q").unwrap();
        assert_eq!(g0, queue_dir_gen(&vh, "q", 0), "generation 0 is the old layout");
        assert_eq!(g0.file_name().unwrap().to_str().unwrap(), hashed("q"));
        let g7 = create_queue_dir_gen(&vh, "q", 7).unwrap();
        assert_ne!(g0, g7);
        assert_eq!(g7.file_name().unwrap().to_str().unwrap(), format!("{}-g7", hashed("q")));
        let listed: Vec<PathBuf> = list_queues(&vh).unwrap().into_iter().map(|(_, d)| d).collect();
        assert_eq!(listed, [g0, g7]);
        for bad in ["-g0", "-g", "-gx", "-g07", "x"] {
            assert!(!is_folder_of(&format!("{}{bad}", hashed("q")), "q"), "{bad}");
        }
    }
}
