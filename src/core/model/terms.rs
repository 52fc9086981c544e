//! Runtime parameters' values (shovels, federation upstreams) checked as
//! RabbitMQ checks them: its words for each problem, the JSON value shown as
//! the Erlang term RabbitMQ decoded it into (`<<"x">>`), every problem found
//! at once.

use serde_json::{Map, Value};

use super::shovel::URIS_MAX;

/// Why a value was refused: every problem found, in RabbitMQ's words, one a
/// line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Validation failed\n\n{}\n", .0.join("\n"))]
pub struct ValidationFailed(pub Vec<String>);

/// Keys of `obj` not in `keys`, as RabbitMQ names them.
pub(crate) fn unknown_terms(obj: &Map<String, Value>, keys: &[&str], name: &str, problems: &mut Vec<String>) {
    let unknown: Vec<String> = (obj.iter())
        .filter(|(k, _)| !keys.contains(&k.as_str()))
        .map(|(k, v)| format!("{{<<\"{k}\">>,{}}}", erl(v)))
        .collect();
    if !unknown.is_empty() {
        problems.push(format!("Unrecognised terms [{}] in {name}", unknown.join(",")));
    }
}

/// A JSON value as RabbitMQ prints the Erlang term it decoded it into.
pub(crate) fn erl(v: &Value) -> String {
    match v {
        Value::String(s) => format!("<<\"{s}\">>"),
        Value::Array(a) => format!("[{}]", a.iter().map(erl).collect::<Vec<_>>().join(",")),
        Value::Object(o) => format!(
            "[{}]",
            o.iter()
                .map(|(k, v)| format!("{{<<\"{k}\">>,{}}}", erl(v)))
                .collect::<Vec<_>>()
                .join(",")
        ),
        Value::Null => "null".into(),
        other => other.to_string(),
    }
}

/// A URI's scheme check, as RabbitMQ's `amqp_uri:parse` reports it. The URI
/// itself is parsed by the shovel task (the client's parser).
pub(crate) fn check_uri(s: &str, http_ok: bool, problems: &mut Vec<String>) {
    let scheme = s.split_once("://").map_or(s, |(scheme, _)| scheme);
    if http_ok && scheme == "https" {
        problems.push(format!(
            "\"{s}\": https:// destinations are not supported yet (http:// is)"
        ));
    } else if scheme == "amqp" || scheme == "amqps" {
        // The whole URI as the links' client reads it (its query parameters
        // are RabbitMQ's Erlang client's), refused now rather than failing at
        // every connect.
        match ringmq_client::Uri::parse(s) {
            Err(e) => problems.push(format!("\"{s}\" not a valid URI: {e}")),
            // RabbitMQ 3.10 would connect without checking the certificate;
            // we ask for the choice to be written down.
            Ok(u) if u.tls == Some(ringmq_client::tls::TlsTrust::Unset) => problems.push(format!(
                "\"{s}\": amqps:// needs cacertfile=FILE (the CA to trust), or verify=verify_none"
            )),
            Ok(_) => {}
        }
    } else if !(http_ok && scheme == "http") {
        problems.push(format!(
            "\"{s}\" not a valid URI: {{{{unexpected_uri_scheme,\"{scheme}\"}},\"{s}\"}}"
        ));
    }
}

pub(crate) fn uris(key: &str, v: &Value, problems: &mut Vec<String>) -> Vec<String> {
    let list: Vec<&Value> = match v {
        Value::Array(a) => a.iter().collect(),
        one => vec![one],
    };
    let mut out = Vec::new();
    for item in list {
        match item {
            Value::String(s) => {
                check_uri(s, key == "dest-uri", problems);
                out.push(s.clone());
            }
            other => problems.push(format!("{key} should be list, actually was {}", erl(other))),
        }
    }
    if out.is_empty() && problems.is_empty() {
        problems.push(format!("{key} should be a non-empty list, actually was []"));
    }
    if out.len() > URIS_MAX {
        problems.push(format!(
            "{key} should have at most {URIS_MAX} URIs, actually has {}",
            out.len()
        ));
    }
    out
}

pub(crate) fn string(obj: &Map<String, Value>, key: &str, problems: &mut Vec<String>) -> Option<String> {
    match obj.get(key)? {
        Value::String(s) => Some(s.clone()),
        other => {
            problems.push(format!("{key} should be binary, actually was {}", erl(other)));
            None
        }
    }
}

pub(crate) fn number(obj: &Map<String, Value>, key: &str, max: u64, problems: &mut Vec<String>) -> Option<u64> {
    let v = obj.get(key)?;
    match v.as_u64() {
        Some(n) if n <= max => Some(n),
        Some(n) => {
            problems.push(format!("{key} should be at most {max}, actually was {n}"));
            None
        }
        None => {
            problems.push(format!("{key} should be a number, actually was {}", erl(v)));
            None
        }
    }
}

pub(crate) fn boolean(obj: &Map<String, Value>, key: &str, problems: &mut Vec<String>) -> bool {
    match obj.get(key) {
        None => false,
        Some(Value::Bool(b)) => *b,
        Some(other) => {
            problems.push(format!("{key} should be boolean, actually was {}", erl(other)));
            false
        }
    }
}

pub(crate) fn table(obj: &Map<String, Value>, key: &str, problems: &mut Vec<String>) -> Map<String, Value> {
    match obj.get(key) {
        None => Map::new(),
        Some(Value::Object(m)) => m.clone(),
        Some(other) => {
            problems.push(format!("{key} should be a table, actually was {}", erl(other)));
            Map::new()
        }
    }
}

/// Checks a runtime parameter's value by its component: shovels, federation
/// upstreams and upstream sets (every component we know has a form).
pub fn check_parameter(component: &str, name: &str, value: &Value) -> Result<(), ValidationFailed> {
    use super::federation::{parse_set, Upstream};
    match component {
        "shovel" => super::shovel::ShovelDef::parse(name, value).map(drop),
        "federation-upstream" => Upstream::parse(name, value).map(drop),
        "federation-upstream-set" => parse_set(name, value).map(drop),
        _ => Ok(()),
    }
}
