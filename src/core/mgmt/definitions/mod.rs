//! Definitions import and export on the running broker: the `Broker` calls
//! the HTTP API, ringmqctl and `--load-definitions` make. The format, the
//! export and the import's validation are `definitions::json` (over the
//! model, the users and the permissions); applying a validated plan runs the
//! management commands here (vhosts, users, permissions, limits, parameters,
//! policies), declares the file's exchanges, queues and bindings, and syncs
//! the definitions logs once before the caller answers.

use crate::core::access::op::AccessOp;
use crate::core::amqp::broker::Broker;
use crate::core::definitions;
use crate::core::definitions::json::import::{self, Plan};
use crate::core::definitions::json::{export, Definitions};
use crate::core::model::error::AdminResult;
use crate::core::policy::PolicyKind;

#[cfg(test)]
mod tests;

impl Broker {
    /// Imports definitions (into `vhost` only, when given: then every entry goes
    /// there, and users and vhosts are refused). `acting_user` (the API's caller)
    /// gets full permissions on the vhosts the import creates, before the file's
    /// own permissions are applied, as RabbitMQ's import does.
    pub fn import_definitions(
        &mut self,
        d: Definitions,
        vhost: Option<&str>,
        acting_user: Option<&str>,
        now_ms: u64,
    ) -> AdminResult<()> {
        let salt_seed = self.random_u64();
        // A section: validated on a current copy, and the ops it applies go to
        // every shard (`amqp::meta`).
        self.in_meta_section(|b| {
            let plan = import::validate(d, vhost, salt_seed, &b.model, &b.users)?;
            b.apply_import(plan, acting_user, now_ms)
        })
    }

    /// Imports a definitions file at start (`--load-definitions`).
    pub fn load_definitions_file(&mut self, path: &std::path::Path) -> std::io::Result<()> {
        let invalid = |e: String| std::io::Error::new(std::io::ErrorKind::InvalidData, e);
        let bytes = std::fs::read(path)
            .map_err(|e| std::io::Error::new(e.kind(), format!("cannot read definitions {}: {e}", path.display())))?;
        let d: Definitions =
            serde_json::from_slice(&bytes).map_err(|e| invalid(format!("definitions {}: {e}", path.display())))?;
        // `now` only matters for timers, which start with the first connection.
        self.import_definitions(d, None, None, 0)
            .map_err(|e| invalid(format!("definitions {}: {e}", path.display())))?;
        tracing::info!(file = %path.display(), "definitions loaded");
        Ok(())
    }

    fn apply_import(&mut self, plan: Plan, acting_user: Option<&str>, now_ms: u64) -> AdminResult<()> {
        self.ensure_started(now_ms);
        let now_ms = self.advance_clock(now_ms);
        for (name, meta) in plan.vhosts {
            self.create_vhost(&name, Some(meta), acting_user)?;
        }
        // Each an op for every shard (`access::op`), hashed passwords and all.
        for u in plan.users {
            self.make_access(AccessOp::UserPut(u))?;
        }
        for p in plan.permissions {
            self.make_access(AccessOp::PermissionSet(p))?;
        }
        for p in plan.topic_permissions {
            self.make_access(AccessOp::TopicPermissionSet(p))?;
        }
        for (vhost, limits) in plan.limits {
            self.set_vhost_limits(&vhost, limits)?;
        }
        for (vhost, p) in plan.parameters {
            self.put_parameter(&vhost, p)?;
        }
        for g in plan.global_parameters {
            self.put_global_parameter(&g.name, g.value)?;
        }
        for (vhost, def) in plan.operator_policies {
            self.put_policy(&vhost, def, PolicyKind::Operator, now_ms)?;
        }
        for (vhost, def) in plan.policies {
            self.put_policy(&vhost, def, PolicyKind::User, now_ms)?;
        }
        // Exchanges, queues and bindings last: they may name all of the above.
        plan.objects.declare(&mut self.model)?;
        // The request is answered when this returns: one sync for the whole import.
        definitions::log::sync_now(&mut self.model);
        self.run_pending();
        Ok(())
    }

    /// Exports the definitions of the broker, or of one vhost (then without
    /// users, vhosts and permissions, and without `vhost` fields, as RabbitMQ).
    pub fn export_definitions(&self, vhost: Option<&str>) -> AdminResult<Definitions> {
        export::export(
            &self.model,
            &self.users,
            &self.permissions,
            &self.global_parameters,
            vhost,
        )
    }
}
