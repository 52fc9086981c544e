//! The AMQP listeners (TCP, TLS, Unix socket) and what happens to a socket
//! between accept and a backend taking it over: the PROXY header where the
//! listener requires one, the TLS session on AMQPS, and the peer the core, the
//! API and the logs are given. Both backends accept here, on tokio's side (see
//! `uring::serve` for why io_uring does not accept itself).

use std::cell::Cell;
use std::io;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use super::proxy::{self, Header};
use super::server::ListenConfig;
use super::tls::{TlsAcceptor, TlsSession};
use crate::sys::listeners::Listeners;
use crate::sys::stream::Stream;
use crate::sys::unix_socket::UnixListener;

/// Connections per listener that may wait for their PROXY header at once.
/// A proxy sends the header as it connects, so normally none wait; this bounds
/// what clients that connect and say nothing can hold (sockets), as the core's
/// `HANDSHAKING_MAX` does after the header. Beyond it new ones are closed.
pub(crate) const HEADER_WAITING_MAX: usize = 4096;

/// The client at the other end of a connection, as the core, the management
/// API (`peer_host`, `peer_port`) and the logs see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Peer {
    /// `203.0.113.7:50412`, `[2001:db8::7]:50412`, or for a Unix socket its
    /// path and the connection's number on it (`/run/ringmq/amqp.sock:3`).
    pub name: String,
    /// For the default user's loopback rule: a loopback address, or a Unix
    /// socket (only local processes reach one, as LavinMQ treats it).
    pub loopback: bool,
    /// The client's address, when it has one (for TLS log lines).
    pub addr: Option<SocketAddr>,
}

impl Peer {
    fn ip(addr: SocketAddr) -> Peer {
        Peer {
            name: addr.to_string(),
            loopback: super::listeners::is_loopback(&addr),
            addr: Some(addr),
        }
    }

    fn unix(name: String) -> Peer {
        Peer {
            name,
            loopback: true,
            addr: None,
        }
    }

    /// The peer a PROXY header names, or the socket's own for a header that
    /// names none (the proxy's health checks).
    fn from_header(header: Header, socket: Peer) -> Peer {
        match header {
            Header::Proxied { source, .. } => Peer::ip(source),
            Header::Local { .. } => socket,
        }
    }
}

/// A connection ready for a backend.
pub(crate) struct Accepted {
    pub stream: Stream,
    pub peer: Peer,
    /// On AMQPS (boxed: a session is over a kilobyte).
    pub tls: Option<Box<TlsSession>>,
    /// Bytes read past the PROXY header with it: the client's first bytes
    /// (ciphertext on AMQPS), to be handled before anything read later.
    pub initial: Vec<u8>,
    /// From the MQTT listener: its sessions' settings. The listener's
    /// protocol, told once per connection (not a test per byte).
    pub mqtt: Option<Rc<crate::core::mqtt::Settings>>,
}

/// One listener's settings, shared by its connections while they are set up.
pub(crate) struct Listener {
    /// As logs name it: `AMQP`, `AMQPS`, `AMQP (Unix socket)`.
    pub name: &'static str,
    /// A PROXY header is required before the client's first byte.
    proxy: bool,
    tls: Option<TlsAcceptor>,
    /// The MQTT listener's: its sessions' settings.
    mqtt: Option<Rc<crate::core::mqtt::Settings>>,
    /// Connections waiting for their PROXY header.
    waiting: Cell<usize>,
    /// Connections refused because too many were waiting.
    refused: Cell<u64>,
    /// Set at shutdown: a header that arrives later starts nothing.
    closed: Cell<bool>,
}

impl Listener {
    fn new(name: &'static str, proxy: bool, tls: Option<TlsAcceptor>) -> Rc<Listener> {
        Self::with_mqtt(name, proxy, tls, None)
    }

