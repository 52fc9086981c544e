//! The data directory's disk: free bytes (checked on a timer) and removing the
//! files of transient queues from an earlier run.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// Free bytes available to unprivileged users on the filesystem of `path`.
pub fn free_bytes(path: &Path) -> std::io::Result<u64> {
    let c = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidInput, "path contains NUL"))?;
    let mut st = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: `c` is a valid NUL-terminated path that outlives the call, and `st`
    // points to writable memory of the right size; statvfs only writes into it.
    let rc = unsafe { libc::statvfs(c.as_ptr(), st.as_mut_ptr()) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: statvfs returned 0, so it initialised the whole struct.
    let st = unsafe { st.assume_init() };
    // The field types differ between platforms (u32 on some 32-bit targets).
    #[allow(clippy::unnecessary_cast)]
    Ok(st.f_bavail as u64 * st.f_frsize as u64)
}

/// Removes the folders `trash` (transient queue files of an earlier run, see
/// `Broker::take_trash`), one queue folder at a time, stopping at `deadline` if
/// one is given: at shutdown what is left then waits for the next start.
/// Returns how many queue folders were removed and whether all of `trash` is gone.
pub fn remove_trash(trash: &[std::path::PathBuf], deadline: Option<std::time::Instant>) -> (usize, bool) {
    let mut removed = 0;
    for root in trash {
        let entries = match std::fs::read_dir(root) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => {
                tracing::warn!(dir = %root.display(), error = %e, "cannot read leftover transient queue files");
                continue;
            }
        };
        for entry in entries.flatten() {
            if deadline.is_some_and(|d| std::time::Instant::now() >= d) {
                return (removed, false);
            }
            let path = entry.path();
            let r = if path.is_dir() {
                std::fs::remove_dir_all(&path)
            } else {
                std::fs::remove_file(&path)
            };
            match r {
                Ok(()) => removed += 1,
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "cannot remove leftover transient queue files")
                }
            }
        }
        if let Err(e) = std::fs::remove_dir(root) {
            if e.kind() != std::io::ErrorKind::NotFound {
                tracing::warn!(dir = %root.display(), error = %e, "cannot remove leftover transient queue folder");
                return (removed, false);
            }
        }
    }
    (removed, true)
}

#[cfg(test)]
mod tests {
    #[test]
    fn tmp_has_some_space() {
        let free = super::free_bytes(std::path::Path::new("/tmp")).unwrap();
        assert!(free > 0);
    }
}
