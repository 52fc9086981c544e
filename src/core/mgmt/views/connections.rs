//! Client connections and their channels, read-only.

use crate::core::amqp::alarms::HeldBack;
use ringmq_codec::FieldTable;

use crate::core::amqp::channel::Channel;
use crate::core::amqp::connection::{ConnState, Connection};
use crate::core::model::ids::ConnId;
use crate::core::model::stats::ObjStats;

/// Where a connection is in its life, as the management API shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnPhase {
    /// Anywhere but open or closing (handshake; also done, waiting for the socket).
    Starting,
    Open,
    /// Open, a publisher not read while a resource alarm is on (RabbitMQ's
    /// `blocked`).
    Blocked,
    /// Open, a publisher to other shards' queues not read while the batches
    /// for them are past their credit (RabbitMQ's `flow`).
    Flow,
    /// Sent connection.close, waiting for close-ok.
    Closing,
}

/// Bytes and socket operations of one connection, with byte rates.
#[derive(Debug, Clone, Copy, Default)]
pub struct ConnTraffic {
    pub recv_oct: u64,
    pub send_oct: u64,
    pub recv_cnt: u64,
    pub send_cnt: u64,
    pub recv_rate: f64,
    pub send_rate: f64,
}

#[derive(Clone, Copy)]
pub struct ConnView<'a> {
    c: &'a Connection,
    held_back: Option<HeldBack>,
}

impl<'a> ConnView<'a> {
    pub(super) fn new(c: &'a Connection, held_back: Option<HeldBack>) -> Self {
        ConnView { c, held_back }
    }

    pub fn id(&self) -> ConnId {
        self.c.id()
    }
    /// The peer's `host:port`.
    pub fn peer(&self) -> &'a str {
        self.c.peer()
    }
    pub fn user(&self) -> Option<&'a str> {
        self.c.user()
    }
    /// The SASL mechanism of the login (`PLAIN`, `AMQPLAIN`, `EXTERNAL`).
    pub fn auth_mechanism(&self) -> &'static str {
        self.c.auth_mechanism()
    }
    pub fn vhost(&self) -> Option<&'a str> {
        self.c.vhost()
    }
    /// Past the login (a user is known).
    pub fn is_logged_in(&self) -> bool {
        self.c.user().is_some()
    }
    pub fn phase(&self) -> ConnPhase {
        match self.c.state() {
            ConnState::Open => match self.held_back {
                None => ConnPhase::Open,
                Some(HeldBack::Alarm) => ConnPhase::Blocked,
                Some(HeldBack::Flow) => ConnPhase::Flow,
            },
            ConnState::Closing => ConnPhase::Closing,
            _ => ConnPhase::Starting,
        }
    }
    pub fn channel_max(&self) -> u16 {
        self.c.tuning().channel_max
    }
    pub fn frame_max(&self) -> u32 {
        self.c.tuning().frame_max
    }
    pub fn heartbeat_secs(&self) -> u16 {
        self.c.tuning().heartbeat_secs
    }
    pub fn connected_at_ms(&self) -> u64 {
        self.c.connected_at_ms()
    }
    /// Decoded from the bytes the client sent, for each call.
    pub fn client_properties(&self) -> FieldTable {
        self.c.client_properties().to_owned_table()
    }
    pub fn traffic(&self) -> ConnTraffic {
        let s = self.c.stats();
        ConnTraffic {
            recv_oct: s.recv_oct,
            send_oct: s.send_oct,
            recv_cnt: s.recv_cnt,
            send_cnt: s.send_cnt,
            recv_rate: s.recv_oct_rate,
            send_rate: s.send_oct_rate,
        }
    }
    /// Bytes waiting to be sent.
    pub fn pending_bytes(&self) -> usize {
        self.c.pending_bytes()
    }
    /// Whether connection.blocked was sent (and not yet unblocked).
    pub fn blocked(&self) -> bool {
        self.c.is_blocked()
    }
    pub fn channel_count(&self) -> usize {
        self.c.channel_count()
    }
    pub fn channels(&self) -> impl Iterator<Item = ChannelView<'a>> + 'a {
        self.c.channels().map(|ch| ChannelView { ch })
    }
    pub fn channel(&self, number: u16) -> Option<ChannelView<'a>> {
        self.c.channel(number).map(|ch| ChannelView { ch })
    }
}

#[derive(Clone, Copy)]
pub struct ChannelView<'a> {
    ch: &'a Channel,
}

impl<'a> ChannelView<'a> {
    pub fn number(&self) -> u16 {
        self.ch.number()
    }
    /// Open (not closing).
    pub fn is_open(&self) -> bool {
        self.ch.is_open()
    }
    /// channel.flow: false when the client paused deliveries.
    pub fn flow_active(&self) -> bool {
        self.ch.flow_active()
    }
    pub fn consumer_count(&self) -> usize {
        self.ch.consumer_count()
    }
    /// The prefetch of one consumer's consume (`0`: none), if it is on this channel.
    pub fn consumer_prefetch_of(&self, tag: &str) -> Option<u16> {
        self.ch.consumer_prefetch_of(tag)
    }
    /// The prefetches of this channel's consumers, summed.
    pub fn consumer_prefetch_sum(&self) -> usize {
        self.ch.consumer_prefetch_sum()
    }
    /// basic.qos global=false: the prefetch new consumers get.
    pub fn consumer_prefetch(&self) -> u16 {
        self.ch.consumer_prefetch()
    }
    /// basic.qos global=true: the channel's limit.
    pub fn channel_prefetch(&self) -> u16 {
        self.ch.channel_prefetch()
    }
    pub fn unacked(&self) -> usize {
        self.ch.unacked_count()
    }
    pub fn unconfirmed(&self) -> usize {
        self.ch.unconfirmed_count()
    }
    /// Publishes and acks in the open transaction.
    pub fn uncommitted(&self) -> (usize, usize) {
        self.ch.uncommitted()
    }
    pub fn confirm(&self) -> bool {
        self.ch.confirm_mode()
    }
    pub fn transactional(&self) -> bool {
        self.ch.is_transactional()
    }
    pub fn stats(&self) -> &'a ObjStats {
        self.ch.stats()
    }
}
