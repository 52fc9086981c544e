//! Runs an [`Election`] against etcd: does what it asks, one call at a time
//! (each bounded by the client's timeout), watches the leader key, and
//! publishes the node's [`Status`] after every change.

use std::time::Duration;

use tokio::sync::watch;

use super::election::{Action, Election, ElectionConfig, Leader};
use super::etcd::{Etcd, Event};

/// What the rest of the node reads of the election.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    pub leader: Leader,
    /// While this node leads: until when (ms since the epoch) it may act as
    /// the leader without hearing from etcd again (the fence).
    pub leads_until_ms: Option<u64>,
}

impl Status {
    /// Whether this node leads at `now_ms`.
    pub fn leads(&self, now_ms: u64) -> bool {
        self.leads_until_ms.is_some_and(|t| now_ms < t)
    }
}

/// How long to wait before watching again after a watch failed.
const REWATCH_MS: u64 = 200;

/// The clock [`Status::leads_until_ms`] is in (monotonic, in ms since the
/// epoch as of the process's start).
pub fn now_ms() -> u64 {
    crate::io::now_ms()
}

/// Where a cluster keeps its state in etcd, under its prefix.
#[derive(Debug, Clone)]
pub struct Keys {
    /// The leader's advertised URI, attached to its lease.
    pub leader: Vec<u8>,
    /// The in-sync replica set ([`Isr`] as JSON), written only by the leader.
    pub isr: Vec<u8>,
}

impl Keys {
    pub fn under(prefix: &str) -> Keys {
        let p = prefix.trim_end_matches('/');
        Keys {
            leader: format!("{p}/leader").into_bytes(),
            isr: format!("{p}/isr").into_bytes(),
        }
    }
}

/// The in-sync replica set: the nodes that hold every confirmed change.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Isr {
    pub members: Vec<String>,
}

impl Isr {
    /// Whether `me` may campaign: a member, or the set is empty (the
    /// cluster's first start). An unreadable set counts as not eligible.
    fn admits(value: Option<&[u8]>, me: &str) -> bool {
        match value {
            None => true,
            Some(v) => serde_json::from_slice::<Isr>(v)
                .is_ok_and(|isr| isr.members.is_empty() || isr.members.iter().any(|m| m == me)),
        }
    }
}

/// Writes the in-sync replica set, as leader `me` of term `term`: false if
/// it no longer leads that term (the write is refused by etcd).
pub async fn write_isr(
    etcd: &Etcd,
    keys: &Keys,
    me: &str,
    term: i64,
    isr: &Isr,
) -> Result<bool, super::etcd::EtcdError> {
    let value = serde_json::to_vec(isr).expect("plain data");
    etcd.put_if(&keys.isr, &value, &keys.leader, me.as_bytes(), term).await
}

/// Runs the election of `cfg.me` until the task is dropped (a dropped
/// node's lease ends by its TTL; [`resign`] ends it at once). While nobody
/// is known to lead, the in-sync replica set is read before campaigning:
/// only its members campaign.
pub async fn run(etcd: Etcd, cfg: ElectionConfig, keys: Keys, out: watch::Sender<Status>) {
    let me = cfg.me.clone();
    let leader_key = keys.leader.clone();
    let mut e = Election::new(cfg);
    let mut watching: Option<super::etcd::Watch> = None;
    let mut rewatch_at = 0;
    // The revision the next watch starts at (0: now).
    let mut watch_from = 0;
    loop {
        let now = now_ms();
        if *e.leader() == Leader::Unknown {
            match etcd.get(&keys.isr).await {
                Ok(kv) => e.set_eligible(Isr::admits(kv.as_ref().map(|kv| &kv.value[..]), &me)),
                Err(err) => tracing::warn!(error = %err, "cannot read the in-sync replica set"),
            }
            // A node that may not campaign learns who leads from the key
            // (the watch tells only what changes after it starts).
            match etcd.get(&leader_key).await {
                Ok(Some(kv)) if kv.value != me.as_bytes() => {
                    e.handle_leader(String::from_utf8_lossy(&kv.value).into_owned(), kv.create_revision);
                    if watching.is_none() {
                        watch_from = kv.mod_revision + 1;
                    }
                }
                Ok(_) => {}
                Err(err) => tracing::warn!(error = %err, "cannot read the leader key"),
            }
        }
        while let Some(action) = e.poll(now_ms()) {
            act(&etcd, &mut e, action, &leader_key, &me).await;
        }
        let now = now.max(now_ms());
        let status = Status {
            leader: e.leader().clone(),
            leads_until_ms: e.leads_until(now),
        };
        out.send_if_modified(|s| {
            let changed = *s != status;
            *s = status.clone();
            changed
        });
        if watching.is_none() && now >= rewatch_at {
            match etcd.watch(&leader_key, std::mem::take(&mut watch_from)).await {
                Ok(w) => watching = Some(w),
                Err(err) => {
                    tracing::warn!(error = %err, "cannot watch the leader key");
                    rewatch_at = now + REWATCH_MS;
                }
            }
        }
        let wake = e
            .poll_timeout()
            .min(if watching.is_none() { rewatch_at } else { u64::MAX });
        let sleep = tokio::time::sleep(Duration::from_millis(wake.saturating_sub(now_ms()).max(1)));
        match watching.as_mut() {
            None => sleep.await,
            Some(w) => tokio::select! {
                _ = sleep => {}
                got = w.next() => match got {
                    Ok(Some(events)) => {
                        for ev in events {
                            match ev {
                                Event::Delete { .. } => e.handle_leader_gone(),
                                Event::Put(kv) => {
                                    e.handle_leader(String::from_utf8_lossy(&kv.value).into_owned(), kv.create_revision)
                                }
                            }
                        }
                    }
                    Ok(None) | Err(_) => {
                        watching = None;
                        rewatch_at = now_ms() + REWATCH_MS;
                    }
                },
            },
        }
    }
}

/// Does one action against etcd and reports its result.
async fn act(etcd: &Etcd, e: &mut Election, action: Action, leader_key: &[u8], me: &str) {
    match action {
        Action::Grant { ttl_secs } => match etcd.grant(ttl_secs).await {
            Ok((id, _)) => e.handle_granted(id),
            Err(err) => {
                tracing::warn!(error = %err, "cannot get an etcd lease");
                e.handle_failed(now_ms());
            }
        },
        Action::KeepAlive { lease } => match etcd.keep_alive(lease).await {
            Ok(ttl) => e.handle_kept(ttl.is_some()),
            Err(err) => {
                tracing::warn!(error = %err, "cannot renew the etcd lease");
                e.handle_failed(now_ms());
            }
        },
        Action::Campaign { lease } => match etcd.create(leader_key, me.as_bytes(), lease).await {
            Ok(Ok(rev)) => e.handle_campaign(Ok(rev)),
            Ok(Err(kv)) => e.handle_campaign(Err((
                String::from_utf8_lossy(&kv.value).into_owned(),
                kv.create_revision,
            ))),
            Err(err) => {
                tracing::warn!(error = %err, "cannot campaign in etcd");
                e.handle_failed(now_ms());
            }
        },
    }
}

/// Ends this node's lease now (a clean stop): its leader key goes with it and
/// another node leads without waiting for the TTL.
pub async fn resign(etcd: &Etcd, leader_key: &[u8], me: &str) -> Result<(), super::etcd::EtcdError> {
    if let Some(kv) = etcd.get(leader_key).await? {
        if kv.value == me.as_bytes() && kv.lease != 0 {
            etcd.revoke(kv.lease).await?;
        }
    }
    Ok(())
}
