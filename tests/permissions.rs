//! Users and permissions: users.json / permissions.json edited by an operator,
//! then enforced where RabbitMQ enforces them (403 on the channel, 530 at
//! connection.open for a vhost the user has no permission in).

mod common;

use common::*;
use ringmq::core::access::auth::{User, Users};
use ringmq::core::access::permissions::{PermissionDef, Permissions};

fn add_user(b: &Broker, name: &str, password: &str, perm: Option<(&str, &str, &str)>) {
    let dir = b.data_dir();
    let mut users = Users::load(&dir).unwrap().expect("users.json after first start");
    users.insert(User::new(name, password, [7, 7, 7, 7], false));
    users.save(&dir).unwrap();
    if let Some((configure, write, read)) = perm {
        let mut perms = Permissions::load(&dir)
            .unwrap()
            .expect("permissions.json after first start");
        perms
            .set(PermissionDef {
                user: name.into(),
                vhost: "/".into(),
                configure: configure.into(),
                write: write.into(),
                read: read.into(),
            })
            .unwrap();
        perms.save(&dir).unwrap();
    }
}

#[test]
fn permissions_are_enforced_per_resource() {
    let mut b = Broker::new();
    if b.skip_external("permissions_are_enforced_per_resource") {
        return;
    }
    b.stop();
    add_user(
        &b,
        "alice",
        "pw",
        Some(("^alice-", "^(alice-.*|amq\\.default)$", "^alice-")),
    );
    add_user(&b, "carol", "pw", None);
    b.start();
    run(async {
        let conn = within(
            "alice connects",
            lapin::Connection::connect(&b.uri_with("alice", "pw"), lapin::ConnectionProperties::default()),
        )
        .await
        .expect("alice may use /");
        let ch = channel(&conn).await;
        declare_queue(&ch, "alice-q", QueueDeclareOptions::default(), FieldTable::default()).await;
        publish(&ch, "", "alice-q", b"mine").await;
        assert_eq!(get_all(&ch, "alice-q").await, strs(&["mine"]));

        let r = within(
            "declare",
            ch.queue_declare("bob-q".into(), QueueDeclareOptions::default(), FieldTable::default()),
        )
        .await;
        assert_amqp_err(
            r,
            403,
            "ACCESS_REFUSED - access to queue 'bob-q' in vhost '/' refused for user 'alice'",
        );

        // On a confirming channel the channel.close comes back as the confirm's error.
        let ch = confirm_channel(&conn).await;
        let confirm = within(
            "publish",
            ch.basic_publish(
                "amq.fanout".into(),
                "".into(),
                BasicPublishOptions::default(),
                b"x",
                BasicProperties::default(),
            ),
        )
        .await
        .expect("publish sent");
        let r = within("confirm", confirm).await;
        assert_amqp_err(
            r,
            403,
            "ACCESS_REFUSED - access to exchange 'amq.fanout' in vhost '/' refused for user 'alice'",
        );

        let ch = channel(&conn).await;
        within(
            "delete",
            ch.queue_delete("alice-q".into(), QueueDeleteOptions::default()),
        )
        .await
        .unwrap();

        // A user with no permission in the vhost is refused at connection.open.
        let r = lapin::Connection::connect(&b.uri_with("carol", "pw"), lapin::ConnectionProperties::default()).await;
        let e = r.expect_err("carol has no permission on /");
        let (code, text) = amqp_error(&e);
        assert_eq!(code, 530, "{text}");
        assert!(
            text.starts_with("NOT_ALLOWED - access to vhost '/' refused for user 'carol'"),
            "{text}"
        );
    });
}
