//! The leader's side of one follower's connection, as a state machine:
//! frames in ([`Session::handle_frame`]), frames out ([`Session::poll_frame`]),
//! reading the leader's files and replication log, which the caller passes
//! in (one thread owns them, so what a session reads is consistent with the
//! log's numbering).
//!
//! After the challenge, the follower's file list is compared with the
//! leader's files *now*, at the log's last change S: a plan of what to
//! remove, truncate and copy. The copy is read chunk by chunk as the
//! connection has room, so a file may be read as it is later than S; that
//! is harmless, because the live stream then replays every change after S
//! on top, and each change sets bytes, a length or a whole file, so the
//! follower ends where the leader is. After the plan: `Synced { S }`, then
//! the changes from S + 1 in order.

use std::collections::VecDeque;

use super::files::Files;
use super::follower::proof;
use super::log::ReplLog;
use super::wire::{FileSum, Frame, Op};

/// Bytes of one file copied per change in a full sync.
pub const COPY_CHUNK: u64 = 1 << 20;
/// Changes and bytes per frame of the live stream.
const OPS_PER_FRAME: usize = 1024;
const BYTES_PER_FRAME: usize = 4 << 20;

/// Why the leader ends a follower's connection.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
    #[error("{0} does not know the cluster's secret")]
    BadProof(String),
    #[error("the follower sent {0} out of turn")]
    OutOfTurn(&'static str),
    #[error("the follower acknowledged change {acked}, past the last sent, {sent}")]
    AckPastSent { acked: u64, sent: u64 },
    #[error("the follower is behind the oldest change kept: a full sync is needed")]
    TooFarBehind,
}

/// One step of a full sync.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Step {
    Remove(String),
    Truncate(String, u64),
    /// Copy `path` from `from` up to `to`.
    Copy {
        path: String,
        from: u64,
        to: u64,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Challenged,
    Syncing,
    Live,
}

#[derive(Debug)]
pub struct Session {
    secret: Vec<u8>,
    nonce: [u8; 16],
    state: State,
    node: Option<String>,
    challenge: Option<Frame>,
    plan: VecDeque<Step>,
    /// The log's last change when the plan was made.
    synced_at: u64,
    /// The last change sent, and the last the follower holds.
    sent: u64,
    acked: u64,
}

impl Session {
    /// A session for a new connection: it opens with the challenge.
    pub fn new(term: i64, nonce: [u8; 16], secret: &[u8]) -> Session {
        Session {
            secret: secret.to_vec(),
            nonce,
            state: State::Challenged,
            node: None,
            challenge: Some(Frame::Challenge { term, nonce }),
            plan: VecDeque::new(),
            synced_at: 0,
            sent: 0,
            acked: 0,
        }
    }

    /// The follower's name, once it said it.
    pub fn node(&self) -> Option<&str> {
        self.node.as_deref()
    }

    /// The last change the follower holds (0 before its sync).
    pub fn acked(&self) -> u64 {
        self.acked
    }

    /// Whether it is past its full sync and has acknowledged it.
    pub fn is_live(&self) -> bool {
        self.state == State::Live && self.acked >= self.synced_at
    }

    pub fn handle_frame(&mut self, f: Frame, files: &dyn Files, log: &ReplLog) -> Result<(), SessionError> {
        match (self.state, f) {
            (
                State::Challenged,
                Frame::Hello {
                    node,
                    proof: p,
                    files: theirs,
                },
            ) => {
                if self.challenge.is_some() || p != proof(&self.secret, &self.nonce, &node) {
                    return Err(SessionError::BadProof(node));
                }
                self.plan = plan(&files.list(), &theirs, files);
                self.synced_at = log.last_seq();
                self.node = Some(node);
                self.state = State::Syncing;
            }
            (State::Live, Frame::Ack { seq }) => {
                if seq > self.sent {
                    return Err(SessionError::AckPastSent {
                        acked: seq,
                        sent: self.sent,
                    });
                }
                self.acked = self.acked.max(seq);
            }
            (_, f) => return Err(SessionError::OutOfTurn(f.name())),
        }
        Ok(())
    }

