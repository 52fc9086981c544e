//! Queue commands: declare, delete, purge, pause/resume, and publish and get
//! through the API (as the user would on a channel).

use crate::core::model::ids::VhostName;

use ringmq_codec::{QueueDeclare, QueueDelete, QueuePurge, Table};

use crate::core::access::permissions::Access;
use crate::core::amqp::broker::Broker;
use crate::core::model::error::short_name;
use crate::core::model::ids::QueueId;
use crate::core::model::queue::dead_letter::DeathReason;

use super::{not_found, AckMode, AdminCtx, AdminError, Declared, GotMessage, QueueSpec, GET_COUNT_MAX};

impl Broker {
    fn has_queue(&self, vhost: &str, name: &str) -> Result<Option<QueueId>, AdminError> {
        let v = self.model.vhosts.get(vhost).ok_or(not_found())?;
        Ok(v.queue_id(name))
    }

    pub fn admin_declare_queue(
        &mut self,
        ctx: &AdminCtx<'_>,
        name: &str,
        spec: &QueueSpec,
    ) -> Result<Declared, AdminError> {
        let name = short_name("queue", name)?;
        let existed = self.has_queue(ctx.vhost, &name)?.is_some();
        let args = spec.arguments.to_bytes();
        let m = QueueDeclare {
            ticket: 0,
            queue: name,
            passive: false,
            durable: spec.durable,
            exclusive: false,
            auto_delete: spec.auto_delete,
            no_wait: true,
            arguments: Table::parse(&args).expect("own table"),
        };
        self.admin_run(ctx, |b, c| b.queue_declare(c, 1, m))?;
        Ok(if existed { Declared::Existed } else { Declared::Created })
    }

    pub fn admin_delete_queue(
        &mut self,
        ctx: &AdminCtx<'_>,
        name: &str,
        if_unused: bool,
        if_empty: bool,
    ) -> Result<(), AdminError> {
        self.has_queue(ctx.vhost, name)?.ok_or(not_found())?;
        let name = short_name("queue", name)?;
        let m = QueueDelete {
            ticket: 0,
            queue: name,
            if_unused,
            if_empty,
            no_wait: true,
        };
        self.admin_run(ctx, |b, c| b.queue_delete(c, 1, m))
    }

    pub fn admin_purge_queue(&mut self, ctx: &AdminCtx<'_>, name: &str) -> Result<(), AdminError> {
        self.has_queue(ctx.vhost, name)?.ok_or(not_found())?;
        let name = short_name("queue", name)?;
        let m = QueuePurge {
            ticket: 0,
            queue: name,
            no_wait: true,
        };
        self.admin_run(ctx, |b, c| b.queue_purge(c, 1, m))
    }

    /// LavinMQ's pause/resume: a paused queue keeps its consumers and messages
    /// but delivers nothing until resumed.
    pub fn admin_pause_queue(&mut self, ctx: &AdminCtx<'_>, name: &str, paused: bool) -> Result<(), AdminError> {
        let id = self.has_queue(ctx.vhost, name)?.ok_or(not_found())?;
        let vname = self.model.vhosts.get_key_value(ctx.vhost).ok_or(not_found())?.0.clone();
        let q = self
            .model
            .vhosts
            .get_mut(&vname)
            .and_then(|v| v.queues.get_mut(&id))
            .ok_or(not_found())?;
        q.set_paused(paused)?;
        if !paused {
            self.model.deliver_pending.push((vname, id));
            self.run_pending();
        }
        Ok(())
    }

    /// Publishes one message as the user would on a channel. Returns whether it
    /// was routed to a queue.
    pub fn admin_publish(
        &mut self,
        ctx: &AdminCtx<'_>,
        exchange: &str,
        routing_key: &str,
        properties: &[u8],
        body: &[u8],
    ) -> Result<bool, AdminError> {
        let exchange = short_name("exchange", exchange)?;
        let routing_key = short_name("routing_key", routing_key)?;
        if ringmq_codec::BasicProperties::decode(properties).is_err() {
            return Err(AdminError::BadRequest("invalid properties".into()));
        }
        let mut routed = false;
        self.admin_run(ctx, |b, c| {
            let outcome = b.publish(c, 1, exchange, routing_key, false, properties, body)?;
            c.count_publish(1);
            routed = outcome.routed;
            Ok(())
        })?;
        Ok(routed)
    }

    /// Takes up to `count` messages as basic.get would, then settles them all
    /// by `mode` (requeued ones come back in order, marked redelivered).
    pub fn admin_get(
        &mut self,
        ctx: &AdminCtx<'_>,
        queue: &str,
        count: u32,
        mode: AckMode,
    ) -> Result<Vec<GotMessage>, AdminError> {
        let id = self.has_queue(ctx.vhost, queue)?.ok_or(not_found())?;
        let conn = self.admin_conn(ctx)?;
        crate::core::amqp::dispatch::check_access(&conn, Access::Read, "queue", queue)?;
        let vname: VhostName = conn.vhost_key().cloned().expect("admin conn has a vhost");
        self.advance_clock(ctx.now_ms);
        // A get through the API is a use of the queue (x-expires), as basic.get.
        self.model.touch_queue(&vname, id);
        let mut got = Vec::new();
        let mut taken = Vec::new();
        for _ in 0..count.min(GET_COUNT_MAX) {
            self.model.expire_head(&vname, id);
            let Some(q) = self.model.vhosts.get_mut(&vname).and_then(|v| v.queues.get_mut(&id)) else {
                break;
            };
            let taken_one = q.take_next(None, |m| GotMessage {
                exchange: m.exchange.to_string(),
                routing_key: m.routing_key.to_string(),
                redelivered: m.redelivered,
                message_count: m.remaining,
                // With x-delivery-count, as basic.get shows it.
                properties: crate::core::amqp::delivery::delivery_properties(m.view.properties, m.delivery_count)
                    .into_owned(),
                payload: m.view.body.to_vec(),
            });
            let Some((at, msg)) = taken_one else {
                // RabbitMQ counts get_empty only for a get that found nothing.
                if got.is_empty() {
                    q.count_get_empty();
                }
                break;
            };
            q.count_get(false, at.redelivered);
            got.push(msg);
            taken.push(at.pos);
        }
        let n = taken.len() as u64;
        // Requeue newest first, so the oldest ends up at the head again.
        for pos in taken.into_iter().rev() {
            match mode {
                AckMode::AckRequeueTrue | AckMode::RejectRequeueTrue => self.model.requeue_or_limit(&vname, id, pos),
                AckMode::AckRequeueFalse => {
                    if let Some(q) = self.model.vhosts.get_mut(&vname).and_then(|v| v.queues.get_mut(&id)) {
                        q.ack_delivered(pos);
                    }
                }
                AckMode::RejectRequeueFalse => self.model.discard_delivered(&vname, id, pos, DeathReason::Rejected),
            }
        }
        self.model.note_acks(&vname, id);
        let redelivered = got.iter().filter(|m| m.redelivered).count() as u64;
        let empty = u64::from(got.is_empty() && count > 0);
        self.count_admin(&vname, |c| {
            c.get += n;
            c.get_empty += empty;
            c.redeliver += redelivered;
            if mode == AckMode::AckRequeueFalse {
                c.ack += n;
            }
        });
        self.model.deliver_pending.push((vname, id));
        self.run_pending();
        Ok(got)
    }
}
