//! The replication stream's frames (`docs/cluster.md`, "The stream"), as a
//! codec: [`encode`] appends a frame to a buffer, [`decode`] takes one from
//! the front of one, or says it is incomplete or malformed. No I/O.
//!
//! A frame is a big-endian `u32` length (of what follows), a kind byte and
//! the kind's fields: integers big-endian, strings and byte strings with a
//! length first. Every length is bounded ([`FRAME_MAX`], [`PATH_MAX`],
//! [`FILES_MAX`], [`OPS_MAX`]), and a path must stay inside the data
//! directory ([`check_path`]): a follower applies what a leader sends to its
//! own files, so a path is checked before anything is written.

/// The largest frame (a batch of changes, or a file list).
pub const FRAME_MAX: usize = 16 << 20;
/// The longest path (relative to the data directory).
pub const PATH_MAX: usize = 1024;
/// Files in one file list.
pub const FILES_MAX: usize = 1 << 20;
/// Changes in one batch.
pub const OPS_MAX: usize = 1 << 16;

/// One file as a follower has it, for the full sync.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileSum {
    pub path: String,
    pub len: u64,
    pub crc32c: u32,
}

/// One change to the data directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// Bytes written at an offset (appends, and records rewritten in place).
    Write { path: String, offset: u64, bytes: Vec<u8> },
    /// A small file replaced whole (atomically: written aside, renamed).
    Replace { path: String, bytes: Vec<u8> },
    /// The length set: cut, or grown with zeros; the file made if missing.
    Truncate { path: String, len: u64 },
    /// A file, or a folder with everything in it, gone.
    Remove { path: String },
    /// A file or folder renamed (over `to`, if there).
    Rename { from: String, to: String },
}

/// What leader and follower send each other.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// Leader: who it is (its term) and a nonce for the follower's proof.
    Challenge { term: i64, nonce: [u8; 16] },
    /// Follower: its name, a proof that it knows the cluster's secret, and
    /// its files.
    Hello {
        node: String,
        proof: [u8; 32],
        files: Vec<FileSum>,
    },
    /// Leader: changes `first_seq`, `first_seq + 1`, ... in order.
    Ops { first_seq: u64, ops: Vec<Op> },
    /// Leader: the full sync is done at `seq`; what follows is the live stream.
    Synced { seq: u64 },
    /// Follower: it holds (written and synced) every change up to `seq`.
    Ack { seq: u64 },
}

impl Frame {
    /// What it is, for errors that name a frame out of turn.
    pub fn name(&self) -> &'static str {
        match self {
            Frame::Challenge { .. } => "a challenge",
            Frame::Hello { .. } => "a hello",
            Frame::Ops { .. } => "changes",
            Frame::Synced { .. } => "the end of a sync",
            Frame::Ack { .. } => "an ack",
        }
    }
}

/// Why a frame could not be taken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// More bytes are needed (at least this many in all).
    #[error("incomplete frame: {0} bytes needed")]
    Incomplete(usize),
    #[error("malformed frame: {0}")]
    Malformed(String),
}

const CHALLENGE: u8 = 1;
const HELLO: u8 = 2;
const OPS: u8 = 3;
const SYNCED: u8 = 4;
const ACK: u8 = 5;

const OP_WRITE: u8 = 1;
const OP_REPLACE: u8 = 2;
const OP_TRUNCATE: u8 = 3;
const OP_REMOVE: u8 = 4;
const OP_RENAME: u8 = 5;

/// A path a follower may write: relative, inside the data directory, no
/// empty, `.` or `..` component, no NUL.
pub fn check_path(path: &str) -> Result<(), WireError> {
    let bad = path.is_empty()
        || path.len() > PATH_MAX
        || path.starts_with('/')
        || path.contains('\0')
        || path.split('/').any(|c| c.is_empty() || c == "." || c == "..");
    match bad {
        true => Err(WireError::Malformed(format!(
            "path {path:?} is not inside the data directory"
        ))),
        false => Ok(()),
    }
}

