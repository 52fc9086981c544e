//! One client connection: a reader and a writer around the core, two futures
//! of one task; one ticker ([`tick_task`]) gives every connection its heartbeat
//! tick.
//!
//! On the AMQPS listener both share the connection's [`TlsSession`]: the reader
//! decrypts what it reads before the core sees it, the writer encrypts what the
//! core wrote (and sends TLS's own records) before it goes out.

use std::cell::RefCell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};
use tokio::sync::Notify;

use super::server::{Shared, TICK};
use super::tls::TlsSession;
use crate::core::model::ids::ConnId;
use crate::core::mqtt::Session as MqttSession;

mod read;
mod write;

use read::Reader;
use write::write_loop;

/// How long a closed connection waits for its output to drain and for the peer
/// to close the socket.
const CLOSE_LINGER: Duration = Duration::from_secs(2);

/// How the reader stopped.
enum ReadEnd {
    /// The core handed the connection to another shard (`core::amqp::hand_off`):
    /// what it had not handled of the input goes with it.
    Leaving(Vec<u8>),
    /// EOF, or the peer closed TLS: nothing more can be written.
    PeerGone,
    /// The core closed the connection: write what is left, then close.
    Closed,
    /// TLS failed: the alert (if any) goes out, then the socket closes.
    TlsFailed,
}

type Tls = Option<Rc<RefCell<TlsSession>>>;

