//! Users, permissions, vhosts, policies and parameters are metadata ops
//! (`access::op`), so every shard's copy of them is equal: seeded
//! management commands on 2 to 4 shards (each a broker of its own in this one
//! thread, joined to one [`ShardLog`]) add and delete users, set and clear
//! permissions and topic permissions, create and delete vhosts, set vhost
//! limits, set and clear policies and parameters, import definitions, while
//! AMQP clients declare and delete queues on "/" (so access ops and routing
//! ops share the log's one order) and log in on any shard.
//!
//! - After every step that made an op, the acting shard's access data is what
//!   a broker fed the log in order holds (so it decided on a current copy).
//! - A login on any shard succeeds exactly when the log's broker says the user,
//!   password, vhost and permission are there.
//! - At the end every shard's users, permissions, vhosts (with metadata,
//!   parameters and policies, and the policy each queue got) are equal.
//!
//! Seeds are printed; replay one with `RINGMQ_SIM_SEED`.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;
use std::os::unix::fs::MetadataExt;

use super::client::{self, Event};
use super::harness::Harness;
use super::meta_replay::random_method;
use super::sim::seeds;
use crate::core::access::permissions::PermissionDef;
use crate::core::access::topic_permissions::TopicPermissionDef;
use crate::core::amqp::broker::Broker;
use crate::core::amqp::meta::ShardLog;
use crate::core::mgmt::commands::UserSpec;
use crate::core::model::meta::ShardId;
use crate::core::model::policy::{ApplyTo, PolicyDef, PolicyKind};
use crate::core::model::vhost_meta::{Parameter, VhostMeta};

const STEPS: usize = 400;
const USERS: [&str; 3] = ["u0", "u1", "u2"];
/// Vhosts the steps create and delete ("/" stays: the AMQP clients use it).
const VHOSTS: [&str; 2] = ["v1", "v2"];
const ANY_VHOST: [&str; 3] = ["/", "v1", "v2"];
const PATTERNS: [&str; 3] = [".*", "^q", ""];

#[test]
fn shards_keep_equal_copies_of_users_permissions_vhosts_and_policies() {
    for seed in seeds(8) {
        let shards = 2 + (seed % 3) as u16;
        eprintln!("meta access seed {seed} ({shards} shards)");
        run(seed, shards);
    }
}

/// The access data of a broker, comparable: users (with their hashes),
/// permissions, topic permissions, vhosts with their metadata, parameters,
/// policies and the policy each queue has, global parameters.
fn access(b: &Broker) -> String {
    let mut users: Vec<_> = b.users.iter().cloned().collect();
    users.sort_by(|a, b| a.name.cmp(&b.name));
    let mut out = format!("users {users:?}\npermissions {:?}\n", b.permissions.defs());
    out += &format!(
        "topic {:?}\nglobal {:?}\n",
        b.permissions.topic.defs(),
        b.global_parameters
    );
    let mut vhosts: Vec<_> = b.model.vhosts.iter().collect();
    vhosts.sort_by(|a, b| a.0.cmp(b.0));
    for (name, v) in vhosts {
        let mut queues: Vec<_> = (v.queues.values())
            .map(|q| (q.name().to_string(), q.policy().map(|p| p.name().to_owned())))
            .collect();
        queues.sort();
        let mut exchanges: Vec<_> = v.exchanges.keys().map(|x| x.to_string()).collect();
        exchanges.sort();
        out += &format!(
            "vhost {name} {:?} {:?}\n  policies {:?} {:?}\n  queues {queues:?}\n  exchanges {exchanges:?}\n",
            v.meta,
            v.parameters,
            v.policies.defs(),
            v.operator_policies.defs()
        );
    }
    out
}

/// Whether a connection's events say it was opened (and not closed).
fn opened(events: &[Event]) -> bool {
    let open_ok = events
        .iter()
        .any(|e| matches!(e, Event::Other { name, .. } if *name == "connection.open-ok"));
    open_ok && !events.iter().any(|e| matches!(e, Event::ConnectionClose { .. }))
}

