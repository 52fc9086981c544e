//! Policies on the running broker: the `Broker` operations the HTTP API and
//! the definitions import call to set, delete and list policies. Validating,
//! saving and re-applying them to the model's queues and exchanges is
//! `policy::apply`; here a change is checked and made as an op for every
//! shard (`amqp::meta_access`), the timers are started first and the
//! session's pending work (deliveries from queues whose limits changed) runs
//! after.

use crate::core::access::op::AccessOp;
use crate::core::amqp::broker::Broker;
use crate::core::model::error::{AdminError, AdminResult};
use crate::core::policy::apply::{self, VhostPolicy};
use crate::core::policy::{Policy, PolicyDef, PolicyKind};

impl Broker {
    /// Adds or replaces a policy and applies it to existing objects at once.
    /// Returns whether it is new (the API answers 201, else 204).
    /// An op for every shard (`access::op`): each re-applies it to its copy.
    pub fn put_policy(&mut self, vhost: &str, def: PolicyDef, kind: PolicyKind, now_ms: u64) -> AdminResult<bool> {
        Policy::compile(def.clone(), kind).map_err(AdminError::BadRequest)?;
        self.start_policy_change(now_ms);
        let created = self.in_meta_section(|b| {
            let v = b.vhost_mut(vhost)?;
            apply::check_room(v, &def.name, kind)?;
            let created = apply::policies(v, kind).get(&def.name).is_none();
            let vhost = v.name.clone();
            b.make_access(AccessOp::PolicyPut { vhost, def, kind })?;
            Ok::<_, AdminError>(created)
        })?;
        self.run_pending();
        Ok(created)
    }

    /// Deletes a policy; objects it applied to fall back to the next match.
    pub fn delete_policy(&mut self, vhost: &str, name: &str, kind: PolicyKind, now_ms: u64) -> AdminResult<()> {
        self.start_policy_change(now_ms);
        self.in_meta_section(|b| {
            let v = b.vhost_mut(vhost)?;
            if apply::policies(v, kind).get(name).is_none() {
                return Err(AdminError::NotFound(format!("no policy '{name}' in vhost '{vhost}'")));
            }
            let vhost = v.name.clone();
            let name = name.to_owned();
            b.make_access(AccessOp::PolicyDelete { vhost, name, kind })
        })?;
        self.run_pending();
        Ok(())
    }

    /// Policies of one vhost, or of all vhosts, sorted by vhost and name.
    pub fn list_policies(&self, vhost: Option<&str>, kind: PolicyKind) -> AdminResult<Vec<VhostPolicy>> {
        apply::list(&self.model, vhost, kind)
    }

    /// Timers run before a policy changes: the op re-applies the vhost's
    /// policies, and queues whose settings changed trim, expire and deliver
    /// (`run_pending`, after the section).
    fn start_policy_change(&mut self, now_ms: u64) {
        self.ensure_started(now_ms);
        self.advance_clock(now_ms);
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::core::config::CoreConfig;
    use crate::core::policy::{ApplyTo, PolicyDef};

    /// The built-in exchanges exist before a vhost's policies are read
    /// (`VHost::open`, then `load`): loading matches them, so a policy on one
    /// applies again after a restart.
    #[test]
    fn a_policy_on_a_builtin_exchange_applies_after_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let def = PolicyDef {
            name: "ae".into(),
            pattern: "^amq\\.direct$".into(),
            apply_to: ApplyTo::Exchanges,
            priority: 0,
            definition: json!({"alternate-exchange": "ae"}).as_object().unwrap().clone(),
        };
        let policy_of = |b: &Broker, x: &str| {
            b.model.vhosts["/"].exchanges[x]
                .policy
                .as_ref()
                .map(|p| p.name().to_owned())
        };
        {
            let mut b = Broker::open(CoreConfig::for_tests(dir.path()), 1).unwrap();
            b.put_policy("/", def, PolicyKind::User, 0).unwrap();
            assert_eq!(policy_of(&b, "amq.direct").as_deref(), Some("ae"));
        }
        let b = Broker::open(CoreConfig::for_tests(dir.path()), 1).unwrap();
        assert_eq!(policy_of(&b, "amq.direct").as_deref(), Some("ae"));
        assert_eq!(policy_of(&b, "amq.fanout"), None);
    }
}