/// A socket's read half that can wait for input without a buffer to put it
/// in: an idle connection then holds no read buffer at all. Polled, not an
/// `async fn`: tokio's `readable()` future (its waiter in the socket's list)
/// took 184 bytes of every idle connection's task; the poll uses the socket's
/// one reader waker, as the reads do (only this task reads the socket).
trait ReadHalf: AsyncRead + Unpin {
    fn poll_readable(&self, cx: &mut std::task::Context<'_>) -> std::task::Poll<std::io::Result<()>>;
}

impl ReadHalf for tokio::net::tcp::OwnedReadHalf {
    fn poll_readable(&self, cx: &mut std::task::Context<'_>) -> std::task::Poll<std::io::Result<()>> {
        self.as_ref().poll_read_ready(cx)
    }
}

impl ReadHalf for tokio::net::unix::OwnedReadHalf {
    fn poll_readable(&self, cx: &mut std::task::Context<'_>) -> std::task::Poll<std::io::Result<()>> {
        self.as_ref().poll_read_ready(cx)
    }
}

/// A socket's two halves made one again, as a descriptor to hand to another
/// shard with its connection; only TCP connections move (a Unix socket and a
/// WebSocket's stream are shard 0's).
trait Rejoin<W>: Sized {
    fn rejoin(self, _: W) -> Option<std::os::fd::OwnedFd> {
        None
    }
}

impl Rejoin<tokio::net::tcp::OwnedWriteHalf> for tokio::net::tcp::OwnedReadHalf {
    fn rejoin(self, w: tokio::net::tcp::OwnedWriteHalf) -> Option<std::os::fd::OwnedFd> {
        let s = self.reunite(w).ok()?.into_std().ok()?;
        Some(s.into())
    }
}

impl Rejoin<tokio::net::unix::OwnedWriteHalf> for tokio::net::unix::OwnedReadHalf {}

impl Rejoin<tokio::io::WriteHalf<tokio::io::DuplexStream>> for tokio::io::ReadHalf<tokio::io::DuplexStream> {}

/// A byte stream another server handed over (AMQP over WebSocket): it cannot
/// say it is readable without a read, so it keeps its (small) read buffer
/// while it waits.
impl ReadHalf for tokio::io::ReadHalf<tokio::io::DuplexStream> {
    fn poll_readable(&self, _: &mut std::task::Context<'_>) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
}

/// Serves a connection from any AMQP listener (TCP or Unix socket) until it
/// ends: the core learns of it now, and the future returned serves it. Not an
/// `async fn`: one would keep what it was given (the accepted socket, the
/// peer's name) beside the future it awaits, bytes of every idle connection.
pub(crate) fn serve_connection(
    shared: Rc<Shared>,
    acc: super::accept::Accepted,
) -> impl std::future::Future<Output = ()> {
    use futures_util::future::Either;
    let super::accept::Accepted {
        stream,
        peer,
        tls,
        initial,
        mqtt,
    } = acc;
    let now_ms = crate::io::now_ms();
    let conn = Conn {
        peer: peer.addr,
        tls: tls.map(|t| Rc::new(RefCell::new(*t))),
        mqtt: mqtt.map(|settings| Rc::new(RefCell::new(MqttSession::new(settings, peer.loopback, now_ms)))),
    };
    shared.conn_opened();
    let id = {
        let mut b = shared.broker.borrow_mut();
        let id = b.handle_connect(peer.name, peer.loopback, now_ms);
        // Plain TCP may move to another shard with its socket; TLS (its
        // session is this task's), the Unix socket (shard 0's) and MQTT
        // (its client ids are shard 0's) stay.
        if conn.tls.is_none() && conn.mqtt.is_none() && matches!(stream, crate::sys::stream::Stream::Tcp(_)) {
            b.allow_hand_off(id);
        }
        if conn.mqtt.is_some() {
            // The API's connection list names its protocol and listener port
            // (the map that names AMQP over WebSocket's).
            let port = match &stream {
                crate::sys::stream::Stream::Tcp(s) => s.local_addr().ok().map(|a| a.port()),
                crate::sys::stream::Stream::Unix(_) => None,
            };
            let via = crate::shard::StreamVia {
                protocol: MQTT_PROTOCOL,
                port,
                tls: false,
            };
            shared.stream_conns.borrow_mut().insert(id, via);
        }
        id
    };
    // Each kind split into its owned halves: no lock between reader and writer.
    match stream {
        crate::sys::stream::Stream::Tcp(s) => {
            let (rd, wr) = s.into_split();
            Either::Left(serve_halves(shared, id, conn, rd, wr, initial))
        }
        crate::sys::stream::Stream::Unix(s) => {
            let (rd, wr) = s.into_split();
            Either::Right(serve_halves(shared, id, conn, rd, wr, initial))
        }
    }
}

/// Serves a connection another shard handed over (`core::amqp::hand_off`),
/// its unhandled input first, until it ends (or moves again).
pub(crate) async fn serve_arrived(shared: Rc<Shared>, a: crate::io::shards::cross::Arrived) {
    let std = std::net::TcpStream::from(a.socket);
    let stream = match std
        .set_nonblocking(true)
        .and_then(|()| tokio::net::TcpStream::from_std(std))
    {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "cannot serve a connection another shard handed over");
            shared.broker.borrow_mut().handle_disconnect(a.id);
            return;
        }
    };
    shared.conn_opened();
    shared.broker.borrow_mut().allow_hand_off(a.id);
    let conn = Conn {
        peer: stream.peer_addr().ok(),
        tls: None,
        mqtt: None,
    };
    let (rd, wr) = stream.into_split();
    serve_halves(shared, a.id, conn, rd, wr, a.input).await;
}

/// Serves a byte stream another server on the shard handed over (AMQP over
/// WebSocket, see `crate::shard::StreamConn`) until it ends, as a connection
/// of this backend: the same core session as a socket's, whichever backend
/// serves the sockets.
pub(crate) async fn serve_stream(shared: Rc<Shared>, conn: crate::shard::StreamConn) {
    let crate::shard::StreamConn {
        stream,
        peer,
        loopback,
        via,
    } = conn;
    shared.conn_opened();
    let id = shared
        .broker
        .borrow_mut()
        .handle_connect(peer, loopback, crate::io::now_ms());
    shared.stream_conns.borrow_mut().insert(id, via);
    let (rd, wr) = tokio::io::split(stream);
    let conn = Conn {
        peer: None,
        tls: None,
        mqtt: None,
    };
    serve_halves(shared.clone(), id, conn, rd, wr, Vec::new()).await;
    shared.stream_conns.borrow_mut().remove(&id);
}

