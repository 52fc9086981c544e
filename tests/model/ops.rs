//! The operations and how a seeded generator picks them from the model's
//! state (only what the model can predict: no publish to a missing exchange,
//! settles of known tags, re-declares with the queue's own arguments or, to be
//! refused, with a different one).

use std::collections::BTreeSet;

use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::Rng;

use super::restart::{Restart, MAYBE_MAX};
use super::semantics::Settle;
use super::state::*;

#[derive(Clone, Debug)]
pub enum Op {
    /// A new queue, or the same arguments again (declare-ok with its count).
    DeclareQueue {
        queue: String,
        durable: bool,
        args: Limits,
    },
    /// Another x-max-length than the queue has: 406, on a channel of its own.
    RedeclareDifferent {
        queue: String,
        durable: bool,
        args: Limits,
    },
    /// basic.get of a queue that does not exist: 404, on a channel of its own.
    GetMissing {
        queue: String,
    },
    DeleteQueue {
        queue: String,
    },
    Purge {
        queue: String,
    },
    DeclareExchange {
        x: String,
    },
    DeleteExchange {
        x: String,
    },
    Bind {
        x: String,
        queue: String,
        key: String,
    },
    Unbind {
        x: String,
        queue: String,
        key: String,
    },
    SetPolicy {
        name: String,
        queues: BTreeSet<String>,
        def: Limits,
    },
    ClearPolicy {
        name: String,
    },
    /// A confirmed publish on channel 0; `body` is the model's next message.
    Publish {
        exchange: String,
        key: String,
        persistent: bool,
        body: String,
    },
    Get {
        ch: usize,
        queue: String,
        no_ack: bool,
    },
    /// basic.consume until `expect` deliveries (the model's count), then cancel.
    Consume {
        ch: usize,
        queue: String,
        prefetch: u16,
        no_ack: bool,
        expect: usize,
    },
    Settle {
        ch: usize,
        tag: u64,
        multiple: bool,
        how: Settle,
    },
    /// basic.recover with requeue.
    Recover {
        ch: usize,
    },
    CloseChannel {
        ch: usize,
    },
    Restart(Restart),
    /// A full look at every queue without a restart.
    Check,
}

/// The kinds of operation and their weights in the mixed phase.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Declare,
    RedeclareDifferent,
    GetMissing,
    Delete,
    Purge,
    Exchange,
    Bind,
    Unbind,
    Policy,
    Publish,
    Get,
    Consume,
    Settle,
    Recover,
    CloseChannel,
    Check,
    Restart,
}

const WEIGHTS: [(Kind, u32); 17] = [
    (Kind::Declare, 80),
    (Kind::RedeclareDifferent, 10),
    (Kind::GetMissing, 5),
    (Kind::Delete, 35),
    (Kind::Purge, 25),
    (Kind::Exchange, 25),
    (Kind::Bind, 60),
    (Kind::Unbind, 15),
    (Kind::Policy, 30),
    (Kind::Publish, 250),
    (Kind::Get, 140),
    (Kind::Consume, 60),
    (Kind::Settle, 160),
    (Kind::Recover, 15),
    (Kind::CloseChannel, 25),
    (Kind::Check, 10),
    (Kind::Restart, 45),
];

/// A stretch of operations with other weights, so that queues fill up, drain
/// (acks pile up without the group commits of publishes: what a kill -9 may
/// bring back) or churn through declares, deletes, bindings and policies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Mixed,
    Fill,
    Drain,
    Churn,
}

impl Phase {
    /// Weight in tenths.
    fn scale(self, k: Kind) -> u32 {
        use Kind::*;
        match (self, k) {
            (Phase::Fill, Publish) => 30,
            (Phase::Fill, Get | Settle | Consume | Purge | Delete) => 5,
            (Phase::Drain, Publish) => 2,
            (Phase::Drain, Get | Consume | Settle | Restart) => 20,
            (Phase::Churn, Declare | Delete | Exchange | Bind | Unbind | RedeclareDifferent) => 20,
            (Phase::Churn, Policy) => 30,
            (Phase::Churn, Publish) => 5,
            _ => 10,
        }
    }
}

/// Picks operations from the model's state with a seeded generator.
pub struct Generator {
    rng: StdRng,
    /// Against an external broker: no restarts; policies set no `overflow`
    /// (RabbitMQ 3.10 applies a policy's max-length before its overflow, so a
    /// policy that brings both trims with the queue's old overflow:
    /// `max-length: 0` with `reject-publish` emptied a queue of 2, where
    /// ringmq keeps the messages, as reject-publish says); and no settles of
    /// several deliveries (RabbitMQ dead-letters a batch of rejects in queue
    /// order, ringmq and the model in delivery-tag order).
    external: bool,
    phase: Phase,
    phase_left: u32,
}

