//! The leader's upkeep of the in-sync replica set, as a state machine (time
//! and the followers' acks passed in; `node` does the etcd writes it asks
//! for and publishes [`IsrKeeper::confirmable`] to the confirm gate).
//!
//! A confirm waits for every follower in the set, so whichever member is
//! elected next holds every confirmed change. The order of steps keeps that
//! true while the set changes:
//! - **Joining.** A follower past its full sync starts *joining*: confirms
//!   wait for it from now on. The log's last change at that moment bounds
//!   every confirm given before; once its ack reaches that, it holds every
//!   confirmed change and is written to etcd (only then may it campaign).
//! - **Leaving.** A member whose connection ended, or that did not reach
//!   where the log was [`LAG_MS`] earlier, is written out of etcd first, and
//!   only then do confirms stop waiting for it. A joining follower that lags
//!   just stops joining (etcd never named it).
//!
//! `min_isr` counts the nodes etcd names, the leader included: with fewer,
//! nothing is confirmable.

use std::collections::BTreeMap;

use super::elect::Isr;

/// How far behind (in time) a member may be before it leaves the set.
pub const LAG_MS: u64 = 1_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Confirms wait for it; in etcd once its ack reaches `need`.
    Joining { need: u64 },
    /// In etcd's set.
    Member,
}

/// What the leader must do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Write this set to etcd, then call [`IsrKeeper::written`].
    Write(Isr),
}

#[derive(Debug)]
pub struct IsrKeeper {
    me: String,
    min_isr: usize,
    followers: BTreeMap<String, State>,
    /// The log's last change at the start of the current lag window.
    window: (u64, u64),
    /// A write asked for and not reported yet: (the set, who leaves).
    writing: Option<Option<String>>,
}

impl IsrKeeper {
    pub fn new(me: &str, min_isr: usize, now_ms: u64) -> IsrKeeper {
        IsrKeeper {
            me: me.into(),
            min_isr,
            followers: BTreeMap::new(),
            window: (now_ms, 0),
            writing: None,
        }
    }

    /// The set etcd should name now: the leader and the members.
    fn members(&self, without: Option<&str>) -> Isr {
        let mut members = vec![self.me.clone()];
        for (name, s) in &self.followers {
            if *s == State::Member && Some(name.as_str()) != without {
                members.push(name.clone());
            }
        }
        Isr { members }
    }

    /// The set as etcd has it (or is being told).
    pub fn isr(&self) -> Isr {
        self.members(None)
    }

    /// Whether `node` is in etcd's set.
    pub fn is_member(&self, node: &str) -> bool {
        node == self.me || self.followers.get(node) == Some(&State::Member)
    }

    /// Looks at the followers' acks (`acks`: the connected followers past
    /// their full sync) and the log's last change; returns the etcd write to
    /// make, if any (one at a time).
    pub fn tick(&mut self, acks: &BTreeMap<String, u64>, last: u64, now_ms: u64) -> Option<Step> {
        if self.writing.is_some() {
            return None;
        }
        let window_over = now_ms.saturating_sub(self.window.0) >= LAG_MS;
        let mut leaving = None;
        for (name, state) in &self.followers {
            let lagging = match acks.get(name) {
                None => true,
                Some(&ack) => window_over && ack < self.window.1,
            };
            if lagging {
                leaving = Some((name.clone(), *state));
                break;
            }
        }
        if let Some((name, state)) = leaving {
            if state == State::Member {
                let isr = self.members(Some(&name));
                self.writing = Some(Some(name));
                return Some(Step::Write(isr));
            }
            tracing::info!(follower = name, "a joining follower fell behind: it stops joining");
            self.followers.remove(&name);
        }
        if window_over {
            self.window = (now_ms, last);
        }
        for name in acks.keys() {
            if !self.followers.contains_key(name) {
                // Every confirm given so far covers changes up to `last` at most.
                tracing::info!(
                    follower = name,
                    need = last,
                    "a follower starts joining the in-sync replicas"
                );
                self.followers.insert(name.clone(), State::Joining { need: last });
            }
        }
        let joined = (self.followers.iter()).find_map(|(name, s)| match s {
            State::Joining { need } if acks.get(name).is_some_and(|a| a >= need) => Some(name.clone()),
            _ => None,
        });
        if let Some(name) = joined {
            self.followers.insert(name.clone(), State::Member);
            self.writing = Some(None);
            return Some(Step::Write(self.isr()));
        }
        None
    }

