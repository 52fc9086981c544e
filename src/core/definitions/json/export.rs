//! Building a definitions export from the model, the users and the
//! permissions (RabbitMQ's JSON shape).

use super::*;
use crate::core::model::ids::Dest;
use crate::core::model::ids::VhostName;

/// Exports the definitions of the broker (the model, the users, the
/// permissions and topic permissions, the global parameters), or of one vhost
/// (then without users, vhosts and permissions, and without `vhost` fields, as
/// RabbitMQ).
pub(crate) fn export(
    model: &Model,
    users: &Users,
    permissions: &Permissions,
    global_parameters: &[GlobalParameter],
    vhost: Option<&str>,
) -> AdminResult<Definitions> {
    if let Some(v) = vhost {
        if !model.vhosts.contains_key(v) {
            return Err(AdminError::NotFound(format!("no vhost '{v}'")));
        }
    }
    let all = vhost.is_none();
    let tag_vhost = |v: &str| all.then(|| v.to_owned());
    let mut vnames: Vec<&VhostName> = model
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
        let mut users: Vec<&User> = users.iter().collect();
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
                    let m = &model.vhosts[*n].meta;
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
        d.permissions = Some(permissions.defs());
        d.topic_permissions = Some(permissions.topic.defs());
        d.global_parameters = Some(global_parameters.to_vec());
    }
    for n in vnames {
        let v = &model.vhosts[n];
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
        let mut qs: Vec<_> = v.queues.values().filter(|q| q.exclusive_owner().is_none()).collect();
        qs.sort_by(|a, b| a.name().cmp(b.name()));
        d.queues
            .as_mut()
            .expect("set above")
            .extend(qs.iter().map(|q| QueueDef {
                name: q.name().to_string(),
                vhost: tag_vhost(n),
                durable: q.is_durable(),
                auto_delete: q.is_auto_delete(),
                arguments: table_to_json(q.arguments()),
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
                        Some(q) if q.exclusive_owner().is_none() => (q.name().to_string(), "queue"),
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
