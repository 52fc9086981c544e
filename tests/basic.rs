//! basic.*: publish/consume/ack, mandatory returns, CC/BCC, direct reply-to,
//! exclusive consumers, consumer priorities, tags, cancel (both sides), get,
//! ack/nack/reject, recover, qos, and the acknowledgement errors.

mod common;

use common::*;
use lapin::types::FieldArray;

async fn consume(
    ch: &lapin::Channel,
    q: &str,
    tag: &str,
    opts: BasicConsumeOptions,
    args: FieldTable,
) -> lapin::Consumer {
    within("basic.consume", ch.basic_consume(q.into(), tag.into(), opts, args))
        .await
        .unwrap_or_else(|e| panic!("basic.consume {q}: {e:?}"))
}

async fn publish_n(ch: &lapin::Channel, q: &str, n: usize) {
    for i in 1..=n {
        publish(ch, "", q, format!("m{i}").as_bytes()).await;
    }
}

#[test]
fn publish_consume_ack_round_trip() {
    let b = Broker::new();
    run(async {
        let conn = connect(&b).await;
        let ch = confirm_channel(&conn).await;
        let q = unique("q-rt");
        temp_queue(&ch, &q).await;
        let props = BasicProperties::default()
            .with_content_type("text/plain".into())
            .with_correlation_id("corr-1".into())
            .with_message_id("id-1".into())
            .with_delivery_mode(2)
            .with_priority(3)
            .with_headers(table(&[("h", lstr("v")), ("n", AMQPValue::LongInt(7))]));
        let c = publish_with(&ch, "", &q, b"hello", props, BasicPublishOptions::default()).await;
        assert!(matches!(c, Confirmation::Ack(None)), "{c:?}");
        let mut consumer = consume(&ch, &q, "rt", BasicConsumeOptions::default(), FieldTable::default()).await;
        let d = next(&mut consumer).await;
        assert_eq!(d.data, b"hello");
        assert_eq!(
            (d.exchange.as_str(), d.routing_key.as_str(), d.redelivered),
            ("", q.as_str(), false)
        );
        assert_eq!(d.delivery_tag, 1);
        let p = &d.properties;
        assert_eq!(p.content_type().as_ref().map(|s| s.as_str()), Some("text/plain"));
        assert_eq!(p.correlation_id().as_ref().map(|s| s.as_str()), Some("corr-1"));
        assert_eq!(p.message_id().as_ref().map(|s| s.as_str()), Some("id-1"));
        assert_eq!(*p.delivery_mode(), Some(2));
        assert_eq!(*p.priority(), Some(3));
        let h = p.headers().as_ref().expect("headers").inner();
        assert_eq!(h.get("h"), Some(&lstr("v")));
        assert_eq!(h.get("n"), Some(&AMQPValue::LongInt(7)));
        within("ack", d.acker.ack(BasicAckOptions::default()))
            .await
            .expect("ack");
        // Acked: gone for good, even after the channel closes.
        within("cancel", ch.basic_cancel("rt".into(), BasicCancelOptions::default()))
            .await
            .expect("cancel");
        within("close", ch.close(200, "bye".into())).await.expect("close");
        let ch = channel(&conn).await;
        let d = declare_queue(
            &ch,
            &q,
            QueueDeclareOptions {
                passive: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await;
        assert_eq!(d.message_count(), 0);
        // A larger body that spans several frames comes back intact.
        let big: Vec<u8> = (0..400_000u32).map(|i| (i % 251) as u8).collect();
        let ch = confirm_channel(&conn).await;
        publish(&ch, "", &q, &big).await;
        let m = within("get", ch.basic_get(q.as_str().into(), BasicGetOptions { no_ack: true }))
            .await
            .expect("get")
            .expect("a message");
        assert!(m.delivery.data == big, "multi-frame body changed");
    });
}

#[test]
fn mandatory_unroutable_is_returned_312() {
    let b = Broker::new();
    run(async {
        let conn = connect(&b).await;
        let ch = confirm_channel(&conn).await;
        let key = unique("nowhere");
        let c = publish_with(
            &ch,
            "amq.direct",
            &key,
            b"ret",
            BasicProperties::default(),
            BasicPublishOptions {
                mandatory: true,
                ..Default::default()
            },
        )
        .await;
        let Confirmation::Ack(Some(ret)) = c else {
            panic!("expected ack with a basic.return, got {c:?}")
        };
        assert_eq!(ret.reply_code, 312);
        assert_eq!(ret.reply_text.as_str(), "NO_ROUTE");
        assert_eq!(ret.delivery.exchange.as_str(), "amq.direct");
        assert_eq!(ret.delivery.routing_key.as_str(), key);
        assert_eq!(ret.delivery.data, b"ret");
        // Not mandatory: dropped silently, still acked.
        let c = publish(&ch, "amq.direct", &key, b"drop").await;
        assert!(matches!(c, Confirmation::Ack(None)), "{c:?}");
    });
}

#[test]
fn cc_and_bcc_headers() {
    let b = Broker::new();
    run(async {
        let conn = connect(&b).await;
        let ch = confirm_channel(&conn).await;
        let (qa, qb, qc) = (unique("q-to"), unique("q-cc"), unique("q-bcc"));
        for q in [&qa, &qb, &qc] {
            temp_queue(&ch, q).await;
            bind(&ch, q, "amq.direct", q, FieldTable::default()).await;
        }
        let arr = |s: &str| AMQPValue::FieldArray(FieldArray::from(vec![lstr(s)]));
        let props = BasicProperties::default().with_headers(table(&[
            ("CC", arr(&qb)),
            ("BCC", arr(&qc)),
            ("keep", lstr("me")),
        ]));
        publish_with(&ch, "amq.direct", &qa, b"cc", props, BasicPublishOptions::default()).await;
        for q in [&qa, &qb, &qc] {
            let m = within("get", ch.basic_get(q.as_str().into(), BasicGetOptions { no_ack: true }))
                .await
                .expect("get")
                .unwrap_or_else(|| panic!("nothing routed to {q}"));
            assert_eq!(m.delivery.data, b"cc");
            // The routing key is the one published with, whichever header routed it.
            assert_eq!(m.delivery.routing_key.as_str(), qa);
            let h = m.delivery.properties.headers().as_ref().expect("headers").inner();
            assert_eq!(h.get("CC"), Some(&arr(&qb)), "CC is kept");
            assert!(!h.contains_key("BCC"), "BCC leaked to {q}: {h:?}");
            assert_eq!(h.get("keep"), Some(&lstr("me")));
        }
    });
}

#[test]
fn direct_reply_to() {
    let b = Broker::new();
    run(async {
        let conn = connect(&b).await;
        let client = channel(&conn).await;
        let rq = unique("q-rpc");
        // Shared (the responder is another connection); deleted at the end.
        declare_queue(&client, &rq, QueueDeclareOptions::default(), FieldTable::default()).await;
        // The pseudo-queue needs no-ack.
        let r = within(
            "ack mode",
            client.basic_consume(
                "amq.rabbitmq.reply-to".into(),
                "".into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            ),
        )
        .await;
        assert_amqp_err(
            r.map(|_| ()),
            406,
            "PRECONDITION_FAILED - reply consumer cannot acknowledge",
        );
        let client = channel(&conn).await;
        let mut replies = consume(
            &client,
            "amq.rabbitmq.reply-to",
            "",
            BasicConsumeOptions {
                no_ack: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await;
        let props = BasicProperties::default()
            .with_reply_to("amq.rabbitmq.reply-to".into())
            .with_correlation_id("c1".into());
        publish_with(&client, "", &rq, b"ping", props, BasicPublishOptions::default()).await;

        let server_conn = connect(&b).await;
        let server = channel(&server_conn).await;
        let req = within(
            "get request",
            server.basic_get(rq.as_str().into(), BasicGetOptions { no_ack: true }),
        )
        .await
        .expect("get")
        .expect("request");
        let reply_to = req
            .delivery
            .properties
            .reply_to()
            .clone()
            .expect("reply_to")
            .to_string();
        assert!(
            reply_to.starts_with("amq.rabbitmq.reply-to."),
            "reply_to rewritten to {reply_to:?}"
        );
        let props = BasicProperties::default().with_correlation_id("c1".into());
        publish_with(&server, "", &reply_to, b"pong", props, BasicPublishOptions::default()).await;
        let d = next(&mut replies).await;
        assert_eq!(d.data, b"pong");
        assert_eq!(d.properties.correlation_id().as_ref().map(|s| s.as_str()), Some("c1"));
        assert_eq!(d.routing_key.as_str(), reply_to);
        within(
            "delete",
            server.queue_delete(rq.as_str().into(), QueueDeleteOptions::default()),
        )
        .await
        .expect("delete request queue");
    });
}

#[test]
fn exclusive_consumer() {
    let b = Broker::new();
    run(async {
        let conn = connect(&b).await;
        let ch = channel(&conn).await;
        let q = unique("q-xcons");
        temp_queue(&ch, &q).await;
        let _c = consume(
            &ch,
            &q,
            "only",
            BasicConsumeOptions {
                exclusive: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await;
        let ch2 = channel(&conn).await;
        let r = within(
            "second consumer",
            ch2.basic_consume(
                q.as_str().into(),
                "".into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            ),
        )
        .await;
        assert_amqp_err(
            r.map(|_| ()),
            403,
            &format!("ACCESS_REFUSED - queue '{q}' in vhost '/' in exclusive use"),
        );

        let q2 = unique("q-xcons2");
        temp_queue(&ch, &q2).await;
        let _c2 = consume(&ch, &q2, "first", BasicConsumeOptions::default(), FieldTable::default()).await;
        let ch3 = channel(&conn).await;
        let r = within(
            "exclusive after another",
            ch3.basic_consume(
                q2.as_str().into(),
                "".into(),
                BasicConsumeOptions {
                    exclusive: true,
                    ..Default::default()
                },
                FieldTable::default(),
            ),
        )
        .await;
        assert_amqp_err(
            r.map(|_| ()),
            403,
            &format!("ACCESS_REFUSED - queue '{q2}' in vhost '/' in exclusive use"),
        );
    });
}

#[test]
fn consumer_priorities() {
    let b = Broker::new();
    run(async {
        let conn = connect(&b).await;
        let ch = confirm_channel(&conn).await;
        let q = unique("q-prio");
        temp_queue(&ch, &q).await;
        let (lo_ch, hi_ch) = (channel(&conn).await, channel(&conn).await);
        within("qos", hi_ch.basic_qos(2, BasicQosOptions::default()))
            .await
            .expect("qos");
        let mut lo = consume(
            &lo_ch,
            &q,
            "lo",
            BasicConsumeOptions::default(),
            table(&[("x-priority", AMQPValue::LongInt(1))]),
        )
        .await;
        let mut hi = consume(
            &hi_ch,
            &q,
            "hi",
            BasicConsumeOptions::default(),
            table(&[("x-priority", AMQPValue::LongInt(10))]),
        )
        .await;
        publish_n(&ch, &q, 2).await;
        // The high-priority consumer takes all it can (prefetch 2)...
        assert_eq!(bodies(&[next(&mut hi).await, next(&mut hi).await]), strs(&["m1", "m2"]));
        assert_quiet(&mut lo).await;
        // ...and only when it is full does the low one get anything.
        publish_n(&ch, &q, 1).await;
        assert_eq!(next(&mut lo).await.data, b"m1");
        assert_quiet(&mut hi).await;
    });
}

#[test]
fn server_generated_tag_and_cancel() {
    let b = Broker::new();
    run(async {
        let conn = connect(&b).await;
        let ch = confirm_channel(&conn).await;
        let q = unique("q-tag");
        temp_queue(&ch, &q).await;
        let mut c = consume(&ch, &q, "", BasicConsumeOptions::default(), FieldTable::default()).await;
        let tag = c.tag().to_string();
        assert!(tag.starts_with("amq.ctag-"), "server-generated tag {tag:?}");
        publish_n(&ch, &q, 1).await;
        let d = next(&mut c).await;
        d.acker.ack(BasicAckOptions::default()).await.expect("ack");
        within(
            "cancel",
            ch.basic_cancel(tag.as_str().into(), BasicCancelOptions::default()),
        )
        .await
        .expect("cancel");
        assert_consumer_ends(&mut c).await;
        // After cancel, messages stay in the queue.
        publish_n(&ch, &q, 2).await;
        assert_eq!(get_all(&ch, &q).await, strs(&["m1", "m2"]));
        // Reusing a tag on the same channel is a 530 connection error in RabbitMQ.
        let _a = consume(&ch, &q, "dup", BasicConsumeOptions::default(), FieldTable::default()).await;
        let r = within(
            "dup tag",
            ch.basic_consume(
                q.as_str().into(),
                "dup".into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            ),
        )
        .await;
        assert_amqp_err(r.map(|_| ()), 530, "NOT_ALLOWED - attempt to reuse consumer tag 'dup'");
    });
}

#[test]
fn server_cancels_consumer_when_queue_is_deleted() {
    let b = Broker::new();
    run(async {
        let conn = connect(&b).await;
        let ch = channel(&conn).await;
        let q = unique("q-srvcancel");
        temp_queue(&ch, &q).await;
        let mut c = consume(&ch, &q, "watch", BasicConsumeOptions::default(), FieldTable::default()).await;
        let other = channel(&conn).await;
        within(
            "delete",
            other.queue_delete(q.as_str().into(), QueueDeleteOptions::default()),
        )
        .await
        .expect("delete");
        assert_consumer_ends(&mut c).await;
        // The channel survives the server-sent cancel.
        assert!(ch.status().connected());
        temp_queue(&ch, &unique("q-after")).await;
    });
}

#[test]
fn get_and_get_empty() {
    let b = Broker::new();
    run(async {
        let conn = connect(&b).await;
        let ch = confirm_channel(&conn).await;
        let q = unique("q-get");
        temp_queue(&ch, &q).await;
        let none = within("get empty", ch.basic_get(q.as_str().into(), BasicGetOptions::default()))
            .await
            .expect("get");
        assert!(none.is_none());
        publish_n(&ch, &q, 3).await;
        let m = within("get", ch.basic_get(q.as_str().into(), BasicGetOptions::default()))
            .await
            .expect("get")
            .expect("message");
        assert_eq!(
            (m.delivery.data.as_slice(), m.message_count, m.delivery.redelivered),
            (&b"m1"[..], 2, false)
        );
        // Unacked get, rejected with requeue: comes back first, redelivered.
        within("reject", m.delivery.acker.reject(BasicRejectOptions { requeue: true }))
            .await
            .expect("reject");
        let m = within("get", ch.basic_get(q.as_str().into(), BasicGetOptions::default()))
            .await
            .expect("get")
            .expect("message");
        assert_eq!(
            (m.delivery.data.as_slice(), m.message_count, m.delivery.redelivered),
            (&b"m1"[..], 2, true)
        );
        within("ack", m.delivery.acker.ack(BasicAckOptions::default()))
            .await
            .expect("ack");
        assert_eq!(get_all(&ch, &q).await, strs(&["m2", "m3"]));
        let missing = unique("q-missing");
        let r = within(
            "get missing",
            ch.basic_get(missing.as_str().into(), BasicGetOptions::default()),
        )
        .await;
        assert_amqp_err(
            r.map(|m| m.is_some()),
            404,
            &format!("NOT_FOUND - no queue '{missing}' in vhost '/'"),
        );
    });
}

#[test]
fn ack_nack_reject_multiple_and_requeue() {
    let b = Broker::new();
    run(async {
        let conn = connect(&b).await;
        let ch = confirm_channel(&conn).await;
        let q = unique("q-acks");
        temp_queue(&ch, &q).await;
        publish_n(&ch, &q, 6).await;
        let cch = channel(&conn).await;
        let mut c = consume(&cch, &q, "acks", BasicConsumeOptions::default(), FieldTable::default()).await;
        let mut ds = Vec::new();
        for _ in 0..6 {
            ds.push(next(&mut c).await);
        }
        assert_eq!(bodies(&ds), strs(&["m1", "m2", "m3", "m4", "m5", "m6"]));
        assert!(ds.iter().all(|d| !d.redelivered));
        let tags: Vec<u64> = ds.iter().map(|d| d.delivery_tag).collect();
        assert_eq!(tags, vec![1, 2, 3, 4, 5, 6]);
        // nack multiple+requeue up to m2: m1 and m2 come back, in order, redelivered.
        within(
            "nack",
            cch.basic_nack(
                2,
                BasicNackOptions {
                    multiple: true,
                    requeue: true,
                },
            ),
        )
        .await
        .expect("nack");
        let again = [next(&mut c).await, next(&mut c).await];
        assert_eq!(bodies(&again), strs(&["m1", "m2"]));
        assert!(again.iter().all(|d| d.redelivered), "redelivered flag not set");
        assert_eq!(again.iter().map(|d| d.delivery_tag).collect::<Vec<_>>(), vec![7, 8]);
        // reject without requeue drops m3; reject with requeue brings m4 back.
        within("reject", cch.basic_reject(3, BasicRejectOptions { requeue: false }))
            .await
            .expect("reject");
        within("reject", cch.basic_reject(4, BasicRejectOptions { requeue: true }))
            .await
            .expect("reject");
        let d = next(&mut c).await;
        assert_eq!(
            (d.data.as_slice(), d.redelivered, d.delivery_tag),
            (&b"m4"[..], true, 9)
        );
        // nack without requeue drops m5; ack multiple settles the rest.
        within(
            "nack",
            cch.basic_nack(
                5,
                BasicNackOptions {
                    multiple: false,
                    requeue: false,
                },
            ),
        )
        .await
        .expect("nack");
        within("ack", cch.basic_ack(9, BasicAckOptions { multiple: true }))
            .await
            .expect("ack multiple");
        assert_quiet(&mut c).await;
        within("cancel", cch.basic_cancel("acks".into(), BasicCancelOptions::default()))
            .await
            .expect("cancel");
        within("close", cch.close(200, "bye".into())).await.expect("close");
        assert_eq!(get_all(&ch, &q).await, Vec::<String>::new(), "nothing unacked is left");
    });
}

#[test]
fn recover_redelivers_unacked() {
    let b = Broker::new();
    run(async {
        let conn = connect(&b).await;
        let ch = confirm_channel(&conn).await;
        let q = unique("q-recover");
        temp_queue(&ch, &q).await;
        publish_n(&ch, &q, 3).await;
        let cch = channel(&conn).await;
        let mut c = consume(&cch, &q, "rec", BasicConsumeOptions::default(), FieldTable::default()).await;
        let first: Vec<_> = [next(&mut c).await, next(&mut c).await, next(&mut c).await].into();
        within(
            "ack m2",
            cch.basic_ack(first[1].delivery_tag, BasicAckOptions::default()),
        )
        .await
        .expect("ack");
        within("recover", cch.basic_recover(BasicRecoverOptions { requeue: true }))
            .await
            .expect("recover");
        let again = [next(&mut c).await, next(&mut c).await];
        assert_eq!(bodies(&again), strs(&["m1", "m3"]));
        assert!(again.iter().all(|d| d.redelivered));
        assert_quiet(&mut c).await;
    });
}

#[test]
fn prefetch_one_means_one_unacked_at_a_time() {
    let b = Broker::new();
    run(async {
        let conn = connect(&b).await;
        let ch = confirm_channel(&conn).await;
        let q = unique("q-qos");
        temp_queue(&ch, &q).await;
        publish_n(&ch, &q, 3).await;
        let cch = channel(&conn).await;
        within("qos", cch.basic_qos(1, BasicQosOptions::default()))
            .await
            .expect("qos");
        let mut c = consume(&cch, &q, "qos", BasicConsumeOptions::default(), FieldTable::default()).await;
        for want in ["m1", "m2", "m3"] {
            let d = next(&mut c).await;
            assert_eq!(String::from_utf8_lossy(&d.data), want);
            assert_quiet(&mut c).await;
            within("ack", d.acker.ack(BasicAckOptions::default()))
                .await
                .expect("ack");
        }
        // no-ack consumers ignore prefetch.
        within("cancel", cch.basic_cancel("qos".into(), BasicCancelOptions::default()))
            .await
            .expect("cancel");
        publish_n(&ch, &q, 3).await;
        let mut n = consume(
            &cch,
            &q,
            "noack",
            BasicConsumeOptions {
                no_ack: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await;
        let got = [next(&mut n).await, next(&mut n).await, next(&mut n).await];
        assert_eq!(bodies(&got), strs(&["m1", "m2", "m3"]));
    });
}

/// The call after one that makes the server close the channel fails with the
/// server's close, unless the close arrived before the call was made: then lapin
/// refuses it itself (the channel is closing), which also shows the channel was
/// closed (seen on a loaded CI machine).
#[track_caller]
fn assert_closed_by<T: std::fmt::Debug>(r: lapin::Result<T>, code: u16, prefix: &str) {
    if let Err(e) = &r {
        if matches!(e.kind(), lapin::ErrorKind::InvalidChannelState(..)) {
            return;
        }
    }
    assert_amqp_err(r, code, prefix);
}

#[test]
fn unknown_or_double_ack_is_406() {
    let b = Broker::new();
    run(async {
        let conn = connect(&b).await;
        let ch = confirm_channel(&conn).await;
        let q = unique("q-badack");
        temp_queue(&ch, &q).await;
        publish_n(&ch, &q, 2).await;

        let cch = channel(&conn).await;
        within("ack 99", cch.basic_ack(99, BasicAckOptions::default()))
            .await
            .expect("ack sent");
        // The close arrives asynchronously; the next synchronous call sees it.
        let r = within("qos after bad ack", cch.basic_qos(0, BasicQosOptions::default())).await;
        assert_closed_by(r, 406, "PRECONDITION_FAILED - unknown delivery tag 99");

        let cch = channel(&conn).await;
        let m = within("get", cch.basic_get(q.as_str().into(), BasicGetOptions::default()))
            .await
            .expect("get")
            .expect("message");
        let tag = m.delivery.delivery_tag;
        within("ack", cch.basic_ack(tag, BasicAckOptions::default()))
            .await
            .expect("ack");
        within("ack again", cch.basic_ack(tag, BasicAckOptions::default()))
            .await
            .expect("ack sent");
        let r = within("qos after double ack", cch.basic_qos(0, BasicQosOptions::default())).await;
        assert_closed_by(r, 406, &format!("PRECONDITION_FAILED - unknown delivery tag {tag}"));
        // Only that channel died.
        assert!(conn.status().connected());
        assert_eq!(get_all(&ch, &q).await, strs(&["m2"]));
    });
}

#[test]
fn user_id_must_match_the_login() {
    let b = Broker::new();
    run(async {
        let conn = connect(&b).await;
        let ch = confirm_channel(&conn).await;
        let q = unique("uid");
        temp_queue(&ch, &q).await;
        let mine = BasicProperties::default().with_user_id(b.user().into());
        publish_with(&ch, "", &q, b"ok", mine, BasicPublishOptions::default()).await;
        let other = BasicProperties::default().with_user_id("mallory".into());
        // On a confirming channel the channel.close comes back as the confirm's error.
        let ch2 = confirm_channel(&conn).await;
        let confirm = within(
            "publish",
            ch2.basic_publish(
                "".into(),
                q.as_str().into(),
                BasicPublishOptions::default(),
                b"forged",
                other,
            ),
        )
        .await
        .expect("publish sent");
        let r = within("confirm", confirm).await;
        assert_amqp_err(
            r,
            406,
            &format!(
                "PRECONDITION_FAILED - user_id property set to 'mallory' but authenticated user was '{}'",
                b.user()
            ),
        );
        assert_eq!(get_all(&ch, &q).await, strs(&["ok"]));
    });
}

/// `--max-consumers-per-channel` (LavinMQ's `max_consumers_per_channel`): one more
/// basic.consume is a channel error 506 with LavinMQ's text; other channels are
/// not affected.
#[test]
fn max_consumers_per_channel_is_enforced() {
    let b = Broker::with_args(&["--max-consumers-per-channel", "2"]);
    if b.skip_external("max_consumers_per_channel_is_enforced") {
        return;
    }
    run(async {
        let (conn, ch) = open(&b).await;
        let q = unique("maxc");
        temp_queue(&ch, &q).await;
        // lapin cancels a consumer when its handle is dropped: keep them.
        let consume = |ch: lapin::Channel, q: String| async move {
            within(
                "basic.consume",
                ch.basic_consume(
                    q.as_str().into(),
                    "".into(),
                    BasicConsumeOptions::default(),
                    FieldTable::default(),
                ),
            )
            .await
        };
        let _c1 = consume(ch.clone(), q.clone()).await.expect("first consumer");
        let _c2 = consume(ch.clone(), q.clone()).await.expect("second consumer");
        let r = consume(ch.clone(), q.clone()).await;
        assert_amqp_err(
            r.map(|_| ()),
            506,
            "RESOURCE_ERROR - Max 2 consumers per channel reached",
        );
        let ch2 = channel(&conn).await;
        let _c4 = consume(ch2, q.clone())
            .await
            .expect("another channel has its own count");
    });
}

/// Bodies from 64 KiB to 3 MiB (several frames each; deliveries of 64 KiB and
/// more are sent from the segment mapping, on io_uring by the kernel's worker
/// threads) arrive whole and in order, interleaved with small ones.
#[test]
fn large_bodies_round_trip_byte_for_byte_in_order() {
    let b = Broker::new();
    run(async {
        let conn = connect(&b).await;
        let ch = confirm_channel(&conn).await;
        let q = unique("q-large");
        temp_queue(&ch, &q).await;
        let sizes = [65_536usize, 16, 200_000, 1, 1 << 20, 70_000, 3 << 20, 65_535, 131_072];
        let body = |i: usize, n: usize| -> Vec<u8> { (0..n).map(|j| (j * 7 + i * 13) as u8).collect() };
        for (i, n) in sizes.iter().enumerate() {
            publish(&ch, "", &q, &body(i, *n)).await;
        }
        let mut consumer = consume_no_ack(&ch, &q).await;
        for (i, n) in sizes.iter().enumerate() {
            let d = next(&mut consumer).await;
            assert_eq!(d.data.len(), *n, "message {i}");
            assert!(d.data == body(i, *n), "message {i}: {n} bytes differ");
        }
    });
}
