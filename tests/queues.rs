//! Queues: server-named, passive, exclusive, auto-delete, bind/unbind, purge,
//! delete with conditions, counts in declare-ok, argument equivalence.

mod common;

use common::*;

fn passive() -> QueueDeclareOptions {
    QueueDeclareOptions {
        passive: true,
        ..Default::default()
    }
}

async fn exists(conn: &lapin::Connection, q: &str) -> bool {
    let ch = channel(conn).await;
    let r = within(
        "passive declare",
        ch.queue_declare(q.into(), passive(), FieldTable::default()),
    )
    .await;
    match r {
        Ok(_) => {
            let _ = ch.close(200, "ok".into()).await;
            true
        }
        Err(e) => {
            // 405: there, and exclusive to another connection (one whose close
            // has not been handled yet, as RabbitMQ answers in that window too).
            let (code, text) = amqp_error(&e);
            assert!(code == 404 || code == 405, "{code} {text}");
            code == 405
        }
    }
}

#[test]
fn server_named_queue() {
    let b = Broker::new();
    run(async {
        let (_conn, ch) = open(&b).await;
        let q = declare_queue(
            &ch,
            "",
            QueueDeclareOptions {
                exclusive: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await;
        let name = q.name().to_string();
        assert!(name.starts_with("amq.gen-"), "server-named queue {name:?}");
        assert!(name.len() > "amq.gen-".len() + 8, "server-named queue {name:?}");
        assert_eq!((q.message_count(), q.consumer_count()), (0, 0));
        let q2 = declare_queue(
            &ch,
            "",
            QueueDeclareOptions {
                exclusive: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await;
        assert_ne!(q2.name().as_str(), name, "two server-named queues share a name");
        // Usable by that name.
        let ch2 = confirm_channel(&_conn).await;
        publish(&ch2, "", &name, b"hi").await;
        assert_eq!(get_all(&ch2, &name).await, strs(&["hi"]));
        // Client-chosen names under amq. are refused.
        let r = within(
            "amq. queue",
            ch.queue_declare(
                unique("amq.q").as_str().into(),
                QueueDeclareOptions::default(),
                FieldTable::default(),
            ),
        )
        .await;
        assert_amqp_err(r, 403, "ACCESS_REFUSED - queue name 'amq.q");
    });
}

#[test]
fn passive_declare_of_missing_queue_is_404() {
    let b = Broker::new();
    run(async {
        let (conn, ch) = open(&b).await;
        let q = unique("q-missing");
        let r = within(
            "passive",
            ch.queue_declare(q.as_str().into(), passive(), FieldTable::default()),
        )
        .await;
        assert_amqp_err(r, 404, &format!("NOT_FOUND - no queue '{q}' in vhost '/'"));
        assert!(conn.status().connected());
    });
}

#[test]
fn exclusive_queue_is_locked_to_its_connection() {
    let b = Broker::new();
    run(async {
        let (conn_a, ch_a) = open(&b).await;
        let q = unique("q-excl");
        temp_queue(&ch_a, &q).await;
        // Same connection: redeclare and consume are fine.
        temp_queue(&ch_a, &q).await;
        let conn_b = connect(&b).await;
        let ch_b = channel(&conn_b).await;
        let locked = format!("RESOURCE_LOCKED - cannot obtain exclusive access to locked queue '{q}' in vhost '/'");
        let r = within(
            "passive from B",
            ch_b.queue_declare(q.as_str().into(), passive(), FieldTable::default()),
        )
        .await;
        assert_amqp_err(r, 405, &locked);
        let ch_b = channel(&conn_b).await;
        let r = within(
            "consume from B",
            ch_b.basic_consume(
                q.as_str().into(),
                "".into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            ),
        )
        .await;
        assert_amqp_err(r.map(|_| ()), 405, &locked);
        let ch_b = channel(&conn_b).await;
        let r = within(
            "declare from B",
            ch_b.queue_declare(
                q.as_str().into(),
                QueueDeclareOptions {
                    exclusive: true,
                    ..Default::default()
                },
                FieldTable::default(),
            ),
        )
        .await;
        assert_amqp_err(r, 405, &locked);
        assert!(conn_b.status().connected(), "405 is a channel error");

        // It dies with its connection.
        within("close A", conn_a.close(200, "bye".into()))
            .await
            .expect("close A");
        let mut gone = false;
        for _ in 0..100 {
            if !exists(&conn_b, &q).await {
                gone = true;
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        assert!(gone, "exclusive queue outlived its connection");
    });
}

#[test]
fn auto_delete_queue_dies_with_its_last_consumer() {
    let b = Broker::new();
    run(async {
        let (conn, ch) = open(&b).await;
        let q = unique("q-autodel");
        declare_queue(
            &ch,
            &q,
            QueueDeclareOptions {
                auto_delete: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await;
        // Never consumed from: it stays.
        tokio::time::sleep(QUIET).await;
        assert!(exists(&conn, &q).await);
        let c1 = within(
            "consume 1",
            ch.basic_consume(
                q.as_str().into(),
                "c1".into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            ),
        )
        .await
        .expect("consume");
        let c2 = within(
            "consume 2",
            ch.basic_consume(
                q.as_str().into(),
                "c2".into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            ),
        )
        .await
        .expect("consume");
        let decl = declare_queue(&ch, &q, passive(), FieldTable::default()).await;
        assert_eq!(decl.consumer_count(), 2);
        within("cancel 1", ch.basic_cancel("c1".into(), BasicCancelOptions::default()))
            .await
            .expect("cancel");
        tokio::time::sleep(QUIET).await;
        assert!(exists(&conn, &q).await, "deleted while a consumer was left");
        within("cancel 2", ch.basic_cancel("c2".into(), BasicCancelOptions::default()))
            .await
            .expect("cancel");
        drop((c1, c2));
        let mut gone = false;
        for _ in 0..100 {
            if !exists(&conn, &q).await {
                gone = true;
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        assert!(gone, "auto-delete queue outlived its last consumer");
    });
}

#[test]
fn bind_and_unbind() {
    let b = Broker::new();
    run(async {
        let conn = connect(&b).await;
        let ch = confirm_channel(&conn).await;
        let q = unique("q-bind");
        temp_queue(&ch, &q).await;
        bind(&ch, &q, "amq.direct", &q, FieldTable::default()).await;
        bind(&ch, &q, "amq.direct", &q, FieldTable::default()).await; // idempotent
        publish(&ch, "amq.direct", &q, b"bound").await;
        assert_eq!(get_all(&ch, &q).await, strs(&["bound"]));
        within(
            "unbind",
            ch.queue_unbind(
                q.as_str().into(),
                "amq.direct".into(),
                q.as_str().into(),
                FieldTable::default(),
            ),
        )
        .await
        .expect("unbind");
        publish(&ch, "amq.direct", &q, b"unbound").await;
        assert_eq!(get_all(&ch, &q).await, Vec::<String>::new());
        // Unbinding what is not bound is not an error.
        within(
            "unbind again",
            ch.queue_unbind(
                q.as_str().into(),
                "amq.direct".into(),
                q.as_str().into(),
                FieldTable::default(),
            ),
        )
        .await
        .expect("unbind of a missing binding");
        let x = unique("x-missing");
        let r = within(
            "bind to missing exchange",
            ch.queue_bind(
                q.as_str().into(),
                x.as_str().into(),
                "".into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            ),
        )
        .await;
        assert_amqp_err(r, 404, &format!("NOT_FOUND - no exchange '{x}' in vhost '/'"));
        let ch = channel(&conn).await;
        let missing = unique("q-missing");
        let r = within(
            "bind missing queue",
            ch.queue_bind(
                missing.as_str().into(),
                "amq.direct".into(),
                "".into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            ),
        )
        .await;
        assert_amqp_err(r, 404, &format!("NOT_FOUND - no queue '{missing}' in vhost '/'"));
    });
}

#[test]
fn purge_returns_the_count() {
    let b = Broker::new();
    run(async {
        let conn = connect(&b).await;
        let ch = confirm_channel(&conn).await;
        let q = unique("q-purge");
        temp_queue(&ch, &q).await;
        for i in 0..5 {
            publish(&ch, "", &q, format!("m{i}").as_bytes()).await;
        }
        let n = within("purge", ch.queue_purge(q.as_str().into(), QueuePurgeOptions::default()))
            .await
            .expect("purge");
        assert_eq!(n, 5);
        let n = within(
            "purge again",
            ch.queue_purge(q.as_str().into(), QueuePurgeOptions::default()),
        )
        .await
        .expect("purge");
        assert_eq!(n, 0);
        assert_eq!(get_all(&ch, &q).await, Vec::<String>::new());
    });
}

#[test]
fn delete_if_empty_and_if_unused() {
    let b = Broker::new();
    run(async {
        let conn = connect(&b).await;
        let ch = confirm_channel(&conn).await;
        let q = unique("q-del");
        temp_queue(&ch, &q).await;
        publish(&ch, "", &q, b"x").await;
        let r = within(
            "delete if-empty",
            ch.queue_delete(
                q.as_str().into(),
                QueueDeleteOptions {
                    if_empty: true,
                    ..Default::default()
                },
            ),
        )
        .await;
        assert_amqp_err(
            r,
            406,
            &format!("PRECONDITION_FAILED - queue '{q}' in vhost '/' not empty"),
        );

        let ch = channel(&conn).await;
        let _consumer = within(
            "consume",
            ch.basic_consume(
                q.as_str().into(),
                "".into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            ),
        )
        .await
        .expect("consume");
        let ch2 = channel(&conn).await;
        let r = within(
            "delete if-unused",
            ch2.queue_delete(
                q.as_str().into(),
                QueueDeleteOptions {
                    if_unused: true,
                    ..Default::default()
                },
            ),
        )
        .await;
        assert_amqp_err(
            r,
            406,
            &format!("PRECONDITION_FAILED - queue '{q}' in vhost '/' in use"),
        );

        // Unconditional delete returns the number of messages it dropped.
        let q2 = unique("q-del2");
        let ch3 = confirm_channel(&conn).await;
        temp_queue(&ch3, &q2).await;
        for _ in 0..3 {
            publish(&ch3, "", &q2, b"y").await;
        }
        let n = within(
            "delete",
            ch3.queue_delete(q2.as_str().into(), QueueDeleteOptions::default()),
        )
        .await
        .expect("delete");
        assert_eq!(n, 3);
        assert!(!exists(&conn, &q2).await);
        // Deleting a missing queue is fine in RabbitMQ 3.x (delete-ok, 0 messages).
        let n = within(
            "delete missing",
            ch3.queue_delete(q2.as_str().into(), QueueDeleteOptions::default()),
        )
        .await
        .expect("delete missing");
        assert_eq!(n, 0);
    });
}

#[test]
fn declare_ok_counts() {
    let b = Broker::new();
    run(async {
        let conn = connect(&b).await;
        let ch = confirm_channel(&conn).await;
        let q = unique("q-counts");
        temp_queue(&ch, &q).await;
        for i in 0..3 {
            publish(&ch, "", &q, format!("{i}").as_bytes()).await;
        }
        let d = declare_queue(&ch, &q, passive(), FieldTable::default()).await;
        assert_eq!((d.message_count(), d.consumer_count()), (3, 0));
        let cch = channel(&conn).await;
        within("qos", cch.basic_qos(1, BasicQosOptions::default()))
            .await
            .expect("qos");
        let mut consumer = within(
            "consume",
            cch.basic_consume(
                q.as_str().into(),
                "".into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            ),
        )
        .await
        .expect("consume");
        let first = next(&mut consumer).await;
        assert_eq!(first.data, b"0");
        // Counts are of ready messages: the unacked one is not in there.
        let d = declare_queue(&ch, &q, passive(), FieldTable::default()).await;
        assert_eq!((d.message_count(), d.consumer_count()), (2, 1));
        let d = declare_queue(
            &ch,
            &q,
            QueueDeclareOptions {
                exclusive: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await;
        assert_eq!((d.message_count(), d.consumer_count()), (2, 1));
    });
}

#[test]
fn argument_and_flag_mismatch_on_redeclare_is_406() {
    let b = Broker::new();
    run(async {
        let conn = connect(&b).await;
        let ch = channel(&conn).await;
        let q = unique("q-args");
        let excl = QueueDeclareOptions {
            exclusive: true,
            ..Default::default()
        };
        declare_queue(&ch, &q, excl, table(&[("x-max-length", AMQPValue::LongInt(10))])).await;
        // Same value, other integer type: equivalent.
        declare_queue(&ch, &q, excl, table(&[("x-max-length", AMQPValue::LongLongInt(10))])).await;
        let r = within(
            "other value",
            ch.queue_declare(
                q.as_str().into(),
                excl,
                table(&[("x-max-length", AMQPValue::LongInt(20))]),
            ),
        )
        .await;
        assert_amqp_err(r, 406, &format!("PRECONDITION_FAILED - inequivalent arg 'x-max-length' for queue '{q}' in vhost '/': received '20' but current is '10'"));

        // RabbitMQ makes exclusive queues transient whatever the durable flag says, so
        // redeclaring an exclusive queue as durable is equivalent...
        let ch = channel(&conn).await;
        declare_queue(
            &ch,
            &q,
            QueueDeclareOptions { durable: true, ..excl },
            table(&[("x-max-length", AMQPValue::LongInt(10))]),
        )
        .await;
        // ...but for a shared queue the durable flag must match.
        let shared = unique("q-args-shared");
        declare_queue(&ch, &shared, QueueDeclareOptions::default(), FieldTable::default()).await;
        let r = within(
            "durable",
            ch.queue_declare(
                shared.as_str().into(),
                QueueDeclareOptions {
                    durable: true,
                    ..Default::default()
                },
                FieldTable::default(),
            ),
        )
        .await;
        assert_amqp_err(r, 406, &format!("PRECONDITION_FAILED - inequivalent arg 'durable' for queue '{shared}' in vhost '/': received 'true' but current is 'false'"));
        let ch = channel(&conn).await;
        within(
            "delete shared",
            ch.queue_delete(shared.as_str().into(), QueueDeleteOptions::default()),
        )
        .await
        .expect("delete");

        let ch = channel(&conn).await;
        let r = within(
            "missing arg",
            ch.queue_declare(q.as_str().into(), excl, FieldTable::default()),
        )
        .await;
        assert_amqp_err(r, 406, &format!("PRECONDITION_FAILED - inequivalent arg 'x-max-length' for queue '{q}' in vhost '/': received none but current is the value '10' of type 'signedint'"));
        assert!(conn.status().connected());
        // Passive declare ignores arguments.
        let ch = channel(&conn).await;
        declare_queue(&ch, &q, passive(), table(&[("x-max-length", AMQPValue::LongInt(99))])).await;
    });
}
