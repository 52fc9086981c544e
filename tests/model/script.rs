//! Operations as one line of text each: how the log shows them, and what
//! `MODEL_REPLAY=FILE` reads back, so that a failing seed's operations can be
//! cut down by hand (delete lines, replay, repeat). A line is `N: OP -> ...`
//! or just `OP`; anything else (the `seen` lines, `#` comments) is skipped.
//!
//! ```text
//! declare q0 durable max=2 overflow=reject-publish dlx=- dlrk=q1   (dlx=- is "")
//! redeclare-different q0 durable max=3
//! get-missing q3 | delete q0 | purge q0 | xdeclare x0 | xdelete x0
//! bind x0 q1 a.# | unbind x0 q1 a.#
//! policy p0 q0,q2 max=1 dlx=x1 | unpolicy p0
//! publish - q0 persistent | publish x1 a.b transient      (- is the default exchange)
//! get 1 q3 ack | consume 2 q3 3 noack | settle 2 5 multiple requeue
//! recover 1 | close 0 | restart clean|kill9|kill9-settled | check
//! ```

use std::collections::BTreeSet;

use super::ops::Op;
use super::restart::Restart;
use super::semantics::Settle;
use super::state::*;

fn limits_words(l: &Limits) -> String {
    let mut w = Vec::new();
    if let Some(n) = l.max_len {
        w.push(format!("max={n}"));
    }
    if let Some(o) = l.overflow {
        w.push(format!("overflow={}", o.as_str()));
    }
    if let Some(x) = &l.dlx {
        w.push(format!("dlx={}", if x.is_empty() { "-" } else { x }));
    }
    if let Some(k) = &l.dlrk {
        w.push(format!("dlrk={k}"));
    }
    w.join(" ")
}

fn parse_limits(words: &[&str]) -> Result<Limits, String> {
    let mut l = Limits::default();
    for w in words {
        let (k, v) = w.split_once('=').ok_or_else(|| format!("not key=value: {w}"))?;
        match k {
            "max" => l.max_len = Some(v.parse().map_err(|_| format!("bad max: {v}"))?),
            "overflow" => {
                l.overflow = Some(match v {
                    "drop-head" => Overflow::DropHead,
                    "reject-publish" => Overflow::RejectPublish,
                    _ => return Err(format!("bad overflow: {v}")),
                })
            }
            "dlx" => l.dlx = Some(if v == "-" { String::new() } else { v.to_owned() }),
            "dlrk" => l.dlrk = Some(v.to_owned()),
            _ => return Err(format!("unknown setting: {k}")),
        }
    }
    Ok(l)
}

fn durability(durable: bool) -> &'static str {
    if durable {
        "durable"
    } else {
        "transient"
    }
}

fn settle_word(how: Settle) -> &'static str {
    match how {
        Settle::Ack => "ack",
        Settle::Requeue => "requeue",
        Settle::Discard => "discard",
    }
}

fn ack_word(no_ack: bool) -> &'static str {
    if no_ack {
        "noack"
    } else {
        "ack"
    }
}

