//! Definitions import and export in RabbitMQ's JSON format: users, vhosts,
//! permissions, topic permissions, parameters (vhost limits and operator
//! policies among them, as RabbitMQ exports them), global parameters,
//! policies, queues, exchanges and bindings; for the whole broker or one vhost.
//!
//! Import is all or nothing as far as validation goes: every entry is checked
//! against the broker and the rest of the file first, and the first bad entry is
//! named in the error with nothing applied. Then entries are applied in
//! dependency order (vhosts, users, permissions and topic permissions, limits,
//! policies, exchanges, queues, bindings). Objects that exist are kept as they are, as RabbitMQ does;
//! users, permissions, policies and parameters are replaced.

use std::sync::Arc;

use ringmq_codec::{ExchangeBind, ExchangeDeclare, Method, QueueBind, QueueDeclare, ShortStr, Table};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::core::access::auth::{self, User, UserLimits};
use crate::core::access::permissions::{Permission, PermissionDef};
use crate::core::access::topic_permissions::{TopicPermissionDef, TopicPermissions};
use crate::core::broker::Broker;
use crate::core::definitions::replay::{self, Mode};
use crate::core::mgmt::commands::short_name;
use crate::core::mgmt::error::{AdminError, AdminResult};
use crate::core::mgmt::json_table::{table_from_json, table_to_json};
use crate::core::mgmt::vhosts::{
    parse_limit, GlobalParameter, Parameter, VhostLimits, VhostMeta, PARAMETER_COMPONENTS,
};
use crate::core::model::ids::Dest;
use crate::core::policy::{Policy, PolicyDef, PolicyKind};

/// The version we say we are in exports (RabbitMQ tools read `rabbit_version`).
pub const EXPORT_RABBIT_VERSION: &str = "3.13.0";
/// Entries one import may hold: a bound on the work one request can cause.
pub const IMPORT_ENTRIES_MAX: usize = 1_000_000;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Definitions {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rabbit_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rabbitmq_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub product_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub product_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub users: Option<Vec<UserDef>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vhosts: Option<Vec<VhostDef>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub permissions: Option<Vec<PermissionDef>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic_permissions: Option<Vec<TopicPermissionDef>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameters: Option<Vec<ParameterDef>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub global_parameters: Option<Vec<GlobalParameter>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policies: Option<Vec<VhostPolicyDef>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queues: Option<Vec<QueueDef>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exchanges: Option<Vec<ExchangeDef>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bindings: Option<Vec<BindingDef>>,
}

/// Tags as RabbitMQ writes them: an array, or (older exports, the HTTP API) a
/// comma-separated string.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Tags {
    List(Vec<String>),
    Csv(String),
    #[default]
    None,
}

