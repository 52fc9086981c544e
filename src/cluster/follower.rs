//! A follower's side of one connection to the leader, as a state machine:
//! frames in ([`Follower::handle_frame`], changes applied to its files),
//! frames out ([`Follower::poll_frame`]). The caller syncs its files to disk
//! before it sends an [`Frame::Ack`]: an ack promises the changes survive.

use std::collections::VecDeque;

use sha2::Digest;

use super::files::Files;
use super::wire::Frame;

/// The proof that a node knows the cluster's secret, for a leader's nonce.
pub fn proof(secret: &[u8], nonce: &[u8; 16], node: &str) -> [u8; 32] {
    let mut h = sha2::Sha256::new();
    h.update((secret.len() as u32).to_be_bytes());
    h.update(secret);
    h.update(nonce);
    h.update(node.as_bytes());
    h.finalize().into()
}

/// Why a follower ends the connection.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FollowerError {
    #[error("the leader sent {0} out of turn")]
    OutOfTurn(&'static str),
    #[error("the leader skipped changes: expected {expected}, got {got}")]
    Gap { expected: u64, got: u64 },
    #[error("cannot apply a change: {0}")]
    Apply(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Waiting for the challenge.
    Connected,
    /// Getting the full sync.
    Syncing,
    /// In the live stream: has every change up to `applied`.
    Live,
}

#[derive(Debug)]
pub struct Follower {
    node: String,
    secret: Vec<u8>,
    state: State,
    applied: u64,
    /// The last change it acknowledged (None: none since the sync).
    acked: Option<u64>,
    out: VecDeque<Frame>,
}

impl Follower {
    pub fn new(node: &str, secret: &[u8]) -> Follower {
        Follower {
            node: node.into(),
            secret: secret.to_vec(),
            state: State::Connected,
            applied: 0,
            acked: None,
            out: VecDeque::new(),
        }
    }

    /// The last change it holds (in the live stream).
    pub fn applied(&self) -> u64 {
        self.applied
    }

    pub fn is_live(&self) -> bool {
        self.state == State::Live
    }

    pub fn handle_frame(&mut self, f: Frame, files: &mut dyn Files) -> Result<(), FollowerError> {
        match (self.state, f) {
            (State::Connected, Frame::Challenge { nonce, .. }) => {
                self.out.push_back(Frame::Hello {
                    node: self.node.clone(),
                    proof: proof(&self.secret, &nonce, &self.node),
                    files: files.list(),
                });
                self.state = State::Syncing;
            }
            (State::Syncing, Frame::Ops { first_seq: 0, ops }) => apply(files, &ops)?,
            (State::Syncing, Frame::Synced { seq }) => {
                self.applied = seq;
                self.acked = None;
                self.state = State::Live;
            }
            (State::Live, Frame::Ops { first_seq, ops }) => {
                if first_seq != self.applied + 1 {
                    return Err(FollowerError::Gap {
                        expected: self.applied + 1,
                        got: first_seq,
                    });
                }
                apply(files, &ops)?;
                self.applied += ops.len() as u64;
            }
            (_, f) => return Err(FollowerError::OutOfTurn(f.name())),
        }
        Ok(())
    }

    /// The next frame to send: the hello, then an ack of what it holds
    /// whenever that grew (the caller has synced its files first).
    pub fn poll_frame(&mut self) -> Option<Frame> {
        if let Some(f) = self.out.pop_front() {
            return Some(f);
        }
        if self.state == State::Live && self.acked != Some(self.applied) {
            self.acked = Some(self.applied);
            return Some(Frame::Ack { seq: self.applied });
        }
        None
    }
}

fn apply(files: &mut dyn Files, ops: &[super::wire::Op]) -> Result<(), FollowerError> {
    for op in ops {
        files.apply(op).map_err(|e| FollowerError::Apply(e.to_string()))?;
    }
    Ok(())
}
