//! The broker side of the model test: one lapin connection with the model's
//! channels (0 in confirm mode), the management API for policies and
//! listings, and the logical names mapped to real ones (a prefix, so that runs
//! against a shared external broker do not meet).

use std::collections::BTreeSet;

use futures_lite::StreamExt;
use lapin::{Channel, Connection};
use serde_json::{json, Map, Value};

use super::ops::Op;
use super::restart::Looked;
use super::semantics::{Delivered, Settle};
use super::state::*;
use crate::common::http::{enc, Api};
use crate::common::*;

/// What an operation gave, in the model's terms.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Done,
    /// declare-ok, purge-ok or delete-ok message count.
    Count(usize),
    /// The publisher confirm: ack (true) or nack.
    Confirm(bool),
    /// basic.get: the delivery and the message count of get-ok, or get-empty.
    Got(Option<(Delivered, usize)>),
    Deliveries(Vec<Delivered>),
    /// The channel was closed with this reply code.
    Refused(u16),
}

pub struct Client {
    conn: Connection,
    chans: Vec<Channel>,
    api: Api,
    prefix: String,
    /// Seconds an external broker may take to apply a policy (RabbitMQ applies
    /// them to queues asynchronously; ringmq before answering).
    policy_settle_ms: u64,
}

fn map_err<T>(what: &str, r: lapin::Result<T>) -> T {
    r.unwrap_or_else(|e| panic!("{what}: {e:?}"))
}

impl Client {
    pub async fn connect(b: &Broker, prefix: &str) -> Client {
        let conn = connect(b).await;
        let mut c = Client {
            conn,
            chans: Vec::new(),
            api: Api::new(b.http_url(), b.user(), b.pass()),
            prefix: prefix.to_owned(),
            policy_settle_ms: if b.is_external() { 300 } else { 0 },
        };
        for i in 0..CHANNELS {
            let ch = c.open_chan(i).await;
            c.chans.push(ch);
        }
        c
    }

    async fn open_chan(&self, i: usize) -> Channel {
        if i == 0 {
            confirm_channel(&self.conn).await
        } else {
            channel(&self.conn).await
        }
    }

    /// The real name of a logical queue, exchange or routing key.
    pub fn real(&self, name: &str) -> String {
        let ours = QUEUES.contains(&name) || xkind(name).is_some() || name == MISSING_EXCHANGE;
        if ours && !self.prefix.is_empty() {
            format!("{}{name}", self.prefix)
        } else {
            name.to_owned()
        }
    }

    /// The logical name of a real one of ours, or None.
    pub fn logical(&self, real: &str) -> Option<String> {
        real.strip_prefix(&self.prefix)
            .filter(|n| QUEUES.contains(n) || xkind(n).is_some())
            .map(str::to_owned)
    }

    pub fn queue_args(&self, l: &Limits) -> FieldTable {
        let mut t = FieldTable::default();
        if let Some(n) = l.max_len {
            t.insert("x-max-length".into(), AMQPValue::LongInt(n as i32));
        }
        if let Some(o) = l.overflow {
            t.insert("x-overflow".into(), lstr(o.as_str()));
        }
        if let Some(x) = &l.dlx {
            t.insert("x-dead-letter-exchange".into(), lstr(&self.real(x)));
        }
        if let Some(k) = &l.dlrk {
            t.insert("x-dead-letter-routing-key".into(), lstr(&self.real(k)));
        }
        t
    }

    fn policy_def(&self, l: &Limits) -> Value {
        let mut d = Map::new();
        if let Some(n) = l.max_len {
            d.insert("max-length".into(), json!(n));
        }
        if let Some(o) = l.overflow {
            d.insert("overflow".into(), json!(o.as_str()));
        }
        if let Some(x) = &l.dlx {
            d.insert("dead-letter-exchange".into(), json!(self.real(x)));
        }
        if let Some(k) = &l.dlrk {
            d.insert("dead-letter-routing-key".into(), json!(self.real(k)));
        }
        Value::Object(d)
    }