/// Appends `f` to `out`. Panics if it is over [`FRAME_MAX`] or names a bad
/// path: the caller makes frames within the bounds.
pub fn encode(out: &mut Vec<u8>, f: &Frame) {
    let start = out.len();
    out.extend_from_slice(&[0; 4]);
    match f {
        Frame::Challenge { term, nonce } => {
            out.push(CHALLENGE);
            out.extend_from_slice(&term.to_be_bytes());
            out.extend_from_slice(nonce);
        }
        Frame::Hello { node, proof, files } => {
            out.push(HELLO);
            put_str(out, node);
            out.extend_from_slice(proof);
            out.extend_from_slice(&(files.len() as u32).to_be_bytes());
            for fs in files {
                put_path(out, &fs.path);
                out.extend_from_slice(&fs.len.to_be_bytes());
                out.extend_from_slice(&fs.crc32c.to_be_bytes());
            }
        }
        Frame::Ops { first_seq, ops } => {
            assert!(ops.len() <= OPS_MAX, "a batch of {} changes", ops.len());
            out.push(OPS);
            out.extend_from_slice(&first_seq.to_be_bytes());
            out.extend_from_slice(&(ops.len() as u32).to_be_bytes());
            for op in ops {
                match op {
                    Op::Write { path, offset, bytes } => {
                        out.push(OP_WRITE);
                        put_path(out, path);
                        out.extend_from_slice(&offset.to_be_bytes());
                        put_bytes(out, bytes);
                    }
                    Op::Replace { path, bytes } => {
                        out.push(OP_REPLACE);
                        put_path(out, path);
                        put_bytes(out, bytes);
                    }
                    Op::Truncate { path, len } => {
                        out.push(OP_TRUNCATE);
                        put_path(out, path);
                        out.extend_from_slice(&len.to_be_bytes());
                    }
                    Op::Remove { path } => {
                        out.push(OP_REMOVE);
                        put_path(out, path);
                    }
                    Op::Rename { from, to } => {
                        out.push(OP_RENAME);
                        put_path(out, from);
                        put_path(out, to);
                    }
                }
            }
        }
        Frame::Synced { seq } => {
            out.push(SYNCED);
            out.extend_from_slice(&seq.to_be_bytes());
        }
        Frame::Ack { seq } => {
            out.push(ACK);
            out.extend_from_slice(&seq.to_be_bytes());
        }
    }
    let len = out.len() - start - 4;
    assert!(len <= FRAME_MAX, "a frame of {len} bytes");
    out[start..start + 4].copy_from_slice(&(len as u32).to_be_bytes());
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    assert!(s.len() <= PATH_MAX, "a name of {} bytes", s.len());
    out.extend_from_slice(&(s.len() as u16).to_be_bytes());
    out.extend_from_slice(s.as_bytes());
}

fn put_path(out: &mut Vec<u8>, p: &str) {
    check_path(p).expect("the leader names only paths inside the data directory");
    put_str(out, p);
}

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    out.extend_from_slice(&(b.len() as u32).to_be_bytes());
    out.extend_from_slice(b);
}