/// Logs in on `h` and says whether it worked; the connection is closed after.
fn login(h: &mut Harness, user: &str, password: &str, vhost: &str) -> bool {
    let c = h.connect_as(user, password, vhost);
    let ok = opened(&h.events(c));
    h.disconnect(c);
    h.forget(c);
    ok
}

/// What the log's broker says a login gets.
fn may_log_in(b: &Broker, user: &str, password: &str, vhost: &str) -> bool {
    b.users.authenticate(user, password, true).is_ok()
        && b.model.vhosts.contains_key(vhost)
        && b.permissions.get(user, vhost).is_some()
}

fn password(user: &str, version: u32) -> String {
    format!("pw-{user}-{version}")
}

/// Applies the log's new entries to the reference broker; returns how many.
fn feed(log: &ShardLog, read: &mut u64, reference: &mut Harness, reader: ShardId) -> usize {
    let ops = log.lock().since(*read);
    *read += ops.len() as u64;
    log.lock().advance(reader, *read);
    for op in &ops {
        reference.broker_mut().apply_logged_op(op).expect("op applies");
    }
    reference.pump();
    ops.len()
}

fn run(seed: u64, n: u16) {
    let mut rng = StdRng::seed_from_u64(seed);
    // One cursor more than shards: the reference's.
    let log = ShardLog::new(n + 1);
    let reader = ShardId(n);
    let mut reference = Harness::new(seed, false, |_| {});
    let mut read = 0;
    let mut shards = Harness::shards(seed, n, &log, false);
    // Shard 0 made the guest at the first start, and the others have it
    // from the log (`broker::open`).
    feed(&log, &mut read, &mut reference, reader);

    // A user made through shard 0 logs in on the last shard; deleted through
    // shard 0, its connection there is closed and it logs in no more.
    let last = usize::from(n) - 1;
    let alice = UserSpec {
        password: Some("secret".into()),
        ..UserSpec::default()
    };
    shards[0].broker_mut().admin_put_user("alice", &alice).expect("alice");
    shards[0]
        .broker_mut()
        .admin_set_permission(PermissionDef {
            user: "alice".into(),
            vhost: "/".into(),
            configure: ".*".into(),
            write: ".*".into(),
            read: ".*".into(),
        })
        .expect("alice's permission");
    // Saved once, by the shard that made the op (the shards share the data
    // directory): the users file has her, and the last shard, applying the
    // op when alice connects, writes it no more (a stale copy's save would
    // undo a later op's).
    let file = shards[0]
        .broker()
        .config
        .data_dir
        .join(crate::core::access::auth::USERS_FILE);
    let saved = || {
        let meta = std::fs::metadata(&file).expect("users.json");
        let text = std::fs::read_to_string(&file).expect("users.json");
        (meta.modified().expect("mtime"), meta.ino(), text)
    };
    let before = saved();
    assert!(
        before.2.contains("\"alice\""),
        "seed {seed}: shard 0 saved the user it made"
    );
    let kept = shards[last].connect_as("alice", "secret", "/");
    assert!(
        opened(&shards[last].events(kept)),
        "seed {seed}: alice, made on shard 0, logs in on shard {last}"
    );
    assert!(
        saved() == before,
        "seed {seed}: shard {last} saved another shard's user"
    );
    assert!(
        !login(&mut shards[last], "alice", "wrong", "/"),
        "seed {seed}: a wrong password"
    );
    shards[0].broker_mut().admin_delete_user("alice").expect("delete alice");
    shards[last].broker_mut().catch_up_meta();
    shards[last].pump();
    let closed = shards[last].events(kept);
    assert!(
        closed
            .iter()
            .any(|e| matches!(e, Event::ConnectionClose { code: 320, .. })),
        "seed {seed}: alice's connection on shard {last} is closed when she is deleted: {closed:?}"
    );
    shards[last].disconnect(kept);
    shards[last].forget(kept);
    assert!(
        !login(&mut shards[last], "alice", "secret", "/"),
        "seed {seed}: a deleted user logs in"
    );
    feed(&log, &mut read, &mut reference, reader);

    let mut versions = [0u32; USERS.len()];
    let mut guests: Vec<_> = (0..usize::from(n)).map(|i| shards[i].connect(0, &[])).collect();
    let mut channels = vec![0u16; usize::from(n)];
    let mut made = 0;
    // Logins refused and let in.
    let mut logins = [0usize; 2];
    for step in 0..STEPS {
        let s = rng.random_range(0..usize::from(n));
        let u = rng.random_range(0..USERS.len());
        let user = USERS[u];
        let vhost = ANY_VHOST[rng.random_range(0..ANY_VHOST.len())];
        let pattern = PATTERNS[rng.random_range(0..PATTERNS.len())];
        let h = &mut shards[s];
        let now = h.now();
        let b = h.broker_mut();
        let mut logged_in = None;
        // Refusals (a user or vhost not there) are answers, not failures.
        match rng.random_range(0..16) {
            0 | 1 => {
                versions[u] += 1;
                let spec = UserSpec {
                    password: Some(password(user, versions[u])),
                    tags: vec![["", "management"][rng.random_range(0..2)].into()],
                    ..UserSpec::default()
                };
                b.admin_put_user(user, &spec).expect("a user");
            }
            2 if rng.random_bool(0.5) => drop(b.admin_delete_user(user)),
            2..=4 => {
                let def = PermissionDef {
                    user: user.into(),
                    vhost: vhost.into(),
                    configure: pattern.into(),
                    write: pattern.into(),
                    read: ".*".into(),
                };
                drop(b.admin_set_permission(def));
            }
            5 => drop(b.admin_delete_permission(user, vhost)),
            6 => {
                let def = TopicPermissionDef {
                    user: user.into(),
                    vhost: vhost.into(),
                    exchange: "amq.topic".into(),
                    write: pattern.into(),
                    read: ".*".into(),
                };
                drop(b.admin_set_topic_permission(def));
            }
            7 => drop(b.admin_clear_topic_permissions(user, vhost, None)),
            8 => {
                let name = VHOSTS[rng.random_range(0..VHOSTS.len())];
                let meta = VhostMeta {
                    description: format!("step {step}"),
                    ..VhostMeta::default()
                };
                b.create_vhost(name, Some(meta), Some("guest")).expect("a vhost");
            }
            9 => drop(b.delete_vhost(VHOSTS[rng.random_range(0..VHOSTS.len())], now)),
            10 => {
                let kind = [PolicyKind::User, PolicyKind::Operator][rng.random_range(0..2)];
                let def = PolicyDef {
                    name: format!("p{}", rng.random_range(0..2)),
                    pattern: ["^q", "q[0-2]"][rng.random_range(0..2)].into(),
                    apply_to: ApplyTo::Queues,
                    priority: rng.random_range(0..3),
                    definition: json!({"max-length": rng.random_range(1..100)})
                        .as_object()
                        .expect("an object")
                        .clone(),
                };
                drop(b.put_policy(vhost, def, kind, now));
            }
            11 => {
                let kind = [PolicyKind::User, PolicyKind::Operator][rng.random_range(0..2)];
                drop(b.delete_policy(vhost, &format!("p{}", rng.random_range(0..2)), kind, now));
            }
            12 if rng.random_bool(0.3) => {
                // An import that makes a vhost, a user, a permission and an
                // exchange in the new vhost: its ops keep their order in the
                // log (the exchange's declare after the vhost's create).
                versions[u] += 1;
                let v = VHOSTS[rng.random_range(0..VHOSTS.len())];
                let d = json!({
                    "vhosts": [{"name": v}],
                    "users": [{"name": user, "password": password(user, versions[u]), "tags": ""}],
                    "permissions": [{"user": user, "vhost": v, "configure": ".*", "write": ".*", "read": ".*"}],
                    "exchanges": [{"name": format!("x{step}"), "vhost": v, "type": "topic", "durable": true,
                        "auto_delete": false, "internal": false, "arguments": {}}],
                });
                let d = serde_json::from_value(d).expect("definitions");
                b.import_definitions(d, None, None, now).expect("an import");
            }
            12 => {
                let p = Parameter {
                    component: "shovel".into(),
                    name: format!("s{}", rng.random_range(0..2)),
                    // A valid shovel (the value is checked), different each step.
                    value: json!({"src-uri": "amqp://", "src-queue": "q", "dest-uri": "amqp://",
                                  "dest-queue": format!("d{step}")}),
                };
                drop(b.put_parameter(vhost, p));
                if rng.random_bool(0.5) {
                    drop(b.delete_parameter(vhost, "shovel", "s0"));
                }
            }
            13 => {
                if rng.random_bool(0.5) {
                    b.put_global_parameter("g", json!(step)).expect("a global parameter");
                } else {
                    drop(b.delete_global_parameter("g"));
                }
                drop(b.set_vhost_limit(vhost, "max-queues", Some(rng.random_range(10..20))));
            }
            14 => {
                // A login on this shard, with the password the user has now
                // (or an old one).
                let pw = password(user, versions[u].saturating_sub(u32::from(rng.random_bool(0.2))));
                let vhost = if rng.random_bool(0.6) { "/" } else { vhost };
                logged_in = Some((user, pw.clone(), vhost, login(h, user, &pw, vhost)));
            }
            _ => {
                // A client on "/" declares, binds, deletes: routing ops in the
                // same log, which the policies on "/" apply to.
                channels[s] += 1;
                let me = ShardId(s as u16);
                let may_consume = |q: &str| ShardId::owner_of_queue("/", q, n) == me;
                let mut bytes = client::channel_open(channels[s]);
                bytes.extend(random_method(&mut rng, channels[s], &may_consume));
                h.send(guests[s], &bytes);
                let _ = h.events(guests[s]);
                if h.broker().is_closed(guests[s]) {
                    h.disconnect(guests[s]);
                    h.forget(guests[s]);
                    guests[s] = h.connect(0, &[]);
                    channels[s] = 0;
                }
            }
        }
        shards[s].pump();
        let new = feed(&log, &mut read, &mut reference, reader);
        made += new;
        if let Some((user, pw, vhost, ok)) = &logged_in {
            logins[usize::from(*ok)] += 1;
            assert_eq!(
                *ok,
                may_log_in(reference.broker(), user, pw, vhost),
                "seed {seed} step {step}: {user} logging in to {vhost} on shard {s}"
            );
        }
        if new > 0 || logged_in.is_some() {
            assert_eq!(
                access(shards[s].broker()),
                access(reference.broker()),
                "seed {seed} step {step}: shard {s}'s copy after its step, against the log"
            );
        }
    }
    eprintln!("  {made} ops, logins refused {} and let in {}", logins[0], logins[1]);
    let kinds = (
        reference.broker().users.iter().count(),
        reference.broker().model.vhosts.len(),
    );
    eprintln!("  at the end: users and vhosts {kinds:?}");
    for h in &mut shards {
        h.broker_mut().catch_up_meta();
        h.pump();
    }
    assert_eq!(log.lock().held(), 0, "seed {seed}: every shard applied the log");
    let first = access(shards[0].broker());
    assert_eq!(
        first,
        access(reference.broker()),
        "seed {seed}: shard 0 against the log"
    );
    for (i, h) in shards.iter().enumerate().skip(1) {
        assert_eq!(
            first,
            access(h.broker()),
            "seed {seed}: shard {i}'s copy differs from shard 0's"
        );
    }
    // Every user the log's broker lets in logs in on every shard.
    for (u, user) in USERS.iter().enumerate() {
        let pw = password(user, versions[u]);
        for vhost in ANY_VHOST {
            let expect = may_log_in(reference.broker(), user, &pw, vhost);
            for (i, h) in shards.iter_mut().enumerate() {
                assert_eq!(
                    login(h, user, &pw, vhost),
                    expect,
                    "seed {seed}: {user} logging in to {vhost} on shard {i} at the end"
                );
            }
        }
    }
}