    /// Runs `op` (not a restart) and says what came back.
    pub async fn exec(&mut self, op: &Op) -> Outcome {
        match op {
            Op::DeclareQueue { queue, durable, args } => {
                let opts = QueueDeclareOptions {
                    durable: *durable,
                    ..Default::default()
                };
                let r = within(
                    "queue.declare",
                    self.chans[0].queue_declare(self.real(queue).as_str().into(), opts, self.queue_args(args)),
                )
                .await;
                match r {
                    Ok(q) => Outcome::Count(q.message_count() as usize),
                    Err(e) => {
                        // The channel is closed: open it again (the model
                        // requeued what it held).
                        self.chans[0] = self.open_chan(0).await;
                        Outcome::Refused(amqp_error(&e).0)
                    }
                }
            }
            Op::RedeclareDifferent { queue, durable, args } => {
                let opts = QueueDeclareOptions {
                    durable: *durable,
                    ..Default::default()
                };
                let ch = channel(&self.conn).await;
                let r = within(
                    "queue.declare",
                    ch.queue_declare(self.real(queue).as_str().into(), opts, self.queue_args(args)),
                )
                .await;
                Outcome::Refused(refusal(r))
            }
            Op::GetMissing { queue } => {
                let ch = channel(&self.conn).await;
                let r = within(
                    "basic.get",
                    ch.basic_get(self.real(queue).as_str().into(), BasicGetOptions { no_ack: false }),
                )
                .await;
                Outcome::Refused(refusal(r))
            }
            Op::DeleteQueue { queue } => {
                let r = within(
                    "queue.delete",
                    self.chans[0].queue_delete(self.real(queue).as_str().into(), QueueDeleteOptions::default()),
                )
                .await;
                Outcome::Count(map_err("queue.delete", r) as usize)
            }
            Op::Purge { queue } => {
                let r = within(
                    "queue.purge",
                    self.chans[0].queue_purge(self.real(queue).as_str().into(), QueuePurgeOptions::default()),
                )
                .await;
                Outcome::Count(map_err("queue.purge", r) as usize)
            }
            Op::DeclareExchange { x } => {
                let kind = match xkind(x).expect("one of ours") {
                    XKind::Direct => ExchangeKind::Direct,
                    XKind::Fanout => ExchangeKind::Fanout,
                    XKind::Topic => ExchangeKind::Topic,
                };
                let opts = ExchangeDeclareOptions {
                    durable: true,
                    ..Default::default()
                };
                declare_exchange(&self.chans[0], &self.real(x), kind, opts, FieldTable::default()).await;
                Outcome::Done
            }
            Op::DeleteExchange { x } => {
                let r = within(
                    "exchange.delete",
                    self.chans[0].exchange_delete(self.real(x).as_str().into(), ExchangeDeleteOptions::default()),
                )
                .await;
                map_err("exchange.delete", r);
                Outcome::Done
            }
            Op::Bind { x, queue, key } => {
                bind(
                    &self.chans[0],
                    &self.real(queue),
                    &self.real(x),
                    key,
                    FieldTable::default(),
                )
                .await;
                Outcome::Done
            }
            Op::Unbind { x, queue, key } => {
                let r = within(
                    "queue.unbind",
                    self.chans[0].queue_unbind(
                        self.real(queue).as_str().into(),
                        self.real(x).as_str().into(),
                        key.as_str().into(),
                        FieldTable::default(),
                    ),
                )
                .await;
                map_err("queue.unbind", r);
                Outcome::Done
            }
            Op::SetPolicy { name, queues, def } => {
                self.set_policy(name, queues, def).await;
                Outcome::Done
            }
            Op::ClearPolicy { name } => {
                let path = format!("/api/policies/%2F/{}", enc(&self.real_policy(name)));
                let r = tokio::task::block_in_place(|| self.api.delete(&path));
                assert_eq!(r.status, 204, "DELETE {path}: {}", r.text);
                self.settle_policy().await;
                Outcome::Done
            }
            Op::Publish {
                exchange,
                key,
                persistent,
                body,
            } => {
                let mut props = BasicProperties::default();
                if *persistent {
                    props = props.with_delivery_mode(2);
                }
                let c = publish_with(
                    &self.chans[0],
                    &self.real(exchange),
                    &self.real(key),
                    &wire_body(body),
                    props,
                    BasicPublishOptions::default(),
                )
                .await;
                Outcome::Confirm(c.is_ack())
            }
            Op::Get { ch, queue, no_ack } => {
                let r = within(
                    "basic.get",
                    self.chans[*ch].basic_get(self.real(queue).as_str().into(), BasicGetOptions { no_ack: *no_ack }),
                )
                .await;
                let got = map_err("basic.get", r).map(|m| {
                    let d = self.delivered(&m.delivery);
                    (d, m.message_count as usize)
                });
                Outcome::Got(got)
            }
            Op::Consume {
                ch,
                queue,
                prefetch,
                no_ack,
                expect,
            } => Outcome::Deliveries(self.consume(*ch, queue, *prefetch, *no_ack, *expect).await),
            Op::Settle { ch, tag, multiple, how } => {
                let c = &self.chans[*ch];
                let r = match (how, multiple) {
                    (Settle::Ack, _) => c.basic_ack(*tag, BasicAckOptions { multiple: *multiple }).await,
                    (_, false) if tag % 2 == 0 => {
                        let requeue = *how == Settle::Requeue;
                        c.basic_reject(*tag, BasicRejectOptions { requeue }).await
                    }
                    _ => {
                        let opts = BasicNackOptions {
                            multiple: *multiple,
                            requeue: *how == Settle::Requeue,
                        };
                        c.basic_nack(*tag, opts).await
                    }
                };
                map_err("settle", r);
                self.round_trip(*ch).await;
                Outcome::Done
            }
            Op::Recover { ch } => {
                let r = within(
                    "basic.recover",
                    self.chans[*ch].basic_recover(BasicRecoverOptions { requeue: true }),
                )
                .await;
                map_err("basic.recover", r);
                Outcome::Done
            }
            Op::CloseChannel { ch } => {
                let r = within("channel.close", self.chans[*ch].close(200, "model".into())).await;
                map_err("channel.close", r);
                self.chans[*ch] = self.open_chan(*ch).await;
                Outcome::Done
            }
            Op::Restart(_) | Op::Check => unreachable!("the runner does these"),
        }
    }