impl Generator {
    pub fn new(rng: StdRng, external: bool) -> Generator {
        Generator {
            rng,
            external,
            phase: Phase::Mixed,
            phase_left: 0,
        }
    }

    /// For choices the runner makes (which check to run).
    pub fn rng(&mut self) -> &mut StdRng {
        &mut self.rng
    }

    pub fn next_op(&mut self, m: &Model) -> Op {
        if self.phase_left == 0 {
            let phases = [Phase::Mixed, Phase::Fill, Phase::Drain, Phase::Churn];
            self.phase = phases[self.rng.random_range(0..phases.len())];
            self.phase_left = self.rng.random_range(10..40);
        }
        self.phase_left -= 1;
        let total: u32 = WEIGHTS.iter().map(|(k, w)| w * self.phase.scale(*k)).sum();
        loop {
            let mut roll = self.rng.random_range(0..total);
            let kind = WEIGHTS
                .iter()
                .find(|(k, w)| {
                    let w = w * self.phase.scale(*k);
                    if roll < w {
                        return true;
                    }
                    roll -= w;
                    false
                })
                .map(|(k, _)| *k)
                .expect("roll below the total");
            if let Some(op) = self.op(kind, m) {
                return op;
            }
        }
    }

    fn op(&mut self, kind: Kind, m: &Model) -> Option<Op> {
        let external = self.external;
        let rng = &mut self.rng;
        Some(match kind {
            Kind::Declare => {
                let queue = pick(rng, &QUEUES)?.to_string();
                match m.queues.get(&queue) {
                    Some(q) => Op::DeclareQueue {
                        queue,
                        durable: q.durable,
                        args: q.args.clone(),
                    },
                    None => Op::DeclareQueue {
                        queue,
                        durable: rng.random_bool(0.9),
                        args: random_limits(rng, false),
                    },
                }
            }
            Kind::RedeclareDifferent => {
                let queue = existing_queue(m, rng)?;
                let q = &m.queues[&queue];
                let mut args = q.args.clone();
                args.max_len = Some(args.max_len.map_or(7, |n| n + 1));
                Op::RedeclareDifferent {
                    queue,
                    durable: q.durable,
                    args,
                }
            }
            Kind::GetMissing => {
                let queue = pick(rng, &QUEUES)?.to_string();
                if m.queues.contains_key(&queue) {
                    return None;
                }
                Op::GetMissing { queue }
            }
            Kind::Delete => Op::DeleteQueue {
                queue: existing_queue(m, rng)?,
            },
            Kind::Purge => Op::Purge {
                queue: existing_queue(m, rng)?,
            },
            Kind::Exchange => {
                let x = pick(rng, &EXCHANGES)?.0.to_string();
                if m.exchanges.contains(&x) && rng.random_bool(0.6) {
                    Op::DeleteExchange { x }
                } else {
                    Op::DeclareExchange { x }
                }
            }
            Kind::Bind => {
                let x: Vec<&String> = m.exchanges.iter().collect();
                let x = pick(rng, &x)?.to_string();
                let queue = existing_queue(m, rng)?;
                let key = pick(rng, &BINDING_KEYS)?.to_string();
                Op::Bind { x, queue, key }
            }
            Kind::Unbind => {
                let b: Vec<&(String, String, String)> = m.bindings.iter().collect();
                let (x, queue, key) = (*pick(rng, &b)?).clone();
                Op::Unbind { x, queue, key }
            }
            Kind::Policy => {
                let name = pick(rng, &POLICIES)?.to_string();
                if m.policies.contains_key(&name) && rng.random_bool(0.4) {
                    return Some(Op::ClearPolicy { name });
                }
                let mut queues: BTreeSet<String> = QUEUES
                    .iter()
                    .filter(|_| rng.random_bool(0.4))
                    .map(|s| s.to_string())
                    .collect();
                if queues.is_empty() {
                    queues.insert(pick(rng, &QUEUES)?.to_string());
                }
                let mut def = random_limits(rng, true);
                if external {
                    def.overflow = None;
                    if def.is_empty() {
                        return None;
                    }
                }
                Op::SetPolicy { name, queues, def }
            }
            Kind::Publish => {
                let (exchange, key) = if rng.random_bool(0.5) || m.exchanges.is_empty() {
                    // Mostly to a queue that exists; sometimes unroutable.
                    let key = match existing_queue(m, rng) {
                        Some(q) if rng.random_bool(0.9) => q,
                        _ => pick(rng, &QUEUES)?.to_string(),
                    };
                    (String::new(), key)
                } else {
                    let x: Vec<&String> = m.exchanges.iter().collect();
                    (pick(rng, &x)?.to_string(), pick(rng, &ROUTING_KEYS)?.to_string())
                };
                Op::Publish {
                    exchange,
                    key,
                    persistent: rng.random_bool(0.8),
                    body: format!("m{}", m.next_msg),
                }
            }
            Kind::Get => Op::Get {
                ch: rng.random_range(0..CHANNELS),
                queue: busy_queue(m, rng)?,
                no_ack: rng.random_bool(0.2),
            },
            Kind::Consume => {
                let no_ack = rng.random_bool(0.15);
                Op::Consume {
                    ch: rng.random_range(1..CHANNELS),
                    queue: busy_queue(m, rng)?,
                    prefetch: if no_ack { 0 } else { rng.random_range(1..=4) },
                    no_ack,
                    expect: 0,
                }
            }
            Kind::Settle => {
                let held: Vec<usize> = (0..CHANNELS).filter(|&c| !m.chans[c].unacked.is_empty()).collect();
                let ch = *pick(rng, &held)?;
                let tags: Vec<u64> = m.chans[ch].unacked.keys().copied().collect();
                let how = match rng.random_range(0..4) {
                    0 | 1 => Settle::Ack,
                    2 => Settle::Requeue,
                    _ => Settle::Discard,
                };
                Op::Settle {
                    ch,
                    tag: *pick(rng, &tags)?,
                    multiple: !external && rng.random_bool(0.25),
                    how,
                }
            }
            Kind::Recover => {
                let held: Vec<usize> = (0..CHANNELS).filter(|&c| !m.chans[c].unacked.is_empty()).collect();
                Op::Recover { ch: *pick(rng, &held)? }
            }
            Kind::CloseChannel => Op::CloseChannel {
                ch: rng.random_range(0..CHANNELS),
            },
            Kind::Check => Op::Check,
            Kind::Restart if external => Op::Check,
            Kind::Restart => Op::Restart(match rng.random_range(0..5) {
                0 | 1 => Restart::Clean,
                2 | 3 if m.maybe_count() <= MAYBE_MAX => Restart::Kill9,
                _ => Restart::Kill9Settled,
            }),
        })
    }
}