/// What the reader and the writer of a connection both know.
struct Conn {
    /// The client's address (from its PROXY header, if any), for TLS log lines.
    peer: Option<SocketAddr>,
    tls: Tls,
    mqtt: Mqtt,
}

/// The API's `protocol` of an MQTT connection.
const MQTT_PROTOCOL: &str = "MQTT 3.1.1";

/// An MQTT listener's connection: its session, between the socket and the core.
type Mqtt = Option<Rc<RefCell<MqttSession>>>;

/// Not an `async fn`: its future would keep the arguments twice (as given, and in its body).
#[allow(clippy::manual_async_fn)]
fn serve_halves<R, W>(
    shared: Rc<Shared>,
    id: ConnId,
    conn: Conn,
    mut rd: R,
    wr: W,
    mut initial: Vec<u8>,
) -> impl std::future::Future<Output = ()>
where
    R: ReadHalf + Rejoin<W>,
    W: AsyncWrite + Unpin + 'static,
{
    async move {
        let (peer, tls, mqtt) = (conn.peer, &conn.tls, &conn.mqtt);
        let notify = Rc::new(Notify::new());
        shared.writers.borrow_mut().insert(id, notify.clone());
        // A connection another shard handed over may have output waiting.
        notify.notify_one();
        // Reader and writer are two futures of one task, not two tasks: a task
        // costs its header and an allocation aligned to 128 bytes (10,000 idle
        // connections). Both are polled each time the task runs, so a writer
        // blocked on a slow peer never stops the reading, nor the other way round.
        let writer = write_loop(&shared, id, wr, &notify, tls, mqtt);
        // An MQTT session's timer (keepalive), boxed: AMQP connections pay 8 bytes.
        let mut mqtt_tick = mqtt.as_ref().map(|_| Box::pin(tokio::time::sleep(TICK)));
        let mut writer = std::pin::pin!(writer);
        // The writer's result: the write half, kept (unshut) while closing.
        let mut written: Option<Option<W>> = None;
        let reader = Reader {
            shared: &shared,
            id,
            tls,
            mqtt,
            writer: &notify,
            peer,
        };
        let end = {
            let read = reader.read_loop(&mut rd, &mut initial);
            let mut read = std::pin::pin!(read);
            loop {
                tokio::select! {
                    end = &mut read => break end,
                    w = &mut writer, if written.is_none() => written = Some(w),
                    // The connection ticker: a tick closed a connection (maybe this
                    // one, whose writer may be stuck on a peer that reads nothing),
                    // or readers are paused.
                    _ = shared.conn_wake.notified() => {}
                    () = next_tick(&mut mqtt_tick) => {
                        if let Some(m) = mqtt {
                            m.borrow_mut().handle_tick(&mut shared.broker.borrow_mut(), id, crate::io::now_ms());
                            shared.after_core_call();
                            notify.notify_one();
                        }
                    }
                }
                // The writer ended after the core closed the connection (it closed
                // the socket's sending side, or waits for the peer's FIN), or a tick
                // closed it: the writer gets CLOSE_LINGER to finish, as on input.
                if shared.broker.borrow().is_closed(id) {
                    break Ok(ReadEnd::Closed);
                }
            }
        };
        if let Ok(ReadEnd::Leaving(input)) = end {
            // Its writer stops at its next turn (it takes no more output):
            // then the socket and the input go, and the core's state.
            notify.notify_one();
            if written.is_none() {
                written = tokio::time::timeout(CLOSE_LINGER, &mut writer).await.ok();
            }
            shared.writers.borrow_mut().remove(&id);
            let socket = written.flatten().and_then(|wr| rd.rejoin(wr));
            depart(&shared, id, socket, input);
            return;
        }
        let closed_by_protocol = match end {
            Ok(ReadEnd::Leaving(_)) => unreachable!("handled above"),
            Ok(ReadEnd::Closed | ReadEnd::TlsFailed) => true,
            Ok(ReadEnd::PeerGone) => false,
            Err(e) => {
                tracing::debug!(?peer, error = %e, "connection read error");
                false
            }
        };
        if closed_by_protocol {
            // Let the writer send what is left (a close-ok, an error close), bounded.
            notify.notify_one();
            if written.is_none() {
                written = tokio::time::timeout(CLOSE_LINGER, &mut writer).await.ok();
            }
            // Read until the peer closes its side: closing a socket with unread bytes
            // makes the kernel send a reset, which clients report as an error instead
            // of the clean close they just negotiated.
            // On the heap: in the future it would take 512 bytes of every idle
            // connection's task, the future's size being that of its largest state.
            let mut sink = vec![0u8; 512];
            let _ = tokio::time::timeout(CLOSE_LINGER, async {
                while let Ok(n) = rd.read(&mut sink).await {
                    if n == 0 {
                        break;
                    }
                }
            })
            .await;
        }
        // The peer is gone (nothing more can be written), or the linger is over.
        drop(written);
        shared.writers.borrow_mut().remove(&id);
        if let Some(tls) = tls {
            tls.borrow().log_if_unfinished(peer);
            shared.tls_conns.borrow_mut().remove(&id);
        }
        match mqtt {
            // The will, then the broker's part.
            Some(m) => {
                m.borrow_mut()
                    .handle_disconnect(&mut shared.broker.borrow_mut(), id, crate::io::now_ms());
                shared.stream_conns.borrow_mut().remove(&id);
            }
            None => shared.broker.borrow_mut().handle_disconnect(id),
        }
        shared.after_core_call();
        shared.conn_closed();
    }
}

