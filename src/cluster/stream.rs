//! The replication stream over TCP: the leader's side ([`serve`], a
//! [`Session`] per follower's connection) and a follower's ([`follow`], its
//! [`Follower`], reconnecting). Both run on one thread's tokio `LocalSet`
//! (the leader's state is one `RefCell`: its files, its log and the
//! sessions' acks are read and changed only between awaits).
//!
//! Each side reads and writes at once (`select!` over a read and a single
//! `write`, both cancel-safe): a leader busy sending a full sync still takes
//! the follower's acks, so neither fills the other's socket and waits.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;

use super::files::Files;
use super::follower::Follower;
use super::leader::Session;
use super::log::ReplLog;
use super::wire::{decode, encode, Frame, Op, WireError};

/// How often a leader's connection looks at the log without being woken.
const LOOK_AGAIN: Duration = Duration::from_millis(50);
/// Bytes of frames gathered before a write.
const WRITE_BATCH: usize = 1 << 20;

/// Why one connection of the stream ended.
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Wire(WireError),
    #[error("leader: {0}")]
    Leader(#[from] super::leader::SessionError),
    #[error("follower: {0}")]
    Follower(#[from] super::follower::FollowerError),
    #[error("the peer closed the connection")]
    Closed,
}

/// What the leader's connections share.
pub struct Primary {
    files: Box<dyn Files>,
    /// Shared with the broker's recorders (`record::Recorder`) on a leader.
    log: Arc<Mutex<ReplLog>>,
    term: i64,
    secret: Vec<u8>,
    /// Woken when the log grows.
    grew: Arc<Notify>,
    /// Per follower past its full sync, connected: the last change it holds.
    acks: BTreeMap<String, u64>,
    /// Woken when `acks` changes.
    acked: Rc<Notify>,
}

impl Primary {
    pub fn new(files: Box<dyn Files>, log: ReplLog, term: i64, secret: &[u8]) -> Primary {
        let log = Arc::new(Mutex::new(log));
        Primary::shared(files, log, Arc::new(Notify::new()), term, secret)
    }

    /// A leader's: `log` is written by the broker's recorders, which wake
    /// `grew` when it grows.
    pub fn shared(
        files: Box<dyn Files>,
        log: Arc<Mutex<ReplLog>>,
        grew: Arc<Notify>,
        term: i64,
        secret: &[u8],
    ) -> Primary {
        Primary {
            files,
            log,
            term,
            secret: secret.to_vec(),
            grew,
            acks: BTreeMap::new(),
            acked: Rc::new(Notify::new()),
        }
    }

    fn log(&self) -> MutexGuard<'_, ReplLog> {
        self.log.lock().expect("the replication log's lock")
    }

    /// Makes a change here and records it for the followers: its number.
    /// (The broker's store will record the changes it makes itself through
    /// the same log, `docs/cluster.md`.)
    pub fn record(&mut self, op: Op) -> std::io::Result<u64> {
        self.files.apply(&op)?;
        let seq = self.log().append(op);
        self.grew.notify_waiters();
        Ok(seq)
    }

    /// The last change recorded.
    pub fn last_seq(&self) -> u64 {
        self.log().last_seq()
    }

    /// Per follower (by name): the last change it holds.
    pub fn acks(&self) -> &BTreeMap<String, u64> {
        &self.acks
    }

    /// Woken (one permit kept) whenever [`Self::acks`] changes.
    pub fn acked(&self) -> Rc<Notify> {
        self.acked.clone()
    }
}

fn nonce() -> [u8; 16] {
    let mut n = [0u8; 16];
    let random = rustls::crypto::ring::default_provider().secure_random;
    random.fill(&mut n).expect("the system's random source");
    n
}

/// Frames encoded and not written yet (a write takes from `at`).
#[derive(Default)]
struct Outgoing {
    buf: Vec<u8>,
    at: usize,
}

impl Outgoing {
    /// Whether everything was written: then the buffer is emptied for the
    /// next frames.
    fn drained(&mut self) -> bool {
        let done = self.at == self.buf.len();
        if done {
            self.buf.clear();
            self.at = 0;
        }
        done
    }

    fn rest(&self) -> &[u8] {
        &self.buf[self.at..]
    }
}

/// Takes whole frames from the front of `buf`.
fn frames(buf: &mut Vec<u8>, mut each: impl FnMut(Frame) -> Result<(), StreamError>) -> Result<(), StreamError> {
    loop {
        match decode(buf) {
            Ok((f, n)) => {
                buf.drain(..n);
                each(f)?;
            }
            Err(WireError::Incomplete(_)) => return Ok(()),
            Err(e) => return Err(StreamError::Wire(e)),
        }
    }
}

