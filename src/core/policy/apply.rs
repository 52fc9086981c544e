//! Setting and clearing policies over a vhost and the model: persistence
//! (`policies.json` in each vhost's directory), re-applying to existing queues
//! and exchanges ([`reapply`]), and the effects of changed settings on the
//! model (a new length limit trims, a new TTL expires, a new x-expires arms its
//! timer). The `Broker` operations the management API calls (which start the
//! timers first and run the session's pending deliveries after) are
//! `mgmt::policies`.

use crate::core::model::ids::VhostName;

use serde::{Deserialize, Serialize};

use crate::core::model::error::{AdminError, AdminResult};
use crate::core::model::ids::QueueId;
use crate::core::model::policy::{apply_queue_policy, PolicySet};
use crate::core::model::queue::args::QueueSettings;
use crate::core::model::timers::TimerKind;
use crate::core::model::vhost::VHost;
use crate::core::model::Model;
use crate::core::policy::{Policy, PolicyDef, PolicyKind, POLICIES_PER_VHOST_MAX};

/// The policies file of a vhost.
pub const POLICIES_FILE: &str = "policies.json";

#[derive(Debug, Default, Serialize, Deserialize)]
struct PoliciesFile {
    #[serde(default)]
    policies: Vec<PolicyDef>,
    #[serde(default)]
    operator_policies: Vec<PolicyDef>,
}

/// Loads the vhost's policies, when it opens (before its definitions are
/// replayed, so each queue gets its policy as it is created), and matches the
/// exchanges it has (the built-in ones) against them. An entry this version
/// refuses is skipped with a warning (the file was written by us, so that means
/// another version).
pub(crate) fn load(vhost: &mut VHost) -> std::io::Result<()> {
    let file: Option<PoliciesFile> = ringmq_store::meta::read_json(&vhost.dir.join(POLICIES_FILE))?;
    let Some(file) = file else { return Ok(()) };
    for (defs, kind) in [
        (file.policies, PolicyKind::User),
        (file.operator_policies, PolicyKind::Operator),
    ] {
        for def in defs {
            let name = def.name.clone();
            match Policy::compile(def, kind) {
                Ok(p) => {
                    set_of(vhost, kind).put(p);
                }
                Err(e) => tracing::warn!(vhost = %vhost.name, policy = %name, error = %e, "policy skipped"),
            }
        }
    }
    match_exchanges(vhost);
    Ok(())
}

/// Sets each exchange's policy to the one that applies to it now.
fn match_exchanges(v: &mut VHost) {
    for x in v.exchanges.values_mut() {
        x.policy = v.policies.for_exchange(&x.name).cloned();
    }
}

/// Writes the vhost's policies and operator policies (`policies.json`).
pub(crate) fn save(vhost: &VHost) -> std::io::Result<()> {
    let file = PoliciesFile {
        policies: vhost.policies.defs(),
        operator_policies: vhost.operator_policies.defs(),
    };
    ringmq_store::meta::write_json_atomic(&vhost.dir.join(POLICIES_FILE), &file)
}

/// The vhost's policies of one kind.
pub(crate) fn policies(vhost: &VHost, kind: PolicyKind) -> &PolicySet {
    match kind {
        PolicyKind::User => &vhost.policies,
        PolicyKind::Operator => &vhost.operator_policies,
    }
}

fn set_of(vhost: &mut VHost, kind: PolicyKind) -> &mut PolicySet {
    match kind {
        PolicyKind::User => &mut vhost.policies,
        PolicyKind::Operator => &mut vhost.operator_policies,
    }
}

/// A policy with the vhost it belongs to, for listings and exports.
#[derive(Debug, Clone, Serialize)]
pub struct VhostPolicy {
    pub vhost: String,
    #[serde(flatten)]
    pub def: PolicyDef,
}

/// Whether `v` has room for a policy named `name` (a new one past
/// [`POLICIES_PER_VHOST_MAX`] is refused; a replaced one always fits).
pub(crate) fn check_room(v: &VHost, name: &str, kind: PolicyKind) -> AdminResult<()> {
    let set = policies(v, kind);
    if set.get(name).is_none() && set.len() >= POLICIES_PER_VHOST_MAX {
        return Err(AdminError::Conflict(format!(
            "vhost '{}' has {POLICIES_PER_VHOST_MAX} policies, the most allowed",
            v.name
        )));
    }
    Ok(())
}

