//! One run of a queue link (RabbitMQ's `rabbit_federation_queue_link`): the
//! upstream queue (the same name unless the upstream's `queue` says) is
//! declared there like ours when missing, and consumed with `x-priority`
//! -1, so the upstream's own consumers come first, only while the local
//! queue wants messages: the supervisor sends `true` while the queue has a
//! consumer of its own (priority 0 or more: another link's consumer does
//! not count) and no ready message, as RabbitMQ's queue decorator decides,
//! `false` otherwise, and the link consumes or cancels (with `nowait`, so
//! no reply is awaited between deliveries). What was delivered before a
//! cancel is still republished and acknowledged. Messages are republished
//! to the queue through the default exchange.

use ringmq_client::{sh, Consumer, QueueOptions};
use ringmq_codec::{BasicCancel, BasicConsume, FieldTable, FieldValue, Method, ShortStr, Table};
use tokio::sync::watch;

use super::headers::Hop;
use super::link::{exists_or_reopen, LinkCtx, Report};
use super::pump::{local_err, up_err, LinkError, Pump, Republish, Target};
use crate::core::model::shovel::AckMode;

/// What the link declares the upstream queue with when it is missing there.
#[derive(Debug, Clone, PartialEq)]
pub struct QueueFacts {
    pub durable: bool,
    pub auto_delete: bool,
    pub arguments: Vec<u8>,
}

fn consume_or_cancel<'a>(
    queue: &'a str,
    tag: &'a str,
    no_ack: bool,
    args: &'a [u8],
    on: bool,
) -> Result<Method<'a>, LinkError> {
    let consumer_tag = sh(tag).map_err(up_err)?;
    if !on {
        return Ok(Method::BasicCancel(BasicCancel {
            consumer_tag,
            no_wait: true,
        }));
    }
    Ok(Method::BasicConsume(BasicConsume {
        ticket: 0,
        queue: sh(queue).map_err(up_err)?,
        consumer_tag,
        no_local: false,
        no_ack,
        exclusive: false,
        no_wait: true,
        arguments: Table::parse(args).map_err(|e| LinkError::Other(e.to_string()))?,
    }))
}

pub async fn run_once(
    ctx: &LinkCtx,
    facts: &QueueFacts,
    run: &mut watch::Receiver<bool>,
    report: &mut dyn Report,
) -> Result<(), LinkError> {
    let up_cfg = &ctx.upstream;
    let mut local = ctx.connect_local().await?;
    let (mut up, uri, up_vhost) = ctx.connect_upstream().await?;
    report.connected(&uri);
    let up_q = up_cfg.queue.clone().unwrap_or_else(|| ctx.key.name.clone());
    let mut ch = up.open_channel().await.map_err(up_err)?;
    let passive = QueueOptions {
        passive: true,
        ..QueueOptions::default()
    };
    let r = up.queue_declare(ch, &up_q, passive).await.map(drop);
    if !exists_or_reopen(&mut up, &mut ch, r).await.map_err(up_err)? {
        let o = QueueOptions {
            durable: facts.durable,
            auto_delete: facts.auto_delete,
            exclusive: false,
            passive: false,
            arguments: &facts.arguments,
        };
        up.queue_declare(ch, &up_q, o).await.map_err(up_err)?;
    }
    let no_ack = up_cfg.ack_mode == AckMode::NoAck;
    let prefetch = if no_ack { 0 } else { up_cfg.prefetch_count };
    if prefetch > 0 {
        up.qos(ch, prefetch).await.map_err(up_err)?;
    }
    let tag = (up_cfg.consumer_tag.clone()).unwrap_or_else(|| format!("federation-link-{}", ctx.key.upstream));
    let mut args = FieldTable::new();
    args.insert(ShortStr::truncate("x-priority"), FieldValue::I64(-1));
    let args = args.to_bytes();
    let consumer = Consumer::started(ch, &tag, prefetch, no_ack);
    up.keep_content();
    let local_ch = local.open_channel().await.map_err(local_err)?;
    if up_cfg.ack_mode == AckMode::OnConfirm {
        local.confirm_select(local_ch).await.map_err(local_err)?;
    }
    let hop = Hop::queue(&uri, &up_q, &up_vhost, up_cfg.trust_user_id);
    report.running(&ctx.connection_name());
    let target = Target::Queue(ctx.key.name.clone());
    let forward = Republish {
        hop,
        target,
        check: None,
    };
    let mut pump = Pump::new((up, consumer), (local, local_ch), up_cfg.ack_mode, forward, None);
    let mut consuming = false;
    loop {
        let want = *run.borrow_and_update();
        if want != consuming {
            let m = consume_or_cancel(&up_q, &tag, no_ack, &args, want)?;
            pump.src.push_method(ch, &m);
            consuming = want;
            report.consuming(&tag, want);
        }
        pump.drain(|_| {})?;
        pump.flush().await?;
        tokio::select! {
            r = pump.wait() => r?,
            r = run.changed() => {
                if r.is_err() {
                    return Ok(());
                }
            }
        }
    }
}