/// The MQTT session's next [`TICK`] (never, without one).
async fn next_tick(t: &mut Option<std::pin::Pin<Box<tokio::time::Sleep>>>) {
    match t {
        Some(t) => {
            t.as_mut().await;
            t.as_mut().reset(tokio::time::Instant::now() + TICK);
        }
        None => std::future::pending().await,
    }
}

/// Hands connection `id` with its `socket` and unhandled `input` to the shard
/// it is leaving for; without a socket (its writer stuck on a peer that
/// reads nothing, or it closed meanwhile) it ends here.
fn depart(shared: &Shared, id: ConnId, socket: Option<std::os::fd::OwnedFd>, input: Vec<u8>) {
    let departing = match (&shared.cross, socket) {
        (Some(port), Some(socket)) => (shared.broker.borrow_mut().hand_off(id)).map(|d| (port, d, socket)),
        _ => None,
    };
    match departing {
        Some((port, departing, socket)) => port.depart(crate::io::shards::cross::Moving {
            departing,
            socket,
            input,
        }),
        None => shared.broker.borrow_mut().handle_disconnect(id),
    }
    shared.after_core_call();
    shared.conn_closed();
}

/// The heartbeat timer of the connections served here (all on epoll, the byte
/// streams on io_uring), not one each: every [`TICK`] each gets the core's tick;
/// if one closed (heartbeats missed) or a reader is paused, the tasks look again.
pub(crate) async fn tick_task(shared: Rc<Shared>) {
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut ids: Vec<ConnId> = Vec::new();
    loop {
        tick.tick().await;
        ids.extend(shared.writers.borrow().keys().copied());
        if !ids.is_empty() {
            let t = shared.turns.start();
            let now = crate::io::now_ms();
            let mut wake = false;
            {
                let mut b = shared.broker.borrow_mut();
                for &id in &ids {
                    if !b.is_closed(id) {
                        b.handle_tick(id, now);
                        wake |= b.is_closed(id) || b.should_pause_reading(id);
                    }
                }
            }
            shared.after_core_call();
            if wake {
                shared.conn_wake.notify_waiters();
            }
            shared.turns.end(t, "connection ticks", ids.len());
            ids.clear();
        }
    }
}
