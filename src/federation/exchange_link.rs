//! One run of an exchange link, set up on the upstream as RabbitMQ 3.10's
//! `rabbit_federation_exchange_link` does, so either broker can be the
//! other's upstream:
//!
//! - the upstream exchange, declared like the downstream one when missing;
//! - a durable queue `federation: X -> CLUSTER` (`:DX` or `:DVHOST:DX` after
//!   it when the downstream's name or vhost differs), with `x-expires` and
//!   `x-message-ttl` from the upstream's `expires` and `message-ttl`;
//! - the helper exchange `<queue> A` (or `B`), type `x-federation-upstream` (a plain
//!   fanout on a broker without it), internal, auto-delete, with
//!   `x-max-hops`, `x-downstream-name`, `x-downstream-vhost`; the queue
//!   bound to it;
//! - the upstream exchange bound to the helper with each of the downstream
//!   exchange's bindings' routing keys and arguments (`bindings.rs`), kept in
//!   sync while the link runs: the supervisor sends the set as it changes,
//!   the link binds and unbinds with `nowait` on its command channel (a
//!   refusal closes the channel, which ends the run);
//! - a consumer on the queue (prefetch `prefetch-count`), each delivery
//!   republished to the downstream exchange (`pump.rs`).
//!
//! Each run makes a new helper with the other suffix (A, B) than the one
//! it finds upstream, binds the queue and every key to it, and only then
//! deletes the old one, as RabbitMQ does: the queue is bound to one helper
//! or both all the while, so nothing published upstream across a restart is
//! missed (`tests/federation.rs` restarts a link under a publisher).
//! RabbitMQ remembers the suffix in its database; here the upstream says
//! which one is there.

use ringmq_client::{sh, Consumer, ExchangeOptions, QueueOptions};
use ringmq_codec::{ExchangeBind, ExchangeUnbind, FieldTable, FieldValue, Method, ShortStr, Table};
use tokio::sync::watch;

use super::bindings::{Binder, BindingSet};
use super::headers::Hop;
use super::link::{exists_or_reopen, LinkCtx, Report};
use super::pump::{local_err, up_err, LinkError, LoopCheck, Pump, Republish, Target};
use crate::core::model::exchange::federation_upstream::{DOWNSTREAM_NAME_ARG, DOWNSTREAM_VHOST_ARG, MAX_HOPS_ARG};
use crate::core::model::shovel::AckMode;

/// What the link declares the upstream exchange with when it is missing
/// there: the downstream exchange's own declaration.
#[derive(Debug, Clone, PartialEq)]
pub struct ExchangeFacts {
    pub kind: String,
    pub durable: bool,
    pub auto_delete: bool,
    pub internal: bool,
    pub arguments: Vec<u8>,
}

/// RabbitMQ's upstream queue name.
pub fn queue_name(up_exchange: &str, up_vhost: &str, exchange: &str, vhost: &str, cluster: &str) -> String {
    let down = if vhost != up_vhost {
        format!(":{vhost}:{exchange}")
    } else if exchange != up_exchange {
        format!(":{exchange}")
    } else {
        String::new()
    };
    format!("federation: {up_exchange} -> {cluster}{down}")
}

fn purpose(t: &mut FieldTable) {
    t.insert(
        ShortStr::truncate("x-internal-purpose"),
        FieldValue::LongString(b"federation".to_vec()),
    );
}

fn bind_method<'a>(
    helper: &'a str,
    up_x: &'a str,
    key: &'a str,
    args: &'a [u8],
    unbind: bool,
) -> Result<Method<'a>, LinkError> {
    let (destination, source) = (sh(helper).map_err(up_err)?, sh(up_x).map_err(up_err)?);
    let routing_key = sh(key).map_err(up_err)?;
    let arguments = Table::parse(args).map_err(|e| LinkError::Other(e.to_string()))?;
    Ok(match unbind {
        false => Method::ExchangeBind(ExchangeBind {
            ticket: 0,
            destination,
            source,
            routing_key,
            no_wait: true,
            arguments,
        }),
        true => Method::ExchangeUnbind(ExchangeUnbind {
            ticket: 0,
            destination,
            source,
            routing_key,
            no_wait: true,
            arguments,
        }),
    })
}

