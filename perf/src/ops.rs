//! The control-plane scenarios: how many queues and idle connections a broker
//! holds (and at what memory), and how fast it binds, declares, connects and
//! starts consumers. Each operation is one request/response round trip, so the
//! numbers are per method, measured from one client.
//!
//! `durable-declare` declares -x durable queues one after another on one channel
//! and times only the declares (the queues are deleted afterwards, untimed): the
//! time per declare, printed for each tenth of the run, shows whether declaring
//! N durable queues costs O(N) (flat) or O(N²) (growing with N).

use std::time::{Duration, Instant};

use serde_json::json;

use crate::args::{Common, Ops};
use crate::stats;
use crate::tasks;
use ringmq_client::{Connection, QueueOptions, Result};

/// Connections opened concurrently by `connection-count`, as lavinmqperf does.
const CONNECT_BATCH: usize = 100;

pub fn run(name: &str, c: &Common, o: &Ops) -> std::result::Result<(), String> {
    let rt = tasks::current_thread();
    let rss_before = c.pid.and_then(stats::rss_bytes);
    let started = Instant::now();
    let timed = std::cell::Cell::new(None);
    let (ops, items, rss_loaded) = rt
        .block_on(async {
            match name {
                "queue-count" => queue_count(c, o).await,
                "durable-declare" => durable_declare(c, o, &timed).await,
                "connection-count" => connection_count(c, o).await,
                "bind-churn" => churn(c, o, Churn::Bind).await.map(|n| (n, 0, None)),
                "queue-churn" => churn(c, o, Churn::Queue).await.map(|n| (n, 0, None)),
                "connection-churn" => churn(c, o, Churn::Connection).await.map(|n| (n, 0, None)),
                "consumer-churn" => churn(c, o, Churn::Consumer).await.map(|n| (n, 0, None)),
                _ => unreachable!("scenario names are checked by the parser"),
            }
        })
        .map_err(|e| format!("{name}: {e}"))?;
    let elapsed = match name {
        // Only the declares are timed, not the deletes after them.
        "durable-declare" => timed.get().unwrap_or_else(|| started.elapsed()),
        _ => started.elapsed(),
    };
    let ops_per_s = stats::rate(0, ops, elapsed);
    let per_item = match (rss_before, rss_loaded) {
        (Some(b), Some(a)) if items > 0 => Some(a.saturating_sub(b) as f64 / items as f64),
        _ => None,
    };
    if c.json {
        let v = json!({
            "scenario": name,
            "ops": ops,
            "elapsed_s": elapsed.as_secs_f64(),
            "ops_per_s": ops_per_s.round(),
            "us_per_op": if ops > 0 { elapsed.as_secs_f64() * 1e6 / ops as f64 } else { 0.0 },
            "rss_before": rss_before,
            "rss_loaded": rss_loaded,
            "rss_per_item": per_item.map(f64::round),
        });
        println!("{v}");
    } else {
        println!(
            "{name}: {ops} operations in {:.2} s, {ops_per_s:.0} ops/s",
            elapsed.as_secs_f64()
        );
        if let (Some(b), Some(a)) = (rss_before, rss_loaded) {
            print!("broker RSS {} KiB before, {} KiB loaded", b / 1024, a / 1024);
            match per_item {
                Some(p) => println!(", {:.1} KiB per item", p / 1024.0),
                None => println!(),
            }
        }
    }
    Ok(())
}

/// Declares `count` queues; returns (ops, items, RSS with them all declared).
async fn queue_count(c: &Common, o: &Ops) -> Result<(u64, usize, Option<u64>)> {
    let mut conn = Connection::connect(&c.uri).await?;
    let ch = conn.open_channel().await?;
    for i in 0..o.count {
        conn.queue_declare(ch, &format!("{}-{i}", o.queue), QueueOptions::default())
            .await?;
    }
    let rss = c.pid.and_then(stats::rss_bytes);
    tokio::time::sleep(o.hold).await;
    for i in 0..o.count {
        conn.queue_delete(ch, &format!("{}-{i}", o.queue)).await?;
    }
    conn.close().await?;
    Ok((o.count as u64, o.count, rss))
}

