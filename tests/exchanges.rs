//! Exchanges: declare and delete, equivalence, the predeclared `amq.*` exchanges,
//! and routing through every type, exchange-to-exchange bindings, alternate and
//! internal exchanges.

mod common;

use common::*;

fn passive() -> ExchangeDeclareOptions {
    ExchangeDeclareOptions {
        passive: true,
        ..Default::default()
    }
}

#[test]
fn declare_every_type_and_redeclare() {
    let b = Broker::new();
    run(async {
        let conn = connect(&b).await;
        for kind in [
            ExchangeKind::Direct,
            ExchangeKind::Fanout,
            ExchangeKind::Topic,
            ExchangeKind::Headers,
        ] {
            let ch = channel(&conn).await;
            let x = unique("x-type");
            declare_exchange(
                &ch,
                &x,
                kind.clone(),
                ExchangeDeclareOptions::default(),
                FieldTable::default(),
            )
            .await;
            // Same again: fine. Passive: fine (type is not checked on passive).
            declare_exchange(
                &ch,
                &x,
                kind.clone(),
                ExchangeDeclareOptions::default(),
                FieldTable::default(),
            )
            .await;
            declare_exchange(&ch, &x, ExchangeKind::Fanout, passive(), FieldTable::default()).await;
            within(
                "delete",
                ch.exchange_delete(x.as_str().into(), ExchangeDeleteOptions::default()),
            )
            .await
            .expect("exchange.delete");
            let r = within(
                "passive",
                ch.exchange_declare(x.as_str().into(), kind, passive(), FieldTable::default()),
            )
            .await;
            assert_amqp_err(r, 404, &format!("NOT_FOUND - no exchange '{x}' in vhost '/'"));
        }
    });
}

#[test]
fn passive_declare_of_missing_exchange_is_404_on_the_channel() {
    let b = Broker::new();
    run(async {
        let (conn, ch) = open(&b).await;
        let x = unique("x-missing");
        let r = within(
            "passive",
            ch.exchange_declare(
                x.as_str().into(),
                ExchangeKind::Direct,
                passive(),
                FieldTable::default(),
            ),
        )
        .await;
        assert_amqp_err(r, 404, &format!("NOT_FOUND - no exchange '{x}' in vhost '/'"));
        assert!(conn.status().connected(), "a channel error closed the connection");
        let ch2 = channel(&conn).await;
        declare_exchange(
            &ch2,
            "amq.direct",
            ExchangeKind::Direct,
            passive(),
            FieldTable::default(),
        )
        .await;
    });
}

#[test]
fn redeclare_with_other_type_or_flags_is_406() {
    let b = Broker::new();
    run(async {
        let conn = connect(&b).await;
        let ch = channel(&conn).await;
        let x = unique("x-equiv");
        temp_exchange(&ch, &x, ExchangeKind::Direct).await;
        let q = unique("q-equiv");
        temp_queue(&ch, &q).await;
        bind(&ch, &q, &x, "k", FieldTable::default()).await; // keeps the auto-delete exchange alive
        let r = within(
            "redeclare",
            ch.exchange_declare(
                x.as_str().into(),
                ExchangeKind::Fanout,
                ExchangeDeclareOptions {
                    auto_delete: true,
                    ..Default::default()
                },
                FieldTable::default(),
            ),
        )
        .await;
        assert_amqp_err(
            r,
            406,
            &format!("PRECONDITION_FAILED - inequivalent arg 'type' for exchange '{x}' in vhost '/': received 'fanout' but current is 'direct'"),
        );
        let ch = channel(&conn).await;
        let r = within(
            "redeclare durable",
            ch.exchange_declare(
                x.as_str().into(),
                ExchangeKind::Direct,
                ExchangeDeclareOptions {
                    auto_delete: true,
                    durable: true,
                    ..Default::default()
                },
                FieldTable::default(),
            ),
        )
        .await;
        assert_amqp_err(
            r,
            406,
            &format!("PRECONDITION_FAILED - inequivalent arg 'durable' for exchange '{x}' in vhost '/': received 'true' but current is 'false'"),
        );
    });
}

