//! Property test of the management API against the real binary (issue 15):
//! random names (any bytes, 0-300 long, multi-byte characters across byte 255,
//! NUL, '/', '%'), routing keys, argument tables and arbitrary JSON through the
//! routes that create and delete things (queues, exchanges, bindings, users,
//! vhosts, policies, publish, get, definitions import). Every answer must be
//! 2xx or 4xx (never 5xx, never a dropped connection), and whatever was
//! accepted must be there for AMQP where AMQP can name it: a queue or exchange
//! declares passively, a binding routes a message (and no longer does once
//! deleted by the name POST gave it), a published message can be
//! got, a vhost opens, a user logs in. After the cases the broker restarts
//! (replaying every definition it accepted) and must still answer.
//!
//! Deterministic: the seed is fixed unless `RINGMQ_PROPS_SEED` (a number) says
//! otherwise, and printed with a failure.

mod common;

use std::sync::atomic::{AtomicU64, Ordering};

use common::http::{enc, enc_bytes, Api, Resp};
use common::raw::{plain, RawConn};
use common::Broker;
use lapin::options::{BasicGetOptions, BasicPublishOptions, ExchangeDeclareOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, ExchangeKind};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use ringmq_codec::{ConnectionOpen, ConnectionTuneOk, Method, ShortStr};
use serde_json::{json, Map, Value};

/// Cases per run: ~15 s in a debug build (each case is a few requests and AMQP checks).
const CASES: u32 = 256;
const SEED_DEFAULT: u64 = 15;

/// A name as bytes: the URL carries them percent-encoded, the broker decodes
/// them (invalid UTF-8 lossily), JSON bodies carry the lossy text.
#[derive(Debug, Clone)]
struct Name(Vec<u8>);

impl Name {
    fn url(&self) -> String {
        enc_bytes(&self.0)
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0).into_owned()
    }
}

/// `len` bytes around byte 255 with a `width`-byte character starting at `at`.
fn boundary_name() -> impl Strategy<Value = Name> {
    (250usize..=260, 250usize..=256, 2usize..=4).prop_map(|(len, at, width)| {
        let c = ['é', '€', '𝄞'][width - 2];
        let mut s = "n".repeat(at.min(len));
        s.push(c);
        while s.len() < len {
            s.push('n');
        }
        Name(s.into_bytes())
    })
}

fn name() -> impl Strategy<Value = Name> {
    prop_oneof![
        4 => "[a-z]{1,10}".prop_map(|s| Name(s.into_bytes())),
        2 => vec(any::<u8>(), 0..=300).prop_map(Name),
        2 => boundary_name(),
        2 => prop::sample::select(vec![
            "", "\0", "a\0b", "/", "a/b", "%", "%2F", "%zz", "%%", " ", "a b", "é", "amq.q", "amq.gen-x", "*", "#",
            "..", ".",
        ])
        .prop_map(|s| Name(s.as_bytes().to_vec())),
        1 => "\\PC{0,300}".prop_map(|s| Name(s.into_bytes())),
    ]
}

fn json_leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        prop::sample::select(vec![0i64, 1, -1, 255, 256, 65_535, i32::MAX as i64]).prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        name().prop_map(|n| Value::from(n.text())),
    ]
}

/// Any JSON, nested a few levels.
fn json_any() -> impl Strategy<Value = Value> {
    json_leaf().prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..4).prop_map(Value::Array),
            vec((key(), inner), 0..4).prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

/// Argument keys the broker reads, or any name.
fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "x-message-ttl",
            "x-expires",
            "x-max-length",
            "x-max-length-bytes",
            "x-overflow",
            "x-dead-letter-exchange",
            "x-dead-letter-routing-key",
            "x-max-priority",
            "x-queue-type",
            "x-single-active-consumer",
            "x-delivery-limit",
            "x-consumer-timeout",
            "x-message-deduplication",
            "alternate-exchange",
            "x-delayed-type",
            "x-match",
            "max-length",
            "message-ttl",
            "dead-letter-exchange",
            "expires",
            "overflow",
        ])
        .prop_map(str::to_owned),
        name().prop_map(|n| n.text()),
    ]
}

