//! Importing definitions, the parts over the definitions' own state: every
//! entry validated first against the model, the users and the rest of the file
//! ([`validate`]: nothing applied on the first bad one), and the file's
//! exchanges, queues and bindings declared into the model ([`Objects::declare`],
//! as the log's replay applies records). Applying the rest of a [`Plan`] in
//! dependency order (vhosts, users, permissions, limits, parameters, policies)
//! runs the management commands, and the one sync of the definitions logs at
//! the end answers for the whole import: that glue is `mgmt::definitions`.

use super::*;
use crate::core::model::terms::check_parameter;

/// Validates an import (into `only`, when given: then every entry goes there,
/// and users and vhosts are refused) against `model` and `users`; `salt_seed`
/// salts the passwords of users given in clear.
pub(crate) fn validate(
    d: Definitions,
    only: Option<&str>,
    salt_seed: u64,
    model: &Model,
    users: &Users,
) -> AdminResult<Plan> {
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
        |plan: &Plan, name: &str| model.vhosts.contains_key(name) || plan.vhosts.iter().any(|(n, _)| n == name);
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
        user.loopback_only = users.get(&u.name).is_some_and(|x| x.loopback_only);
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
        if users.get(user).is_none() && !plan.users.iter().any(|u| u.name == user) {
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
                let def: PolicyDef = serde_json::from_value(Value::Object(obj)).map_err(|e| bad(what.clone(), e))?;
                Policy::compile(def.clone(), PolicyKind::Operator).map_err(|e| bad(what, e.trim().to_owned()))?;
                plan.operator_policies.push((vhost, def));
            }
            c if PARAMETER_COMPONENTS.contains(&c) => {
                check_parameter(c, &p.name, &p.value).map_err(|e| bad(what.clone(), e.to_string().trim()))?;
                plan.parameters.push((
                    vhost,
                    Parameter {
                        component: p.component,
                        name: p.name,
                        value: p.value,
                    },
                ))
            }
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
        plan.objects.exchanges.push(Planned { vhost, def: x, args });
    }
    for mut q in d.queues.unwrap_or_default() {
        let what = format!("queue '{}'", q.name);
        let vhost = pick(&plan, &what, q.vhost.take())?;
        check_name(&what, "queue", &q.name)?;
        let args = table_from_json(&q.arguments).map_err(|e| bad(what.clone(), e))?;
        let settings =
            crate::core::model::queue::args::parse(&args, &q.name, &vhost).map_err(|e| bad(what.clone(), e))?;
        crate::core::model::queue::args::check_new_declare(&args, &q.name, &vhost).map_err(|e| bad(what.clone(), e))?;
        settings
            .check_properties(q.durable, false, q.auto_delete, &q.name, &vhost)
            .map_err(|e| bad(what.clone(), e))?;
        planned_queues.insert((vhost.clone(), q.name.clone()));
        plan.objects.queues.push(Planned { vhost, def: q, args });
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
        let v = model.vhosts.get(vhost.as_str());
        let x_known = |n: &str| {
            v.is_some_and(|v| v.exchanges.contains_key(n)) || planned_exchanges.contains(&(vhost.clone(), n.to_owned()))
        };
        if b.source.is_empty() || !x_known(&b.source) {
            return Err(bad(what, format!("source exchange '{}' does not exist", b.source)));
        }
        let to_queue = match b.destination_type.as_str() {
            "queue" => true,
            "exchange" => false,
            other => return Err(bad(what, format!("unknown destination_type '{other}'"))),
        };
        let planned_queue = || planned_queues.contains(&(vhost.clone(), b.destination.clone()));
        let dest_known = if to_queue {
            v.is_some_and(|v| v.queue_id(&b.destination).is_some()) || planned_queue()
        } else {
            x_known(&b.destination)
        };
        if !dest_known {
            return Err(bad(what, format!("destination '{}' does not exist", b.destination)));
        }
        plan.objects.bindings.push(Planned { vhost, def: b, args });
    }
    if let Some(g) = d.global_parameters {
        plan.global_parameters = g;
    }
    Ok(plan)
}

impl Objects {
    /// Declares the file's exchanges, then queues, then bindings into `model`
    /// (objects that exist are kept as they are; durable ones are written to
    /// the vhost's log, for the caller to sync before it answers).
    pub(crate) fn declare(self, model: &mut Model) -> AdminResult<()> {
        for Planned { vhost, def: x, args } in self.exchanges {
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
            declare_one(model, &vhost, m)?;
        }
        for Planned { vhost, def: q, args } in self.queues {
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
            declare_one(model, &vhost, m)?;
        }
        for Planned { vhost, def: b, args } in self.bindings {
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
            declare_one(model, &vhost, m)?;
        }
        Ok(())
    }
}

fn declare_one(model: &mut Model, vhost: &str, m: Method<'_>) -> AdminResult<()> {
    let key = model
        .vhosts
        .get_key_value(vhost)
        .map(|(k, _)| k.clone())
        .ok_or_else(|| AdminError::NotFound(format!("no vhost '{vhost}'")))?;
    replay::apply(model, &key, m, Mode::Import)?;
    Ok(())
}

/// A validated import, ready to apply.
#[derive(Default)]
pub(crate) struct Plan {
    pub(crate) vhosts: Vec<(String, VhostMeta)>,
    pub(crate) users: Vec<User>,
    pub(crate) permissions: Vec<PermissionDef>,
    pub(crate) topic_permissions: Vec<TopicPermissionDef>,
    pub(crate) limits: Vec<(String, VhostLimits)>,
    pub(crate) parameters: Vec<(String, Parameter)>,
    pub(crate) global_parameters: Vec<GlobalParameter>,
    pub(crate) operator_policies: Vec<(String, PolicyDef)>,
    pub(crate) policies: Vec<(String, PolicyDef)>,
    /// Exchanges, queues and bindings, declared last.
    pub(crate) objects: Objects,
}

/// The exchanges, queues and bindings of a validated import.
#[derive(Default)]
pub(crate) struct Objects {
    exchanges: Vec<Planned<ExchangeDef>>,
    queues: Vec<Planned<QueueDef>>,
    bindings: Vec<Planned<BindingDef>>,
}

/// An entry of the file with its vhost resolved and its arguments parsed.
struct Planned<T> {
    vhost: String,
    def: T,
    args: ringmq_codec::FieldTable,
}