/// Serves followers on `listener` until the task is dropped.
pub async fn serve(listener: TcpListener, primary: Rc<RefCell<Primary>>) {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!(error = %e, "cannot accept a follower");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let primary = primary.clone();
        tokio::task::spawn_local(async move {
            let _ = stream.set_nodelay(true);
            let mut node = None;
            if let Err(e) = session(stream, &primary, &mut node).await {
                tracing::info!(%peer, error = %e, "a follower's connection ended");
            }
            if let Some(node) = node {
                let mut p = primary.borrow_mut();
                p.acks.remove(&node);
                p.acked.notify_one();
            }
        });
    }
}

/// One follower's connection; `node` is its name once it said it.
async fn session(
    mut stream: TcpStream,
    primary: &RefCell<Primary>,
    node: &mut Option<String>,
) -> Result<(), StreamError> {
    let (term, secret, grew) = {
        let p = primary.borrow();
        (p.term, p.secret.clone(), p.grew.clone())
    };
    let mut s = Session::new(term, nonce(), &secret);
    let (mut rd, mut wr) = stream.split();
    let (mut inbuf, mut out) = (Vec::with_capacity(64 << 10), Outgoing::default());
    loop {
        if out.drained() {
            let p = primary.borrow();
            let log = p.log();
            while out.buf.len() < WRITE_BATCH {
                match s.poll_frame(&*p.files, &log)? {
                    Some(f) => encode(&mut out.buf, &f),
                    None => break,
                }
            }
        }
        // Registered before the wait, so a change recorded meanwhile wakes it.
        let grown = grew.notified();
        tokio::select! {
            r = rd.read_buf(&mut inbuf) => {
                if r? == 0 {
                    return Err(StreamError::Closed);
                }
                let mut p = primary.borrow_mut();
                let p = &mut *p;
                {
                    let log = p.log.lock().expect("the replication log's lock");
                    frames(&mut inbuf, |f| Ok(s.handle_frame(f, &*p.files, &log)?))?;
                }
                if let Some(name) = s.node() {
                    node.get_or_insert_with(|| name.to_string());
                    if s.is_live() {
                        p.acks.insert(name.to_string(), s.acked());
                        p.acked.notify_one();
                    }
                }
            }
            w = wr.write(out.rest()), if !out.rest().is_empty() => out.at += w?,
            _ = grown, if out.rest().is_empty() => {}
            // Changes recorded with no group commit after them wake no one.
            _ = tokio::time::sleep(LOOK_AGAIN), if out.rest().is_empty() => {}
        }
    }
}

/// Follows the leader at `leader` (host:port) as `node`, applying its
/// changes to `files`, until the task is dropped: on a broken connection it
/// connects again after `retry` and syncs again. `applied` is told the last
/// change held after each ack.
pub async fn follow(
    leader: String,
    node: String,
    secret: Vec<u8>,
    files: &mut dyn Files,
    retry: Duration,
    applied: tokio::sync::watch::Sender<u64>,
) {
    loop {
        match follow_once(&leader, &node, &secret, files, &applied).await {
            Ok(()) => {}
            Err(e) => tracing::info!(leader = %leader, error = %e, "the connection to the leader ended"),
        }
        tokio::time::sleep(retry).await;
    }
}

async fn follow_once(
    leader: &str,
    node: &str,
    secret: &[u8],
    files: &mut dyn Files,
    applied: &tokio::sync::watch::Sender<u64>,
) -> Result<(), StreamError> {
    let mut stream = TcpStream::connect(leader).await?;
    let _ = stream.set_nodelay(true);
    let mut f = Follower::new(node, secret);
    let (mut rd, mut wr) = stream.split();
    let (mut inbuf, mut out) = (Vec::with_capacity(64 << 10), Outgoing::default());
    loop {
        if out.drained() {
            while let Some(frame) = f.poll_frame() {
                if let Frame::Ack { seq } = frame {
                    // An ack promises the changes survive a crash.
                    files.sync()?;
                    applied.send_replace(seq);
                }
                encode(&mut out.buf, &frame);
            }
        }
        tokio::select! {
            r = rd.read_buf(&mut inbuf) => {
                if r? == 0 {
                    return Err(StreamError::Closed);
                }
                frames(&mut inbuf, |frame| Ok(f.handle_frame(frame, files)?))?;
            }
            w = wr.write(out.rest()), if !out.rest().is_empty() => out.at += w?,
        }
    }
}