/// Adds or replaces a compiled policy in `v`, in memory (an op's apply on
/// every shard; the maker saves with [`save`]). Returns whether it is new.
/// The caller re-applies the vhost's policies ([`reapply`]).
pub(crate) fn set(v: &mut VHost, p: Policy, kind: PolicyKind) -> bool {
    set_of(v, kind).put(p).is_none()
}

/// Removes a policy of `v`, in memory; returns whether it was there. The
/// caller re-applies the policies: objects it applied to fall back to the
/// next match.
pub(crate) fn remove(v: &mut VHost, name: &str, kind: PolicyKind) -> bool {
    set_of(v, kind).remove(name).is_some()
}

/// Policies of one vhost, or of all vhosts, sorted by vhost and name.
pub(crate) fn list(model: &Model, vhost: Option<&str>, kind: PolicyKind) -> AdminResult<Vec<VhostPolicy>> {
    if let Some(v) = vhost {
        if !model.vhosts.contains_key(v) {
            return Err(AdminError::NotFound(format!("no vhost '{v}'")));
        }
    }
    let mut out = Vec::new();
    for (name, v) in &model.vhosts {
        if vhost.is_some_and(|want| want != &**name) {
            continue;
        }
        let set = match kind {
            PolicyKind::User => &v.policies,
            PolicyKind::Operator => &v.operator_policies,
        };
        out.extend(set.defs().into_iter().map(|def| VhostPolicy {
            vhost: name.to_string(),
            def,
        }));
    }
    out.sort_by(|a, b| (&a.vhost, &a.def.name).cmp(&(&b.vhost, &b.def.name)));
    Ok(out)
}

/// Re-evaluates every queue and exchange of the vhost against its policies
/// and applies what changed to the model; the session then delivers from the
/// queues this lists as pending. O(queues + exchanges) per policy change.
pub(crate) fn reapply(model: &mut Model, vhost: &str) {
    let Some(vname) = model.vhosts.get_key_value(vhost).map(|(k, _)| k.clone()) else {
        return;
    };
    let v = model.vhosts.get_mut(vhost).expect("looked up above");
    match_exchanges(v);
    let mut changed = Vec::new();
    let ids: Vec<QueueId> = v.queues.keys().copied().collect();
    for id in ids {
        let q = v.queues.get_mut(&id).expect("listed above");
        let old = apply_queue_policy(&v.policies, &v.operator_policies, q);
        if old != *q.settings() {
            changed.push((id, old));
        }
    }
    for (id, old) in changed {
        settings_changed(model, &vname, id, &old);
    }
}

/// Makes a queue's new effective settings take effect now.
fn settings_changed(model: &mut Model, vname: &VhostName, id: QueueId, old: &QueueSettings) {
    let Some(q) = model.vhosts.get_mut(vname).and_then(|v| v.queues.get_mut(&id)) else {
        return;
    };
    if q.owner() != model.shards.me {
        // A copy of another shard's queue: its settings are what the views
        // show; its owner trims, expires and delivers.
        return;
    }
    let s = q.settings().clone();
    tracing::info!(vhost = %vname, queue = %q.name(), policy = ?q.policy().map(|p| p.name().to_owned()), "queue settings changed by policy");
    // A lower length limit trims from the head now (drop-head only: with
    // reject-publish the messages already in stay, as in RabbitMQ).
    model.enforce_length(vname, id);
    if s.message_ttl_ms.is_some() && s.message_ttl_ms != old.message_ttl_ms {
        model.expiry_pending.push((vname.clone(), id));
    }
    if s.expires_ms != old.expires_ms {
        if let Some(expires) = s.expires_ms {
            let last = model
                .vhosts
                .get(vname)
                .and_then(|v| v.queues.get(&id))
                .map_or(model.now_ms, |q| q.last_used_ms());
            let due = last.saturating_add(expires).max(model.now_ms + 1);
            model.timers.add(due, model.now_ms, vname, id, TimerKind::QueueExpires);
        }
    }
    model.deliver_pending.push((vname.clone(), id));
}
