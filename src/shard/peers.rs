//! The other shards' loops, as a shard reaches them for the management API:
//! a job sent to a shard runs there, on its thread, between two of its loop
//! turns, with its [`Shared`] (its broker, TLS and WebSocket tables), and
//! sends its answer back. [`Shared::on_every_shard`] runs one job on every
//! shard and gathers the answers, so a view of connections or queues is made
//! from what each shard holds when it is asked, not from copies kept
//! up to date on the hot path (`docs/shards.md`).
//!
//! The transport starts [`serve`] on each shard and gives every shard the
//! senders of the others ([`Shared::set_peers`]); with one shard there are
//! none and a job runs here only.

use std::rc::Rc;
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use super::Shared;

/// Work for another shard's loop.
pub(crate) type PeerJob = Box<dyn FnOnce(&Shared) + Send>;

/// Where to send a shard jobs.
pub(crate) type PeerSender = mpsc::UnboundedSender<PeerJob>;

/// What a job gives back from each shard.
pub(crate) type Job<R> = Arc<dyn Fn(&Shared) -> R + Send + Sync>;

/// A channel for jobs to one shard: the sender for the others, the
/// receiver for that shard's [`serve`].
pub(crate) fn channel() -> (PeerSender, mpsc::UnboundedReceiver<PeerJob>) {
    mpsc::unbounded_channel()
}

/// Runs the jobs other shards send this one, until they all went.
pub(crate) async fn serve(shared: Rc<Shared>, mut jobs: mpsc::UnboundedReceiver<PeerJob>) {
    while let Some(job) = jobs.recv().await {
        job(&shared);
    }
}

impl Shared {
    /// The senders of the other shards, in shard order (this one left out):
    /// set once by the transport before the services start.
    pub(crate) fn set_peers(&self, peers: Vec<PeerSender>) {
        *self.peers.borrow_mut() = peers;
    }

    /// How many shards the broker runs.
    pub(crate) fn shard_count(&self) -> usize {
        self.peers.borrow().len() + 1
    }

    /// Runs `job` here and on every other shard, and returns the answers,
    /// this shard's first. A shard that cannot answer (its thread ended, at
    /// shutdown) gives none.
    pub(crate) async fn on_every_shard<R: Send + 'static>(&self, job: Job<R>) -> Vec<R> {
        let mut waits = Vec::new();
        for peer in self.peers.borrow().iter() {
            let (tx, rx) = oneshot::channel();
            let job = job.clone();
            let sent = peer.send(Box::new(move |shared: &Shared| {
                let _ = tx.send(job(shared));
            }));
            if sent.is_ok() {
                waits.push(rx);
            }
        }
        let mut out = vec![job(self)];
        for rx in waits {
            if let Ok(r) = rx.await {
                out.push(r);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::{Broker, CoreConfig};

    /// Two shards on threads of their own: a job gathers an answer from each,
    /// run on its thread with its broker.
    #[test]
    fn a_job_runs_on_every_shard_and_gathers_their_answers() {
        let dir = tempfile::tempdir().unwrap();
        let config = CoreConfig::for_tests(&dir.path().join("data"));
        let mut brokers = Broker::open_shards(config, 1, 2).unwrap().into_iter();
        let (first, second) = (brokers.next().unwrap(), brokers.next().unwrap());
        let (to_second, jobs) = channel();
        let (stop_tx, stop_rx) = std::sync::mpsc::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
            let local = tokio::task::LocalSet::new();
            let shared = Rc::new(Shared::new(second, false));
            local.spawn_local(serve(shared, jobs));
            local.block_on(&rt, async move {
                while stop_rx.try_recv().is_err() {
                    tokio::task::yield_now().await;
                }
            });
        });
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let shared = Shared::new(first, false);
        shared.set_peers(vec![to_second]);
        assert_eq!(shared.shard_count(), 2);
        let job: Job<(u16, std::thread::ThreadId)> =
            Arc::new(|s: &Shared| (s.broker.borrow().model().shards.me.0, std::thread::current().id()));
        let answers = rt.block_on(shared.on_every_shard(job));
        assert_eq!(answers.len(), 2);
        assert_eq!((answers[0].0, answers[1].0), (0, 1));
        assert_eq!(answers[0].1, std::thread::current().id());
        assert_ne!(answers[1].1, answers[0].1, "shard 1's answer comes from its thread");
        stop_tx.send(()).unwrap();
        thread.join().unwrap();
    }
}