    /// A method with a reply on channel `ch`, so that what was sent before it
    /// (acks, rejects) has been handled, dead letters included, before the
    /// next operation.
    pub async fn round_trip(&self, ch: usize) {
        let opts = ExchangeDeclareOptions {
            passive: true,
            ..Default::default()
        };
        let r = within(
            "exchange.declare passive",
            self.chans[ch].exchange_declare("amq.direct".into(), ExchangeKind::Direct, opts, FieldTable::default()),
        )
        .await;
        map_err("round trip", r);
    }

    async fn consume(&self, ch: usize, queue: &str, prefetch: u16, no_ack: bool, expect: usize) -> Vec<Delivered> {
        let c = &self.chans[ch];
        if !no_ack {
            let r = within("basic.qos", c.basic_qos(prefetch, BasicQosOptions::default())).await;
            map_err("basic.qos", r);
        }
        let tag = "model-consumer";
        let opts = BasicConsumeOptions {
            no_ack,
            ..Default::default()
        };
        let r = within(
            "basic.consume",
            c.basic_consume(
                self.real(queue).as_str().into(),
                tag.into(),
                opts,
                FieldTable::default(),
            ),
        )
        .await;
        let mut consumer = map_err("basic.consume", r);
        let mut out = Vec::new();
        while out.len() < expect {
            out.push(self.delivered(&next(&mut consumer).await));
        }
        let r = within(
            "basic.cancel",
            c.basic_cancel(tag.into(), BasicCancelOptions::default()),
        )
        .await;
        map_err("basic.cancel", r);
        // Anything delivered before the cancel-ok is in the stream before its end.
        while let Some(d) = within("consumer end", consumer.next()).await {
            out.push(self.delivered(&map_err("delivery", d)));
        }
        out
    }

