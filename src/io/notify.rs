//! systemd readiness: the `sd_notify(3)` protocol, without libsystemd.
//!
//! Under `Type=notify` systemd passes `NOTIFY_SOCKET`, the address of a unix
//! datagram socket, and considers the service started only when it receives
//! `READY=1` there. We send it once the AMQP, HTTP API and metrics listeners are
//! bound (so a unit ordered `After=ringmq.service` finds the ports accepting), a
//! `STATUS=` line before that while the data directory is opened (recovery checks
//! every stored record, which can take minutes), and `STOPPING=1` when a graceful
//! shutdown begins. The protocol is one datagram of
//! newline-separated `KEY=value` lines; the address is a file system path or, with
//! a leading `@`, a Linux abstract socket name.
//!
//! `NOTIFY_SOCKET` is read by `main` (the process's edge) and handed in through
//! [`super::ListenConfig`]: the io layer reads no environment of its own, and
//! tests can point a broker at a socket without touching their process's
//! environment. A failed notification is logged and otherwise ignored: systemd
//! then times the start out, which says more than a broker that refused to run.

use std::ffi::OsStr;
use std::io;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::time::Duration;

/// A datagram to systemd normally goes out at once; if its queue is full, wait
/// this long at most rather than stall the loop (the message is then lost and
/// logged).
const SEND_TIMEOUT: Duration = Duration::from_millis(500);

/// Where readiness goes: systemd's socket, or nowhere when not run by systemd
/// with `Type=notify`.
#[derive(Debug)]
pub(crate) struct Notifier {
    target: Option<SocketAddr>,
}

impl Notifier {
    /// From the value of `NOTIFY_SOCKET`, if it was set. An address we cannot use
    /// is logged once here and notifications are off.
    pub(crate) fn new(notify_socket: Option<&OsStr>) -> Notifier {
        let target = match notify_socket.map(parse_address) {
            None | Some(Ok(None)) => None,
            Some(Ok(Some(addr))) => Some(addr),
            Some(Err(e)) => {
                tracing::warn!(error = %e, "NOTIFY_SOCKET is not usable; systemd will not hear that ringmq is ready");
                None
            }
        };
        Notifier { target }
    }

    /// `READY=1`: every listener is bound. `status` is shown by `systemctl status`.
    pub(crate) fn ready(&self, status: &str) {
        let pid = std::process::id();
        self.notify(&format!("READY=1\nMAINPID={pid}\nSTATUS={}", one_line(status)));
    }

    /// `STATUS=` alone: what the broker is doing (`systemctl status` shows it).
    pub(crate) fn status(&self, status: &str) {
        self.notify(&format!("STATUS={}", one_line(status)));
    }

    /// `STOPPING=1`: a graceful shutdown has begun.
    pub(crate) fn stopping(&self, status: &str) {
        self.notify(&format!("STOPPING=1\nSTATUS={}", one_line(status)));
    }

    fn notify(&self, message: &str) {
        let Some(target) = &self.target else { return };
        match send(target, message) {
            Ok(()) => tracing::debug!(message, "notified systemd"),
            Err(e) => tracing::warn!(error = %e, message, "cannot notify systemd"),
        }
    }
}

/// `None` for an empty value (as libsystemd treats it: not under systemd).
fn parse_address(value: &OsStr) -> io::Result<Option<SocketAddr>> {
    let bytes = value.as_bytes();
    match bytes.first() {
        None => Ok(None),
        Some(b'@') => SocketAddr::from_abstract_name(&bytes[1..]).map(Some),
        Some(b'/') => SocketAddr::from_pathname(value).map(Some),
        // systemd 254 added `vsock:CID:PORT` for VMs; a broker is not run that way.
        Some(_) => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "{:?}: expected an absolute path or @abstract-name",
                value.to_string_lossy()
            ),
        )),
    }
}

fn send(target: &SocketAddr, message: &str) -> io::Result<()> {
    let socket = UnixDatagram::unbound()?;
    socket.set_write_timeout(Some(SEND_TIMEOUT))?;
    let sent = socket.send_to_addr(message.as_bytes(), target)?;
    if sent != message.len() {
        return Err(io::Error::new(io::ErrorKind::WriteZero, "datagram truncated"));
    }
    Ok(())
}

/// A newline would start a new assignment in the datagram.
fn one_line(s: &str) -> String {
    s.replace('\n', " ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsString;

    fn receive(socket: &UnixDatagram) -> String {
        socket.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut buf = [0u8; 4096];
        let n = socket.recv(&mut buf).expect("a datagram");
        String::from_utf8(buf[..n].to_vec()).unwrap()
    }

    #[test]
    fn ready_and_stopping_reach_a_path_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify.sock");
        let receiver = UnixDatagram::bind(&path).unwrap();
        let n = Notifier::new(Some(path.as_os_str()));
        n.ready("AMQP on 127.0.0.1:5672\nand more");
        assert_eq!(
            receive(&receiver),
            format!(
                "READY=1\nMAINPID={}\nSTATUS=AMQP on 127.0.0.1:5672 and more",
                std::process::id()
            )
        );
        n.stopping("closing connections");
        assert_eq!(receive(&receiver), "STOPPING=1\nSTATUS=closing connections");
        n.status("busy");
        assert_eq!(receive(&receiver), "STATUS=busy");
    }

    #[test]
    fn abstract_socket_with_a_leading_at() {
        let name = format!("ringmq-notify-test-{}-{}", std::process::id(), crate::io::now_ms());
        let addr = SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let receiver = UnixDatagram::bind_addr(&addr).unwrap();
        let n = Notifier::new(Some(OsString::from(format!("@{name}")).as_os_str()));
        n.ready("up");
        assert!(receive(&receiver).starts_with("READY=1\nMAINPID="));
    }

    #[test]
    fn no_socket_or_a_bad_one_is_not_fatal() {
        // Unset or empty: off, silently.
        assert!(Notifier::new(None).target.is_none());
        assert!(Notifier::new(Some(OsStr::new(""))).target.is_none());
        // Unsupported address: off, with a warning.
        assert!(Notifier::new(Some(OsStr::new("vsock:2:1234"))).target.is_none());
        // A socket that is gone: the send fails, is logged, and nothing panics.
        let dir = tempfile::tempdir().unwrap();
        let gone = dir.path().join("gone.sock");
        let n = Notifier::new(Some(gone.as_os_str()));
        assert!(n.target.is_some());
        assert!(send(n.target.as_ref().unwrap(), "READY=1").is_err());
        n.ready("up");
        n.stopping("down");
    }
}