/// A known argument with a value of the kind it takes (names any), or any pair.
fn arg_pair() -> impl Strategy<Value = (String, Value)> {
    let numeric = prop::sample::select(vec![
        "x-message-ttl",
        "x-expires",
        "x-max-length",
        "x-max-length-bytes",
        "x-max-priority",
        "x-delivery-limit",
        "x-consumer-timeout",
        "x-delay",
    ]);
    let named = prop::sample::select(vec![
        "x-dead-letter-exchange",
        "x-dead-letter-routing-key",
        "alternate-exchange",
        "x-deduplication-header",
    ]);
    prop_oneof![
        (numeric, 0u32..100_000).prop_map(|(k, v)| (k.to_owned(), json!(v))),
        (named, name()).prop_map(|(k, n)| (k.to_owned(), json!(n.text()))),
        prop::sample::select(vec![
            ("x-overflow", "drop-head"),
            ("x-overflow", "reject-publish"),
            ("x-overflow", "reject-publish-dlx"),
            ("x-queue-type", "classic"),
            ("x-queue-type", "quorum"),
            ("x-queue-mode", "lazy"),
            ("x-match", "any"),
            ("x-match", "all-with-x"),
            ("x-delayed-type", "direct"),
        ])
        .prop_map(|(k, v)| (k.to_owned(), json!(v))),
        any::<bool>().prop_map(|b| ("x-single-active-consumer".to_owned(), json!(b))),
        (key(), json_any()),
    ]
}

/// An argument table (or, now and then, any JSON in its place).
fn args() -> impl Strategy<Value = Value> {
    prop_oneof![
        6 => vec(arg_pair(), 0..4).prop_map(|kv| Value::Object(kv.into_iter().collect())),
        1 => json_any(),
    ]
}

/// User tags: a string of tags mostly, any JSON sometimes.
fn tags() -> impl Strategy<Value = Value> {
    prop_oneof![
        4 => prop::sample::select(vec!["", "management", "administrator", "monitoring,policymaker", "impersonator"])
            .prop_map(Value::from),
        1 => name().prop_map(|n| Value::from(n.text())),
        1 => json_leaf(),
    ]
}

/// One API step.
#[derive(Debug, Clone)]
enum Op {
    PutQueue {
        name: Name,
        body: Value,
    },
    DeleteQueue(Name),
    PutExchange {
        name: Name,
        kind: String,
        args: Value,
    },
    DeleteExchange(Name),
    /// A fresh plain queue bound to amq.direct with this key and arguments.
    Bind {
        key: Name,
        args: Value,
    },
    /// To a fresh plain queue through the default exchange.
    Publish {
        payload: Name,
        properties: Value,
    },
    Get {
        queue: Name,
        body: Value,
    },
    PutUser {
        name: Name,
        password: Name,
        tags: Value,
    },
    DeleteUser(Name),
    PutVhost {
        name: Name,
        body: Value,
    },
    DeleteVhost(Name),
    PutPolicy {
        name: Name,
        body: Value,
    },
    DeletePolicy(Name),
    Import(Value),
}

fn queue_body() -> impl Strategy<Value = Value> {
    prop_oneof![
        4 => (any::<bool>(), any::<bool>(), args()).prop_map(|(d, a, args)| json!({"durable": d, "auto_delete": a, "arguments": args})),
        1 => json_any(),
    ]
}

fn exchange_kind() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::sample::select(vec!["direct", "fanout", "topic", "headers", "x-delayed-message", "x-consistent-hash"]).prop_map(str::to_owned),
        1 => name().prop_map(|n| n.text()),
    ]
}

/// A policy definition entry with a value of the kind it takes, or any pair.
fn policy_pair() -> impl Strategy<Value = (String, Value)> {
    let numeric = prop::sample::select(vec![
        "max-length",
        "max-length-bytes",
        "message-ttl",
        "expires",
        "delivery-limit",
    ]);
    let named = prop::sample::select(vec![
        "dead-letter-exchange",
        "dead-letter-routing-key",
        "alternate-exchange",
    ]);
    prop_oneof![
        2 => (numeric, 0u32..100_000).prop_map(|(k, v)| (k.to_owned(), json!(v))),
        2 => (named, name()).prop_map(|(k, n)| (k.to_owned(), json!(n.text()))),
        1 => prop::sample::select(vec!["drop-head", "reject-publish", "reject-publish-dlx"])
            .prop_map(|v| ("overflow".to_owned(), json!(v))),
        1 => (key(), json_any()),
    ]
}

