//! The leader's replication log: every change to the data directory, in
//! order, numbered from 1, kept until every follower has it or the log's
//! bound in bytes is passed (a follower then behind the oldest change kept
//! needs a full sync again).

use std::collections::VecDeque;

use super::wire::Op;

/// What an op costs in the log beside its bytes.
const OP_OVERHEAD: usize = 64;

fn weight(op: &Op) -> usize {
    OP_OVERHEAD
        + match op {
            Op::Write { path, bytes, .. } | Op::Replace { path, bytes } => path.len() + bytes.len(),
            Op::Truncate { path, .. } | Op::Remove { path } => path.len(),
            Op::Rename { from, to } => from.len() + to.len(),
        }
}

#[derive(Debug)]
pub struct ReplLog {
    /// The number of `ops[0]`.
    first_seq: u64,
    ops: VecDeque<Op>,
    bytes: usize,
    max_bytes: usize,
}

impl ReplLog {
    pub fn new(max_bytes: usize) -> ReplLog {
        ReplLog {
            first_seq: 1,
            ops: VecDeque::new(),
            bytes: 0,
            max_bytes,
        }
    }

    /// The number of the last change (0: none yet).
    pub fn last_seq(&self) -> u64 {
        self.first_seq + self.ops.len() as u64 - 1
    }

    /// Records a change; returns its number. Past the bound the oldest go.
    pub fn append(&mut self, op: Op) -> u64 {
        self.bytes += weight(&op);
        self.ops.push_back(op);
        while self.bytes > self.max_bytes && self.ops.len() > 1 {
            self.drop_oldest();
        }
        self.last_seq()
    }

    fn drop_oldest(&mut self) {
        let op = self.ops.pop_front().expect("not empty");
        self.bytes -= weight(&op);
        self.first_seq += 1;
    }

    /// Changes from `seq` on, at most `max_ops` and about `max_bytes`
    /// (at least one); None if `seq` is no longer kept.
    pub fn since(&self, seq: u64, max_ops: usize, max_bytes: usize) -> Option<Vec<Op>> {
        if seq < self.first_seq {
            return None;
        }
        let skip = (seq - self.first_seq) as usize;
        let mut out = Vec::new();
        let mut bytes = 0;
        for op in self.ops.iter().skip(skip).take(max_ops) {
            bytes += weight(op);
            if !out.is_empty() && bytes > max_bytes {
                break;
            }
            out.push(op.clone());
        }
        Some(out)
    }

    /// The changes from `seq` on, borrowed; None if `seq` is no longer kept.
    pub fn iter_since(&self, seq: u64) -> Option<impl Iterator<Item = &Op>> {
        let skip = seq.checked_sub(self.first_seq)?;
        Some(self.ops.iter().skip(skip as usize))
    }

    /// Every follower has the changes up to `seq`: they go.
    pub fn trim_to(&mut self, seq: u64) {
        while !self.ops.is_empty() && self.first_seq <= seq {
            self.drop_oldest();
        }
    }
}
