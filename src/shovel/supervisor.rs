//! The one supervisor of a broker's shovels, on shard 0's loop: it starts a
//! task per `shovel` parameter, restarts it when the value changes (or the
//! API asks), stops it when the parameter goes, and deletes the parameter of
//! a shovel done with `src-delete-after`, as RabbitMQ's shovel does.
//!
//! It looks at the parameters every [`POLL`] rather than being told: they
//! change through the API, definitions (at start and on import), ringmqctl and
//! other shards' logged ops, all of which end in the model it reads, and the
//! look is a borrow and a short list (at most `PARAMETERS_PER_VHOST_MAX` a
//! vhost).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use serde_json::Value;
use tokio::task::JoinHandle;

use super::link::{self, Local, Report};
use super::status::{now_secs, ShovelKey, State, Status};
use crate::core::mgmt::View;
use crate::core::model::shovel::ShovelDef;
use crate::links::connect::InternalLogin;
use crate::shard::Shared;

/// How often the parameters are looked at.
pub const POLL: Duration = Duration::from_millis(200);

/// A running shovel task and the value it runs.
struct Task {
    value: Value,
    handle: JoinHandle<()>,
}

pub(crate) async fn supervise(shared: Rc<Shared>, amqp_addr: SocketAddr, login: InternalLogin) {
    let mut tasks: BTreeMap<ShovelKey, Task> = BTreeMap::new();
    loop {
        let finished = std::mem::take(&mut shared.shovels.borrow_mut().finished);
        for (vhost, name) in finished {
            let r = shared.broker.borrow_mut().delete_parameter(&vhost, "shovel", &name);
            shared.after_core_call();
            match r {
                Ok(()) => tracing::info!(
                    vhost,
                    shovel = name,
                    "shovel done (src-delete-after): its parameter deleted"
                ),
                Err(e) => {
                    tracing::warn!(vhost, shovel = name, error = %e, "shovel done, but its parameter could not be deleted")
                }
            }
        }
        let params: Vec<(ShovelKey, Value)> = View::of(&shared.broker.borrow())
            .parameters(None, Some("shovel"))
            .into_iter()
            .map(|(v, p)| ((v.to_string(), p.name), p.value))
            .collect();
        let restarts = std::mem::take(&mut shared.shovels.borrow_mut().restarts);
        tasks.retain(|key, t| {
            let keep = !restarts.contains(key) && params.iter().any(|(k, v)| k == key && *v == t.value);
            if !keep {
                t.handle.abort();
            }
            keep
        });
        shared
            .shovels
            .borrow_mut()
            .statuses
            .retain(|key, _| params.iter().any(|(k, _)| k == key));
        for (key, value) in params {
            if tasks.contains_key(&key) {
                continue;
            }
            // Checked when it was put; a value stored before the check existed
            // (an older data directory) is reported, not run.
            let def = match ShovelDef::parse(&key.1, &value) {
                Ok(d) => d,
                Err(e) => {
                    tracing::warn!(vhost = key.0, shovel = key.1, error = %e, "shovel parameter not valid");
                    continue;
                }
            };
            let local = Local {
                amqp_addr,
                vhost: key.0.clone(),
                node: crate::core::mgmt::node_name(),
                login: login.clone(),
            };
            let handle = tokio::task::spawn_local(run(shared.clone(), key.clone(), def, local));
            tasks.insert(key, Task { value, handle });
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Writes a task's progress into the registry.
struct Reporter {
    shared: Rc<Shared>,
    key: ShovelKey,
}

impl Reporter {
    fn set(&self, def: &ShovelDef, state: State, reason: Option<String>) {
        let mut reg = self.shared.shovels.borrow_mut();
        let s = reg.statuses.entry(self.key.clone()).or_insert_with(|| Status {
            state,
            reason: None,
            blocked: false,
            since_secs: 0,
            src_uri: String::new(),
            dest_uri: String::new(),
            def: def.clone(),
        });
        s.state = state;
        s.reason = reason;
        s.blocked = false;
        s.since_secs = now_secs();
    }
}

impl Report for Reporter {
    fn running(&mut self, src_uri: &str, dest_uri: &str) {
        let mut reg = self.shared.shovels.borrow_mut();
        if let Some(s) = reg.statuses.get_mut(&self.key) {
            s.state = State::Running;
            s.since_secs = now_secs();
            s.src_uri = src_uri.to_owned();
            s.dest_uri = dest_uri.to_owned();
        }
        tracing::info!(
            vhost = self.key.0,
            shovel = self.key.1,
            src = src_uri,
            dest = dest_uri,
            "shovel running"
        );
    }

    fn blocked(&mut self, blocked: bool) {
        if let Some(s) = self.shared.shovels.borrow_mut().statuses.get_mut(&self.key) {
            s.blocked = blocked;
        }
    }
}

/// One shovel, run after run.
async fn run(shared: Rc<Shared>, key: ShovelKey, def: ShovelDef, local: Local) {
    let name = key.1.clone();
    let mut rep = Reporter { shared, key };
    loop {
        rep.set(&def, State::Starting, None);
        match link::run_once(&def, &name, &local, &mut rep).await {
            Ok(()) => {
                rep.set(&def, State::Terminated, Some("completed".into()));
                rep.shared.shovels.borrow_mut().finished.insert(rep.key.clone());
                return;
            }
            Err(e) => {
                let reason = e.to_string();
                tracing::warn!(vhost = rep.key.0, shovel = rep.key.1, error = reason, "shovel failed");
                rep.set(&def, State::Terminated, Some(reason));
                if def.reconnect_delay_secs == 0 {
                    // RabbitMQ's meaning of 0: do not restart.
                    return;
                }
                tokio::time::sleep(Duration::from_secs(def.reconnect_delay_secs)).await;
            }
        }
    }
}
