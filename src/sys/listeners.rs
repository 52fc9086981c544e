//! A listener on several addresses: the `bind` setting may name more than one
//! (`127.0.0.1, ::1`, or `0.0.0.0, ::` for dual stack), as RabbitMQ listens on
//! every `listeners.tcp.N`. One accept call serves them all.
//!
//! Linux binds `::` dual-stack by default, so `0.0.0.0` and `::` together would
//! collide on the port: an IPv6 socket is made IPv6-only when the list also has an
//! IPv4 address, and left dual-stack when it is alone (`--bind ::` still takes
//! IPv4 clients, as it always did).

use std::future::poll_fn;
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::task::Poll;

use tokio::net::{TcpListener, TcpStream};

/// The listen backlog tokio's own `bind` uses.
const BACKLOG: i32 = 1024;

pub(crate) struct Listeners {
    all: Vec<TcpListener>,
    /// Where the next accept starts looking, so a busy first address cannot
    /// starve the others.
    next: std::cell::Cell<usize>,
}

/// An accept that failed (EMFILE, ENFILE, ENOBUFS...): logged, then a pause
/// before the listener is polled again, so a process out of descriptors does
/// not spin on the same error (every listener, AMQP and HTTP).
pub(crate) async fn accept_failed(e: &io::Error) {
    tracing::warn!(error = %e, "accept failed");
    tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
}

/// How long [`accept_failed`] pauses: long enough to stop a spin, short enough
/// that a freed descriptor is used soon.
const ACCEPT_ERROR_PAUSE: std::time::Duration = std::time::Duration::from_millis(50);

impl Listeners {
    /// Binds every address of `bind` (see [`crate::config::bind_addresses`]) on
    /// `port`. A name (`localhost`) binds its first address that binds. Any
    /// address that cannot be bound fails the whole call, naming it.
    pub(crate) fn bind(bind: &str, port: u16) -> io::Result<Listeners> {
        Self::bind_shared(bind, port, false)
    }

    /// As [`Self::bind`]; with `reuse_port`, with `SO_REUSEPORT` (every shard
    /// binds the AMQP port and the kernel spreads the accepts).
    pub(crate) fn bind_shared(bind: &str, port: u16, reuse_port: bool) -> io::Result<Listeners> {
        let names: Vec<&str> = crate::config::bind_addresses(bind).collect();
        let resolved: Vec<(&str, Vec<SocketAddr>)> = names
            .iter()
            .map(|name| {
                let addrs = (*name, port)
                    .to_socket_addrs()
                    .map_err(|e| io::Error::new(e.kind(), format!("cannot resolve listener address {name}: {e}")))?;
                Ok((*name, addrs.collect()))
            })
            .collect::<io::Result<_>>()?;
        let has_v4 = resolved.iter().flat_map(|(_, a)| a).any(SocketAddr::is_ipv4);
        let mut all = Vec::with_capacity(names.len());
        for (name, addrs) in resolved {
            let mut last = io::Error::new(io::ErrorKind::InvalidInput, format!("{name} resolves to no address"));
            let mut bound = None;
            for addr in addrs {
                match listen(addr, addr.is_ipv6() && has_v4, reuse_port) {
                    Ok(l) => {
                        bound = Some(l);
                        break;
                    }
                    Err(e) => last = io::Error::new(e.kind(), format!("cannot listen on {addr}: {e}")),
                }
            }
            all.push(bound.ok_or(last)?);
        }
        if all.is_empty() {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "no listener address"));
        }
        Ok(Listeners {
            all,
            next: std::cell::Cell::new(0),
        })
    }

    /// Binds exactly `addrs` (another shard's [`Self::local_addrs`]) with
    /// `SO_REUSEPORT`.
    pub(crate) fn bind_same(addrs: &[SocketAddr]) -> io::Result<Listeners> {
        let has_v4 = addrs.iter().any(SocketAddr::is_ipv4);
        let all = (addrs.iter())
            .map(|&a| {
                listen(a, a.is_ipv6() && has_v4, true)
                    .map_err(|e| io::Error::new(e.kind(), format!("cannot listen on {a}: {e}")))
            })
            .collect::<io::Result<Vec<_>>>()?;
        if all.is_empty() {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "no listener address"));
        }
        Ok(Listeners {
            all,
            next: std::cell::Cell::new(0),
        })
    }

    /// The bound addresses (with the real port when 0 was asked for).
    pub(crate) fn local_addrs(&self) -> Vec<SocketAddr> {
        self.all.iter().filter_map(|l| l.local_addr().ok()).collect()
    }

    /// The first bound address: the one connection names and readiness report.
    pub(crate) fn first_addr(&self) -> io::Result<SocketAddr> {
        self.all[0].local_addr()
    }

    /// The next connection on any of the addresses.
    pub(crate) async fn accept(&self) -> io::Result<(TcpStream, SocketAddr)> {
        poll_fn(|cx| {
            let n = self.all.len();
            let start = self.next.get();
            for i in 0..n {
                let at = (start + i) % n;
                if let Poll::Ready(r) = self.all[at].poll_accept(cx) {
                    self.next.set((at + 1) % n);
                    return Poll::Ready(r);
                }
            }
            Poll::Pending
        })
        .await
    }
}

fn listen(addr: SocketAddr, v6_only: bool, reuse_port: bool) -> io::Result<TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    // As tokio's bind: a restarted broker binds while old connections linger.
    socket.set_reuse_address(true)?;
    if reuse_port {
        socket.set_reuse_port(true)?;
    }
    if addr.is_ipv6() {
        socket.set_only_v6(v6_only)?;
    }
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(BACKLOG)?;
    TcpListener::from_std(socket.into())
}

/// Whether a peer is on this machine: an IPv4 client reaching a dual-stack `::`
/// listener shows as `::ffff:127.0.0.1`, which is loopback too.
pub(crate) fn is_loopback(peer: &SocketAddr) -> bool {
    peer.ip().to_canonical().is_loopback()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mapped_ipv4_loopback_is_loopback() {
        let peer: SocketAddr = "[::ffff:127.0.0.1]:5000".parse().unwrap();
        assert!(is_loopback(&peer));
        assert!(is_loopback(&"[::1]:1".parse().unwrap()));
        assert!(!is_loopback(&"[::ffff:10.0.0.1]:1".parse().unwrap()));
    }

    #[tokio::test(flavor = "current_thread")]
    async fn several_addresses_accept_on_each() {
        // Port 0: each address gets its own free port.
        let l = Listeners::bind("127.0.0.1, ::1", 0).unwrap();
        let addrs = l.local_addrs();
        assert_eq!(addrs.len(), 2);
        for a in &addrs {
            let client = TcpStream::connect(a).await.unwrap();
            let (_, peer) = l.accept().await.unwrap();
            assert_eq!(peer, client.local_addr().unwrap());
        }
    }

    #[tokio::test(flavor = "current_thread")]
    async fn ipv4_and_ipv6_wildcards_on_one_port() {
        // Find a free port, then bind both wildcards on it: the IPv6 socket must be
        // IPv6-only or the second bind fails.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let l = Listeners::bind("0.0.0.0 ::", port).unwrap();
        assert_eq!(l.local_addrs().len(), 2);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn an_address_that_cannot_bind_is_named() {
        let e = Listeners::bind("127.0.0.1, 192.0.2.1", 0).err().unwrap();
        assert!(e.to_string().contains("192.0.2.1"), "{e}");
    }
}