/// Declares `count` durable queues, each waiting for its declare-ok, and puts the
/// time the declares took in `timed`; then deletes them. Prints the time per
/// declare of each tenth of the run (unless quiet or JSON).
async fn durable_declare(
    c: &Common,
    o: &Ops,
    timed: &std::cell::Cell<Option<Duration>>,
) -> Result<(u64, usize, Option<u64>)> {
    let mut conn = Connection::connect(&c.uri).await?;
    let ch = conn.open_channel().await?;
    let durable = QueueOptions {
        durable: true,
        ..QueueOptions::default()
    };
    let tenth = o.count.div_ceil(10).max(1);
    let started = Instant::now();
    let mut part = Instant::now();
    for i in 0..o.count {
        conn.queue_declare(ch, &format!("{}-{i}", o.queue), durable).await?;
        if (i + 1) % tenth == 0 || i + 1 == o.count {
            let n = (i % tenth + 1) as f64;
            if !c.quiet && !c.json {
                let us = part.elapsed().as_secs_f64() * 1e6 / n;
                eprintln!(
                    "declares {:>7}..{:<7} {us:>9.1} us per declare",
                    i + 1 - (i % tenth),
                    i + 1
                );
            }
            part = Instant::now();
        }
    }
    timed.set(Some(started.elapsed()));
    let rss = c.pid.and_then(stats::rss_bytes);
    tokio::time::sleep(o.hold).await;
    for i in 0..o.count {
        conn.queue_delete(ch, &format!("{}-{i}", o.queue)).await?;
    }
    conn.close().await?;
    Ok((o.count as u64, o.count, rss))
}

/// Opens `count` connections with `channels` channels each and holds them.
async fn connection_count(c: &Common, o: &Ops) -> Result<(u64, usize, Option<u64>)> {
    let mut conns = Vec::with_capacity(o.count);
    while conns.len() < o.count {
        let batch = CONNECT_BATCH.min(o.count - conns.len());
        let mut set = tokio::task::JoinSet::new();
        for _ in 0..batch {
            let (uri, channels) = (c.uri.clone(), o.channels);
            set.spawn(async move {
                let mut conn = Connection::connect(&uri).await?;
                for _ in 0..channels {
                    conn.open_channel().await?;
                }
                Ok::<_, ringmq_client::ClientError>(conn)
            });
        }
        while let Some(r) = set.join_next().await {
            conns.push(r.expect("connect task panicked")?);
        }
        if !c.quiet && !c.json {
            eprintln!("{} connections", conns.len());
        }
    }
    // Let the broker settle its per-connection buffers before reading RSS.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss = c.pid.and_then(stats::rss_bytes);
    tokio::time::sleep(o.hold).await;
    for conn in conns {
        conn.close().await?;
    }
    Ok(((o.count * (1 + o.channels)) as u64, o.count, rss))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Churn {
    Bind,
    Queue,
    Connection,
    Consumer,
}

/// Repeats one operation pair for the duration; returns the operations done.
async fn churn(c: &Common, o: &Ops, kind: Churn) -> Result<u64> {
    let mut conn = Connection::connect(&c.uri).await?;
    let ch = conn.open_channel().await?;
    if matches!(kind, Churn::Bind | Churn::Consumer) {
        conn.queue_declare(ch, &o.queue, QueueOptions::default()).await?;
    }
    let deadline = Instant::now() + o.duration;
    let mut ops = 0u64;
    let mut i = 0u64;
    while Instant::now() < deadline {
        i += 1;
        match kind {
            Churn::Bind => {
                let key = format!("k{}", i % 1000);
                conn.queue_bind(ch, &o.queue, "amq.direct", &key).await?;
                conn.queue_unbind(ch, &o.queue, "amq.direct", &key).await?;
                ops += 2;
            }
            Churn::Queue => {
                let q = format!("{}-{i}", o.queue);
                conn.queue_declare(ch, &q, QueueOptions::default()).await?;
                conn.queue_delete(ch, &q).await?;
                ops += 2;
            }
            Churn::Connection => {
                let mut c2 = Connection::connect(&c.uri).await?;
                c2.open_channel().await?;
                c2.close().await?;
                ops += 1;
            }
            Churn::Consumer => {
                let tag = conn.consume(ch, &o.queue, true, &[]).await?;
                conn.cancel(ch, &tag).await?;
                ops += 2;
            }
        }
    }
    if matches!(kind, Churn::Bind | Churn::Consumer) {
        conn.queue_delete(ch, &o.queue).await?;
    }
    conn.close().await?;
    Ok(ops)
}
