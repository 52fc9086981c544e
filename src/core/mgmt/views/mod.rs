//! Read-only views of the broker for the management API: what the routes
//! render, without a field of `Broker` leaving the core. A view borrows the
//! broker and hands out small view types that answer questions (counts, names,
//! settings, stats); lists are iterators, so a route that only counts copies
//! nothing.
//!
//! | file | what |
//! |---|---|
//! | `mod.rs` | [`View`]: the node (alarms, churn, logins, cluster name, global parameters) and the ways in |
//! | [`vhosts`] | [`VhostView`]: a vhost's metadata, stats, queues, exchanges and bindings |
//! | [`queues`] | [`QueueView`], [`ConsumerView`]: a queue's depth, settings, policies, consumers |
//! | [`exchanges`] | [`ExchangeView`], [`BindingRow`]: exchanges and bindings |
//! | [`connections`] | [`ConnView`], [`ChannelView`]: client connections and their channels |
//! | [`access`] | [`UserView`], the permission lists |

pub mod access;
pub mod connections;
pub mod exchanges;
pub mod queues;
pub mod vhosts;

use crate::core::model::ids::ConnId;
use crate::core::model::ids::VhostName;
use crate::core::model::stats::{Churn, VhostStats};
use crate::core::Broker;

pub use access::UserView;
pub use connections::{ChannelView, ConnPhase, ConnView};
pub use exchanges::{BindingRow, ExchangeView};
pub use queues::{ConsumerView, QueueView};
pub use vhosts::VhostView;

/// A read-only view of one broker (cheap to copy: one reference).
#[derive(Clone, Copy)]
pub struct View<'a> {
    b: &'a Broker,
}

/// The resource alarms and their limits, by value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AlarmsView {
    pub disk: bool,
    pub mem: bool,
    pub disk_free_limit: u64,
    pub mem_limit: u64,
}

impl<'a> View<'a> {
    pub fn of(b: &'a Broker) -> View<'a> {
        View { b }
    }

    /// The shard this broker is (its queues are the ones whose owner it is).
    pub fn shard(self) -> crate::core::model::meta::ShardId {
        self.b.model.shards.me
    }

    /// The largest frame the broker negotiates (`frame_max`; 0: no limit).
    pub fn frame_max(self) -> u32 {
        self.b.config.frame_max
    }

    /// Every vhost, in no particular order.
    pub fn vhosts(self) -> impl Iterator<Item = VhostView<'a>> {
        self.b
            .model
            .vhosts
            .iter()
            .map(move |(name, v)| VhostView::new(self, name, v))
    }

    pub fn vhost(self, name: &str) -> Option<VhostView<'a>> {
        let (name, v) = self.b.model.vhosts.get_key_value(name)?;
        Some(VhostView::new(self, name, v))
    }

    pub fn has_vhost(self, name: &str) -> bool {
        self.b.model.vhosts.contains_key(name)
    }

    /// Every connection, from accept on (check [`ConnView::is_logged_in`]).
    pub fn connections(self) -> impl Iterator<Item = ConnView<'a>> {
        self.b.conns.values().map(|c| ConnView::new(c, self.b.held_back(c)))
    }

    pub fn connection(self, id: ConnId) -> Option<ConnView<'a>> {
        self.b.conns.get(&id).map(|c| ConnView::new(c, self.b.held_back(c)))
    }

    /// Sockets the core knows (connections at any stage).
    pub fn connection_count(self) -> usize {
        self.b.conns.len()
    }

    pub fn alarms(self) -> AlarmsView {
        let a = &self.b.alarms;
        AlarmsView {
            disk: a.disk,
            mem: a.mem,
            disk_free_limit: a.disk_free_limit,
            mem_limit: a.mem_limit,
        }
    }

    /// Connections, channels and queues created and closed (RabbitMQ's churn).
    pub fn churn(self) -> &'a Churn {
        &self.b.node_stats.churn
    }

    /// Message counters and rates over the whole node, with history.
    pub fn node_totals(self) -> &'a VhostStats {
        &self.b.node_stats.vhosts
    }

    /// AMQP logins that succeeded and failed.
    pub fn logins(self) -> (u64, u64) {
        (self.b.node_stats.logins_ok, self.b.node_stats.logins_failed)
    }

    pub fn cluster_name(self) -> String {
        self.b.cluster_name()
    }

    pub fn global_parameters(self) -> &'a [super::vhosts::GlobalParameter] {
        &self.b.global_parameters
    }

    pub fn global_parameter(self, name: &str) -> Option<&'a super::vhosts::GlobalParameter> {
        self.b.global_parameters.iter().find(|g| g.name == name)
    }

    pub fn users(self) -> impl Iterator<Item = UserView<'a>> {
        self.b.users.iter().map(UserView::new)
    }

    pub fn user(self, name: &str) -> Option<UserView<'a>> {
        self.b.users.get(name).map(UserView::new)
    }

    /// Whether `user` has permissions (of any kind) in `vhost`.
    pub fn has_permissions(self, user: &str, vhost: &str) -> bool {
        self.b.permissions.get(user, vhost).is_some()
    }

    /// Every permission, sorted by user and vhost.
    pub fn permissions(self) -> Vec<super::PermissionDef> {
        self.b.permissions.defs()
    }

    /// Every topic permission, sorted by user, vhost and exchange.
    pub fn topic_permissions(self) -> Vec<super::TopicPermissionDef> {
        self.b.permissions.topic.defs()
    }

    /// Policies or operator policies of one vhost or all.
    pub fn policies(
        self,
        vhost: Option<&str>,
        kind: super::PolicyKind,
    ) -> Result<Vec<super::VhostPolicy>, super::AdminError> {
        self.b.list_policies(vhost, kind)
    }

    /// Runtime parameters as (vhost, parameter), of one vhost or component or all.
    pub fn parameters(self, vhost: Option<&str>, component: Option<&str>) -> Vec<(VhostName, super::Parameter)> {
        self.b.list_parameters(vhost, component)
    }

    /// The definitions export of one vhost or the whole broker.
    pub fn export_definitions(self, vhost: Option<&str>) -> Result<super::Definitions, super::AdminError> {
        self.b.export_definitions(vhost)
    }

    /// The (routing key, arguments) of the binding whose properties key is
    /// `props`, if there is one.
    pub fn find_binding(
        self,
        vhost: &str,
        source: &str,
        kind: super::DestKind,
        dest: &str,
        props: &str,
    ) -> Option<(String, ringmq_codec::FieldTable)> {
        self.b.admin_find_binding(vhost, source, kind, dest, props)
    }
}
