//! Small JSON state files (users, vhosts, permissions, policies, parameters, limits),
//! replaced atomically: write a temp file, fsync it, rename over the old one, fsync the
//! directory. A crash leaves either the old or the new file, never a mix.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::Serialize;

/// Largest JSON state file read back; definitions of a big broker are a few MB.
pub const JSON_FILE_MAX_BYTES: u64 = 64 * 1024 * 1024;

/// `path` with `.tmp` appended (same directory, so the rename is atomic).
pub(crate) fn temp_path(path: &Path) -> PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(".tmp");
    PathBuf::from(p)
}

/// Fsyncs the directory holding `path`, making a rename or create in it durable.
pub(crate) fn sync_parent_dir(path: &Path) -> io::Result<()> {
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    File::open(parent)?.sync_all()
}

/// Writes `bytes` to `path` atomically and durably (temp file, fsync, rename, fsync dir).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let tmp = temp_path(path);
    let mut f = OpenOptions::new().write(true).create(true).truncate(true).open(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    drop(f);
    // Appends to `path` told without their bytes are read before it is replaced.
    crate::changes::barrier();
    fs::rename(&tmp, path)?;
    crate::changes::replaced(path, bytes);
    sync_parent_dir(path)
}

/// Serializes `value` as pretty JSON and writes it with [`write_atomic`].
pub fn write_json_atomic<T: Serialize + ?Sized>(path: &Path, value: &T) -> io::Result<()> {
    let bytes = serde_json::to_vec_pretty(value).map_err(io::Error::other)?;
    write_atomic(path, &bytes)
}

/// Reads a JSON file; `Ok(None)` if it does not exist. Malformed JSON is
/// `ErrorKind::InvalidData`.
pub fn read_json<T: DeserializeOwned>(path: &Path) -> io::Result<Option<T>> {
    let f = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    if f.metadata()?.len() > JSON_FILE_MAX_BYTES {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{} is over {JSON_FILE_MAX_BYTES} bytes", path.display()),
        ));
    }
    let value =
        serde_json::from_reader(io::BufReader::new(f)).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
    Ok(Some(value))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn json_round_trip_and_missing_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("users.json");
        assert_eq!(read_json::<BTreeMap<String, u32>>(&path).unwrap(), None);
        let v: BTreeMap<String, u32> = [("guest".to_string(), 1)].into();
        write_json_atomic(&path, &v).unwrap();
        assert_eq!(read_json::<BTreeMap<String, u32>>(&path).unwrap(), Some(v));
        assert!(!temp_path(&path).exists());
        fs::write(&path, b"{not json").unwrap();
        assert_eq!(
            read_json::<BTreeMap<String, u32>>(&path).unwrap_err().kind(),
            io::ErrorKind::InvalidData
        );
    }
}
