//! Publisher confirms and transactions (lapin). The exact ack-frame accounting
//! (`multiple` batching) is checked with amqprs in `tests/amqprs_client.rs`.

mod common;

use common::*;

#[test]
fn every_publish_is_confirmed() {
    let b = Broker::new();
    run(async {
        let conn = connect(&b).await;
        let ch = confirm_channel(&conn).await;
        let q = unique("q-confirm");
        temp_queue(&ch, &q).await;
        // Pipelined: send all, then wait for all confirms.
        let mut pending = Vec::new();
        for i in 0..500u32 {
            // Every fifth goes nowhere: unroutable messages are confirmed too.
            let key = if i % 5 == 4 {
                "no-such-queue-for-confirms"
            } else {
                q.as_str()
            };
            let c = within(
                "publish",
                ch.basic_publish(
                    "".into(),
                    key.into(),
                    BasicPublishOptions::default(),
                    &i.to_be_bytes(),
                    BasicProperties::default(),
                ),
            )
            .await
            .expect("publish");
            pending.push(c);
        }
        for (i, c) in pending.into_iter().enumerate() {
            let c = within("confirm", c).await.expect("confirm");
            assert!(matches!(c, Confirmation::Ack(None)), "publish {i}: {c:?}");
        }
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
        assert_eq!(d.message_count(), 400);
        // Without confirm.select there is nothing to wait for.
        let plain = channel(&conn).await;
        let c = publish(&plain, "", &q, b"x").await;
        assert!(matches!(c, Confirmation::NotRequested));
    });
}

#[test]
fn confirm_and_tx_do_not_mix() {
    let b = Broker::new();
    run(async {
        let conn = connect(&b).await;
        let ch = confirm_channel(&conn).await;
        let r = within("tx.select on confirm channel", ch.tx_select()).await;
        assert_amqp_err(r, 406, "PRECONDITION_FAILED - cannot switch from confirm to tx mode");
        let ch = channel(&conn).await;
        within("tx.select", ch.tx_select()).await.expect("tx.select");
        let r = within(
            "confirm.select on tx channel",
            ch.confirm_select(ConfirmSelectOptions::default()),
        )
        .await;
        assert_amqp_err(r, 406, "PRECONDITION_FAILED - cannot switch from tx to confirm mode");
        let ch = channel(&conn).await;
        let r = within("commit without select", ch.tx_commit()).await;
        assert_amqp_err(r, 406, "PRECONDITION_FAILED - channel is not transactional");
        let ch = channel(&conn).await;
        let r = within("rollback without select", ch.tx_rollback()).await;
        assert_amqp_err(r, 406, "PRECONDITION_FAILED - channel is not transactional");
        assert!(conn.status().connected());
    });
}

#[test]
fn tx_publish_commit_and_rollback() {
    let b = Broker::new();
    run(async {
        let conn = connect(&b).await;
        let obs = channel(&conn).await;
        let q = unique("q-tx");
        temp_queue(&obs, &q).await;
        let tx = channel(&conn).await;
        within("tx.select", tx.tx_select()).await.expect("tx.select");
        for m in ["r1", "r2"] {
            publish(&tx, "", &q, m.as_bytes()).await;
        }
        tokio::time::sleep(QUIET).await;
        assert_eq!(
            get_all(&obs, &q).await,
            Vec::<String>::new(),
            "uncommitted publishes visible"
        );
        within("rollback", tx.tx_rollback()).await.expect("rollback");
        assert_eq!(
            get_all(&obs, &q).await,
            Vec::<String>::new(),
            "rolled-back publishes delivered"
        );
        for m in ["c1", "c2", "c3"] {
            publish(&tx, "", &q, m.as_bytes()).await;
        }
        within("commit", tx.tx_commit()).await.expect("commit");
        assert_eq!(get_all(&obs, &q).await, strs(&["c1", "c2", "c3"]));
        // The channel stays transactional: the next batch needs its own commit.
        publish(&tx, "", &q, b"c4").await;
        tokio::time::sleep(QUIET).await;
        assert_eq!(get_all(&obs, &q).await, Vec::<String>::new());
        within("commit", tx.tx_commit()).await.expect("commit");
        assert_eq!(get_all(&obs, &q).await, strs(&["c4"]));
    });
}

#[test]
fn tx_acks_commit_and_rollback() {
    let b = Broker::new();
    run(async {
        let conn = connect(&b).await;
        let obs = confirm_channel(&conn).await;
        let q = unique("q-txack");
        temp_queue(&obs, &q).await;
        for m in ["a1", "a2", "a3"] {
            publish(&obs, "", &q, m.as_bytes()).await;
        }
        let tx = channel(&conn).await;
        within("tx.select", tx.tx_select()).await.expect("tx.select");
        let get = |tx: lapin::Channel, q: String| async move {
            within("get", tx.basic_get(q.as_str().into(), BasicGetOptions::default()))
                .await
                .expect("get")
                .expect("a message")
                .delivery
        };
        let d1 = get(tx.clone(), q.clone()).await;
        let d2 = get(tx.clone(), q.clone()).await;
        assert_eq!((d1.data.as_slice(), d2.data.as_slice()), (&b"a1"[..], &b"a2"[..]));
        // Ack a1, roll back: the ack is forgotten, a1 stays unacked on this channel.
        within("ack", tx.basic_ack(d1.delivery_tag, BasicAckOptions::default()))
            .await
            .expect("ack");
        within("rollback", tx.tx_rollback()).await.expect("rollback");
        // Ack a2, commit: a2 is gone.
        within("ack", tx.basic_ack(d2.delivery_tag, BasicAckOptions::default()))
            .await
            .expect("ack");
        within("commit", tx.tx_commit()).await.expect("commit");
        // Closing the channel requeues what is still unacked: a1 only.
        within("close", tx.close(200, "bye".into())).await.expect("close");
        let left = get_all(&obs, &q).await;
        let mut sorted = left.clone();
        sorted.sort();
        assert_eq!(sorted, strs(&["a1", "a3"]), "left after tx acks: {left:?}");
    });
}