/// One run: Err when a side failed (the supervisor starts it again after
/// `reconnect-delay`), Ok when the supervisor let go of it.
pub async fn run_once(
    ctx: &LinkCtx,
    facts: &ExchangeFacts,
    bindings: &mut watch::Receiver<BindingSet>,
    report: &mut dyn Report,
) -> Result<(), LinkError> {
    let up_cfg = &ctx.upstream;
    let mut local = ctx.connect_local().await?;
    let (mut up, uri, up_vhost) = ctx.connect_upstream().await?;
    report.connected(&uri);
    let up_x = up_cfg.exchange.clone().unwrap_or_else(|| ctx.key.name.clone());
    let q = queue_name(&up_x, &up_vhost, &ctx.key.name, &ctx.key.vhost, &ctx.cluster);

    let mut ch = up.open_channel().await.map_err(up_err)?;
    // The upstream exchange: used as it is, or declared like ours.
    let passive = ExchangeOptions {
        passive: true,
        ..ExchangeOptions::default()
    };
    let r = up.exchange_declare_with(ch, &up_x, &facts.kind, passive).await;
    if !exists_or_reopen(&mut up, &mut ch, r).await.map_err(up_err)? {
        let o = ExchangeOptions {
            durable: facts.durable,
            auto_delete: facts.auto_delete,
            internal: facts.internal,
            passive: false,
            arguments: &facts.arguments,
        };
        up.exchange_declare_with(ch, &up_x, &facts.kind, o)
            .await
            .map_err(up_err)?;
    }
    let mut qargs = FieldTable::new();
    if let Some(ms) = up_cfg.expires_ms {
        qargs.insert(ShortStr::truncate("x-expires"), FieldValue::I64(ms as i64));
    }
    if let Some(ms) = up_cfg.message_ttl_ms {
        qargs.insert(ShortStr::truncate("x-message-ttl"), FieldValue::I64(ms as i64));
    }
    purpose(&mut qargs);
    let qargs = qargs.to_bytes();
    let qo = QueueOptions {
        durable: true,
        arguments: &qargs,
        ..QueueOptions::default()
    };
    up.queue_declare(ch, &q, qo).await.map_err(up_err)?;
    // The helper: a new one each run (its arguments this run's), the old
    // one deleted once the new one is bound.
    let r = up
        .exchange_declare_with(ch, &format!("{q} A"), "x-federation-upstream", passive)
        .await;
    let a_there = exists_or_reopen(&mut up, &mut ch, r).await.map_err(up_err)?;
    let (suffix, old) = if a_there { ("B", "A") } else { ("A", "B") };
    let (helper, old) = (format!("{q} {suffix}"), format!("{q} {old}"));
    let r = up.exchange_delete(ch, &helper).await;
    exists_or_reopen(&mut up, &mut ch, r).await.map_err(up_err)?;
    let mut xargs = FieldTable::new();
    xargs.insert(
        ShortStr::truncate(MAX_HOPS_ARG),
        FieldValue::I64(up_cfg.max_hops as i64),
    );
    xargs.insert(
        ShortStr::truncate(DOWNSTREAM_NAME_ARG),
        FieldValue::LongString(ctx.cluster.as_bytes().to_vec()),
    );
    xargs.insert(
        ShortStr::truncate(DOWNSTREAM_VHOST_ARG),
        FieldValue::LongString(ctx.key.vhost.as_bytes().to_vec()),
    );
    purpose(&mut xargs);
    let xargs = xargs.to_bytes();
    let helper_opts = |arguments| ExchangeOptions {
        durable: true,
        auto_delete: true,
        internal: true,
        passive: false,
        arguments,
    };
    match up
        .exchange_declare_with(ch, &helper, "x-federation-upstream", helper_opts(&xargs))
        .await
    {
        Ok(()) => {}
        // 503: the upstream has no such type (no federation plugin): a
        // fanout, and the loop check is ours alone, as RabbitMQ falls back.
        Err(ringmq_client::ClientError::Closed { code: 503, channel, .. }) if channel != 0 => {
            ch = up.open_channel().await.map_err(up_err)?;
            let mut fan = FieldTable::new();
            purpose(&mut fan);
            let fan = fan.to_bytes();
            up.exchange_declare_with(ch, &helper, "fanout", helper_opts(&fan))
                .await
                .map_err(up_err)?;
        }
        Err(e) => return Err(up_err(e)),
    }
    up.queue_bind(ch, &q, &helper, "").await.map_err(up_err)?;

    let binder = Binder {
        max_hops: up_cfg.max_hops,
        cluster: ctx.cluster.clone(),
        vhost: ctx.key.vhost.clone(),
        exchange: ctx.key.name.clone(),
        suffix,
        upstream_cluster: up.server_cluster_name().map(str::to_owned),
        upstream_vhost: up_vhost.clone(),
    };
    let mut have: BindingSet = bindings.borrow_and_update().clone();
    for (key, args) in &have {
        if let Some(a) = binder.arguments(args) {
            up.exchange_bind(ch, &helper, &up_x, key, &a, false)
                .await
                .map_err(up_err)?;
        }
    }
    let r = up.exchange_delete(ch, &old).await;
    exists_or_reopen(&mut up, &mut ch, r).await.map_err(up_err)?;

    let no_ack = up_cfg.ack_mode == AckMode::NoAck;
    let cch = up.open_channel().await.map_err(up_err)?;
    let prefetch = if no_ack { 0 } else { up_cfg.prefetch_count };
    let consumer = Consumer::start(&mut up, cch, &q, prefetch, no_ack, &[])
        .await
        .map_err(up_err)?;
    up.keep_content();
    let local_ch = local.open_channel().await.map_err(local_err)?;
    if up_cfg.ack_mode == AckMode::OnConfirm {
        local.confirm_select(local_ch).await.map_err(local_err)?;
    }
    let hop = Hop::exchange(&uri, &up_x, up.server_cluster_name(), &up_vhost, up_cfg.trust_user_id);
    let check = LoopCheck {
        max_hops: up_cfg.max_hops,
        cluster: ctx.cluster.clone(),
        vhost: ctx.key.vhost.clone(),
    };
    report.running(&ctx.connection_name());
    let target = Target::Exchange(ctx.key.name.clone());
    let forward = Republish {
        hop,
        target,
        check: Some(check),
    };
    let mut pump = Pump::new((up, consumer), (local, local_ch), up_cfg.ack_mode, forward, None);
    loop {
        pump.drain(|_| {})?;
        pump.flush().await?;
        tokio::select! {
            r = pump.wait() => r?,
            r = bindings.changed() => {
                if r.is_err() {
                    return Ok(()); // the supervisor let go of the link
                }
                let want = bindings.borrow_and_update().clone();
                for ((key, args), unbind) in (want.difference(&have).map(|b| (b, false)))
                    .chain(have.difference(&want).map(|b| (b, true)))
                {
                    if let Some(a) = binder.arguments(args) {
                        let m = bind_method(&helper, &up_x, key, &a, unbind)?;
                        pump.src.push_method(ch, &m);
                    }
                }
                have = want;
            }
        }
    }
}

