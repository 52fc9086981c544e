use serde_json::json;

use super::*;

fn refused(v: Value) -> Vec<String> {
    Upstream::parse("u1", &v).expect_err("refused").0
}

/// RabbitMQ 3.10's texts, taken from the peer (its management plugin
/// HTML-escapes them: `&lt;&lt;` for `<<`).
#[test]
fn bad_upstreams_get_rabbitmqs_texts() {
    assert_eq!(refused(json!({})), ["Key \"uri\" not found in u1"]);
    assert_eq!(refused(json!({"uri": 5})), ["uri should be list, actually was 5"]);
    assert_eq!(
        refused(json!({"uri": "amqp://x", "max-hops": "a"})),
        ["max-hops should be a number, actually was <<\"a\">>"]
    );
    assert_eq!(
        refused(json!({"uri": "amqp://x", "ack-mode": "x"})),
        ["ack-mode should be one of [<<\"no-ack\">>,<<\"on-publish\">>,<<\"on-confirm\">>], actually was <<\"x\">>"]
    );
    assert_eq!(
        refused(json!({"uri": "amqp://x", "trust-user-id": "x"})),
        ["trust-user-id should be boolean, actually was <<\"x\">>"]
    );
    assert_eq!(
        refused(json!({"uri": "amqp://x", "exchange": 5})),
        ["exchange should be binary, actually was 5"]
    );
    assert_eq!(
        refused(json!({"uri": "amqp://x", "bogus": 5})),
        ["Unrecognised terms [{<<\"bogus\">>,5}] in u1"]
    );
    assert_eq!(
        refused(json!({"uri": "http://x"})),
        ["\"http://x\" not a valid URI: {{unexpected_uri_scheme,\"http\"},\"http://x\"}"]
    );
    assert_eq!(
        refused(json!({"uri": "amqp://x", "resource-cleanup-mode": "x"})),
        ["resource-cleanup-mode should be one of [<<\"default\">>,<<\"never\">>], actually was <<\"x\">>"]
    );
}

/// What RabbitMQ 3.10 takes but no link could use is refused.
#[test]
fn values_no_link_could_use_are_refused() {
    for v in [
        json!({"uri": []}),
        json!({"uri": "amqp://x", "max-hops": 0}),
        json!({"uri": "amqp://x", "prefetch-count": -1}),
        json!({"uri": "amqp://x", "expires": 0}),
        json!({"uri": "amqp://x", "message-ttl": -1}),
        json!({"uri": "amqp://x", "reconnect-delay": -1}),
        json!("x"),
    ] {
        assert!(Upstream::parse("u1", &v).is_err(), "{v}");
    }
}

#[test]
fn a_good_upstream_keeps_every_setting() {
    let v = json!({"uri": ["amqp://a", "amqp://b"], "max-hops": 2, "expires": 1000, "message-ttl": 0,
        "prefetch-count": 10, "reconnect-delay": 1.5, "ack-mode": "no-ack", "trust-user-id": true,
        "exchange": "e", "queue": "q", "resource-cleanup-mode": "never"});
    let u = Upstream::parse("u1", &v).unwrap();
    assert_eq!(u.uris, ["amqp://a", "amqp://b"]);
    assert_eq!(
        (u.max_hops, u.expires_ms, u.message_ttl_ms, u.prefetch_count),
        (2, Some(1000), Some(0), 10)
    );
    assert_eq!(
        (u.reconnect_delay_secs, u.ack_mode, u.trust_user_id),
        (1.5, AckMode::NoAck, true)
    );
    assert_eq!(
        (u.exchange.as_deref(), u.queue.as_deref(), u.keep_resources),
        (Some("e"), Some("q"), true)
    );
    let d = Upstream::parse("u1", &json!({"uri": "amqp://"})).unwrap();
    assert_eq!(
        (d.max_hops, d.prefetch_count, d.ack_mode),
        (MAX_HOPS_DEFAULT, PREFETCH_COUNT_DEFAULT, AckMode::OnConfirm)
    );
}

#[test]
fn upstream_sets_name_an_upstream_in_each_entry() {
    let set = parse_set("s1", &json!([{"upstream": "u1"}, {"upstream": "u2", "max-hops": 3}])).unwrap();
    assert_eq!(set.len(), 2);
    assert_eq!(set[1].overrides.get("max-hops"), Some(&json!(3)));
    let err = |v: Value| parse_set("s1", &v).expect_err("refused").0;
    assert_eq!(err(json!([{}])), ["Key \"upstream\" not found in s1"]);
    assert_eq!(
        err(json!([{"upstream": 5}])),
        ["upstream should be binary, actually was 5"]
    );
    assert_eq!(
        err(json!([{"upstream": "u1", "max-hops": "a"}])),
        ["max-hops should be a number, actually was <<\"a\">>"]
    );
    assert_eq!(
        err(json!([{"upstream": "u1", "bogus": 1}])),
        ["Unrecognised terms [{<<\"bogus\">>,1}] in s1"]
    );
    assert!(parse_set("s1", &json!({"upstream": "u1"})).is_err(), "not a list");
}