/// Takes one frame from the front of `input`: the frame and the bytes it took.
pub fn decode(input: &[u8]) -> Result<(Frame, usize), WireError> {
    let Some(head) = input.get(..4) else {
        return Err(WireError::Incomplete(4));
    };
    let len = u32::from_be_bytes(head.try_into().expect("4 bytes")) as usize;
    if len == 0 || len > FRAME_MAX {
        return Err(WireError::Malformed(format!("a frame of {len} bytes")));
    }
    let Some(body) = input.get(4..4 + len) else {
        return Err(WireError::Incomplete(4 + len));
    };
    let mut r = Reader { b: &body[1..] };
    let f = match body[0] {
        CHALLENGE => Frame::Challenge {
            term: r.u64()? as i64,
            nonce: r.array()?,
        },
        HELLO => {
            let node = r.str()?;
            let proof = r.array()?;
            let n = r.count(FILES_MAX, "files")?;
            let mut files = Vec::with_capacity(n.min(1024));
            for _ in 0..n {
                files.push(FileSum {
                    path: r.path()?,
                    len: r.u64()?,
                    crc32c: r.u32()?,
                });
            }
            Frame::Hello { node, proof, files }
        }
        OPS => {
            let first_seq = r.u64()?;
            let n = r.count(OPS_MAX, "changes")?;
            let mut ops = Vec::with_capacity(n.min(1024));
            for _ in 0..n {
                ops.push(match r.u8()? {
                    OP_WRITE => Op::Write {
                        path: r.path()?,
                        offset: r.u64()?,
                        bytes: r.bytes()?,
                    },
                    OP_REPLACE => Op::Replace {
                        path: r.path()?,
                        bytes: r.bytes()?,
                    },
                    OP_TRUNCATE => Op::Truncate {
                        path: r.path()?,
                        len: r.u64()?,
                    },
                    OP_REMOVE => Op::Remove { path: r.path()? },
                    OP_RENAME => Op::Rename {
                        from: r.path()?,
                        to: r.path()?,
                    },
                    k => return Err(WireError::Malformed(format!("change of kind {k}"))),
                });
            }
            Frame::Ops { first_seq, ops }
        }
        SYNCED => Frame::Synced { seq: r.u64()? },
        ACK => Frame::Ack { seq: r.u64()? },
        k => return Err(WireError::Malformed(format!("frame of kind {k}"))),
    };
    if !r.b.is_empty() {
        return Err(WireError::Malformed(format!(
            "{} bytes after the frame's fields",
            r.b.len()
        )));
    }
    Ok((f, 4 + len))
}

/// Fields from a frame's body; running out is malformed (the length said
/// the body was whole).
struct Reader<'a> {
    b: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], WireError> {
        if self.b.len() < n {
            return Err(WireError::Malformed("a field runs past the frame".into()));
        }
        let (head, rest) = self.b.split_at(n);
        self.b = rest;
        Ok(head)
    }
    fn u8(&mut self) -> Result<u8, WireError> {
        Ok(self.take(1)?[0])
    }
    fn u32(&mut self) -> Result<u32, WireError> {
        Ok(u32::from_be_bytes(self.take(4)?.try_into().expect("4 bytes")))
    }
    fn u64(&mut self) -> Result<u64, WireError> {
        Ok(u64::from_be_bytes(self.take(8)?.try_into().expect("8 bytes")))
    }
    fn array<const N: usize>(&mut self) -> Result<[u8; N], WireError> {
        Ok(self.take(N)?.try_into().expect("N bytes"))
    }
    fn count(&mut self, max: usize, what: &str) -> Result<usize, WireError> {
        let n = self.u32()? as usize;
        match n <= max {
            true => Ok(n),
            false => Err(WireError::Malformed(format!("{n} {what}, more than {max}"))),
        }
    }
    fn str(&mut self) -> Result<String, WireError> {
        let n = u16::from_be_bytes(self.take(2)?.try_into().expect("2 bytes")) as usize;
        if n > PATH_MAX {
            return Err(WireError::Malformed(format!("a name of {n} bytes")));
        }
        String::from_utf8(self.take(n)?.to_vec()).map_err(|_| WireError::Malformed("a name is not UTF-8".into()))
    }
    fn path(&mut self) -> Result<String, WireError> {
        let p = self.str()?;
        check_path(&p)?;
        Ok(p)
    }
    fn bytes(&mut self) -> Result<Vec<u8>, WireError> {
        let n = self.u32()? as usize;
        Ok(self.take(n)?.to_vec())
    }
}

#[cfg(test)]
mod tests;