fn policy_body() -> impl Strategy<Value = Value> {
    let definition = vec(policy_pair(), 0..4).prop_map(|kv| Value::Object(kv.into_iter().collect::<Map<_, _>>()));
    let pattern = prop_oneof![
        3 => prop::sample::select(vec!["^", ".*", "^q", "^amq\\.", "x$", "", "("]).prop_map(str::to_owned),
        1 => name().prop_map(|n| n.text()),
    ];
    let apply = prop::sample::select(vec!["queues", "exchanges", "all", "classic_queues", "nothing"]);
    prop_oneof![
        6 => (pattern, definition, -5i64..5, apply).prop_map(|(pattern, definition, priority, apply)| {
                json!({"pattern": pattern, "definition": definition, "priority": priority, "apply-to": apply})
            }),
        1 => json_any(),
    ]
}

/// The body of POST /api/queues/{vhost}/{name}/get.
fn get_body() -> impl Strategy<Value = Value> {
    let ackmode = prop::sample::select(vec![
        "ack_requeue_true",
        "ack_requeue_false",
        "reject_requeue_true",
        "reject_requeue_false",
        "nack",
    ]);
    prop_oneof![
        4 => (json_leaf(), ackmode, prop::sample::select(vec!["auto", "base64", "hex"]), json_leaf())
            .prop_map(|(count, ackmode, encoding, truncate)| {
                json!({"count": count, "ackmode": ackmode, "encoding": encoding, "truncate": truncate})
            }),
        1 => json_any(),
    ]
}

/// The body of PUT /api/vhosts/{name}.
fn vhost_body() -> impl Strategy<Value = Value> {
    prop_oneof![
        2 => Just(json!({})),
        2 => (name(), tags()).prop_map(|(d, tags)| json!({"description": d.text(), "tags": tags})),
        1 => json_any(),
    ]
}

fn definitions() -> impl Strategy<Value = Value> {
    let queue = (name(), queue_body()).prop_map(|(n, mut b)| {
        if let Value::Object(m) = &mut b {
            m.insert("name".into(), n.text().into());
            m.insert("vhost".into(), "/".into());
        }
        b
    });
    let exchange = (name(), exchange_kind(), args()).prop_map(|(n, kind, args)| {
        json!({"name": n.text(), "vhost": "/", "type": kind, "durable": true, "auto_delete": false,
               "internal": false, "arguments": args})
    });
    let binding = (name(), name(), name(), args(), any::<bool>()).prop_map(|(s, d, k, args, q)| {
        json!({"source": s.text(), "vhost": "/", "destination": d.text(),
               "destination_type": if q { "queue" } else { "exchange" }, "routing_key": k.text(), "arguments": args})
    });
    let vhost = name().prop_map(|n| json!({"name": n.text()}));
    let user =
        (name(), name(), tags()).prop_map(|(n, p, tags)| json!({"name": n.text(), "password": p.text(), "tags": tags}));
    let policy = (name(), policy_body()).prop_map(|(n, mut b)| {
        if let Value::Object(m) = &mut b {
            m.insert("name".into(), n.text().into());
            m.insert("vhost".into(), "/".into());
        }
        b
    });
    prop_oneof![
        4 => (vec(queue, 0..3), vec(exchange, 0..3), vec(binding, 0..3), vec(vhost, 0..2), vec(user, 0..2), vec(policy, 0..2))
            .prop_map(|(q, x, b, v, u, p)| json!({"queues": q, "exchanges": x, "bindings": b, "vhosts": v, "users": u, "policies": p})),
        1 => json_any(),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (name(), queue_body()).prop_map(|(name, body)| Op::PutQueue { name, body }),
        1 => name().prop_map(Op::DeleteQueue),
        2 => (name(), exchange_kind(), args()).prop_map(|(name, kind, args)| Op::PutExchange { name, kind, args }),
        1 => name().prop_map(Op::DeleteExchange),
        2 => (name(), args()).prop_map(|(key, args)| Op::Bind { key, args }),
        2 => (name(), prop_oneof![3 => vec(prop_oneof![
                (Just("headers".to_owned()), args()),
                prop::sample::select(vec![("delivery_mode", json!(2)), ("priority", json!(3)), ("user_id", json!("guest")),
                    ("user_id", json!("other")), ("content_type", json!("text/plain")), ("timestamp", json!(1))])
                    .prop_map(|(k, v)| (k.to_owned(), v)),
                (key(), json_any()),
            ], 0..4).prop_map(|kv| {
                let mut m: Map<String, Value> = kv.into_iter().collect();
                m.remove("expiration"); // an expired message is not there to get
                Value::Object(m)
            }), 1 => json_any()])
            .prop_map(|(payload, properties)| Op::Publish { payload, properties }),
        1 => (name(), get_body()).prop_map(|(queue, body)| Op::Get { queue, body }),
        2 => (name(), name(), tags()).prop_map(|(name, password, tags)| Op::PutUser { name, password, tags }),
        1 => name().prop_map(Op::DeleteUser),
        2 => (name(), vhost_body()).prop_map(|(name, body)| Op::PutVhost { name, body }),
        1 => name().prop_map(Op::DeleteVhost),
        2 => (name(), policy_body()).prop_map(|(name, body)| Op::PutPolicy { name, body }),
        1 => name().prop_map(Op::DeletePolicy),
        2 => definitions().prop_map(Op::Import),
    ]
}

