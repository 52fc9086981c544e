//! The API's commands without sockets.

use super::*;

#[test]
fn properties_keys_follow_rabbitmq_shape() {
    let empty = FieldTable::default();
    assert_eq!(properties_key("", &empty), "~");
    assert_eq!(properties_key("a.b", &empty), "a.b");
    assert_eq!(properties_key("a~b", &empty), "a%7Eb");
    // Checked against RabbitMQ 3.10's properties_key.
    assert_eq!(properties_key("k k/%", &empty), "k+k%2F%25");
    assert_eq!(properties_key("a~b.c_d-e", &empty), "a%7Eb.c_d-e");
    assert_eq!(properties_key("é", &empty), "%C3%A9");
    // Found by its key, or by the routing key sent decoded (rabbitmqadmin).
    assert!(props_match("a.#", &empty, "a.%23"));
    assert!(props_match("a.#", &empty, "a.#"));
    assert!(props_match("k k/%", &empty, "k+k%2F%25"));
    assert!(props_match("", &empty, "~"));
    assert!(!props_match("a.b", &empty, "a.c"));
    let mut args = FieldTable::default();
    args.insert(ringmq_codec::short!("x"), ringmq_codec::FieldValue::I64(1));
    let k = properties_key("a.b", &args);
    assert!(k.starts_with("a.b~") && k.len() == "a.b~".len() + 6, "{k}");
    assert_eq!(k, properties_key("a.b", &args), "stable");
}

fn broker(dir: &std::path::Path) -> Broker {
    let cfg = crate::core::CoreConfig::for_tests(dir);
    Broker::open(cfg, 7).expect("open")
}

fn props() -> Vec<u8> {
    let mut out = Vec::new();
    ringmq_codec::BasicProperties::default().encode(&mut out);
    out
}

fn ready(b: &Broker, q: &str) -> u64 {
    let v = &b.model.vhosts["/"];
    v.queues[&v.queue_id(q).unwrap()].ready_count()
}