    fn real_policy(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    async fn set_policy(&self, name: &str, queues: &BTreeSet<String>, def: &Limits) {
        let alts: Vec<String> = queues.iter().map(|q| regex_escape(&self.real(q))).collect();
        let priority = POLICIES.iter().position(|p| *p == name).expect("one of ours");
        let body = json!({
            "pattern": format!("^({})$", alts.join("|")),
            "apply-to": "queues",
            "priority": priority,
            "definition": self.policy_def(def),
        });
        let path = format!("/api/policies/%2F/{}", enc(&self.real_policy(name)));
        let r = tokio::task::block_in_place(|| self.api.put(&path, body));
        assert!(matches!(r.status, 201 | 204), "PUT {path}: {} {}", r.status, r.text);
        self.settle_policy().await;
    }

    async fn settle_policy(&self) {
        if self.policy_settle_ms > 0 {
            tokio::time::sleep(std::time::Duration::from_millis(self.policy_settle_ms)).await;
        }
    }

    /// The message count of each queue (queue.declare passive).
    pub async fn count(&self, queue: &str) -> usize {
        let opts = QueueDeclareOptions {
            passive: true,
            ..Default::default()
        };
        declare_queue(&self.chans[0], &self.real(queue), opts, FieldTable::default())
            .await
            .message_count() as usize
    }

    /// Every message of `queue` with basic.get on a channel of its own, which
    /// is then closed (so all go back, flagged redelivered); also checks each
    /// get-ok's message count.
    pub async fn look(&self, queue: &str) -> Vec<Looked> {
        let ch = channel(&self.conn).await;
        let mut out = Vec::new();
        loop {
            let r = within(
                "basic.get",
                ch.basic_get(self.real(queue).as_str().into(), BasicGetOptions { no_ack: false }),
            )
            .await;
            let Some(m) = map_err("basic.get", r) else { break };
            out.push((
                from_wire(&m.delivery.data),
                m.delivery.redelivered,
                self.x_death(&m.delivery),
            ));
            assert!(out.len() < 100_000, "{queue} does not drain");
        }
        let r = within("channel.close", ch.close(200, "look".into())).await;
        map_err("channel.close", r);
        out
    }

    /// Names of our queues, exchanges and policies, and our bindings (logical).
    pub fn listing(&self) -> Listing {
        let get = |path: &str| tokio::task::block_in_place(|| self.api.ok(path));
        let names = |v: &Value, f: &dyn Fn(&str) -> Option<String>| -> BTreeSet<String> {
            v.as_array()
                .expect("a list")
                .iter()
                .filter_map(|o| f(o["name"].as_str().unwrap_or("")))
                .collect()
        };
        let queues = names(&get("/api/queues/%2F"), &|n| self.logical(n));
        let exchanges = names(&get("/api/exchanges/%2F"), &|n| self.logical(n));
        let policies = names(&get("/api/policies/%2F"), &|n| {
            n.strip_prefix(&self.prefix)
                .filter(|p| POLICIES.contains(p))
                .map(str::to_owned)
        });
        let bindings = get("/api/bindings/%2F")
            .as_array()
            .expect("a list")
            .iter()
            .filter_map(|b| {
                let x = self.logical(b["source"].as_str()?)?;
                let q = self.logical(b["destination"].as_str()?)?;
                Some((x, q, b["routing_key"].as_str()?.to_owned()))
            })
            .collect();
        Listing {
            queues,
            exchanges,
            policies,
            bindings,
        }
    }

    fn delivered(&self, d: &lapin::message::Delivery) -> Delivered {
        Delivered {
            tag: d.delivery_tag,
            body: from_wire(&d.data),
            redelivered: d.redelivered,
            deaths: self.x_death(d),
        }
    }

    /// x-death as the model writes it (`q1:maxlen:2`, newest first), with
    /// logical queue names.
    fn x_death(&self, d: &lapin::message::Delivery) -> Vec<String> {
        let Some(AMQPValue::FieldArray(a)) = d
            .properties
            .headers()
            .as_ref()
            .and_then(|h| h.inner().get("x-death"))
            .cloned()
        else {
            return Vec::new();
        };
        let text = |t: &FieldTable, k: &str| match t.inner().get(k) {
            Some(AMQPValue::LongString(s)) => String::from_utf8_lossy(s.as_bytes()).into_owned(),
            other => format!("{other:?}"),
        };
        a.as_slice()
            .iter()
            .map(|e| match e {
                AMQPValue::FieldTable(t) => {
                    let q = text(t, "queue");
                    let count = match t.inner().get("count") {
                        Some(AMQPValue::LongLongInt(n)) => n.to_string(),
                        Some(AMQPValue::LongInt(n)) => n.to_string(),
                        other => format!("{other:?}"),
                    };
                    format!("{}:{}:{count}", self.logical(&q).unwrap_or(q), text(t, "reason"))
                }
                other => format!("{other:?}"),
            })
            .collect()
    }

    /// Drops the connection without a close (the broker is gone or going).
    pub fn abandon(self) {
        drop(self.chans);
        drop(self.conn);
    }
}

#[derive(Debug, PartialEq, Eq)]
pub struct Listing {
    pub queues: BTreeSet<String>,
    pub exchanges: BTreeSet<String>,
    pub policies: BTreeSet<String>,
    pub bindings: BTreeSet<(String, String, String)>,
}

/// The bytes sent for the model's body `m12`: the body, a space and some
/// filler whose length (0 to 700 bytes) follows from the body, so messages
/// differ in size and 4 KiB segments hold a few of them (rollovers, deletions
/// of acked segments and spare files happen often).
fn wire_body(body: &str) -> Vec<u8> {
    let n: usize = body
        .bytes()
        .map(usize::from)
        .fold(7, |h, b| h.wrapping_mul(31).wrapping_add(b));
    let mut out = body.as_bytes().to_vec();
    out.push(b' ');
    out.resize(out.len() + n % 701, b'.');
    out
}

/// The model's body of a message received: checked whole against
/// [`wire_body`] (a message that differs shows as `?` and its text).
fn from_wire(data: &[u8]) -> String {
    let text = String::from_utf8_lossy(data);
    let body = text.split(' ').next().unwrap_or_default().to_owned();
    if wire_body(&body) == data {
        body
    } else {
        format!("?{text}")
    }
}

fn refusal<T: std::fmt::Debug>(r: lapin::Result<T>) -> u16 {
    match r {
        Ok(v) => panic!("expected a channel error, got Ok({v:?})"),
        Err(e) => amqp_error(&e).0,
    }
}

fn regex_escape(s: &str) -> String {
    s.chars()
        .flat_map(|c| {
            let special = "\\.+*?()|[]{}^$".contains(c);
            special.then_some('\\').into_iter().chain(std::iter::once(c))
        })
        .collect()
}
