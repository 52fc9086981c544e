//! Policies on the running broker: the `Broker` operations the HTTP API and
//! the definitions import call to set, delete and list policies. Validating,
//! saving and re-applying them to the model's queues and exchanges is
//! `policy::apply`; here the timers are started first and the session's
//! pending work (deliveries from queues whose limits changed) runs after.

use crate::core::amqp::broker::Broker;
use crate::core::model::error::{AdminError, AdminResult};
use crate::core::policy::apply::{self, VhostPolicy};
use crate::core::policy::{Policy, PolicyDef, PolicyKind};

impl Broker {
    /// Adds or replaces a policy and applies it to existing objects at once.
    /// Returns whether it is new (the API answers 201, else 204).
    pub fn put_policy(&mut self, vhost: &str, def: PolicyDef, kind: PolicyKind, now_ms: u64) -> AdminResult<bool> {
        let p = Policy::compile(def, kind).map_err(AdminError::BadRequest)?;
        let created = apply::put(self.vhost_mut(vhost)?, p, kind)?;
        self.reapply_policies(vhost, now_ms);
        Ok(created)
    }

    /// Deletes a policy; objects it applied to fall back to the next match.
    pub fn delete_policy(&mut self, vhost: &str, name: &str, kind: PolicyKind, now_ms: u64) -> AdminResult<()> {
        apply::delete(self.vhost_mut(vhost)?, name, kind)?;
        self.reapply_policies(vhost, now_ms);
        Ok(())
    }

    /// Policies of one vhost, or of all vhosts, sorted by vhost and name.
    pub fn list_policies(&self, vhost: Option<&str>, kind: PolicyKind) -> AdminResult<Vec<VhostPolicy>> {
        apply::list(&self.model, vhost, kind)
    }

    /// Re-applies the vhost's policies to its queues and exchanges, and lets
    /// queues whose settings changed trim, expire and deliver now.
    fn reapply_policies(&mut self, vhost: &str, now_ms: u64) {
        self.ensure_started(now_ms);
        self.advance_clock(now_ms);
        if !self.model.vhosts.contains_key(vhost) {
            return;
        }
        apply::reapply(&mut self.model, vhost);
        self.run_pending();
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