/// The harness: the API, and an AMQP connection for the checks.
struct World<'b> {
    broker: &'b Broker,
    api: Api,
    rt: tokio::runtime::Runtime,
    conn: Connection,
    ch: Channel,
}

/// A fresh name for the harness's own queues.
fn fresh(prefix: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    format!("{prefix}-{}", N.fetch_add(1, Ordering::Relaxed))
}

fn is_2xx(r: &Resp) -> bool {
    (200..300).contains(&r.status)
}

impl World<'_> {
    /// A request that must answer 2xx or 4xx (a dropped connection panics in `call`).
    #[track_caller]
    fn call(&self, method: &str, path: &str, body: Option<&Value>) -> Resp {
        let r = self.api.call(method, path, body, &[]);
        assert!(
            (200..500).contains(&r.status) && !(300..400).contains(&r.status),
            "{method} {path} {body:?}: {} {}",
            r.status,
            r.text
        );
        r
    }

    fn channel(&mut self) -> &Channel {
        if !self.ch.status().connected() {
            self.ch = self.rt.block_on(self.conn.create_channel()).expect("channel.open");
        }
        &self.ch
    }

    /// queue.declare passive in "/" (a 404 closes the channel; the next call reopens it).
    fn queue_exists(&mut self, name: &str) -> bool {
        let opts = QueueDeclareOptions {
            passive: true,
            ..Default::default()
        };
        let ch = self.channel().clone();
        self.rt
            .block_on(ch.queue_declare(name.into(), opts, FieldTable::default()))
            .is_ok()
    }

    fn exchange_exists(&mut self, name: &str) -> bool {
        let opts = ExchangeDeclareOptions {
            passive: true,
            ..Default::default()
        };
        let ch = self.channel().clone();
        self.rt
            .block_on(ch.exchange_declare(name.into(), ExchangeKind::Direct, opts, FieldTable::default()))
            .is_ok()
    }

    /// basic.get with no-ack: the body and routing key of the next message.
    fn get(&mut self, queue: &str) -> Option<(Vec<u8>, String)> {
        let ch = self.channel().clone();
        let m = self
            .rt
            .block_on(ch.basic_get(queue.into(), BasicGetOptions { no_ack: true }))
            .expect("basic.get")?;
        Some((m.delivery.data.clone(), m.delivery.routing_key.to_string()))
    }

    fn publish_direct(&mut self, key: &str) {
        let ch = self.channel().clone();
        let publish = ch.basic_publish(
            "amq.direct".into(),
            key.into(),
            BasicPublishOptions::default(),
            b"through the binding",
            BasicProperties::default(),
        );
        self.rt.block_on(publish).expect("basic.publish");
    }

    /// A plain queue of the harness's own, for bindings and publishes.
    fn plain_queue(&self) -> String {
        let q = fresh("props-q");
        let r = self.call("PUT", &format!("/api/queues/%2F/{q}"), Some(&json!({})));
        assert_eq!(r.status, 201, "{}", r.text);
        q
    }

    /// Logs in as `user` and opens `vhost` with the raw client; gives the
    /// method that answered start-ok and the one that answered connection.open.
    fn login_open(&self, user: &str, pass: &str, vhost: &str) -> (&'static str, Option<&'static str>) {
        self.rt.block_on(async {
            let mut c = RawConn::connect(self.broker.addr()).await;
            c.start().await;
            c.start_ok("PLAIN", &plain(user, pass)).await;
            let g = c.expect_frame().await;
            let Some((channel_max, frame_max, _)) = g.tune else {
                return (g.name, None);
            };
            let ok = ConnectionTuneOk {
                channel_max,
                frame_max,
                heartbeat: 0,
            };
            c.send_method(0, &Method::ConnectionTuneOk(ok)).await;
            let open = ConnectionOpen {
                virtual_host: ShortStr::new(vhost).expect("an accepted vhost name is short"),
                capabilities: ShortStr::EMPTY,
                insist: false,
            };
            c.send_method(0, &Method::ConnectionOpen(open)).await;
            (g.name, Some(c.expect_frame().await.name))
        })
    }

    fn run(&mut self, op: &Op) {
        match op {
            Op::PutQueue { name, body } => {
                let r = self.call("PUT", &format!("/api/queues/%2F/{}", name.url()), Some(body));
                if is_2xx(&r) {
                    assert!(
                        self.queue_exists(&name.text()),
                        "queue {:?} accepted, not declarable",
                        name.text()
                    );
                }
            }
            Op::DeleteQueue(name) => {
                self.call("DELETE", &format!("/api/queues/%2F/{}", name.url()), None);
            }
            Op::PutExchange { name, kind, args } => {
                let body = json!({"type": kind, "durable": true, "arguments": args});
                let r = self.call("PUT", &format!("/api/exchanges/%2F/{}", name.url()), Some(&body));
                if is_2xx(&r) {
                    assert!(
                        self.exchange_exists(&name.text()),
                        "exchange {:?} accepted, not declarable",
                        name.text()
                    );
                }
            }
            Op::DeleteExchange(name) => {
                self.call("DELETE", &format!("/api/exchanges/%2F/{}", name.url()), None);
            }
            Op::Bind { key, args } => {
                let q = self.plain_queue();
                let body = json!({"routing_key": key.text(), "arguments": args});
                let path = format!("/api/bindings/%2F/e/amq.direct/q/{q}");
                let r = self.call("POST", &path, Some(&body));
                if is_2xx(&r) {
                    let key = key.text();
                    // On one channel a publish and a get are handled in order.
                    self.publish_direct(&key);
                    let got = self.get(&q);
                    assert_eq!(
                        got.map(|g| g.1),
                        Some(key.clone()),
                        "a message through the accepted binding"
                    );
                    // `Location` is relative to the POST's path: `dest/props`.
                    let location = r.location.expect("201 names the binding");
                    let r = self.call("DELETE", &format!("/api/bindings/%2F/e/amq.direct/q/{location}"), None);
                    assert_eq!(r.status, 204, "the binding it named is deleted: {}", r.text);
                    self.publish_direct(&key);
                    assert_eq!(self.get(&q), None, "a message through the deleted binding");
                }
            }
            Op::Publish { payload, properties } => {
                let q = self.plain_queue();
                let body = json!({"properties": properties, "routing_key": q, "payload": payload.text(),
                                  "payload_encoding": "string"});
                let r = self.call("POST", "/api/exchanges/%2F/amq.default/publish", Some(&body));
                if is_2xx(&r) && r.json["routed"] == true {
                    let got = self.get_soon(&q);
                    assert_eq!(
                        got.map(|g| g.0),
                        Some(payload.text().into_bytes()),
                        "the published message ({properties})"
                    );
                }
            }
            Op::Get { queue, body } => {
                self.call("POST", &format!("/api/queues/%2F/{}/get", queue.url()), Some(body));
            }
            // guest is the harness's own login (API and AMQP checks).
            Op::PutUser { name, .. } if name.text() == "guest" => {}
            Op::PutUser { name, password, tags } => {
                let body = json!({"password": password.text(), "tags": tags});
                let r = self.call("PUT", &format!("/api/users/{}", name.url()), Some(&body));
                let (user, pass) = (name.text(), password.text());
                // PLAIN separates the user and password with NUL, and an empty
                // password never logs in (as RabbitMQ).
                let nameable = !user.contains('\0') && !pass.contains('\0') && !pass.is_empty();
                if is_2xx(&r) && nameable {
                    let (answer, _) = self.login_open(&user, &pass, "/");
                    assert_eq!(answer, "connection.tune", "user {user:?} accepted, cannot log in");
                }
            }
            Op::DeleteUser(name) => {
                if name.text() != "guest" {
                    self.call("DELETE", &format!("/api/users/{}", name.url()), None);
                }
            }
            Op::PutVhost { name, body } => {
                let r = self.call("PUT", &format!("/api/vhosts/{}", name.url()), Some(body));
                if is_2xx(&r) {
                    let (_, open) = self.login_open("guest", "guest", &name.text());
                    assert_eq!(
                        open,
                        Some("connection.open-ok"),
                        "vhost {:?} accepted, cannot be opened",
                        name.text()
                    );
                }
            }
            Op::DeleteVhost(name) => {
                if name.text() != "/" {
                    self.call("DELETE", &format!("/api/vhosts/{}", name.url()), None);
                }
            }
            Op::PutPolicy { name, body } => {
                let path = format!("/api/policies/%2F/{}", name.url());
                if is_2xx(&self.call("PUT", &path, Some(body))) {
                    assert_eq!(
                        self.call("GET", &path, None).status,
                        200,
                        "policy accepted, not readable"
                    );
                }
            }
            Op::DeletePolicy(name) => {
                self.call("DELETE", &format!("/api/policies/%2F/{}", name.url()), None);
            }
            Op::Import(defs) => self.import(defs),
        }
    }

    /// A message the broker routed may be handed to the queue on the loop's next turn.
    fn get_soon(&mut self, queue: &str) -> Option<(Vec<u8>, String)> {
        for _ in 0..50 {
            if let Some(m) = self.get(queue) {
                return Some(m);
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        None
    }

    fn import(&mut self, defs: &Value) {
        let users = defs["users"].as_array().into_iter().flatten();
        if users.into_iter().any(|u| u["name"] == "guest") {
            return; // guest is the harness's own login
        }
        let r = self.call("POST", "/api/definitions", Some(defs));
        if !is_2xx(&r) {
            return;
        }
        let names = |list: &str| -> Vec<String> {
            defs[list]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|e| e["name"].as_str().map(str::to_owned))
                .collect()
        };
        for q in names("queues") {
            assert!(self.queue_exists(&q), "imported queue {q:?} not declarable");
        }
        for x in names("exchanges") {
            assert!(self.exchange_exists(&x), "imported exchange {x:?} not declarable");
        }
        for v in names("vhosts") {
            // The import grants no permissions: guest is given them, then opens it.
            let path = format!("/api/permissions/{}/guest", enc(&v));
            let r = self.call(
                "PUT",
                &path,
                Some(&json!({"configure": ".*", "write": ".*", "read": ".*"})),
            );
            assert!(is_2xx(&r), "imported vhost {v:?}: {} {}", r.status, r.text);
            let (_, open) = self.login_open("guest", "guest", &v);
            assert_eq!(
                open,
                Some("connection.open-ok"),
                "imported vhost {v:?} cannot be opened"
            );
        }
    }
}