    /// The write [`Self::tick`] asked for is in etcd: a member written out
    /// is no longer waited for.
    pub fn written(&mut self) {
        if let Some(Some(gone)) = self.writing.take() {
            tracing::info!(follower = gone, "a follower left the in-sync replicas");
            self.followers.remove(&gone);
        }
    }

    /// Up to which change a confirm may go: every follower confirms wait for
    /// holds it, and etcd names at least `min_isr` nodes (else 0). `u64::MAX`:
    /// no follower to wait for.
    pub fn confirmable(&self, acks: &BTreeMap<String, u64>) -> u64 {
        // A join being written is not in etcd yet: it does not count.
        let joining = usize::from(matches!(self.writing, Some(None)));
        if self.isr().members.len() - joining < self.min_isr {
            return 0;
        }
        (self.followers.keys())
            .map(|name| acks.get(name).copied().unwrap_or(0))
            .min()
            .unwrap_or(u64::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acks(list: &[(&str, u64)]) -> BTreeMap<String, u64> {
        list.iter().map(|(n, a)| (n.to_string(), *a)).collect()
    }

    fn set(list: &[&str]) -> Option<Step> {
        Some(Step::Write(Isr {
            members: list.iter().map(|s| s.to_string()).collect(),
        }))
    }

    /// A follower joins once it holds what the log had when it started
    /// joining (confirms wait for it from then on), and is written to etcd
    /// before it counts for `min_isr`.
    #[test]
    fn a_follower_joins_once_it_holds_every_confirmed_change() {
        let mut k = IsrKeeper::new("l", 2, 0);
        assert_eq!(
            k.confirmable(&acks(&[])),
            0,
            "min_isr 2: the leader alone confirms nothing"
        );
        assert_eq!(k.tick(&acks(&[("f", 5)]), 10, 10), None);
        assert_eq!(k.confirmable(&acks(&[("f", 5)])), 0);
        assert_eq!(k.tick(&acks(&[("f", 10)]), 12, 20), set(&["l", "f"]));
        assert!(k.is_member("f"));
        assert_eq!(k.confirmable(&acks(&[("f", 11)])), 0, "not counted until etcd names it");
        k.written();
        assert_eq!(k.confirmable(&acks(&[("f", 11)])), 11);
        let mut k = IsrKeeper::new("l", 1, 0);
        k.tick(&acks(&[("f", 5)]), 10, 10);
        assert_eq!(k.confirmable(&acks(&[("f", 7)])), 7, "joining: confirms wait for it");
        assert_eq!(IsrKeeper::new("l", 1, 0).confirmable(&acks(&[])), u64::MAX);
    }

    /// A member that disconnects or lags a whole window is written out of
    /// etcd, and only then is it no longer waited for.
    #[test]
    fn a_lagging_member_is_written_out_before_confirms_stop_waiting() {
        let mut k = IsrKeeper::new("l", 1, 0);
        assert_eq!(k.tick(&acks(&[("f", 0)]), 0, 0), set(&["l", "f"]));
        k.written();
        // Keeps up: acks past where the log was a window ago.
        for t in 1..10u64 {
            let now = t * LAG_MS;
            assert_eq!(k.tick(&acks(&[("f", t * 100 - 50)]), t * 100, now), None, "{t}");
        }
        // Stalls for a window.
        assert_eq!(k.tick(&acks(&[("f", 950)]), 2_000, 10 * LAG_MS), None);
        assert_eq!(k.tick(&acks(&[("f", 950)]), 2_000, 11 * LAG_MS), set(&["l"]));
        assert_eq!(
            k.confirmable(&acks(&[("f", 950)])),
            950,
            "still waited for until written"
        );
        assert_eq!(
            k.tick(&acks(&[("f", 950)]), 2_000, 11 * LAG_MS + 1),
            None,
            "one write at a time"
        );
        k.written();
        assert_eq!(k.confirmable(&acks(&[("f", 950)])), u64::MAX);
        // Gone: written out at once.
        let mut k = IsrKeeper::new("l", 1, 0);
        k.tick(&acks(&[("f", 0)]), 0, 0);
        k.written();
        assert_eq!(k.tick(&acks(&[]), 0, 2), set(&["l"]));
    }
}
