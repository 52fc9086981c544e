//! Importing definitions: validate every entry first (nothing applied on the first
//! bad one), then apply in dependency order, with one sync of the definitions
//! logs at the end.

use super::*;

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
        let vhost_known = |plan: &Plan, name: &str| {
            self.model.vhosts.contains_key(name) || plan.vhosts.iter().any(|(n, _)| n == name)
        };
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
            let v = self.model.vhosts.get(vhost.as_str());
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
        let now_ms = self.advance_clock(now_ms);
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
            .model
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