    fn with_mqtt(
        name: &'static str,
        proxy: bool,
        tls: Option<TlsAcceptor>,
        mqtt: Option<Rc<crate::core::mqtt::Settings>>,
    ) -> Rc<Listener> {
        Rc::new(Listener {
            name,
            proxy,
            tls,
            mqtt,
            waiting: Cell::new(0),
            refused: Cell::new(0),
            closed: Cell::new(false),
        })
    }
}

/// A socket just accepted, and where.
pub(crate) struct Incoming {
    stream: Stream,
    /// The socket's own peer: the proxy, on a listener behind one.
    peer: Peer,
    listener: Rc<Listener>,
}

/// What to do with an [`Incoming`] connection.
pub(crate) enum Next {
    Ready(Accepted),
    /// The listener requires a PROXY header: [`after_header`], in a task of its own.
    Header(Incoming),
    /// Closed already (logged).
    Refused,
}

/// Takes a connection as far as it goes without waiting: ready, or waiting
/// for its PROXY header (bounded by [`HEADER_WAITING_MAX`]).
pub(crate) fn next_step(inc: Incoming) -> Next {
    if !inc.listener.proxy {
        return match finish(inc.stream, inc.peer, &inc.listener, Vec::new()) {
            Some(acc) => Next::Ready(acc),
            None => Next::Refused,
        };
    }
    let waiting = inc.listener.waiting.get();
    if waiting >= HEADER_WAITING_MAX {
        // The first refusal and every 1,000th after it: a flood must not
        // become a log flood (as the HTTP listeners do).
        let refused = inc.listener.refused.get() + 1;
        inc.listener.refused.set(refused);
        if refused % 1000 == 1 {
            tracing::warn!(
                listener = inc.listener.name,
                peer = %inc.peer.name,
                max = HEADER_WAITING_MAX,
                refused,
                "connection refused: too many connections waiting for their PROXY header"
            );
        }
        return Next::Refused;
    }
    inc.listener.waiting.set(waiting + 1);
    Next::Header(inc)
}

/// Reads the PROXY header of a connection [`next_step`] left waiting, within
/// `timeout`; `None` (and a log line naming the peer and why) without one.
pub(crate) async fn after_header(mut inc: Incoming, timeout: Duration) -> Option<Accepted> {
    let read = proxy::read_header(&mut inc.stream, timeout).await;
    let listener = inc.listener.clone();
    listener.waiting.set(listener.waiting.get() - 1);
    match read {
        Ok(_) if listener.closed.get() => None,
        Ok((header, initial)) => {
            let peer = Peer::from_header(header, inc.peer);
            tracing::debug!(listener = listener.name, peer = %peer.name, ?header, "PROXY header");
            finish(inc.stream, peer, &listener, initial)
        }
        Err(why) => {
            proxy::log_refused(listener.name, &inc.peer.name, &why);
            None
        }
    }
}

/// The TLS session on AMQPS; `None` if it cannot be had (logged).
fn finish(stream: Stream, peer: Peer, listener: &Listener, initial: Vec<u8>) -> Option<Accepted> {
    let tls = match listener.tls.as_ref().map(super::tls::session) {
        None => None,
        Some(Ok(session)) => Some(Box::new(session)),
        Some(Err(e)) => {
            super::tls::log_failure(peer.addr, &e.to_string());
            return None;
        }
    };
    Some(Accepted {
        stream,
        peer,
        tls,
        initial,
        mqtt: listener.mqtt.clone(),
    })
}

/// The AMQP listeners of a shard: TCP, TLS (AMQPS) and a Unix socket, each if
/// configured (TCP always); and on shard 0 the MQTT listener, if configured.
pub(crate) struct AmqpListeners {
    tcp: Option<(Listeners, Rc<Listener>)>,
    tls: Option<(Listeners, Rc<Listener>)>,
    unix: Option<(UnixListener, Rc<Listener>)>,
    mqtt: Option<(Listeners, Rc<Listener>)>,
    tcp_nodelay: bool,
    /// The AMQP listener's first address, and the AMQPS one's.
    pub amqp_addr: SocketAddr,
    pub amqps_addr: Option<SocketAddr>,
}

