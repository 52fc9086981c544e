//! Which upstreams a federated exchange or queue has: its policy's
//! `federation-upstream` (one) or `federation-upstream-set` (a set's
//! entries, each with its keys over the upstream's; `all`: every upstream of
//! the vhost), as RabbitMQ's `rabbit_federation_upstream:for/1` reads them.
//! An entry naming a missing upstream is left out, as RabbitMQ does.

use serde_json::{Map, Value};

use crate::core::model::federation::{parse_set, Upstream};

/// A vhost's `federation-upstream` and `federation-upstream-set` values.
#[derive(Debug, Default)]
pub struct VhostParams {
    pub upstreams: Vec<(String, Value)>,
    pub sets: Vec<(String, Value)>,
}

/// The upstreams a policy definition names, by name, in the set's order.
pub fn for_policy(def: &Map<String, Value>, params: &VhostParams) -> Vec<(String, Upstream)> {
    let entries: Vec<(String, Map<String, Value>)> =
        if let Some(name) = def.get("federation-upstream").and_then(Value::as_str) {
            vec![(name.to_owned(), Map::new())]
        } else if let Some(set) = def.get("federation-upstream-set").and_then(Value::as_str) {
            if set == "all" {
                params.upstreams.iter().map(|(n, _)| (n.clone(), Map::new())).collect()
            } else {
                let Some((_, value)) = params.sets.iter().find(|(n, _)| n == set) else {
                    return Vec::new();
                };
                match parse_set(set, value) {
                    Ok(es) => es.into_iter().map(|e| (e.upstream, e.overrides)).collect(),
                    Err(_) => return Vec::new(),
                }
            }
        } else {
            return Vec::new();
        };
    let mut out = Vec::new();
    for (name, overrides) in entries {
        let Some((_, Value::Object(base))) = params.upstreams.iter().find(|(n, _)| *n == name) else {
            continue;
        };
        let mut merged = base.clone();
        merged.extend(overrides);
        if let Ok(up) = Upstream::parse(&name, &Value::Object(merged)) {
            if !out.iter().any(|(n, _)| *n == name) {
                out.push((name, up));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn one_a_set_and_all() {
        let params = VhostParams {
            upstreams: vec![
                ("a".into(), json!({"uri": "amqp://a", "max-hops": 2})),
                ("b".into(), json!({"uri": "amqp://b"})),
            ],
            sets: vec![(
                "s".into(),
                json!([{"upstream": "b", "max-hops": 3}, {"upstream": "gone"}]),
            )],
        };
        let def = |k: &str, v: &str| json!({ k: v }).as_object().unwrap().clone();
        let names = |ups: Vec<(String, Upstream)>| ups.into_iter().map(|(n, u)| (n, u.max_hops)).collect::<Vec<_>>();
        assert_eq!(
            names(for_policy(&def("federation-upstream", "a"), &params)),
            vec![("a".into(), 2)]
        );
        assert_eq!(names(for_policy(&def("federation-upstream", "zz"), &params)), vec![]);
        assert_eq!(
            names(for_policy(&def("federation-upstream-set", "s"), &params)),
            vec![("b".into(), 3)]
        );
        assert_eq!(
            names(for_policy(&def("federation-upstream-set", "all"), &params)),
            vec![("a".into(), 2), ("b".into(), 1)]
        );
        assert!(for_policy(&Map::new(), &params).is_empty());
    }
}