impl Op {
    pub fn to_line(&self) -> String {
        let line = match self {
            Op::DeclareQueue { queue, durable, args } => {
                format!("declare {queue} {} {}", durability(*durable), limits_words(args))
            }
            Op::RedeclareDifferent { queue, durable, args } => {
                format!(
                    "redeclare-different {queue} {} {}",
                    durability(*durable),
                    limits_words(args)
                )
            }
            Op::GetMissing { queue } => format!("get-missing {queue}"),
            Op::DeleteQueue { queue } => format!("delete {queue}"),
            Op::Purge { queue } => format!("purge {queue}"),
            Op::DeclareExchange { x } => format!("xdeclare {x}"),
            Op::DeleteExchange { x } => format!("xdelete {x}"),
            Op::Bind { x, queue, key } => format!("bind {x} {queue} {key}"),
            Op::Unbind { x, queue, key } => format!("unbind {x} {queue} {key}"),
            Op::SetPolicy { name, queues, def } => {
                let qs: Vec<&str> = queues.iter().map(String::as_str).collect();
                format!("policy {name} {} {}", qs.join(","), limits_words(def))
            }
            Op::ClearPolicy { name } => format!("unpolicy {name}"),
            Op::Publish {
                exchange,
                key,
                persistent,
                ..
            } => {
                let x = if exchange.is_empty() { "-" } else { exchange };
                let p = if *persistent { "persistent" } else { "transient" };
                format!("publish {x} {key} {p}")
            }
            Op::Get { ch, queue, no_ack } => format!("get {ch} {queue} {}", ack_word(*no_ack)),
            Op::Consume {
                ch,
                queue,
                prefetch,
                no_ack,
                ..
            } => format!("consume {ch} {queue} {prefetch} {}", ack_word(*no_ack)),
            Op::Settle { ch, tag, multiple, how } => {
                let m = if *multiple { "multiple" } else { "single" };
                format!("settle {ch} {tag} {m} {}", settle_word(*how))
            }
            Op::Recover { ch } => format!("recover {ch}"),
            Op::CloseChannel { ch } => format!("close {ch}"),
            Op::Restart(Restart::Clean) => "restart clean".into(),
            Op::Restart(Restart::Kill9) => "restart kill9".into(),
            Op::Restart(Restart::Kill9Settled) => "restart kill9-settled".into(),
            Op::Check => "check".into(),
        };
        line.trim_end().to_owned()
    }

    /// The operation on a line of a log or script; None for other lines. A
    /// publish gets the model's next body when it is applied.
    pub fn parse(line: &str) -> Option<Result<Op, String>> {
        let line = line.trim();
        let line = match line.split_once(": ") {
            Some((n, rest)) if n.chars().all(|c| c.is_ascii_digit()) => rest,
            _ => line,
        };
        let line = line.split(" -> ").next().unwrap_or(line);
        let line = line.split(" (").next().unwrap_or(line);
        let w: Vec<&str> = line.split_whitespace().collect();
        let first = *w.first()?;
        if first.starts_with('#') || first == "seen" || first == "model" || first.starts_with("seed") {
            return None;
        }
        Some(parse_words(&w))
    }
}

fn num<T: std::str::FromStr>(w: &[&str], i: usize) -> Result<T, String> {
    let s = w.get(i).ok_or("missing argument")?;
    s.parse().map_err(|_| format!("not a number: {s}"))
}

fn word(w: &[&str], i: usize) -> Result<String, String> {
    w.get(i).map(|s| s.to_string()).ok_or_else(|| "missing argument".into())
}

fn parse_words(w: &[&str]) -> Result<Op, String> {
    let durable = |i: usize| match w.get(i) {
        Some(&"durable") => Ok(true),
        Some(&"transient") => Ok(false),
        other => Err(format!("durable or transient, not {other:?}")),
    };
    let no_ack = |i: usize| match w.get(i) {
        Some(&"noack") => Ok(true),
        Some(&"ack") => Ok(false),
        other => Err(format!("ack or noack, not {other:?}")),
    };
    Ok(match w[0] {
        "declare" => Op::DeclareQueue {
            queue: word(w, 1)?,
            durable: durable(2)?,
            args: parse_limits(&w[3..])?,
        },
        "redeclare-different" => Op::RedeclareDifferent {
            queue: word(w, 1)?,
            durable: durable(2)?,
            args: parse_limits(&w[3..])?,
        },
        "get-missing" => Op::GetMissing { queue: word(w, 1)? },
        "delete" => Op::DeleteQueue { queue: word(w, 1)? },
        "purge" => Op::Purge { queue: word(w, 1)? },
        "xdeclare" => Op::DeclareExchange { x: word(w, 1)? },
        "xdelete" => Op::DeleteExchange { x: word(w, 1)? },
        "bind" | "unbind" => {
            let (x, queue, key) = (word(w, 1)?, word(w, 2)?, word(w, 3)?);
            if w[0] == "bind" {
                Op::Bind { x, queue, key }
            } else {
                Op::Unbind { x, queue, key }
            }
        }
        "policy" => Op::SetPolicy {
            name: word(w, 1)?,
            queues: word(w, 2)?.split(',').map(str::to_owned).collect::<BTreeSet<_>>(),
            def: parse_limits(&w[3..])?,
        },
        "unpolicy" => Op::ClearPolicy { name: word(w, 1)? },
        "publish" => Op::Publish {
            exchange: word(w, 1).map(|x| if x == "-" { String::new() } else { x })?,
            key: word(w, 2)?,
            persistent: match w.get(3) {
                Some(&"persistent") => true,
                Some(&"transient") => false,
                other => return Err(format!("persistent or transient, not {other:?}")),
            },
            body: String::new(),
        },
        "get" => Op::Get {
            ch: num(w, 1)?,
            queue: word(w, 2)?,
            no_ack: no_ack(3)?,
        },
        "consume" => Op::Consume {
            ch: num(w, 1)?,
            queue: word(w, 2)?,
            prefetch: num(w, 3)?,
            no_ack: no_ack(4)?,
            expect: 0,
        },
        "settle" => Op::Settle {
            ch: num(w, 1)?,
            tag: num(w, 2)?,
            multiple: word(w, 3)? == "multiple",
            how: match w.get(4) {
                Some(&"ack") => Settle::Ack,
                Some(&"requeue") => Settle::Requeue,
                Some(&"discard") => Settle::Discard,
                other => return Err(format!("ack, requeue or discard, not {other:?}")),
            },
        },
        "recover" => Op::Recover { ch: num(w, 1)? },
        "close" => Op::CloseChannel { ch: num(w, 1)? },
        "restart" => Op::Restart(match w.get(1) {
            Some(&"clean") => Restart::Clean,
            Some(&"kill9") => Restart::Kill9,
            Some(&"kill9-settled") => Restart::Kill9Settled,
            other => return Err(format!("clean, kill9 or kill9-settled, not {other:?}")),
        }),
        "check" => Op::Check,
        other => return Err(format!("unknown operation {other}")),
    })
}