/// What RabbitMQ's link does when it stops for good (its policy, upstream
/// or exchange gone; `resource-cleanup-mode` not `never`): the upstream
/// queue and helper exchange deleted, so nothing keeps collecting there.
pub async fn clean_up(ctx: &LinkCtx) -> Result<(), LinkError> {
    let (mut up, _, up_vhost) = ctx.connect_upstream().await?;
    let up_x = ctx.upstream.exchange.clone().unwrap_or_else(|| ctx.key.name.clone());
    let q = queue_name(&up_x, &up_vhost, &ctx.key.name, &ctx.key.vhost, &ctx.cluster);
    let mut ch = up.open_channel().await.map_err(up_err)?;
    let r = up.queue_delete(ch, &q).await;
    exists_or_reopen(&mut up, &mut ch, r).await.map_err(up_err)?;
    for suffix in ["A", "B"] {
        // A 404 (gone already) is as good as deleted.
        let r = up.exchange_delete(ch, &format!("{q} {suffix}")).await;
        exists_or_reopen(&mut up, &mut ch, r).await.map_err(up_err)?;
    }
    let _ = up.close().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_names_as_rabbitmq_makes_them() {
        assert_eq!(queue_name("x", "/", "x", "/", "rabbit@b"), "federation: x -> rabbit@b");
        assert_eq!(queue_name("up", "/", "x", "/", "b"), "federation: up -> b:x");
        assert_eq!(queue_name("x", "v1", "x", "/", "b"), "federation: x -> b:/:x");
    }
}