#[test]
fn delete_if_unused() {
    let b = Broker::new();
    run(async {
        let conn = connect(&b).await;
        let ch = channel(&conn).await;
        let x = unique("x-inuse");
        declare_exchange(
            &ch,
            &x,
            ExchangeKind::Fanout,
            ExchangeDeclareOptions::default(),
            FieldTable::default(),
        )
        .await;
        let q = unique("q-inuse");
        temp_queue(&ch, &q).await;
        bind(&ch, &q, &x, "", FieldTable::default()).await;
        let r = within(
            "delete if-unused",
            ch.exchange_delete(
                x.as_str().into(),
                ExchangeDeleteOptions {
                    if_unused: true,
                    ..Default::default()
                },
            ),
        )
        .await;
        assert_amqp_err(
            r,
            406,
            &format!("PRECONDITION_FAILED - exchange '{x}' in vhost '/' in use"),
        );
        let ch = channel(&conn).await;
        within(
            "unbind",
            ch.queue_unbind(q.as_str().into(), x.as_str().into(), "".into(), FieldTable::default()),
        )
        .await
        .expect("unbind");
        within(
            "delete if-unused",
            ch.exchange_delete(
                x.as_str().into(),
                ExchangeDeleteOptions {
                    if_unused: true,
                    ..Default::default()
                },
            ),
        )
        .await
        .expect("delete unused exchange");
        let r = within(
            "passive",
            ch.exchange_declare(
                x.as_str().into(),
                ExchangeKind::Fanout,
                passive(),
                FieldTable::default(),
            ),
        )
        .await;
        assert_amqp_err(r, 404, "NOT_FOUND - no exchange");
    });
}