/// The API's operations without sockets: declare, publish, get in each
/// ack mode, bind/unbind by props key, purge, delete, permission checks.
#[test]
fn admin_operations_on_a_core_broker() {
    let dir = tempfile::tempdir().unwrap();
    let mut b = broker(dir.path());
    let ctx = AdminCtx {
        user: "guest",
        vhost: "/",
        now_ms: 1_000,
    };
    let durable = QueueSpec {
        durable: true,
        ..Default::default()
    };
    assert_eq!(b.admin_declare_queue(&ctx, "q", &durable).unwrap(), Declared::Created);
    assert_eq!(b.admin_declare_queue(&ctx, "q", &durable).unwrap(), Declared::Existed);
    let e = b.admin_declare_queue(&ctx, "q", &QueueSpec::default()).unwrap_err();
    assert!(
        matches!(e, AdminError::BadRequest(ref s) if s.starts_with("inequivalent arg 'durable'")),
        "{e}"
    );
    let missing_vhost = AdminCtx { vhost: "nope", ..ctx };
    assert!(matches!(
        b.admin_declare_queue(&missing_vhost, "q", &durable),
        Err(AdminError::NotFound(_))
    ));
    let stranger = AdminCtx {
        user: "stranger",
        ..ctx
    };
    assert!(matches!(
        b.admin_declare_queue(&stranger, "s", &durable),
        Err(AdminError::AccessRefused(_))
    ));
    assert!(matches!(
        b.admin_get(&stranger, "q", 1, AckMode::AckRequeueTrue),
        Err(AdminError::AccessRefused(_))
    ));

    let p = props();
    assert!(b.admin_publish(&ctx, "", "q", &p, b"one").unwrap());
    assert!(b.admin_publish(&ctx, "", "q", &p, b"two").unwrap());
    assert!(!b.admin_publish(&ctx, "amq.direct", "nowhere", &p, b"x").unwrap());
    let e = b.admin_publish(&ctx, "missing", "", &p, b"x").unwrap_err();
    assert!(matches!(e, AdminError::BadRequest(ref s) if s == "404 NOT_FOUND - no exchange 'missing' in vhost '/'"));

    let got = b.admin_get(&ctx, "q", 1, AckMode::AckRequeueTrue).unwrap();
    assert_eq!(
        (got[0].payload.as_slice(), got[0].redelivered, got[0].message_count),
        (&b"one"[..], false, 1)
    );
    let got = b.admin_get(&ctx, "q", 5, AckMode::RejectRequeueTrue).unwrap();
    let bodies: Vec<&[u8]> = got.iter().map(|m| m.payload.as_slice()).collect();
    assert_eq!(bodies, [&b"one"[..], &b"two"[..]], "requeued in order");
    assert!(got[0].redelivered && !got[1].redelivered);
    let got = b.admin_get(&ctx, "q", 1, AckMode::AckRequeueFalse).unwrap();
    assert_eq!(got[0].payload, b"one");
    assert_eq!(ready(&b, "q"), 1);

    let e = b.admin_delete_queue(&ctx, "q", false, true).unwrap_err();
    assert!(matches!(e, AdminError::BadRequest(ref s) if s == "queue 'q' in vhost '/' not empty"));
    b.admin_purge_queue(&ctx, "q").unwrap();
    assert_eq!(ready(&b, "q"), 0);
    assert!(b.admin_get(&ctx, "q", 3, AckMode::AckRequeueTrue).unwrap().is_empty());

    let topic = ExchangeSpec {
        kind: "topic".into(),
        durable: true,
        ..Default::default()
    };
    assert_eq!(b.admin_declare_exchange(&ctx, "x", &topic).unwrap(), Declared::Created);
    let mut args = FieldTable::default();
    args.insert(ringmq_codec::short!("k"), ringmq_codec::FieldValue::I64(1));
    let key = b
        .admin_bind(&ctx, "x", DestKind::Queue, "q", "a.*", &args, true)
        .unwrap();
    assert_eq!(
        b.admin_find_binding("/", "x", DestKind::Queue, "q", &key),
        Some(("a.*".into(), args.clone()))
    );
    assert!(b.admin_publish(&ctx, "x", "a.b", &p, b"m").unwrap());
    b.admin_bind(&ctx, "x", DestKind::Queue, "q", "a.*", &args, false)
        .unwrap();
    assert!(!b.admin_publish(&ctx, "x", "a.b", &p, b"m").unwrap());
    assert!(matches!(
        b.admin_bind(&ctx, "x", DestKind::Queue, "missing", "", &args, true),
        Err(AdminError::NotFound(_))
    ));
    assert!(matches!(
        b.admin_delete_exchange(&ctx, "amq.direct", false),
        Err(AdminError::AccessRefused(_))
    ));
    b.admin_delete_exchange(&ctx, "x", false).unwrap();

    // The API's work counts in the vhost once the stats tick runs.
    b.handle_stats_tick(6_000);
    let t = &b.model.vhosts["/"].stats.totals;
    assert_eq!((t.publish, t.get, t.ack), (5, 4, 1));
    let q = &b.model.vhosts["/"].queues[&b.model.vhosts["/"].queue_id("q").unwrap()];
    assert_eq!((q.stats().c.publish, q.stats().c.get, q.stats().c.get_empty), (3, 4, 1));

    b.admin_pause_queue(&ctx, "q", true).unwrap();
    assert!(matches!(
        b.admin_close_connection(crate::core::model::ids::ConnId(99), "x", 1),
        Err(AdminError::NotFound(_))
    ));
    b.admin_delete_queue(&ctx, "q", false, false).unwrap();
    assert!(matches!(
        b.admin_delete_queue(&ctx, "q", false, false),
        Err(AdminError::NotFound(_))
    ));
}

#[test]
fn exceptions_map_to_api_errors() {
    let e = crate::core::amqp::error::channel_error(ReplyCode::PreconditionFailed, "inequivalent arg 'durable'");
    assert!(matches!(AdminError::from(e), AdminError::BadRequest(s) if s == "inequivalent arg 'durable'"));
    let e = crate::core::amqp::error::channel_error(ReplyCode::NotFound, "no exchange 'x' in vhost '/'");
    assert!(
        matches!(AdminError::from(e), AdminError::BadRequest(s) if s == "404 NOT_FOUND - no exchange 'x' in vhost '/'")
    );
    let e = crate::core::amqp::error::channel_error(ReplyCode::AccessRefused, "no");
    assert!(matches!(AdminError::from(e), AdminError::AccessRefused(_)));
}