impl Tags {
    pub fn to_vec(&self) -> Vec<String> {
        match self {
            Tags::List(v) => v
                .iter()
                .map(|t| t.trim().to_owned())
                .filter(|t| !t.is_empty())
                .collect(),
            Tags::Csv(s) => s
                .split(',')
                .map(|t| t.trim().to_owned())
                .filter(|t| !t.is_empty())
                .collect(),
            Tags::None => Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UserDef {
    pub name: String,
    #[serde(default)]
    pub password_hash: String,
    #[serde(default = "default_algorithm")]
    pub hashing_algorithm: String,
    /// Not in RabbitMQ exports; accepted so hand-written files can set a password.
    #[serde(default, skip_serializing)]
    pub password: Option<String>,
    #[serde(default)]
    pub tags: Tags,
    #[serde(default)]
    pub limits: UserLimits,
}

fn default_algorithm() -> String {
    auth::HASH_SHA256.to_owned()
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct VhostDef {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<Tags>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_queue_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Value>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ParameterDef {
    pub value: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vhost: Option<String>,
    pub component: String,
    pub name: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct VhostPolicyDef {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vhost: Option<String>,
    #[serde(flatten)]
    pub def: PolicyDef,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct QueueDef {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vhost: Option<String>,
    #[serde(default = "yes")]
    pub durable: bool,
    #[serde(default)]
    pub auto_delete: bool,
    #[serde(default)]
    pub arguments: Value,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExchangeDef {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vhost: Option<String>,
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default = "yes")]
    pub durable: bool,
    #[serde(default)]
    pub auto_delete: bool,
    #[serde(default)]
    pub internal: bool,
    #[serde(default)]
    pub arguments: Value,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BindingDef {
    pub source: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vhost: Option<String>,
    pub destination: String,
    pub destination_type: String,
    #[serde(default)]
    pub routing_key: String,
    #[serde(default)]
    pub arguments: Value,
}

fn yes() -> bool {
    true
}

/// RabbitMQ's component names for what we keep in typed form.
const COMPONENT_LIMITS: &str = "vhost-limits";
const COMPONENT_OPERATOR_POLICY: &str = "operator_policy";

fn bad(what: String, why: impl std::fmt::Display) -> AdminError {
    AdminError::BadRequest(format!("{what}: {why}"))
}

/// A vhost, exchange or queue name of an import: not empty, and a short string
/// (RabbitMQ's text, as the API's: `queue should be less than 255 bytes, ...`).
fn check_name(what: &str, field: &str, name: &str) -> AdminResult<()> {
    if name.is_empty() {
        return Err(bad(what.to_owned(), "name is empty"));
    }
    ShortStr::new(name).map_err(|e| bad(what.to_owned(), e.text(field)))?;
    Ok(())
}

impl Broker {
    /// Exports the definitions of the broker, or of one vhost (then without
    /// users, vhosts and permissions, and without `vhost` fields, as RabbitMQ).
    pub fn export_definitions(&self, vhost: Option<&str>) -> AdminResult<Definitions> {
        if let Some(v) = vhost {
            if !self.vhosts.contains_key(v) {
                return Err(AdminError::NotFound(format!("no vhost '{v}'")));
            }
        }
        let all = vhost.is_none();
        let tag_vhost = |v: &str| all.then(|| v.to_owned());
        let mut vnames: Vec<&Arc<str>> = self
            .vhosts
            .keys()
            .filter(|n| vhost.is_none_or(|v| v == &***n))
            .collect();
        vnames.sort();
        let mut d = Definitions {
            rabbit_version: Some(EXPORT_RABBIT_VERSION.into()),
            parameters: Some(Vec::new()),
            policies: Some(Vec::new()),
            queues: Some(Vec::new()),
            exchanges: Some(Vec::new()),
            bindings: Some(Vec::new()),
            ..Default::default()
        };
        if all {
            d.rabbitmq_version = Some(EXPORT_RABBIT_VERSION.into());
            d.product_name = Some("ringmq".into());
            d.product_version = Some(env!("CARGO_PKG_VERSION").into());
            let mut users: Vec<&User> = self.users.iter().collect();
            users.sort_by(|a, b| a.name.cmp(&b.name));
            d.users = Some(
                users
                    .into_iter()
                    .map(|u| UserDef {
                        name: u.name.clone(),
                        password_hash: u.password_hash.clone(),
                        hashing_algorithm: u.hashing_algorithm.clone(),
                        password: None,
                        tags: Tags::List(u.tags.clone()),
                        limits: u.limits.clone(),
                    })
                    .collect(),
            );
            d.vhosts = Some(
                vnames
                    .iter()
                    .map(|n| {
                        let m = &self.vhosts[*n].meta;
                        VhostDef {
                            name: n.to_string(),
                            description: Some(m.description.clone()),
                            tags: Some(Tags::List(m.tags.clone())),
                            default_queue_type: m.default_queue_type.clone(),
                            metadata: Some(serde_json::json!({"description": m.description, "tags": m.tags})),
                        }
                    })
                    .collect(),
            );
            d.permissions = Some(self.permissions.defs());
            d.topic_permissions = Some(self.permissions.topic.defs());
            d.global_parameters = Some(self.global_parameters.clone());
        }
        for n in vnames {
            let v = &self.vhosts[n];
            let params = d.parameters.as_mut().expect("set above");
            if !v.meta.limits.is_empty() {
                params.push(ParameterDef {
                    value: serde_json::to_value(&v.meta.limits).expect("plain struct"),
                    vhost: Some(n.to_string()),
                    component: COMPONENT_LIMITS.into(),
                    name: "limits".into(),
                });
            }
            for p in v.operator_policies.defs() {
                let mut value = Map::new();
                value.insert("pattern".into(), p.pattern.into());
                value.insert("definition".into(), Value::Object(p.definition));
                value.insert("priority".into(), p.priority.into());
                value.insert("apply-to".into(), p.apply_to.as_str().into());
                params.push(ParameterDef {
                    value: Value::Object(value),
                    vhost: Some(n.to_string()),
                    component: COMPONENT_OPERATOR_POLICY.into(),
                    name: p.name,
                });
            }
            for p in &v.parameters {
                params.push(ParameterDef {
                    value: p.value.clone(),
                    vhost: Some(n.to_string()),
                    component: p.component.clone(),
                    name: p.name.clone(),
                });
            }
            // Per-vhost exports keep `vhost` on parameters, as RabbitMQ does.
            d.policies
                .as_mut()
                .expect("set above")
                .extend(v.policies.defs().into_iter().map(|def| VhostPolicyDef {
                    vhost: Some(n.to_string()),
                    def,
                }));
            let mut qs: Vec<_> = v.queues.values().filter(|q| q.exclusive_owner.is_none()).collect();
            qs.sort_by(|a, b| a.name.cmp(&b.name));
            d.queues
                .as_mut()
                .expect("set above")
                .extend(qs.iter().map(|q| QueueDef {
                    name: q.name.to_string(),
                    vhost: tag_vhost(n),
                    durable: q.durable,
                    auto_delete: q.auto_delete,
                    arguments: table_to_json(&q.arguments),
                }));
            let mut xs: Vec<_> = v.exchanges.values().filter(|x| !x.builtin).collect();
            xs.sort_by(|a, b| a.name.cmp(&b.name));
            d.exchanges
                .as_mut()
                .expect("set above")
                .extend(xs.iter().map(|x| ExchangeDef {
                    name: x.name.to_string(),
                    vhost: tag_vhost(n),
                    kind: x.type_name().to_owned(),
                    durable: x.durable,
                    auto_delete: x.auto_delete,
                    internal: x.internal,
                    arguments: table_to_json(&x.arguments),
                }));
            let mut bs = Vec::new();
            for x in v.exchanges.values().filter(|x| !x.name.is_empty()) {
                for (dest, rk, args) in x.bindings.iter() {
                    let (destination, destination_type) = match dest {
                        Dest::Queue(id) => match v.queues.get(id) {
                            Some(q) if q.exclusive_owner.is_none() => (q.name.to_string(), "queue"),
                            _ => continue,
                        },
                        Dest::Exchange(e) => (e.to_string(), "exchange"),
                    };
                    bs.push(BindingDef {
                        source: x.name.to_string(),
                        vhost: tag_vhost(n),
                        destination,
                        destination_type: destination_type.into(),
                        routing_key: rk.to_owned().to_string(),
                        arguments: table_to_json(args),
                    });
                }
            }
            bs.sort_by(|a, b| {
                (&a.source, &a.destination, &a.routing_key).cmp(&(&b.source, &b.destination, &b.routing_key))
            });
            d.bindings.as_mut().expect("set above").extend(bs);
        }
        Ok(d)
    }

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
        let plan = self.validate_import(d, vhost, salt_seed)?;
        self.apply_import(plan, acting_user, now_ms)
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

    fn validate_import(&self, d: Definitions, only: Option<&str>, salt_seed: u64) -> AdminResult<Plan> {
        let count = [
            d.users.as_ref().map_or(0, Vec::len),
            d.vhosts.as_ref().map_or(0, Vec::len),
            d.permissions.as_ref().map_or(0, Vec::len),
            d.topic_permissions.as_ref().map_or(0, Vec::len),
            d.parameters.as_ref().map_or(0, Vec::len),
            d.policies.as_ref().map_or(0, Vec::len),
            d.queues.as_ref().map_or(0, Vec::len),
            d.exchanges.as_ref().map_or(0, Vec::len),
            d.bindings.as_ref().map_or(0, Vec::len),
        ]
        .iter()
        .sum::<usize>();
        if count > IMPORT_ENTRIES_MAX {
            return Err(AdminError::BadRequest(format!(
                "definitions hold {count} entries, more than the {IMPORT_ENTRIES_MAX} one import may"
            )));
        }
        if only.is_some()
            && (d.users.as_ref().is_some_and(|u| !u.is_empty()) || d.vhosts.as_ref().is_some_and(|v| !v.is_empty()))
        {
            return Err(AdminError::BadRequest(
                "a vhost's definitions cannot hold users or vhosts; import them broker-wide".into(),
            ));
        }
        let mut plan = Plan::default();
        // Vhosts first: later entries may name them.
        for v in d.vhosts.unwrap_or_default() {
            let what = format!("vhost '{}'", v.name);
            check_name(&what, "vhost", &v.name)?;
            let meta_desc = v
                .metadata
                .as_ref()
                .and_then(|m| m.get("description"))
                .and_then(Value::as_str);
            let meta_tags = v
                .metadata
                .as_ref()
                .and_then(|m| m.get("tags"))
                .and_then(|t| serde_json::from_value::<Tags>(t.clone()).ok());
            plan.vhosts.push((
                v.name,
                VhostMeta {
                    description: v.description.or(meta_desc.map(str::to_owned)).unwrap_or_default(),
                    tags: v.tags.or(meta_tags).map(|t| t.to_vec()).unwrap_or_default(),
                    default_queue_type: v.default_queue_type,
                    limits: VhostLimits::default(),
                },
            ));
        }
        let vhost_known =
            |plan: &Plan, name: &str| self.vhosts.contains_key(name) || plan.vhosts.iter().any(|(n, _)| n == name);
        let pick = |plan: &Plan, what: &str, v: Option<String>| -> AdminResult<String> {
            // Into one vhost, every entry goes there whatever its `vhost` field
            // says (RabbitMQ does the same, so a vhost's export can be copied
            // into another vhost).
            let v = match (only, v) {
                (Some(o), _) => o.to_owned(),
                (None, Some(v)) => v,
                (None, None) => return Err(bad(what.to_owned(), "has no vhost")),
            };
            if !vhost_known(plan, &v) {
                return Err(bad(what.to_owned(), format!("vhost '{v}' does not exist")));
            }
            Ok(v)
        };
        for (i, u) in d.users.unwrap_or_default().into_iter().enumerate() {
            let what = format!("user '{}'", u.name);
            if u.name.is_empty() {
                return Err(bad(what, "name is empty"));
            }
            let mut user = User::new(&u.name, "", [0; 4], false);
            if let Some(pw) = &u.password {
                let salt = ((salt_seed.rotate_left(i as u32 % 64) ^ i as u64) as u32).to_le_bytes();
                user = User::new(&u.name, pw, salt, false);
            } else {
                auth::validate_hash(&u.hashing_algorithm, &u.password_hash).map_err(|e| bad(what.clone(), e))?;
                user.password_hash = u.password_hash;
                user.hashing_algorithm = u.hashing_algorithm;
            }
            // An existing user keeps its loopback restriction (guest).
            user.loopback_only = self.users.get(&u.name).is_some_and(|x| x.loopback_only);
            user.tags = u.tags.to_vec();
            user.limits = u.limits;
            plan.users.push(user);
        }
        // A grant (permission or topic permission) names a user and a vhost
        // that exist or come with this file.
        let grant = |plan: &Plan, what: &str, user: &str, vhost: &str| -> AdminResult<()> {
            if only.is_some_and(|o| o != vhost) {
                return Err(bad(what.to_owned(), "belongs to another vhost"));
            }
            if self.users.get(user).is_none() && !plan.users.iter().any(|u| u.name == user) {
                return Err(bad(what.to_owned(), format!("user '{user}' does not exist")));
            }
            if !vhost_known(plan, vhost) {
                return Err(bad(what.to_owned(), format!("vhost '{vhost}' does not exist")));
            }
            Ok(())
        };
        for p in d.permissions.unwrap_or_default() {
            let what = format!("permission of user '{}' in vhost '{}'", p.user, p.vhost);
            grant(&plan, &what, &p.user, &p.vhost)?;
            Permission::compile(&p).map_err(|e| bad(what, e))?;
            plan.permissions.push(p);
        }
        for p in d.topic_permissions.unwrap_or_default() {
            let what = format!(
                "topic permission of user '{}' in vhost '{}' on exchange '{}'",
                p.user, p.vhost, p.exchange
            );
            grant(&plan, &what, &p.user, &p.vhost)?;
            TopicPermissions::validate(&p).map_err(|e| bad(what, e))?;
            plan.topic_permissions.push(p);
        }
        for p in d.parameters.unwrap_or_default() {
            let what = format!("parameter '{}' of component '{}'", p.name, p.component);
            let vhost = pick(&plan, &what, p.vhost.clone())?;
            match p.component.as_str() {
                COMPONENT_LIMITS => {
                    // RabbitMQ exports cleared limits as `[]` (an empty Erlang list).
                    let empty = Map::new();
                    let obj = match &p.value {
                        Value::Object(o) => o,
                        Value::Array(a) if a.is_empty() => &empty,
                        _ => return Err(bad(what, "value must be an object")),
                    };
                    let mut limits = VhostLimits::default();
                    for (k, v) in obj {
                        let n = parse_limit(k, v).map_err(|e| bad(what.clone(), e))?;
                        limits.set(k, n).map_err(|e| bad(what.clone(), e.to_string().trim()))?;
                    }
                    plan.limits.push((vhost, limits));
                }
                COMPONENT_OPERATOR_POLICY => {
                    let mut obj = p.value.as_object().cloned().unwrap_or_default();
                    obj.insert("name".into(), p.name.clone().into());
                    let def: PolicyDef =
                        serde_json::from_value(Value::Object(obj)).map_err(|e| bad(what.clone(), e))?;
                    Policy::compile(def.clone(), PolicyKind::Operator).map_err(|e| bad(what, e.trim().to_owned()))?;
                    plan.operator_policies.push((vhost, def));
                }
                c if PARAMETER_COMPONENTS.contains(&c) => plan.parameters.push((
                    vhost,
                    Parameter {
                        component: p.component,
                        name: p.name,
                        value: p.value,
                    },
                )),
                other => return Err(bad(what, format!("unknown component '{other}'"))),
            }
        }
        for p in d.policies.unwrap_or_default() {
            let what = format!("policy '{}'", p.def.name);
            let vhost = pick(&plan, &what, p.vhost)?;
            Policy::compile(p.def.clone(), PolicyKind::User).map_err(|e| bad(what, e.trim().to_owned()))?;
            plan.policies.push((vhost, p.def));
        }
        // Names declared by this file, for the bindings' checks (a set: an
        // import may hold many thousands of each).
        let mut planned_exchanges: crate::core::Set<(String, String)> = Default::default();
        let mut planned_queues: crate::core::Set<(String, String)> = Default::default();
        for mut x in d.exchanges.unwrap_or_default() {
            let what = format!("exchange '{}'", x.name);
            let vhost = pick(&plan, &what, x.vhost.take())?;
            let args = table_from_json(&x.arguments).map_err(|e| bad(what.clone(), e))?;
            check_name(&what, "exchange", &x.name)?;
            short_name("type", &x.kind).map_err(|e| bad(what.clone(), e))?;
            crate::core::model::exchange::delayed::resolve_type(&x.kind, &args)
                .map_err(|e| bad(what.clone(), e.to_string()))?;
            planned_exchanges.insert((vhost.clone(), x.name.clone()));
            plan.exchanges.push(Planned { vhost, def: x, args });
        }
        for mut q in d.queues.unwrap_or_default() {
            let what = format!("queue '{}'", q.name);
            let vhost = pick(&plan, &what, q.vhost.take())?;
            check_name(&what, "queue", &q.name)?;
            let args = table_from_json(&q.arguments).map_err(|e| bad(what.clone(), e))?;
            if args.get("x-queue-type").and_then(|t| t.as_str()) == Some("stream") {
                // Until streams exist: the rest of a RabbitMQ export still imports,
                // and the answer names what did not (see `apply_import`).
                plan.skipped_streams.push((vhost, q.name));
                continue;
            }
            let settings =
                crate::core::model::queue::args::parse(&args, &q.name, &vhost).map_err(|e| bad(what.clone(), e))?;
            crate::core::model::queue::args::check_new_declare(&args, &q.name, &vhost)
                .map_err(|e| bad(what.clone(), e))?;
            settings
                .check_properties(q.durable, false, q.auto_delete, &q.name, &vhost)
                .map_err(|e| bad(what.clone(), e))?;
            planned_queues.insert((vhost.clone(), q.name.clone()));
            plan.queues.push(Planned { vhost, def: q, args });
        }
        for mut b in d.bindings.unwrap_or_default() {
            let what = format!(
                "binding of '{}' to {} '{}'",
                b.source, b.destination_type, b.destination
            );
            let vhost = pick(&plan, &what, b.vhost.take())?;
            // Checked here, not when applying, so a long key names its binding and
            // nothing of the import is applied (issue 15, defect 3).
            for (field, s) in [
                ("source", &b.source),
                ("destination", &b.destination),
                ("routing_key", &b.routing_key),
            ] {
                short_name(field, s).map_err(|e| bad(what.clone(), e))?;
            }
            let args = table_from_json(&b.arguments).map_err(|e| bad(what.clone(), e))?;
            let v = self.vhosts.get(vhost.as_str());
            let x_known = |n: &str| {
                v.is_some_and(|v| v.exchanges.contains_key(n))
                    || planned_exchanges.contains(&(vhost.clone(), n.to_owned()))
            };
            if b.source.is_empty() || !x_known(&b.source) {
                return Err(bad(what, format!("source exchange '{}' does not exist", b.source)));
            }
            let to_queue = match b.destination_type.as_str() {
                "queue" => true,
                "exchange" => false,
                other => return Err(bad(what, format!("unknown destination_type '{other}'"))),
            };
            let skipped = |(v, q): &(String, String)| *v == vhost && *q == b.destination;
            if to_queue && plan.skipped_streams.iter().any(skipped) {
                continue; // bound to a stream queue that is not imported
            }
            let planned_queue = || planned_queues.contains(&(vhost.clone(), b.destination.clone()));
            let dest_known = if to_queue {
                v.is_some_and(|v| v.queue_id(&b.destination).is_some()) || planned_queue()
            } else {
                x_known(&b.destination)
            };
            if !dest_known {
                return Err(bad(what, format!("destination '{}' does not exist", b.destination)));
            }
            plan.bindings.push(Planned { vhost, def: b, args });
        }
        if let Some(g) = d.global_parameters {
            plan.global_parameters = g;
        }
        Ok(plan)
    }

    fn apply_import(&mut self, plan: Plan, acting_user: Option<&str>, now_ms: u64) -> AdminResult<()> {
        self.ensure_started(now_ms);
        self.now_ms = now_ms;
        for (name, meta) in plan.vhosts {
            self.create_vhost(&name, Some(meta), acting_user)?;
        }
        if !plan.users.is_empty() {
            for u in plan.users {
                self.users.insert(u);
            }
            self.users.save(&self.config.data_dir)?;
        }
        if !plan.permissions.is_empty() {
            for p in plan.permissions {
                self.permissions.set(p).expect("validated");
            }
            self.permissions.save(&self.config.data_dir)?;
        }
        if !plan.topic_permissions.is_empty() {
            for p in plan.topic_permissions {
                self.permissions.topic.set(p).expect("validated");
            }
            self.permissions.topic.save(&self.config.data_dir)?;
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
        for Planned { vhost, def: x, args } in plan.exchanges {
            let bytes = args.to_bytes();
            let m = Method::ExchangeDeclare(ExchangeDeclare {
                ticket: 0,
                exchange: short_name("exchange", &x.name)?,
                kind: short_name("type", &x.kind)?,
                passive: false,
                durable: x.durable,
                auto_delete: x.auto_delete,
                internal: x.internal,
                no_wait: false,
                arguments: Table::parse(&bytes).expect("own table"),
            });
            self.import_one(&vhost, m)?;
        }
        for Planned { vhost, def: q, args } in plan.queues {
            let bytes = args.to_bytes();
            let m = Method::QueueDeclare(QueueDeclare {
                ticket: 0,
                queue: short_name("queue", &q.name)?,
                passive: false,
                durable: q.durable,
                exclusive: false,
                auto_delete: q.auto_delete,
                no_wait: false,
                arguments: Table::parse(&bytes).expect("own table"),
            });
            self.import_one(&vhost, m)?;
        }
        for Planned { vhost, def: b, args } in plan.bindings {
            let bytes = args.to_bytes();
            let arguments = Table::parse(&bytes).expect("own table");
            // destination_type was checked to be "queue" or "exchange".
            let m = if b.destination_type == "queue" {
                Method::QueueBind(QueueBind {
                    ticket: 0,
                    queue: short_name("destination", &b.destination)?,
                    exchange: short_name("source", &b.source)?,
                    routing_key: short_name("routing_key", &b.routing_key)?,
                    no_wait: false,
                    arguments,
                })
            } else {
                Method::ExchangeBind(ExchangeBind {
                    ticket: 0,
                    destination: short_name("destination", &b.destination)?,
                    source: short_name("source", &b.source)?,
                    routing_key: short_name("routing_key", &b.routing_key)?,
                    no_wait: false,
                    arguments,
                })
            };
            self.import_one(&vhost, m)?;
        }
        // The request is answered when this returns: one sync for the whole import.
        self.sync_definitions_now();
        self.run_pending();
        if !plan.skipped_streams.is_empty() {
            let names: Vec<String> = (plan.skipped_streams.iter())
                .map(|(v, q)| format!("queue '{q}' in vhost '{v}'"))
                .collect();
            return Err(AdminError::BadRequest(format!(
                "stream queues are not supported yet; everything else was imported, but not: {}",
                names.join(", ")
            )));
        }
        Ok(())
    }

    fn import_one(&mut self, vhost: &str, m: Method<'_>) -> AdminResult<()> {
        let key = self
            .vhosts
            .get_key_value(vhost)
            .map(|(k, _)| k.clone())
            .ok_or_else(|| AdminError::NotFound(format!("no vhost '{vhost}'")))?;
        replay::apply(self, &key, m, Mode::Import)?;
        Ok(())
    }
}

/// A validated import, ready to apply.
#[derive(Default)]
struct Plan {
    vhosts: Vec<(String, VhostMeta)>,
    users: Vec<User>,
    permissions: Vec<PermissionDef>,
    topic_permissions: Vec<TopicPermissionDef>,
    limits: Vec<(String, VhostLimits)>,
    parameters: Vec<(String, Parameter)>,
    global_parameters: Vec<GlobalParameter>,
    operator_policies: Vec<(String, PolicyDef)>,
    policies: Vec<(String, PolicyDef)>,
    exchanges: Vec<Planned<ExchangeDef>>,
    queues: Vec<Planned<QueueDef>>,
    bindings: Vec<Planned<BindingDef>>,
    /// Stream queues (vhost, name), left out with their bindings.
    skipped_streams: Vec<(String, String)>,
}

/// An entry of the file with its vhost resolved and its arguments parsed.
struct Planned<T> {
    vhost: String,
    def: T,
    args: ringmq_codec::FieldTable,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::CoreConfig;
    use serde_json::json;

    fn broker(dir: &std::path::Path) -> Broker {
        let cfg = CoreConfig::for_tests(dir);
        Broker::open(cfg, 7).unwrap()
    }

    /// A RabbitMQ 3.10 export (trimmed), as `GET /api/definitions` gave it.
    fn rabbit_export() -> Value {
        json!({
          "rabbit_version": "3.10.8", "rabbitmq_version": "3.10.8",
          "product_name": "RabbitMQ", "product_version": "3.10.8",
          "users": [{"name": "bob", "password_hash": "EaM0cnYXnkjddZj/FPfAqL+L6OXdESGU1MbJms1+ojw636Na",
                     "hashing_algorithm": "rabbit_password_hashing_sha256", "tags": ["monitoring"],
                     "limits": {"max-channels": 10}}],
          "vhosts": [{"name": "/"}, {"name": "v2"}],
          "permissions": [{"user": "bob", "vhost": "v2", "configure": ".*", "write": ".*", "read": ".*"}],
          "topic_permissions": [{"user": "bob", "vhost": "v2", "exchange": "x1", "write": "^{username}\\.", "read": ""}],
          "parameters": [
            {"value": [], "vhost": "/", "component": "vhost-limits", "name": "limits"},
            {"value": {"max-connections": 100}, "vhost": "v2", "component": "vhost-limits", "name": "limits"},
            {"value": {"pattern": ".*", "definition": {"max-length": 5}, "priority": 0, "apply-to": "queues"},
             "vhost": "v2", "component": "operator_policy", "name": "op1"}],
          "global_parameters": [{"name": "cluster_name", "value": "rabbit@x"}],
          "policies": [{"vhost": "v2", "name": "p1", "pattern": "^q", "apply-to": "queues",
                        "definition": {"message-ttl": 60000, "max-length": 50}, "priority": 1}],
          "queues": [{"name": "q1", "vhost": "v2", "durable": true, "auto_delete": false,
                      "arguments": {"x-max-length": 10}},
                     {"name": "t1", "vhost": "v2", "durable": false, "auto_delete": false, "arguments": {}}],
          "exchanges": [{"name": "x1", "vhost": "v2", "type": "topic", "durable": true, "auto_delete": false,
                         "internal": false, "arguments": {}}],
          "bindings": [{"source": "x1", "vhost": "v2", "destination": "q1", "destination_type": "queue",
                        "routing_key": "a.#", "arguments": {"k": 1}}]
        })
    }

    #[test]
    fn rabbitmq_export_imports_and_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let mut b = broker(dir.path());
        let d: Definitions = serde_json::from_value(rabbit_export()).unwrap();
        b.import_definitions(d, None, None, 1_000).unwrap();
        let v2 = &b.vhosts["v2"];
        assert_eq!(v2.meta.limits.max_connections, Some(100));
        let q1 = v2.queues[&v2.queue_id("q1").unwrap()].settings.clone();
        // Lowest of argument 10, policy 50 and operator policy 5.
        assert_eq!(q1.max_length, Some(5));
        assert_eq!(q1.message_ttl_ms, Some(60_000));
        assert!(b.users.get("bob").unwrap().has_tag("monitoring"));
        assert_eq!(b.users.get("bob").unwrap().limits.max_channels, Some(10));
        assert!(b.permissions.get("bob", "v2").is_some());
        let tp = b.permissions.topic.defs();
        assert_eq!(
            (tp.len(), tp[0].exchange.as_str(), tp[0].write.as_str()),
            (1, "x1", "^{username}\\.")
        );

        let out = serde_json::to_value(b.export_definitions(None).unwrap()).unwrap();
        // Durable and transient queues are exported (not exclusive ones), as RabbitMQ does.
        let names: Vec<&str> = out["queues"]
            .as_array()
            .unwrap()
            .iter()
            .map(|q| q["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["q1", "t1"]);
        assert_eq!(out["bindings"][0]["arguments"], json!({"k": 1}));
        assert_eq!(out["parameters"].as_array().unwrap().len(), 2);

        // Into a fresh broker: the same export comes out.
        let dir2 = tempfile::tempdir().unwrap();
        let mut b2 = broker(dir2.path());
        b2.import_definitions(serde_json::from_value(out.clone()).unwrap(), None, None, 1_000)
            .unwrap();
        let mut out2 = serde_json::to_value(b2.export_definitions(None).unwrap()).unwrap();
        // guest's hash differs per broker (fresh salt); everything else matches.
        out2["users"] = out["users"].clone();
        assert_eq!(out2, out);

        // And durable things survive a restart.
        drop(b2);
        let b3 = broker(dir2.path());
        let v2 = &b3.vhosts["v2"];
        assert!(v2.queue_id("q1").is_some());
        assert!(v2.queue_id("t1").is_none(), "transient queue gone after restart");
        assert_eq!(v2.policies.len(), 1);
        assert_eq!(v2.operator_policies.len(), 1);
        assert_eq!(v2.meta.limits.max_connections, Some(100));
    }

    #[test]
    fn a_bad_entry_is_named_and_nothing_is_applied() {
        let dir = tempfile::tempdir().unwrap();
        let mut b = broker(dir.path());
        let mut d = rabbit_export();
        d["bindings"][0]["destination"] = json!("missing");
        let e = b
            .import_definitions(serde_json::from_value(d).unwrap(), None, None, 1)
            .unwrap_err()
            .to_string();
        assert!(e.contains("binding of 'x1' to queue 'missing'"), "{e}");
        assert!(e.contains("does not exist"), "{e}");
        assert!(!b.vhosts.contains_key("v2"), "nothing applied");
        assert!(b.users.get("bob").is_none());

        let mut d = rabbit_export();
        d["policies"][0]["definition"] = json!({"nope": 1});
        let e = b
            .import_definitions(serde_json::from_value(d).unwrap(), None, None, 1)
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("policy 'p1': Validation failed"), "{e}");
        let mut d = rabbit_export();
        d["queues"][0]["arguments"] = json!({"x-max-length": -1});
        let e = b
            .import_definitions(serde_json::from_value(d).unwrap(), None, None, 1)
            .unwrap_err()
            .to_string();
        assert!(e.contains("queue 'q1'") && e.contains("value_negative"), "{e}");
        assert!(!b.vhosts.contains_key("v2"));
    }

    #[test]
    fn per_vhost_export_has_no_vhost_fields_and_imports_elsewhere() {
        let dir = tempfile::tempdir().unwrap();
        let mut b = broker(dir.path());
        b.import_definitions(serde_json::from_value(rabbit_export()).unwrap(), None, None, 1)
            .unwrap();
        let one = serde_json::to_value(b.export_definitions(Some("v2")).unwrap()).unwrap();
        assert!(one.get("users").is_none() && one.get("vhosts").is_none());
        assert!(one["queues"][0].get("vhost").is_none());
        b.create_vhost("v3", None, None).unwrap();
        b.import_definitions(serde_json::from_value(one).unwrap(), Some("v3"), None, 2)
            .unwrap();
        assert!(b.vhosts["v3"].queue_id("q1").is_some());
        assert_eq!(b.vhosts["v3"].policies.len(), 1);
    }
}
