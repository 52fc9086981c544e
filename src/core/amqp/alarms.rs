//! Resource alarms on the AMQP session: while one is on (`core::alarms`),
//! clients that announced the `connection.blocked` capability are told, and the
//! io layer stops reading from connections that publish (RabbitMQ's flow
//! control). The io layer sets the alarms and their limits through here.

use ringmq_codec::{encode_method, short, Method, ShortStr};

use crate::core::alarms::Alarms;
use crate::core::amqp::broker::Broker;
use crate::core::amqp::connection::{ConnState, Connection};
use crate::core::model::ids::ConnId;

/// Why a publisher is not read (see [`Broker::held_back`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeldBack {
    /// A resource alarm (disk, memory).
    Alarm,
    /// The credit between shards.
    Flow,
}

impl Broker {
    /// The limits the io layer measures against, for the management API to show.
    pub fn set_alarm_limits(&mut self, disk_free_limit: u64, mem_limit: u64) {
        self.alarms.disk_free_limit = disk_free_limit;
        self.alarms.mem_limit = mem_limit;
    }

    /// The alarms now (publishers are blocked while one is on).
    pub fn alarms(&self) -> Alarms {
        self.alarms
    }

    /// The free-disk alarm changed. While it (or the memory alarm) is on, clients
    /// that announced the `connection.blocked` capability are told, and the io
    /// layer stops reading from connections that publish (RabbitMQ's flow
    /// control), so publishers cannot fill the disk.
    pub fn handle_disk_alarm(&mut self, on: bool) {
        if self.alarms.disk == on {
            return;
        }
        if on {
            tracing::warn!(
                limit = self.alarms.disk_free_limit,
                "free disk space below the limit: blocking publishers"
            );
        } else {
            tracing::info!("free disk space back above the limit");
        }
        let was = self.alarms.blocking();
        self.alarms.disk = on;
        self.alarm_changed(was, short!("low on disk"));
    }

    /// The memory alarm changed (RSS at or above the high watermark): publishers
    /// are blocked as for the disk alarm, with RabbitMQ's reason "low on memory".
    pub fn handle_mem_alarm(&mut self, on: bool) {
        if self.alarms.mem == on {
            return;
        }
        if on {
            tracing::warn!(
                limit = self.alarms.mem_limit,
                "memory use above the high watermark: blocking publishers"
            );
        } else {
            tracing::info!("memory use back below the high watermark");
        }
        let was = self.alarms.blocking();
        self.alarms.mem = on;
        self.alarm_changed(was, short!("low on memory"));
    }

    /// Tells connections when publishers become blocked or free (not when a
    /// second alarm joins or one of two clears).
    fn alarm_changed(&mut self, was: bool, reason: ShortStr<'static>) {
        let on = self.alarms.blocking();
        if on == was {
            return;
        }
        if !on {
            tracing::info!("no resource alarm: unblocking publishers");
        }
        let ids: Vec<ConnId> = self.conns.keys().copied().collect();
        for id in ids {
            let Some(mut conn) = self.conns.remove(&id) else {
                continue;
            };
            if conn.state == ConnState::Open && conn.capabilities.connection_blocked && conn.blocked_sent != on {
                let m = if on {
                    Method::ConnectionBlocked(ringmq_codec::ConnectionBlocked { reason })
                } else {
                    Method::ConnectionUnblocked(ringmq_codec::ConnectionUnblocked)
                };
                encode_method(&mut conn.out, 0, &m);
                conn.blocked_sent = on;
                self.mark_dirty(&mut conn);
            }
            self.conns.insert(id, conn);
        }
    }

    /// A connection publishes for the first time while publishers are blocked:
    /// it is told now (RabbitMQ sends connection.blocked when a connection would
    /// publish under an alarm, not only when the alarm starts).
    pub(crate) fn tell_blocked_on_publish(&self, conn: &mut Connection) {
        if self.alarms.blocking() && conn.capabilities.connection_blocked && !conn.blocked_sent {
            let reason = if self.alarms.disk {
                short!("low on disk")
            } else {
                short!("low on memory")
            };
            let m = Method::ConnectionBlocked(ringmq_codec::ConnectionBlocked { reason });
            encode_method(&mut conn.out, 0, &m);
            conn.blocked_sent = true;
        }
    }

    /// Whether the io layer should stop reading from this connection: it is
    /// parked for another shard's answer, or publishers are held back and it
    /// is one ([`Broker::holds_back`]).
    pub fn should_pause_reading(&self, id: ConnId) -> bool {
        self.conns
            .get(&id)
            .is_some_and(|c| c.parked.is_some() || c.leaving.is_some() || self.holds_back(c))
    }

    /// Whether `conn`, a publisher, is not read for now ([`Broker::held_back`]).
    pub(crate) fn holds_back(&self, conn: &Connection) -> bool {
        self.held_back(conn).is_some()
    }

    /// Why `conn`, a publisher, is not read for now: a resource alarm is on,
    /// or its publishes go to other shards and the batches for them are
    /// backed up ([`Broker::set_cross_flow`]).
    pub(crate) fn held_back(&self, conn: &Connection) -> Option<HeldBack> {
        if self.alarms.blocking() && conn.has_published {
            Some(HeldBack::Alarm)
        } else if self.cross_flow && conn.forwards {
            Some(HeldBack::Flow)
        } else {
            None
        }
    }

    /// The io layer says whether the batches this shard made for other
    /// shards are past their bound. Connections it held back are read
    /// again once it is off (the io layer wakes them).
    pub fn set_cross_flow(&mut self, on: bool) {
        self.cross_flow = on;
    }
}
