//! The shovel parameter's checks, with the texts RabbitMQ 3.10 gave for the
//! same values (its HTML escaping taken off).

use serde_json::json;

use super::*;

fn problems(v: Value) -> Vec<String> {
    ShovelDef::parse("s1", &v).expect_err("refused").0
}

#[test]
fn missing_keys_are_named_as_rabbitmq_names_them() {
    assert_eq!(
        problems(json!({})),
        [
            "Must specify 'src-exchange' or 'src-queue'",
            "Key \"dest-uri\" not found in s1",
            "Key \"src-uri\" not found in s1"
        ]
    );
    assert_eq!(
        problems(json!({"src-uri": "amqp://", "src-queue": "q", "src-exchange": "x", "dest-uri": "amqp://"})),
        ["Cannot specify 'src-exchange' and 'src-queue'"]
    );
}

#[test]
fn bad_values_say_what_they_should_be() {
    let base = json!({"src-uri": "amqp://", "src-queue": "q", "dest-uri": "amqp://", "dest-queue": "d"});
    let with = |k: &str, v: Value| {
        let mut o = base.clone();
        o[k] = v;
        problems(o)
    };
    assert_eq!(
        with("ack-mode", json!("bad")),
        ["ack-mode should be one of [<<\"no-ack\">>,<<\"on-publish\">>,<<\"on-confirm\">>], actually was <<\"bad\">>"]
    );
    assert_eq!(
        with("src-delete-after", json!("bad")),
        ["src-delete-after should be a number greater than or equal to 0, \"never\" or \"queue-length\", actually was <<\"bad\">>"]
    );
    assert_eq!(
        with("src-prefetch-count", json!("x")),
        ["src-prefetch-count should be a number, actually was <<\"x\">>"]
    );
    assert_eq!(
        with("reconnect-delay", json!("x")),
        ["reconnect-delay should be a number, actually was <<\"x\">>"]
    );
    assert_eq!(
        with("bogus-key", json!(1)),
        ["Unrecognised terms [{<<\"bogus-key\">>,1}] in s1"]
    );
    assert_eq!(
        with("src-uri", json!(["amqp://", 5])),
        ["src-uri should be list, actually was 5"]
    );
    assert_eq!(
        with("src-uri", json!("foo://")),
        ["\"foo://\" not a valid URI: {{unexpected_uri_scheme,\"foo\"},\"foo://\"}"]
    );
    assert_eq!(
        with("src-uri", json!("http://h/")),
        ["\"http://h/\" not a valid URI: {{unexpected_uri_scheme,\"http\"},\"http://h/\"}"],
        "an HTTP source is no shovel"
    );
    assert_eq!(
        with("dest-uri", json!("http://h/")),
        ["dest-queue has no meaning with an http:// dest-uri"]
    );
    assert_eq!(
        with("src-uri", json!("amqps://h/")),
        ["\"amqps://h/\": amqps:// needs cacertfile=FILE (the CA to trust), or verify=verify_none"]
    );
    for ok in [
        "amqps://h/?cacertfile=/etc/ca.pem",
        "amqps://h/?verify=verify_none&heartbeat=10",
    ] {
        let mut o = base.clone();
        o["src-uri"] = json!(ok);
        assert!(ShovelDef::parse("s1", &o).is_ok(), "{ok}");
    }
    let bad = with("dest-uri", json!("amqp://h/?colour=red"));
    assert!(bad[0].contains("unknown query parameter \"colour\""), "{bad:?}");
    assert_eq!(
        with("dest-uri", json!("https://h/")),
        ["\"https://h/\": https:// destinations are not supported yet (http:// is)"]
    );
    assert_eq!(
        with("dest-add-forward-headers", json!("x")),
        ["dest-add-forward-headers should be boolean, actually was <<\"x\">>"]
    );
    assert_eq!(
        with("src-consumer-args", json!(5)),
        ["src-consumer-args should be a table, actually was 5"]
    );
    assert_eq!(with("src-protocol", json!("amqp10")).len(), 1);
    assert_eq!(with("dest-publish-properties", json!({"colour": "red"})).len(), 1);
    assert_eq!(
        with("dest-publish-properties", json!({"delivery_mode": "two"})).len(),
        1
    );
    assert_eq!(
        with("dest-exchange", json!("x")),
        ["Cannot specify 'dest-exchange' and 'dest-queue'"]
    );
    let err = ShovelDef::parse("s1", &with_ok()).err();
    assert_eq!(err, None);
}

fn with_ok() -> Value {
    json!({"src-uri": ["amqp://", "amqp://h:5673/v"], "src-exchange": "x", "dest-uri": "amqp://",
           "dest-exchange": "y", "dest-exchange-key": "k", "ack-mode": "no-ack", "src-delete-after": 10,
           "src-prefetch-count": 5, "reconnect-delay": 2, "dest-add-forward-headers": true,
           "dest-add-timestamp-header": true, "src-consumer-args": {"x-priority": 1},
           "dest-publish-properties": {"delivery_mode": 2, "app_id": "a"}, "src-protocol": "amqp091"})
}

#[test]
fn a_full_value_parses_into_its_definition() {
    let d = ShovelDef::parse("s1", &with_ok()).unwrap();
    assert_eq!(d.src_uris, ["amqp://", "amqp://h:5673/v"]);
    assert_eq!(
        d.src,
        ShovelSource::Exchange {
            exchange: "x".into(),
            key: "#".into()
        }
    );
    assert_eq!(
        d.dest,
        ShovelDest::Exchange {
            exchange: "y".into(),
            key: Some("k".into())
        }
    );
    assert_eq!(
        (d.ack_mode, d.src_delete_after),
        (AckMode::NoAck, DeleteAfter::Count(10))
    );
    assert_eq!((d.src_prefetch_count, d.reconnect_delay_secs), (5, 2));
    assert!(d.add_forward_headers && d.add_timestamp_header);
    let min = ShovelDef::parse(
        "s",
        &json!({"src-uri": "amqp://", "src-queue": "q", "dest-uri": "amqp://"}),
    )
    .unwrap();
    assert_eq!((min.ack_mode, min.dest), (AckMode::OnConfirm, ShovelDest::AsPublished));
    assert_eq!((min.src_prefetch_count, min.reconnect_delay_secs), (1000, 5));
    let http = ShovelDef::parse(
        "s",
        &json!({"src-uri": "amqp://", "src-queue": "q", "dest-uri": "http://h:8080/in"}),
    )
    .unwrap();
    assert_eq!(http.dest, ShovelDest::Http);
}