/// Whether a replayed operation makes sense in the model's state (a cut-down
/// script may settle a tag that no longer exists, bind a deleted queue...);
/// the runner skips it otherwise. Fills in what depends on the state.
pub fn fit(op: &mut Op, m: &Model) -> bool {
    let queue_ok = |q: &str| m.queues.contains_key(q);
    let chan_ok = |ch: usize| ch < CHANNELS;
    match op {
        Op::DeclareQueue { queue, durable, args } => {
            if let Some(q) = m.queues.get(queue.as_str()) {
                (*durable, *args) = (q.durable, q.args.clone());
            }
            QUEUES.contains(&queue.as_str())
        }
        Op::RedeclareDifferent { queue, durable, args } => match m.queues.get(queue.as_str()) {
            Some(q) => {
                *durable = q.durable;
                *args = q.args.clone();
                args.max_len = Some(args.max_len.map_or(7, |n| n + 1));
                true
            }
            None => false,
        },
        Op::GetMissing { queue } => !queue_ok(queue),
        Op::DeleteQueue { queue } | Op::Purge { queue } => queue_ok(queue),
        Op::DeclareExchange { x } => xkind(x).is_some(),
        Op::DeleteExchange { x } => m.exchanges.contains(x.as_str()),
        Op::Bind { x, queue, .. } => m.exchanges.contains(x.as_str()) && queue_ok(queue),
        Op::Unbind { x, queue, key } => m.bindings.contains(&(x.clone(), queue.clone(), key.clone())),
        Op::SetPolicy { name, def, .. } => POLICIES.contains(&name.as_str()) && !def.is_empty(),
        Op::ClearPolicy { name } => m.policies.contains_key(name.as_str()),
        Op::Publish { exchange, body, .. } => {
            *body = format!("m{}", m.next_msg);
            exchange.is_empty() || m.exchanges.contains(exchange.as_str())
        }
        Op::Get { ch, queue, .. } | Op::Consume { ch, queue, .. } => chan_ok(*ch) && queue_ok(queue),
        Op::Settle { ch, tag, .. } => chan_ok(*ch) && m.chans[*ch].unacked.contains_key(tag),
        Op::Recover { ch } | Op::CloseChannel { ch } => chan_ok(*ch),
        Op::Restart(Restart::Kill9) => m.maybe_count() <= super::restart::MAYBE_MAX,
        Op::Restart(_) | Op::Check => true,
    }
}
