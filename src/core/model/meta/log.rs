//! The metadata log: the one order in which every shard applies the metadata
//! ops (`docs/shards.md`, step 3).
//!
//! Each shard keeps its own copy of the routing data, so a publish routes on
//! the shard's own memory with no lock. The copies stay equal because every op
//! goes through this log and every shard applies the log's ops in its order.
//! A shard that makes an op (a client's declare, a queue's expiry) takes the
//! lock, first applies what other shards appended since it last looked, then
//! decides, appends and applies its own op, and lets go: the decision is made
//! on a copy that is current, so two shards declaring one name differently
//! are ordered here and the second gets the 406, as on one shard.
//!
//! The lock is taken for metadata only (declares, bindings, deletes; users,
//! permissions, vhosts and policies), never by a publish, a delivery or an
//! ack. Between inputs a shard reads [`MetaLog::head`],
//! one atomic load, and takes the lock only when it is behind: a client that
//! got its bind-ok from one shard and then publishes through another sees its
//! binding there.
//!
//! Entries every shard has applied are dropped from the front, so the log
//! holds only what some shard has not seen yet.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use super::{ShardId, SHARDS_MAX};

/// Entries past which a shard that does not catch up is logged as stalled:
/// every entry is kept until each shard has applied it.
pub const LAGGING_OPS_WARN: usize = 1 << 20;

/// The log shared by a broker's shards. `T` is what it carries: the
/// broker's entry (a [`MetaOp`](super::MetaOp), or an access op of the
/// layers above the model, `amqp::meta::LoggedOp`), in one order for all.
pub struct MetaLog<T> {
    inner: Mutex<Inner<T>>,
    /// The position after the last entry, readable without the lock.
    head: AtomicU64,
    /// Told which shard appended, after its section let go of the lock: the
    /// io layer wakes the other shards, so an idle one applies the ops too.
    on_append: OnceLock<AppendHook>,
}

/// See [`MetaLog::set_on_append`].
pub type AppendHook = Box<dyn Fn(ShardId) + Send + Sync>;

struct Inner<T> {
    /// The position of `ops[0]`.
    base: u64,
    ops: VecDeque<Arc<T>>,
    /// Per shard, the position of the first entry it has not applied.
    cursors: Vec<u64>,
    warned: bool,
}

impl<T> MetaLog<T> {
    /// An empty log for `shards` shards, each at position 0.
    pub fn new(shards: u16) -> Arc<MetaLog<T>> {
        assert!((1..=SHARDS_MAX).contains(&shards), "shard count {shards}");
        Arc::new(MetaLog {
            inner: Mutex::new(Inner {
                base: 0,
                ops: VecDeque::new(),
                cursors: vec![0; usize::from(shards)],
                warned: false,
            }),
            head: AtomicU64::new(0),
            on_append: OnceLock::new(),
        })
    }

    /// Sets what [`Self::appended`] calls (once; false if already set).
    pub fn set_on_append(&self, hook: AppendHook) -> bool {
        self.on_append.set(hook).is_ok()
    }

    /// `by` appended ops in a section that has let go of the lock.
    pub fn appended(&self, by: ShardId) {
        if let Some(hook) = self.on_append.get() {
            hook(by);
        }
    }

    /// The position after the last entry: a shard whose cursor is here has
    /// applied everything.
    pub fn head(&self) -> u64 {
        self.head.load(Ordering::Acquire)
    }

    /// Takes the log's lock. A shard that panicked while holding it left the
    /// log as it was before its append (an append is one push), so the lock is
    /// taken over rather than poisoning every other shard.
    pub fn lock(&self) -> MetaLogGuard<'_, T> {
        MetaLogGuard {
            inner: self.inner.lock().unwrap_or_else(|e| e.into_inner()),
            head: &self.head,
        }
    }
}

/// The log, locked.
pub struct MetaLogGuard<'a, T> {
    inner: MutexGuard<'a, Inner<T>>,
    head: &'a AtomicU64,
}