fn seed() -> u64 {
    std::env::var("RINGMQ_PROPS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(SEED_DEFAULT)
}

#[test]
fn random_names_and_json_through_the_api_never_5xx_and_accepted_is_there() {
    let mut b = Broker::new();
    if b.skip_external("random_names_and_json_through_the_api") {
        return;
    }
    let seed = seed();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let conn = rt
        .block_on(Connection::connect(b.uri(), ConnectionProperties::default()))
        .expect("lapin connect");
    let ch = rt.block_on(conn.create_channel()).expect("channel.open");
    // `run` takes a `Fn`; the cases share one world (and its broker's state).
    let world = std::cell::RefCell::new(World {
        broker: &b,
        api: Api::new(b.http_url(), b.user(), b.pass()),
        rt,
        conn,
        ch,
    });
    let config = Config {
        cases: CASES,
        failure_persistence: None,
        max_shrink_iters: 256,
        ..Config::default()
    };
    let mut key = [0u8; 32];
    key[..8].copy_from_slice(&seed.to_le_bytes());
    let mut runner = TestRunner::new_with_rng(config, TestRng::from_seed(RngAlgorithm::ChaCha, &key));
    let result = runner.run(&vec(op(), 1..6), |ops| {
        let mut world = world.borrow_mut();
        for op in &ops {
            world.run(op);
        }
        Ok(())
    });
    if let Err(e) = result {
        panic!("seed {seed} (RINGMQ_PROPS_SEED): {e}");
    }
    let alive = |b: &Broker| {
        let a = Api::new(b.http_url(), b.user(), b.pass());
        assert_eq!(a.get("/api/overview").status, 200, "the API answers");
        assert_eq!(a.get(&format!("/api/queues/{}", enc("/"))).status, 200);
        common::run(async {
            let (_c, ch) = common::open(b).await;
            common::temp_queue(&ch, "props-alive").await;
        });
    };
    alive(&b);
    drop(world);
    // Everything accepted was logged; a restart replays it.
    b.restart();
    alive(&b);
}
