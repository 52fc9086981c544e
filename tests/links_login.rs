//! How the broker's own links (shovels, federation) log in to the broker
//! that runs them: as the default user, proved by the secret the broker
//! made at its start (`RINGMQ-INTERNAL`, loopback only), not by the user's
//! password. An operator who changes guest's password breaks no link (as
//! RabbitMQ's direct connections need none); nobody without the secret can
//! use the mechanism.

mod common;

use common::http::{enc, Api};
use common::links::{count, declare, drain, publish};
use common::shovel_api::{names, put_shovel, wait_shovel_state, wait_until};
use common::*;
use ringmq_client::{ClientError, ConnectOptions, Connection, Login, Uri};
use serde_json::{json, Value};

/// An administrator besides guest, so guest's password can change under
/// the API's feet.
fn admin_api(b: &Broker) -> Api {
    let guest = Api::new(b.http_url(), b.user(), b.pass());
    let r = guest.put(
        "/api/users/admin",
        json!({"password": "admin", "tags": "administrator"}),
    );
    assert!(r.status == 201 || r.status == 204, "{} {}", r.status, r.text);
    let r = guest.put(
        "/api/permissions/%2F/admin",
        json!({"configure": ".*", "write": ".*", "read": ".*"}),
    );
    assert!(r.status == 201 || r.status == 204, "{} {}", r.status, r.text);
    Api::new(b.http_url(), "admin", "admin")
}

fn connections(api: &Api) -> Vec<Value> {
    api.ok("/api/connections").as_array().cloned().unwrap_or_default()
}

#[test]
fn links_keep_working_after_the_default_users_password_changes() {
    let (a, b) = (Broker::new(), Broker::new());
    assert!(!a.is_external(), "this test starts its own brokers");
    let api = admin_api(&a);
    let r = api.put(
        "/api/users/guest",
        json!({"password": "changed", "tags": "administrator"}),
    );
    assert!(r.status == 201 || r.status == 204, "{} {}", r.status, r.text);
    let moved_uri = a.uri().replace("guest:guest", "admin:admin");

    // A shovel within a (`amqp://` both ends: this broker, no credentials).
    declare(&moved_uri, "src", None);
    publish(&moved_uri, "", "src", "m", 100);
    put_shovel(
        &api,
        "inside",
        json!({"src-uri": "amqp://", "src-queue": "src", "dest-uri": "amqp://", "dest-queue": "dst"}),
    );
    wait_shovel_state(&api, "inside", "running");
    wait_until("100 moved", WAIT, || count(&moved_uri, "dst") == 100);
    assert_eq!(drain(&moved_uri, "dst"), names("m", 100));

    // Federation: a's exchange from b; the link's local side logs in to a.
    let r = api.put(
        "/api/parameters/federation-upstream/%2F/b",
        json!({"value": {"uri": b.uri()}}),
    );
    assert!(r.status == 201 || r.status == 204, "{} {}", r.status, r.text);
    let r = api.put(
        "/api/policies/%2F/fed",
        json!({"pattern": "^fed$", "apply-to": "exchanges", "definition": {"federation-upstream": "b"}}),
    );
    assert!(r.status == 201 || r.status == 204, "{} {}", r.status, r.text);
    let x = json!({"type": "topic", "durable": true});
    let r = api.put(&format!("/api/exchanges/%2F/{}", enc("fed")), x.clone());
    assert!(r.status == 201 || r.status == 204, "{} {}", r.status, r.text);
    let bapi = Api::new(b.http_url(), b.user(), b.pass());
    let r = bapi.put(&format!("/api/exchanges/%2F/{}", enc("fed")), x);
    assert!(r.status == 201 || r.status == 204, "{} {}", r.status, r.text);
    declare(&moved_uri, "fq", Some(("fed", "#")));
    wait_until("the link running", WAIT, || {
        let links = api.ok("/api/federation-links");
        links
            .as_array()
            .is_some_and(|l| l.iter().any(|l| l["status"] == "running"))
    });
    wait_until("the upstream queue bound", WAIT, || {
        bapi.ok("/api/exchanges/%2F/fed/bindings/source")
            .as_array()
            .is_some_and(|b| !b.is_empty())
    });
    publish(b.uri(), "fed", "k", "f", 20);
    wait_until("20 federated", WAIT, || count(&moved_uri, "fq") == 20);

    // The links' local connections: guest, by the internal mechanism.
    let conns = connections(&api);
    let links: Vec<&Value> = conns
        .iter()
        .filter(|c| c["auth_mechanism"] == "RINGMQ-INTERNAL")
        .collect();
    assert!(
        links.len() >= 3,
        "the shovel's two and the federation link's: {conns:?}"
    );
    assert!(links.iter().all(|c| c["user"] == "guest"), "{links:?}");
}

#[test]
fn the_internal_mechanism_needs_the_brokers_secret() {
    let b = Broker::new();
    let uri = Uri::parse(b.uri()).unwrap();
    for secret in ["", "guest", &"0".repeat(64)] {
        let opts = ConnectOptions {
            login: Login::BrokerInternal {
                secret: secret.to_owned(),
            },
            ..ConnectOptions::default()
        };
        run(async {
            match within("connect", Connection::connect_with(&uri, &opts)).await {
                Err(ClientError::Closed { code: 403, .. }) => {}
                other => panic!("secret {secret:?}: {other:?}"),
            }
        });
    }
    // PLAIN still works.
    run(async {
        within("connect", Connection::connect(&uri)).await.expect("PLAIN");
    });
}
