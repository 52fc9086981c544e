//! `ringmqctl ping [HOST:PORT]`: is the broker serving AMQP? For health checks
//! (the Docker image's `HEALTHCHECK`, systemd, load balancers), so it needs no
//! credentials and no management listener.
//!
//! It connects, sends the AMQP 0-9-1 protocol header and waits for the broker's
//! `connection.start`, then closes. An open port alone would not do: a broker whose
//! loop is wedged still completes TCP handshakes in the kernel's backlog, but only
//! a running loop answers the header (RabbitMQ's `rabbitmq-diagnostics ping` asks
//! the node, too). Any AMQP 0-9-1 broker passes, RabbitMQ included.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use crate::error::CtlError;

/// The AMQP 0-9-1 protocol header (AMQP 0-9-1 §4.2.2).
const PROTOCOL_HEADER: &[u8; 8] = b"AMQP\x00\x00\x09\x01";
/// Frame type METHOD, channel 0, then class 10 (connection), method 10 (start).
const FRAME_METHOD: u8 = 1;
const CONNECTION_START: [u8; 4] = [0, 10, 0, 10];
pub const DEFAULT_ADDR: &str = "127.0.0.1:5672";

/// Pings `addr` (`host:port`, `[v6]:port`, a host alone for port 5672, or
/// the path of the broker's AMQP Unix socket); the whole exchange must finish
/// within `timeout`.
pub fn ping(addr: &str, timeout: Duration) -> Result<String, CtlError> {
    let deadline = Instant::now() + timeout;
    if addr.contains('/') {
        let s = std::os::unix::net::UnixStream::connect(addr)
            .map_err(|e| CtlError::Unavailable(format!("ping {addr}: {e}")))?;
        return exchange(s, addr, deadline, timeout, |s, t| s.set_read_timeout(t));
    }
    let with_port = if addr
        .rsplit_once(':')
        .is_some_and(|(h, p)| !h.ends_with(':') && p.parse::<u16>().is_ok())
    {
        addr.to_owned()
    } else {
        format!("{addr}:5672")
    };
    let unavailable = |what: String| CtlError::Unavailable(format!("ping {with_port}: {what}"));
    let sockaddr = with_port
        .to_socket_addrs()
        .map_err(|e| unavailable(e.to_string()))?
        .next()
        .ok_or_else(|| unavailable("no address".into()))?;
    let s = TcpStream::connect_timeout(&sockaddr, timeout).map_err(|e| unavailable(e.to_string()))?;
    exchange(s, &with_port, deadline, timeout, |s, t| s.set_read_timeout(t))
}

/// Sends the protocol header and expects `connection.start` by `deadline`.
fn exchange<S: Read + Write>(
    mut s: S,
    with_port: &str,
    deadline: Instant,
    timeout: Duration,
    set_read_timeout: impl Fn(&S, Option<Duration>) -> std::io::Result<()>,
) -> Result<String, CtlError> {
    let unavailable = |what: String| CtlError::Unavailable(format!("ping {with_port}: {what}"));
    s.write_all(PROTOCOL_HEADER).map_err(|e| unavailable(e.to_string()))?;
    // Type (1), channel (2), size (4), then the method's class and id (4).
    let mut head = [0u8; 11];
    let mut got = 0;
    while got < head.len() {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(unavailable(format!(
                "no connection.start within {} s",
                timeout.as_secs_f32()
            )));
        }
        set_read_timeout(&s, Some(left)).map_err(|e| unavailable(e.to_string()))?;
        match s.read(&mut head[got..]) {
            Ok(0) => return Err(unavailable("closed before connection.start".into())),
            Ok(n) => got += n,
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                return Err(unavailable(format!(
                    "no connection.start within {} s",
                    timeout.as_secs_f32()
                )))
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(unavailable(e.to_string())),
        }
        // A server that does not speak 0-9-1 answers with its own header: say so.
        if got >= 4 && &head[..4] == b"AMQP" {
            return Err(CtlError::Other(format!(
                "ping {with_port}: the server refused AMQP 0-9-1"
            )));
        }
    }
    if head[0] != FRAME_METHOD || head[1..3] != [0, 0] || head[7..11] != CONNECTION_START {
        return Err(CtlError::Other(format!(
            "ping {with_port}: not an AMQP 0-9-1 connection.start (first bytes {:02x?})",
            &head
        )));
    }
    Ok(format!("ping {with_port}: ok, AMQP 0-9-1 answered\n"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    fn server(reply: &'static [u8]) -> String {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap().to_string();
        std::thread::spawn(move || {
            let (mut s, _) = l.accept().unwrap();
            let mut h = [0u8; 8];
            s.read_exact(&mut h).unwrap();
            assert_eq!(&h, PROTOCOL_HEADER);
            s.write_all(reply).unwrap();
            std::thread::sleep(Duration::from_millis(300));
        });
        addr
    }

    #[test]
    fn connection_start_is_ok() {
        let addr = server(b"\x01\x00\x00\x00\x00\x01\x00\x00\x0a\x00\x0a\x00\x09");
        assert!(ping(&addr, Duration::from_secs(5)).is_ok());
    }

    #[test]
    fn other_replies_fail() {
        let addr = server(b"AMQP\x00\x00\x09\x01");
        assert!(matches!(ping(&addr, Duration::from_secs(5)), Err(CtlError::Other(_))));
        let addr = server(b"HTTP/1.1 400 Bad Request\r\n\r\n");
        assert!(matches!(ping(&addr, Duration::from_secs(5)), Err(CtlError::Other(_))));
    }

    #[test]
    fn a_unix_socket_path_is_pinged_there() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("amqp.sock");
        let l = std::os::unix::net::UnixListener::bind(&path).unwrap();
        std::thread::spawn(move || {
            let (mut s, _) = l.accept().unwrap();
            let mut h = [0u8; 8];
            s.read_exact(&mut h).unwrap();
            s.write_all(b"\x01\x00\x00\x00\x00\x01\x00\x00\x0a\x00\x0a\x00\x09")
                .unwrap();
            std::thread::sleep(Duration::from_millis(300));
        });
        let ok = ping(path.to_str().unwrap(), Duration::from_secs(5)).unwrap();
        assert!(ok.contains("amqp.sock: ok"), "{ok}");
        let gone = dir.path().join("none.sock");
        assert!(matches!(
            ping(gone.to_str().unwrap(), Duration::from_secs(1)),
            Err(CtlError::Unavailable(_))
        ));
    }

    #[test]
    fn silence_times_out_and_refusal_is_unavailable() {
        let addr = server(b"");
        let e = ping(&addr, Duration::from_millis(100)).unwrap_err();
        assert!(matches!(e, CtlError::Unavailable(_)), "{e}");
        let free = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .to_string();
        assert!(matches!(
            ping(&free, Duration::from_secs(1)),
            Err(CtlError::Unavailable(_))
        ));
    }
}