impl AmqpListeners {
    /// Binds every AMQP listener `listen` asks for, logging each (`io` names
    /// the backend).
    /// `at`: on shards 1.., where shard 0 listens (the same addresses and
    /// ports, with `SO_REUSEPORT`; no Unix socket there, it is shard 0's).
    pub(crate) fn bind(
        listen: &ListenConfig,
        io: &str,
        at: Option<&super::shards::ShardAddrs>,
    ) -> io::Result<AmqpListeners> {
        let reuse = listen.shards > 1;
        let tcp = match at {
            Some(at) => Listeners::bind_same(&at.amqp)?,
            None => Listeners::bind_shared(&listen.bind, listen.amqp_port, reuse)?,
        };
        let amqp_addr = tcp.first_addr()?;
        for addr in tcp.local_addrs() {
            tracing::info!(%addr, io, proxy_protocol = listen.amqp_proxy_protocol, "AMQP listener started");
        }
        let tls = match &listen.amqps {
            None => None,
            Some(amqps) => {
                let l = match at.and_then(|a| a.amqps.as_deref()) {
                    Some(addrs) => Listeners::bind_same(addrs)?,
                    None => Listeners::bind_shared(&listen.bind, amqps.port, reuse)?,
                };
                for addr in l.local_addrs() {
                    tracing::info!(%addr, io, proxy_protocol = amqps.proxy_protocol, "AMQPS listener started");
                }
                let kind = Listener::new("AMQPS", amqps.proxy_protocol, Some(amqps.acceptor.clone()));
                Some((l, kind))
            }
        };
        let amqps_addr = tls.as_ref().map(|(l, _)| l.first_addr()).transpose()?;
        let unix = match &listen.unix {
            None => None,
            Some(_) if at.is_some() => None,
            Some(u) => {
                let l = UnixListener::bind(&u.path)?;
                tracing::info!(path = %l.path().display(), io, proxy_protocol = u.proxy_protocol, "AMQP Unix socket listener started");
                Some((l, Listener::new("AMQP (Unix socket)", u.proxy_protocol, None)))
            }
        };
        let mqtt = match &listen.mqtt {
            Some(m) if at.is_none() => {
                let l = Listeners::bind_shared(&m.bind, m.port, false)?;
                for addr in l.local_addrs() {
                    tracing::info!(%addr, "MQTT listener started");
                }
                let kind = Listener::with_mqtt("MQTT", false, None, Some(Rc::new(m.settings.clone())));
                Some((l, kind))
            }
            _ => None,
        };
        Ok(AmqpListeners {
            tcp: Some((tcp, Listener::new("AMQP", listen.amqp_proxy_protocol, None))),
            tls,
            unix,
            mqtt,
            tcp_nodelay: listen.tcp_nodelay,
            amqp_addr,
            amqps_addr,
        })
    }

    /// The next connection on any listener; pending forever once closed.
    pub(crate) async fn accept(&self) -> io::Result<Incoming> {
        tokio::select! {
            r = accept_tcp(&self.tcp, self.tcp_nodelay) => r,
            r = accept_tcp(&self.tls, self.tcp_nodelay) => r,
            r = accept_unix(&self.unix) => r,
            r = accept_tcp(&self.mqtt, self.tcp_nodelay) => r,
        }
    }

    /// Where the TCP listeners are bound (for the other shards to bind).
    pub(crate) fn addrs(&self) -> super::shards::ShardAddrs {
        super::shards::ShardAddrs {
            amqp: self.tcp.as_ref().map(|(l, _)| l.local_addrs()).unwrap_or_default(),
            amqps: self.tls.as_ref().map(|(l, _)| l.local_addrs()),
        }
    }