impl<T> MetaLogGuard<'_, T> {
    /// The entries from `cursor` on, oldest first (shared: the ops are not
    /// copied per shard).
    pub fn since(&self, cursor: u64) -> Vec<Arc<T>> {
        let inner = &*self.inner;
        assert!(
            cursor >= inner.base,
            "cursor {cursor} before the log's start {}",
            inner.base
        );
        let skip = usize::try_from(cursor - inner.base).expect("in memory");
        inner.ops.iter().skip(skip).cloned().collect()
    }

    /// Appends an op; returns the position after it.
    pub fn append(&mut self, op: T) -> u64 {
        let inner = &mut *self.inner;
        inner.ops.push_back(Arc::new(op));
        if inner.ops.len() >= LAGGING_OPS_WARN && !inner.warned {
            inner.warned = true;
            tracing::warn!(
                entries = inner.ops.len(),
                cursors = ?inner.cursors,
                "a shard has not applied the metadata log for {LAGGING_OPS_WARN} entries"
            );
        }
        let head = inner.base + inner.ops.len() as u64;
        self.head.store(head, Ordering::Release);
        head
    }

    /// `shard` has applied everything before `to`; entries every shard has
    /// applied are dropped.
    pub fn advance(&mut self, shard: ShardId, to: u64) {
        let inner = &mut *self.inner;
        let head = inner.base + inner.ops.len() as u64;
        let cursor = &mut inner.cursors[usize::from(shard.0)];
        assert!(
            *cursor <= to && to <= head,
            "shard {} moves from {} to {to} (head {head})",
            shard.0,
            *cursor
        );
        *cursor = to;
        let min = *inner.cursors.iter().min().expect("one shard at least");
        while inner.base < min {
            inner.ops.pop_front();
            inner.base += 1;
        }
        if inner.ops.len() < LAGGING_OPS_WARN / 2 {
            inner.warned = false;
        }
    }

    /// Where `shard` is: the first entry it has not applied.
    pub fn cursor(&self, shard: ShardId) -> u64 {
        self.inner.cursors[usize::from(shard.0)]
    }

    /// Entries held for shards that have not applied them.
    pub fn held(&self) -> usize {
        self.inner.ops.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::model::meta::MetaOp;
    use ringmq_codec::ShortString;

    fn op(n: usize) -> MetaOp {
        MetaOp::QueueDelete {
            vhost: crate::core::model::ids::VhostName::new("/").expect("a name"),
            name: ShortString::try_from(format!("q{n}").as_str()).expect("short"),
            keep_files: false,
        }
    }

    #[test]
    fn entries_stay_until_every_shard_applied_them() {
        let log = MetaLog::new(3);
        let mut g = log.lock();
        for n in 0..5 {
            g.append(op(n));
        }
        drop(g);
        assert_eq!(log.head(), 5);
        let mut g = log.lock();
        assert_eq!(g.since(0).len(), 5);
        g.advance(ShardId(0), 5);
        g.advance(ShardId(1), 3);
        assert_eq!(g.held(), 5, "shard 2 has applied none");
        g.advance(ShardId(2), 4);
        assert_eq!(g.held(), 2);
        assert_eq!(g.since(3), vec![Arc::new(op(3)), Arc::new(op(4))]);
        g.advance(ShardId(1), 5);
        g.advance(ShardId(2), 5);
        assert_eq!(g.held(), 0);
        assert_eq!(g.append(op(5)), 6);
        assert_eq!(g.since(5), vec![Arc::new(op(5))]);
    }

    #[test]
    #[should_panic(expected = "before the log's start")]
    fn reading_dropped_entries_is_a_bug() {
        let log = MetaLog::new(1);
        let mut g = log.lock();
        g.append(op(0));
        g.advance(ShardId(0), 1);
        g.since(0);
    }

    #[test]
    fn a_shard_that_panicked_holding_the_lock_does_not_stop_the_others() {
        let log = MetaLog::new(2);
        let l = Arc::clone(&log);
        let _ = std::thread::spawn(move || {
            let mut g = l.lock();
            g.append(op(0));
            panic!("a shard fails while holding the log");
        })
        .join();
        let mut g = log.lock();
        assert_eq!(g.since(0).len(), 1);
        g.append(op(1));
        assert_eq!(log.head(), 2);
    }
}
