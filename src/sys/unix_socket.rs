//! A Unix domain socket listener: LavinMQ's `unix_path` under `[amqp]` and
//! `[mgmt]`, for clients and proxies on the same host.
//!
//! The socket file is made 0666, as LavinMQ makes it: who may connect is
//! decided by the login (AMQP's, the API's basic auth), as on a loopback TCP
//! port any local user can reach; a deployment that wants fewer local users in
//! puts the socket in a directory they cannot enter (systemd's
//! `RuntimeDirectory=` with `RuntimeDirectoryMode=0750`). The ringmqctl control
//! socket (`control_unix_path`) is made 0660 instead: it is found at a fixed
//! path, and a ringmqctl of another user falls back to TCP.
//!
//! A socket file left by a broker that crashed (or was killed) is removed at
//! start, but only once a connect to it is refused: a live process listening
//! there is never displaced. Anything that is not a socket is never removed.
//! At a clean shutdown the file goes with the listener, if it is still ours.

use std::cell::Cell;
use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// The socket file's mode (see the module's docs for why everyone may connect).
pub(crate) const SOCKET_MODE: u32 = 0o666;
/// The ringmqctl control socket's (`control_unix_path`): the broker's user and
/// group (and root). Another user's ringmqctl, refused there, uses TCP.
pub(crate) const CONTROL_SOCKET_MODE: u32 = 0o660;

/// Why a Unix socket listener could not be set up.
#[derive(Debug, thiserror::Error)]
pub(crate) enum UnixBindError {
    #[error("{}: a process is listening on this socket (another broker?); it is not taken over", path.display())]
    InUse { path: PathBuf },
    #[error("{}: exists and is not a socket; it is not replaced", path.display())]
    NotASocket { path: PathBuf },
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },
}

impl From<UnixBindError> for io::Error {
    fn from(e: UnixBindError) -> io::Error {
        let kind = match &e {
            UnixBindError::InUse { .. } => io::ErrorKind::AddrInUse,
            UnixBindError::NotASocket { .. } => io::ErrorKind::AlreadyExists,
            UnixBindError::Io { source, .. } => source.kind(),
        };
        io::Error::new(kind, e)
    }
}

pub(crate) struct UnixListener {
    inner: tokio::net::UnixListener,
    /// Absolute, as connections and logs name it.
    path: PathBuf,
    /// Device and inode of the file bound, so that only our own file is removed.
    file_id: (u64, u64),
    /// Connections accepted so far: a connection's peer is the path and this
    /// number, as a TCP peer is an address and a port.
    accepted: Cell<u64>,
}

impl UnixListener {
    /// Listens on `path` (made absolute against the working directory), after
    /// removing a stale socket file there.
    pub(crate) fn bind(path: &Path) -> Result<UnixListener, UnixBindError> {
        UnixListener::bind_with_mode(path, SOCKET_MODE)
    }

    /// [`bind`](Self::bind) with the socket file made `mode`.
    pub(crate) fn bind_with_mode(path: &Path, mode: u32) -> Result<UnixListener, UnixBindError> {
        let io_err = |path: &Path| {
            let path = path.to_owned();
            move |source| UnixBindError::Io { path, source }
        };
        let path = std::path::absolute(path).map_err(io_err(path))?;
        remove_stale(&path)?;
        let std_listener = std::os::unix::net::UnixListener::bind(&path).map_err(io_err(&path))?;
        let set_up = || -> io::Result<(tokio::net::UnixListener, (u64, u64))> {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))?;
            let meta = std::fs::metadata(&path)?;
            std_listener.set_nonblocking(true)?;
            Ok((
                tokio::net::UnixListener::from_std(std_listener)?,
                (meta.dev(), meta.ino()),
            ))
        };
        match set_up() {
            Ok((inner, file_id)) => Ok(UnixListener {
                inner,
                path,
                file_id,
                accepted: Cell::new(0),
            }),
            Err(e) => {
                let _ = std::fs::remove_file(&path);
                Err(io_err(&path)(e))
            }
        }
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// The next connection, and the name of its peer (`PATH:N`).
    pub(crate) async fn accept(&self) -> io::Result<(tokio::net::UnixStream, String)> {
        let (stream, _) = self.inner.accept().await?;
        let n = self.accepted.get() + 1;
        self.accepted.set(n);
        Ok((stream, format!("{}:{n}", self.path.display())))
    }
}

impl Drop for UnixListener {
    fn drop(&mut self) {
        let ours = std::fs::symlink_metadata(&self.path).is_ok_and(|m| (m.dev(), m.ino()) == self.file_id);
        if ours {
            match std::fs::remove_file(&self.path) {
                Ok(()) => tracing::debug!(path = %self.path.display(), "Unix socket removed"),
                Err(e) => tracing::warn!(path = %self.path.display(), error = %e, "cannot remove the Unix socket"),
            }
        }
    }
}

/// Removes a socket file nobody listens on; refuses a live one and anything
/// that is not a socket.
fn remove_stale(path: &Path) -> Result<(), UnixBindError> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(source) => {
            return Err(UnixBindError::Io {
                path: path.into(),
                source,
            })
        }
    };
    if !meta.file_type().is_socket() {
        return Err(UnixBindError::NotASocket { path: path.into() });
    }
    match std::os::unix::net::UnixStream::connect(path) {
        Ok(_) => Err(UnixBindError::InUse { path: path.into() }),
        Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
            tracing::info!(path = %path.display(), "removing a stale Unix socket (nothing listens on it)");
            std::fs::remove_file(path).map_err(|source| UnixBindError::Io {
                path: path.into(),
                source,
            })
        }
        Err(source) => Err(UnixBindError::Io {
            path: path.into(),
            source,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "current_thread")]
    async fn binds_accepts_and_removes_its_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.sock");
        let l = UnixListener::bind(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, SOCKET_MODE);
        let _client = tokio::net::UnixStream::connect(&path).await.unwrap();
        let (_, peer) = l.accept().await.unwrap();
        assert_eq!(peer, format!("{}:1", path.display()));
        drop(l);
        assert!(!path.exists(), "socket file left behind");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_stale_socket_is_replaced_a_live_one_and_a_file_are_not() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.sock");
        // Stale: bound, then the listener closed without removing the file.
        drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
        assert!(path.exists());
        let live = UnixListener::bind(&path).unwrap();
        assert!(matches!(UnixListener::bind(&path), Err(UnixBindError::InUse { .. })));
        drop(live);
        std::fs::write(&path, b"not a socket").unwrap();
        assert!(matches!(
            UnixListener::bind(&path),
            Err(UnixBindError::NotASocket { .. })
        ));
        assert_eq!(std::fs::read(&path).unwrap(), b"not a socket");
    }

    #[test]
    fn only_our_own_file_is_removed() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let _g = rt.enter();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("o.sock");
        let l = UnixListener::bind(&path).unwrap();
        // Someone replaced the file meanwhile: it is theirs now.
        std::fs::remove_file(&path).unwrap();
        std::fs::write(&path, b"theirs").unwrap();
        drop(l);
        assert_eq!(std::fs::read(&path).unwrap(), b"theirs");
    }
}