    /// The next frame to send, if any.
    pub fn poll_frame(&mut self, files: &dyn Files, log: &ReplLog) -> Result<Option<Frame>, SessionError> {
        if let Some(c) = self.challenge.take() {
            return Ok(Some(c));
        }
        match self.state {
            State::Challenged => Ok(None),
            State::Syncing => {
                let Some(step) = self.plan.pop_front() else {
                    self.state = State::Live;
                    self.sent = self.synced_at;
                    return Ok(Some(Frame::Synced { seq: self.synced_at }));
                };
                let op = match step {
                    Step::Remove(path) => Op::Remove { path },
                    Step::Truncate(path, len) => Op::Truncate { path, len },
                    Step::Copy { path, from, to } => {
                        let n = (to - from).min(COPY_CHUNK);
                        let now_at = moved_to(&path, log, self.synced_at).ok_or(SessionError::TooFarBehind)?;
                        let bytes = now_at.map_or_else(Vec::new, |at| files.read(&at, from, n));
                        if from + n < to && bytes.len() as u64 == n {
                            self.plan.push_front(Step::Copy {
                                path: path.clone(),
                                from: from + n,
                                to,
                            });
                        }
                        Op::Write {
                            path,
                            offset: from,
                            bytes,
                        }
                    }
                };
                Ok(Some(Frame::Ops {
                    first_seq: 0,
                    ops: vec![op],
                }))
            }
            State::Live => {
                if self.sent >= log.last_seq() {
                    return Ok(None);
                }
                let ops = log
                    .since(self.sent + 1, OPS_PER_FRAME, BYTES_PER_FRAME)
                    .ok_or(SessionError::TooFarBehind)?;
                let first_seq = self.sent + 1;
                self.sent += ops.len() as u64;
                Ok(Some(Frame::Ops { first_seq, ops }))
            }
        }
    }
}

/// Where the bytes `path` held at change `synced_at` are now: a file is
/// copied after that point, and a rename since (a segment made a spare, a
/// spare recycled, a vhost's folder set aside for removal) moved them. The
/// follower gets them under the old name, and the rename, replayed, moves
/// them. Some(None): removed since (the removal is replayed too); None: the
/// log no longer holds the changes since `synced_at`.
fn moved_to(path: &str, log: &ReplLog, synced_at: u64) -> Option<Option<String>> {
    let mut now = path.to_string();
    for op in log.iter_since(synced_at + 1)? {
        let under = |dir: &str| {
            now.strip_prefix(dir)
                .and_then(|r| r.strip_prefix('/'))
                .map(str::to_string)
        };
        match op {
            Op::Rename { from, to } if now == *from => now = to.clone(),
            Op::Rename { from, to } => {
                if let Some(rest) = under(from) {
                    now = format!("{to}/{rest}");
                }
            }
            Op::Remove { path } if now == *path || under(path).is_some() => return Some(None),
            _ => {}
        }
    }
    Some(Some(now))
}

/// What makes `theirs` equal to `mine`: files they have and we do not go;
/// a file of ours whose prefix they have gets its tail, one they have longer
/// is cut, any other is copied whole.
fn plan(mine: &[FileSum], theirs: &[FileSum], files: &dyn Files) -> VecDeque<Step> {
    let their = |p: &str| theirs.iter().find(|t| t.path == p);
    let mut steps: VecDeque<Step> = (theirs.iter())
        .filter(|t| !mine.iter().any(|m| m.path == t.path))
        .map(|t| Step::Remove(t.path.clone()))
        .collect();
    for m in mine {
        let copy_all = |steps: &mut VecDeque<Step>| {
            steps.push_back(Step::Truncate(m.path.clone(), 0));
            steps.push_back(Step::Copy {
                path: m.path.clone(),
                from: 0,
                to: m.len,
            });
        };
        match their(&m.path) {
            None => steps.push_back(Step::Copy {
                path: m.path.clone(),
                from: 0,
                to: m.len,
            }),
            Some(t) if t.len == m.len && t.crc32c == m.crc32c => {}
            Some(t) if t.len < m.len && files.crc_of_prefix(&m.path, t.len) == Some(t.crc32c) => {
                steps.push_back(Step::Copy {
                    path: m.path.clone(),
                    from: t.len,
                    to: m.len,
                })
            }
            Some(_) => copy_all(&mut steps),
        }
    }
    steps
}