#[test]
fn amq_exchanges_are_predeclared_and_protected() {
    let b = Broker::new();
    run(async {
        let conn = connect(&b).await;
        let ch = channel(&conn).await;
        for (name, kind) in [
            ("amq.direct", ExchangeKind::Direct),
            ("amq.fanout", ExchangeKind::Fanout),
            ("amq.topic", ExchangeKind::Topic),
            ("amq.headers", ExchangeKind::Headers),
            ("amq.match", ExchangeKind::Headers),
        ] {
            declare_exchange(&ch, name, kind.clone(), passive(), FieldTable::default()).await;
            // Redeclaring with the same type and flags is allowed.
            declare_exchange(
                &ch,
                name,
                kind,
                ExchangeDeclareOptions {
                    durable: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await;
        }
        // Another type: 406, like any exchange.
        let r = within(
            "amq.direct as fanout",
            ch.exchange_declare(
                "amq.direct".into(),
                ExchangeKind::Fanout,
                ExchangeDeclareOptions {
                    durable: true,
                    ..Default::default()
                },
                FieldTable::default(),
            ),
        )
        .await;
        assert_amqp_err(
            r,
            406,
            "PRECONDITION_FAILED - inequivalent arg 'type' for exchange 'amq.direct' in vhost '/'",
        );

        // A new name under amq.: 403.
        let ch = channel(&conn).await;
        let x = unique("amq.mine");
        let r = within(
            "amq.* declare",
            ch.exchange_declare(
                x.as_str().into(),
                ExchangeKind::Direct,
                ExchangeDeclareOptions::default(),
                FieldTable::default(),
            ),
        )
        .await;
        assert_amqp_err(
            r,
            403,
            &format!("ACCESS_REFUSED - exchange name '{x}' contains reserved prefix 'amq.*'"),
        );

        // Deleting one: 403.
        let ch = channel(&conn).await;
        let r = within(
            "delete amq.direct",
            ch.exchange_delete("amq.direct".into(), ExchangeDeleteOptions::default()),
        )
        .await;
        assert_amqp_err(
            r,
            403,
            "ACCESS_REFUSED - deletion of system exchange 'amq.direct' in vhost '/' not allowed",
        );
        let ch = channel(&conn).await;
        declare_exchange(
            &ch,
            "amq.direct",
            ExchangeKind::Direct,
            passive(),
            FieldTable::default(),
        )
        .await;

        // The default exchange cannot be deleted either.
        let r = within(
            "delete default",
            ch.exchange_delete("".into(), ExchangeDeleteOptions::default()),
        )
        .await;
        assert_amqp_err(
            r,
            403,
            "ACCESS_REFUSED - operation not permitted on the default exchange",
        );
    });
}

#[test]
fn default_exchange_routes_by_queue_name() {
    let b = Broker::new();
    run(async {
        let conn = connect(&b).await;
        let ch = confirm_channel(&conn).await;
        let q = unique("q-default");
        temp_queue(&ch, &q).await;
        publish(&ch, "", &q, b"one").await;
        publish(&ch, "", &unique("nobody"), b"lost").await;
        publish(&ch, "amq.direct", &q, b"not bound to amq.direct").await;
        assert_eq!(get_all(&ch, &q).await, strs(&["one"]));
        // Binding to the default exchange is not allowed.
        let r = within(
            "bind default",
            ch.queue_bind(
                q.as_str().into(),
                "".into(),
                q.as_str().into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            ),
        )
        .await;
        assert_amqp_err(
            r,
            403,
            "ACCESS_REFUSED - operation not permitted on the default exchange",
        );
    });
}

#[test]
fn direct_and_fanout_routing() {
    let b = Broker::new();
    run(async {
        let conn = connect(&b).await;
        let ch = confirm_channel(&conn).await;
        let (xd, xf) = (unique("x-direct"), unique("x-fanout"));
        temp_exchange(&ch, &xd, ExchangeKind::Direct).await;
        temp_exchange(&ch, &xf, ExchangeKind::Fanout).await;
        let (q1, q2) = (unique("q1"), unique("q2"));
        temp_queue(&ch, &q1).await;
        temp_queue(&ch, &q2).await;
        bind(&ch, &q1, &xd, "red", FieldTable::default()).await;
        bind(&ch, &q2, &xd, "blue", FieldTable::default()).await;
        bind(&ch, &q2, &xd, "red", FieldTable::default()).await;
        bind(&ch, &q1, &xf, "ignored", FieldTable::default()).await;
        bind(&ch, &q2, &xf, "", FieldTable::default()).await;
        publish(&ch, &xd, "red", b"r").await;
        publish(&ch, &xd, "blue", b"b").await;
        publish(&ch, &xd, "green", b"g").await;
        publish(&ch, &xf, "anything", b"f").await;
        assert_eq!(get_all(&ch, &q1).await, strs(&["r", "f"]));
        assert_eq!(get_all(&ch, &q2).await, strs(&["r", "b", "f"]));
    });
}

#[test]
fn topic_wildcards() {
    let b = Broker::new();
    run(async {
        let conn = connect(&b).await;
        let ch = confirm_channel(&conn).await;
        let x = unique("x-topic");
        temp_exchange(&ch, &x, ExchangeKind::Topic).await;
        let patterns = ["a.*", "a.#", "#", "*.b", "a.*.c", "#.c", "a.b"];
        let mut queues = Vec::new();
        for p in patterns {
            let q = unique("q-topic");
            temp_queue(&ch, &q).await;
            bind(&ch, &q, &x, p, FieldTable::default()).await;
            queues.push(q);
        }
        let keys = ["a", "a.b", "a.x.c", "b", "x.b", "a.b.c.d", "c", ""];
        for k in keys {
            publish(&ch, &x, k, k.as_bytes()).await;
        }
        let want: [&[&str]; 7] = [
            &["a.b"],                                               // a.*
            &["a", "a.b", "a.x.c", "a.b.c.d"],                      // a.#
            &["a", "a.b", "a.x.c", "b", "x.b", "a.b.c.d", "c", ""], // #
            &["a.b", "x.b"],                                        // *.b
            &["a.x.c"],                                             // a.*.c
            &["a.x.c", "c"],                                        // #.c
            &["a.b"],                                               // a.b
        ];
        for ((p, q), w) in patterns.iter().zip(&queues).zip(want) {
            assert_eq!(get_all(&ch, q).await, strs(w), "pattern {p:?}");
        }
    });
}

#[test]
fn headers_exchange_all_and_any() {
    let b = Broker::new();
    run(async {
        let conn = connect(&b).await;
        let ch = confirm_channel(&conn).await;
        let x = unique("x-headers");
        temp_exchange(&ch, &x, ExchangeKind::Headers).await;
        let (q_all, q_any) = (unique("q-all"), unique("q-any"));
        temp_queue(&ch, &q_all).await;
        temp_queue(&ch, &q_any).await;
        let args = |m: &str| table(&[("x-match", lstr(m)), ("format", lstr("pdf")), ("type", lstr("report"))]);
        bind(&ch, &q_all, &x, "", args("all")).await;
        bind(&ch, &q_any, &x, "", args("any")).await;
        let send = |name: &'static str, hs: FieldTable| {
            let ch = ch.clone();
            let x = x.clone();
            async move {
                let props = BasicProperties::default().with_headers(hs);
                publish_with(
                    &ch,
                    &x,
                    "key-ignored",
                    name.as_bytes(),
                    props,
                    BasicPublishOptions::default(),
                )
                .await;
            }
        };
        send("both", table(&[("format", lstr("pdf")), ("type", lstr("report"))])).await;
        send(
            "both+extra",
            table(&[("format", lstr("pdf")), ("type", lstr("report")), ("x", lstr("y"))]),
        )
        .await;
        send("one", table(&[("format", lstr("pdf"))])).await;
        send("wrong-value", table(&[("format", lstr("zip")), ("type", lstr("log"))])).await;
        send("none", FieldTable::default()).await;
        assert_eq!(get_all(&ch, &q_all).await, strs(&["both", "both+extra"]));
        assert_eq!(get_all(&ch, &q_any).await, strs(&["both", "both+extra", "one"]));
    });
}

#[test]
fn exchange_to_exchange_binding() {
    let b = Broker::new();
    run(async {
        let conn = connect(&b).await;
        let ch = confirm_channel(&conn).await;
        let (src, dst) = (unique("x-src"), unique("x-dst"));
        // Not auto-delete: RabbitMQ deletes an auto-delete exchange as soon as its last
        // binding *as a source* goes, which the unbind below would do.
        declare_exchange(
            &ch,
            &src,
            ExchangeKind::Topic,
            ExchangeDeclareOptions::default(),
            FieldTable::default(),
        )
        .await;
        temp_exchange(&ch, &dst, ExchangeKind::Direct).await;
        let q = unique("q-e2e");
        temp_queue(&ch, &q).await;
        bind(&ch, &q, &dst, "k.1", FieldTable::default()).await;
        within(
            "exchange.bind",
            ch.exchange_bind(
                dst.as_str().into(),
                src.as_str().into(),
                "k.*".into(),
                ExchangeBindOptions::default(),
                FieldTable::default(),
            ),
        )
        .await
        .expect("exchange.bind");
        publish(&ch, &src, "k.1", b"via-src").await;
        publish(&ch, &src, "k.2", b"src-no-match-at-dst").await;
        publish(&ch, &src, "z.1", b"no-match").await;
        publish(&ch, &dst, "k.1", b"direct").await;
        assert_eq!(get_all(&ch, &q).await, strs(&["via-src", "direct"]));
        // A binding loop must not make a message loop or duplicate.
        within(
            "loop bind",
            ch.exchange_bind(
                src.as_str().into(),
                dst.as_str().into(),
                "k.1".into(),
                ExchangeBindOptions::default(),
                FieldTable::default(),
            ),
        )
        .await
        .expect("exchange.bind back");
        publish(&ch, &src, "k.1", b"looped").await;
        assert_eq!(get_all(&ch, &q).await, strs(&["looped"]));
        within(
            "exchange.unbind",
            ch.exchange_unbind(
                dst.as_str().into(),
                src.as_str().into(),
                "k.*".into(),
                ExchangeUnbindOptions::default(),
                FieldTable::default(),
            ),
        )
        .await
        .expect("exchange.unbind");
        publish(&ch, &src, "k.1", b"after-unbind").await;
        assert_eq!(get_all(&ch, &q).await, Vec::<String>::new());
        // Binding to a missing exchange: 404.
        let missing = unique("x-missing");
        let r = within(
            "bind missing",
            ch.exchange_bind(
                missing.as_str().into(),
                src.as_str().into(),
                "".into(),
                ExchangeBindOptions::default(),
                FieldTable::default(),
            ),
        )
        .await;
        assert_amqp_err(r, 404, &format!("NOT_FOUND - no exchange '{missing}' in vhost '/'"));
        let ch = channel(&conn).await;
        within(
            "delete src",
            ch.exchange_delete(src.as_str().into(), ExchangeDeleteOptions::default()),
        )
        .await
        .expect("delete src");
    });
}

#[test]
fn alternate_exchange_takes_unroutable_messages() {
    let b = Broker::new();
    run(async {
        let conn = connect(&b).await;
        let ch = confirm_channel(&conn).await;
        let (x, ae) = (unique("x-main"), unique("x-ae"));
        temp_exchange(&ch, &ae, ExchangeKind::Fanout).await;
        declare_exchange(
            &ch,
            &x,
            ExchangeKind::Direct,
            ExchangeDeclareOptions {
                auto_delete: true,
                ..Default::default()
            },
            table(&[("alternate-exchange", lstr(&ae))]),
        )
        .await;
        let (q, q_ae) = (unique("q-main"), unique("q-ae"));
        temp_queue(&ch, &q).await;
        temp_queue(&ch, &q_ae).await;
        bind(&ch, &q, &x, "known", FieldTable::default()).await;
        bind(&ch, &q_ae, &ae, "", FieldTable::default()).await;
        publish(&ch, &x, "known", b"routed").await;
        // Routed through the alternate exchange, so mandatory does not return it.
        let c = publish_with(
            &ch,
            &x,
            "unknown",
            b"to-ae",
            BasicProperties::default(),
            BasicPublishOptions {
                mandatory: true,
                ..Default::default()
            },
        )
        .await;
        assert!(matches!(c, Confirmation::Ack(None)), "{c:?}");
        assert_eq!(get_all(&ch, &q).await, strs(&["routed"]));
        assert_eq!(get_all(&ch, &q_ae).await, strs(&["to-ae"]));
    });
}

#[test]
fn internal_exchange_cannot_be_published_to() {
    let b = Broker::new();
    run(async {
        let conn = connect(&b).await;
        let ch = confirm_channel(&conn).await;
        let (front, internal) = (unique("x-front"), unique("x-internal"));
        temp_exchange(&ch, &front, ExchangeKind::Fanout).await;
        declare_exchange(
            &ch,
            &internal,
            ExchangeKind::Fanout,
            ExchangeDeclareOptions {
                internal: true,
                auto_delete: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await;
        let q = unique("q-internal");
        temp_queue(&ch, &q).await;
        bind(&ch, &q, &internal, "", FieldTable::default()).await;
        within(
            "exchange.bind",
            ch.exchange_bind(
                internal.as_str().into(),
                front.as_str().into(),
                "".into(),
                ExchangeBindOptions::default(),
                FieldTable::default(),
            ),
        )
        .await
        .expect("bind");
        // Reachable through another exchange...
        publish(&ch, &front, "", b"via-front").await;
        assert_eq!(get_all(&ch, &q).await, strs(&["via-front"]));
        // ...but not directly.
        let confirm = within(
            "publish",
            ch.basic_publish(
                internal.as_str().into(),
                "".into(),
                BasicPublishOptions::default(),
                b"direct",
                BasicProperties::default(),
            ),
        )
        .await
        .expect("publish sent");
        let r = within("confirm", confirm).await;
        assert_amqp_err(
            r,
            403,
            &format!("ACCESS_REFUSED - cannot publish to internal exchange '{internal}' in vhost '/'"),
        );
        assert!(conn.status().connected());
    });
}