    /// Stops listening (the Unix socket's file goes); connections still
    /// waiting for a PROXY header are dropped when it comes.
    pub(crate) fn close(&mut self) {
        for (_, kind) in self.tcp.iter().chain(self.tls.iter()).chain(self.mqtt.iter()) {
            kind.closed.set(true);
        }
        if let Some((_, kind)) = &self.unix {
            kind.closed.set(true);
        }
        self.tcp = None;
        self.tls = None;
        self.unix = None;
        self.mqtt = None;
    }
}

async fn accept_tcp(l: &Option<(Listeners, Rc<Listener>)>, nodelay: bool) -> io::Result<Incoming> {
    let Some((l, kind)) = l else {
        return std::future::pending().await;
    };
    let (s, addr) = l.accept().await?;
    if nodelay {
        let _ = s.set_nodelay(true);
    }
    Ok(Incoming {
        stream: Stream::Tcp(s),
        peer: Peer::ip(addr),
        listener: kind.clone(),
    })
}

async fn accept_unix(l: &Option<(UnixListener, Rc<Listener>)>) -> io::Result<Incoming> {
    let Some((l, kind)) = l else {
        return std::future::pending().await;
    };
    let (s, name) = l.accept().await?;
    Ok(Incoming {
        stream: Stream::Unix(s),
        peer: Peer::unix(name),
        listener: kind.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn incoming(listener: &Rc<Listener>) -> (Incoming, tokio::net::UnixStream) {
        let (ours, theirs) = tokio::net::UnixStream::pair().unwrap();
        let inc = Incoming {
            stream: Stream::Unix(ours),
            peer: Peer::unix("/s:1".into()),
            listener: listener.clone(),
        };
        (inc, theirs)
    }

    #[tokio::test(flavor = "current_thread")]
    async fn waiting_for_headers_is_bounded_and_counted_back() {
        let l = Listener::new("AMQP", true, None);
        l.waiting.set(HEADER_WAITING_MAX - 1);
        let (inc, mut client) = incoming(&l);
        let Next::Header(waiting) = next_step(inc) else {
            panic!("the last place was refused");
        };
        assert_eq!(l.waiting.get(), HEADER_WAITING_MAX);
        let (inc, _c2) = incoming(&l);
        assert!(matches!(next_step(inc), Next::Refused));
        assert_eq!(l.refused.get(), 1);
        // The header comes: the place is free again, the peer is the header's.
        use tokio::io::AsyncWriteExt;
        client
            .write_all(b"PROXY TCP4 192.0.2.9 192.0.2.1 7 5672\r\nAMQP")
            .await
            .unwrap();
        let acc = after_header(waiting, Duration::from_secs(5)).await.expect("accepted");
        assert_eq!(l.waiting.get(), HEADER_WAITING_MAX - 1);
        assert_eq!(acc.peer.name, "192.0.2.9:7");
        assert_eq!(acc.initial, b"AMQP");
        // Without a PROXY setting, nothing waits.
        let plain = Listener::new("AMQP", false, None);
        let (inc, _c3) = incoming(&plain);
        assert!(matches!(next_step(inc), Next::Ready(_)));
    }

    #[test]
    fn the_header_names_the_peer_unless_it_is_local() {
        let socket = Peer::ip("127.0.0.1:40000".parse().unwrap());
        let proxied = Header::Proxied {
            version: proxy::Version::V2,
            source: "203.0.113.7:50412".parse().unwrap(),
            destination: "127.0.0.1:5672".parse().unwrap(),
        };
        let p = Peer::from_header(proxied, socket.clone());
        assert_eq!(p.name, "203.0.113.7:50412");
        assert!(!p.loopback, "a remote client behind a local proxy is not on loopback");
        let local = Header::Local {
            version: proxy::Version::V2,
        };
        assert_eq!(Peer::from_header(local, socket.clone()), socket);
        let mapped = Header::Proxied {
            version: proxy::Version::V2,
            source: "[::ffff:127.0.0.1]:1".parse().unwrap(),
            destination: "[::1]:5672".parse().unwrap(),
        };
        assert!(Peer::from_header(mapped, socket).loopback);
    }
}
