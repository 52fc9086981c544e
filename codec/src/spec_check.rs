//! Checks the generated method table against the spec JSON it was generated from,
//! so a hand edit of `methods.rs` or a stale regeneration cannot go unnoticed.
//! The spec lives outside the repository; the test skips (with a message) when it
//! is absent and runs in CI, where it is present.

use std::collections::BTreeSet;

use serde_json::Value;

use crate::methods::METHOD_TABLE;

const SPEC_PATH: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../shared/spec/amqp-rabbitmq-0.9.1.json"
);

#[test]
fn method_table_matches_spec() {
    let Ok(text) = std::fs::read_to_string(SPEC_PATH) else {
        println!("skipping: spec not found at {SPEC_PATH}");
        return;
    };
    let spec: Value = serde_json::from_str(&text).expect("spec is JSON");
    let mut expected = BTreeSet::new();
    for class in spec["classes"].as_array().expect("classes") {
        let class_id = class["id"].as_u64().expect("class id") as u16;
        let class_name = class["name"].as_str().expect("class name");
        for m in class["methods"].as_array().expect("methods") {
            expected.insert((
                class_id,
                m["id"].as_u64().expect("method id") as u16,
                format!("{class_name}.{}", m["name"].as_str().expect("method name")),
                m["arguments"].as_array().expect("arguments").len(),
            ));
        }
    }
    let ours: BTreeSet<_> = METHOD_TABLE
        .iter()
        .map(|&(c, m, name, args)| (c, m, name.to_owned(), args))
        .collect();
    assert_eq!(ours.len(), METHOD_TABLE.len(), "duplicate rows in METHOD_TABLE");
    let missing: Vec<_> = expected.difference(&ours).collect();
    let extra: Vec<_> = ours.difference(&expected).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "missing {missing:?}, extra {extra:?}"
    );
    // The ids alone are unique too, or Method::decode would shadow a method.
    let ids: BTreeSet<_> = METHOD_TABLE.iter().map(|&(c, m, _, _)| (c, m)).collect();
    assert_eq!(ids.len(), METHOD_TABLE.len());
}

#[test]
fn constants_and_reply_codes_match_spec() {
    use crate::error::ReplyCode;
    use crate::frame::*;
    let Ok(text) = std::fs::read_to_string(SPEC_PATH) else {
        println!("skipping: spec not found at {SPEC_PATH}");
        return;
    };
    let spec: Value = serde_json::from_str(&text).expect("spec is JSON");
    for c in spec["constants"].as_array().expect("constants") {
        let name = c["name"].as_str().expect("constant name");
        let value = c["value"].as_u64().expect("constant value");
        let ours = match name {
            "FRAME-METHOD" => FRAME_METHOD as u64,
            "FRAME-HEADER" => FRAME_HEADER as u64,
            "FRAME-BODY" => FRAME_BODY as u64,
            "FRAME-HEARTBEAT" => FRAME_HEARTBEAT as u64,
            "FRAME-MIN-SIZE" => FRAME_MIN_SIZE as u64,
            "FRAME-END" => FRAME_END as u64,
            _ => {
                // Every other constant is a reply code.
                let code = ReplyCode::from_code(value as u16).unwrap_or_else(|| panic!("no ReplyCode for {name}"));
                assert_eq!(
                    code.name(),
                    name.replace('-', "_").replace("REPLY_SUCCESS", "OK"),
                    "{name}"
                );
                let hard = c["class"].as_str() == Some("hard-error");
                if c["class"].is_string() {
                    assert_eq!(code.is_hard(), hard, "{name}");
                }
                continue;
            }
        };
        assert_eq!(ours, value, "{name}");
    }
}
