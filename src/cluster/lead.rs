//! A node that leads: before the broker serves, etcd's in-sync replica set
//! names this node alone (a set left by the last leader could name a
//! follower that will miss what this one confirms); then it serves the
//! followers ([`stream::serve`] over the log the broker's recorders write),
//! keeps the set ([`IsrKeeper`]: its writes to etcd, and up to which change
//! confirms may go, for the broker's confirm gate), and ends the process the
//! moment it may no longer lead (the fence, or another leader seen): a
//! broker that cannot confirm has nothing left to do, as in LavinMQ.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{watch, Notify};

use super::dir_files::DirFiles;
use super::elect::{self, Isr, Keys, Status};
use super::etcd::Etcd;
use super::isr::{IsrKeeper, Step};
use super::log::ReplLog;
use super::node::{NodeConfig, NodeError};
use super::stream::{self, Primary};
use super::view::ClusterView;

/// Bytes of changes the leader keeps for followers that fall behind (one
/// further behind syncs again from the files).
pub const LOG_BYTES: usize = 256 << 20;
/// How often the set is looked at without a follower's ack to wake it.
const TICK: Duration = Duration::from_millis(20);
/// The process's exit code when it stops leading.
pub const EXIT_NOT_LEADING: i32 = 3;

/// What the broker's thread gets once this node leads.
#[derive(Debug)]
pub struct Leading {
    /// The replication log the broker's recorder writes.
    pub log: Arc<Mutex<ReplLog>>,
    /// Woken by the recorder at every group commit.
    pub grew: Arc<Notify>,
    /// Up to which change confirms may go.
    pub confirmable: watch::Receiver<u64>,
}

/// Ends the process: it no longer leads, so it must not confirm.
fn stop_leading(why: &str) -> ! {
    if STOPPING.load(Ordering::Acquire) {
        // The broker stopped and this node resigned: the process is ending
        // with the broker's own exit code.
        loop {
            std::thread::park();
        }
    }
    tracing::error!("{why}: this node no longer leads; exiting");
    std::process::exit(EXIT_NOT_LEADING)
}

/// Set once the broker has stopped (a clean stop), before the node resigns.
static STOPPING: AtomicBool = AtomicBool::new(false);

/// After the broker stopped: this node gives up its lease now, so a follower
/// leads without waiting for the lease's TTL (its leader key goes with it).
pub fn resign(cfg: &NodeConfig, etcd: &Etcd) {
    STOPPING.store(true, Ordering::Release);
    let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => return tracing::warn!(error = %e, "cannot resign: no runtime"),
    };
    let key = Keys::under(&cfg.etcd_prefix).leader;
    match rt.block_on(elect::resign(etcd, &key, &cfg.me)) {
        Ok(()) => tracing::info!("resigned the leadership"),
        Err(e) => tracing::warn!(error = %e, "cannot resign: the lease ends by its TTL"),
    }
}

/// Writes `isr` as leader of `term`, retrying while it still leads.
async fn write(etcd: &Etcd, keys: &Keys, me: &str, term: i64, isr: &Isr, status: &watch::Receiver<Status>) {
    loop {
        if !status.borrow().leads(elect::now_ms()) {
            stop_leading("the lease may have ended");
        }
        match elect::write_isr(etcd, keys, me, term, isr).await {
            Ok(true) => {
                tracing::info!(members = ?isr.members, "in-sync replicas written");
                return;
            }
            Ok(false) => stop_leading("etcd refused the in-sync replicas"),
            Err(e) => tracing::warn!(error = %e, "cannot write the in-sync replicas: trying again"),
        }
        tokio::time::sleep(TICK).await;
    }
}

/// Leads as `term` until the process ends.
pub async fn lead(
    cfg: &NodeConfig,
    etcd: &Etcd,
    keys: &Keys,
    term: i64,
    secret: &[u8],
    status: watch::Receiver<Status>,
    lead_tx: std::sync::mpsc::Sender<Leading>,
) -> Result<(), NodeError> {
    let mut keeper = IsrKeeper::new(&cfg.me, cfg.min_isr.into(), elect::now_ms());
    write(etcd, keys, &cfg.me, term, &keeper.isr(), &status).await;
    let log = Arc::new(Mutex::new(ReplLog::new(LOG_BYTES)));
    let grew = Arc::new(Notify::new());
    let (conf_tx, confirmable) = watch::channel(keeper.confirmable(&BTreeMap::new()));
    let files = Box::new(DirFiles::new(&cfg.data_dir, &[]));
    let primary = Primary::shared(files, log.clone(), grew.clone(), term, secret);
    let primary = Rc::new(RefCell::new(primary));
    let listener = tokio::net::TcpListener::bind(&cfg.repl_listen).await?;
    tracing::info!(at = %cfg.repl_listen, "serving followers");
    tokio::task::spawn_local(stream::serve(listener, primary.clone()));
    lead_tx
        .send(Leading { log, grew, confirmable })
        .map_err(|_| NodeError::Stopped)?;
    let acked = primary.borrow().acked();
    loop {
        let now = elect::now_ms();
        {
            let s = status.borrow();
            if !s.leads(now) {
                stop_leading(if matches!(s.leader, super::election::Leader::Me { .. }) {
                    "the lease may have ended"
                } else {
                    "another node leads"
                });
            }
        }
        let (acks, last) = {
            let p = primary.borrow();
            (p.acks().clone(), p.last_seq())
        };
        if let Some(Step::Write(isr)) = keeper.tick(&acks, last, now) {
            // A joining follower is waited for before etcd names it; one
            // leaving is waited for until etcd no longer does.
            conf_tx.send_replace(keeper.confirmable(&acks));
            write(etcd, keys, &cfg.me, term, &isr, &status).await;
            keeper.written();
        }
        let c = keeper.confirmable(&acks);
        conf_tx.send_if_modified(|v| std::mem::replace(v, c) != c);
        super::view::publish(ClusterView {
            me: cfg.me.clone(),
            isr: keeper.isr().members,
            acks,
            last_seq: last,
        });
        tokio::select! {
            _ = acked.notified() => {}
            _ = tokio::time::sleep(TICK) => {}
        }
    }
}