fn pick<'a, T>(rng: &mut StdRng, items: &'a [T]) -> Option<&'a T> {
    items.choose(rng)
}

fn existing_queue(m: &Model, rng: &mut StdRng) -> Option<String> {
    let names: Vec<&String> = m.queues.keys().collect();
    pick(rng, &names).map(|s| s.to_string())
}

/// Mostly a queue with ready messages, sometimes any (an empty get is an
/// answer too).
fn busy_queue(m: &Model, rng: &mut StdRng) -> Option<String> {
    let busy: Vec<&String> = m.queues.iter().filter(|(_, q)| q.ready() > 0).map(|(n, _)| n).collect();
    match pick(rng, &busy) {
        Some(q) if rng.random_bool(0.8) => Some(q.to_string()),
        _ => existing_queue(m, rng),
    }
}

fn random_limits(rng: &mut StdRng, for_policy: bool) -> Limits {
    let mut l = Limits::default();
    loop {
        if rng.random_bool(0.4) {
            // Mostly small, so limits are reached; 0 is allowed too.
            l.max_len = Some(if rng.random_bool(0.1) {
                0
            } else {
                rng.random_range(1..=4)
            });
        }
        if rng.random_bool(0.3) {
            l.overflow = Some(if rng.random_bool(0.5) {
                Overflow::RejectPublish
            } else {
                Overflow::DropHead
            });
        }
        if rng.random_bool(0.5) {
            // The default exchange most: with a routing key it always reaches
            // a queue that exists.
            let xs = ["", "", "", "x0", "x1", "x2", MISSING_EXCHANGE];
            l.dlx = pick(rng, &xs).map(|s| s.to_string());
        }
        let dl_to_queue = l.dlx.as_deref() == Some("");
        if rng.random_bool(if dl_to_queue { 0.8 } else { 0.2 }) {
            l.dlrk = pick(rng, &QUEUES).map(|s| s.to_string());
        }
        // A policy must define something.
        if !for_policy || !l.is_empty() {
            return l;
        }
    }
}
