//! What the management API shows of the cluster (`/api/nodes`,
//! `ringmqctl cluster_status`): the leader's view, published by its upkeep
//! loop (`lead`) on the cluster's thread, read by the API on the broker's.
//! Only the leader serves the API (followers relay it), so only its view is
//! ever shown.

use std::collections::BTreeMap;
use std::sync::Mutex;

/// The leader's view of its cluster.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClusterView {
    /// This node's advertised URI.
    pub me: String,
    /// The in-sync replica set as etcd names it (the leader first).
    pub isr: Vec<String>,
    /// Per follower past its full sync and connected: the last change it holds.
    pub acks: BTreeMap<String, u64>,
    /// The replication log's last change.
    pub last_seq: u64,
}

/// One node as `/api/nodes` lists it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct NodeRow {
    pub name: String,
    /// `"leader"` or `"follower"`.
    pub role: &'static str,
    pub in_sync: bool,
    /// Changes of the log it does not hold yet (0 for the leader).
    pub lag: u64,
    /// Connected to the leader (a member of the set may not be, until it is
    /// written out).
    pub running: bool,
}

static VIEW: Mutex<Option<ClusterView>> = Mutex::new(None);

/// The leader's upkeep loop tells its latest view.
pub fn publish(v: ClusterView) {
    *VIEW.lock().unwrap_or_else(|e| e.into_inner()) = Some(v);
}

/// The leader's latest view (None: not clustered, or not leading yet).
pub fn current() -> Option<ClusterView> {
    VIEW.lock().unwrap_or_else(|e| e.into_inner()).clone()
}

impl ClusterView {
    /// Every node it knows: the leader, the connected followers, and members
    /// of the set that are not connected.
    pub fn rows(&self) -> Vec<NodeRow> {
        let mut rows = vec![NodeRow {
            name: self.me.clone(),
            role: "leader",
            in_sync: true,
            lag: 0,
            running: true,
        }];
        for (name, ack) in &self.acks {
            rows.push(NodeRow {
                name: name.clone(),
                role: "follower",
                in_sync: self.isr.contains(name),
                lag: self.last_seq.saturating_sub(*ack),
                running: true,
            });
        }
        for name in &self.isr {
            if *name != self.me && !self.acks.contains_key(name) {
                rows.push(NodeRow {
                    name: name.clone(),
                    role: "follower",
                    in_sync: true,
                    lag: self.last_seq,
                    running: false,
                });
            }
        }
        rows
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_name_the_leader_the_followers_and_absent_members() {
        let v = ClusterView {
            me: "l".into(),
            isr: vec!["l".into(), "a".into(), "gone".into()],
            acks: [("a".to_string(), 9), ("b".to_string(), 4)].into(),
            last_seq: 10,
        };
        let rows = v.rows();
        let brief: Vec<_> = rows
            .iter()
            .map(|r| (r.name.as_str(), r.role, r.in_sync, r.lag, r.running))
            .collect();
        assert_eq!(
            brief,
            vec![
                ("l", "leader", true, 0, true),
                ("a", "follower", true, 1, true),
                ("b", "follower", false, 6, true),
                ("gone", "follower", true, 10, false),
            ]
        );
    }
}
