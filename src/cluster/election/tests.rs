use super::*;
use crate::cluster::test_rng::Rng;

const TTL: u64 = 2_000;

fn node(me: &str) -> Election {
    Election::new(ElectionConfig {
        me: me.into(),
        ttl_ms: TTL,
    })
}

#[test]
fn a_lone_node_leads_and_keeps_leading_while_its_renewals_come_back() {
    let mut e = node("a");
    assert_eq!(e.poll(0), Some(Action::Grant { ttl_secs: 2 }));
    assert_eq!(e.poll(0), None, "one action at a time");
    e.handle_granted(7);
    assert_eq!(e.poll(1), Some(Action::Campaign { lease: 7 }));
    e.handle_campaign(Ok(42));
    assert!(e.leads(1));
    assert_eq!(e.leader(), &Leader::Me { term: 42 });
    let mut now = 1;
    for _ in 0..10 {
        now = e.poll_timeout();
        assert_eq!(e.poll(now), Some(Action::KeepAlive { lease: 7 }));
        e.handle_kept(true);
        assert!(e.leads(now + 1));
    }
    assert_eq!(now, 10 * (TTL / 3), "renewed every third of the TTL");
}

#[test]
fn a_leader_cut_off_from_etcd_stops_leading_before_its_lease_can_expire() {
    let mut e = node("a");
    e.poll(0);
    e.handle_granted(7);
    e.poll(0);
    e.handle_campaign(Ok(1));
    // The renewal sent at 600 is acknowledged: etcd's lease then ends no
    // earlier than 600 + TTL (it received it after 600).
    assert_eq!(e.poll(700), Some(Action::KeepAlive { lease: 7 }));
    e.handle_kept(true);
    // From now on every renewal fails.
    let mut now = 700;
    while e.leads(now) {
        if let Some(Action::KeepAlive { .. }) = e.poll(now) {
            e.handle_failed(now);
        }
        now += 10;
    }
    assert!(
        now < 700 + TTL,
        "stopped at {now}, before the lease could end at {}",
        700 + TTL
    );
    assert!(
        now >= 700 + TTL - FENCE_MARGIN_MS - TTL / 10 - 10,
        "not long before: {now}"
    );
    // And once it could have ended, it asks for a new lease.
    assert_eq!(e.poll(700 + TTL), Some(Action::Grant { ttl_secs: 2 }));
    assert_eq!(e.leader(), &Leader::Unknown);
}

#[test]
fn a_node_that_lost_the_campaign_follows_and_campaigns_again_when_the_key_goes() {
    let mut e = node("b");
    e.poll(0);
    e.handle_granted(9);
    e.poll(0);
    e.handle_campaign(Err(("a".into(), 5)));
    assert_eq!(
        e.leader(),
        &Leader::Other {
            uri: "a".into(),
            term: 5
        }
    );
    assert!(!e.leads(1));
    assert_eq!(e.poll(1), None, "nothing to do until the renewal");
    e.handle_leader_gone();
    assert_eq!(e.poll(2), Some(Action::Campaign { lease: 9 }));
    // Not in the in-sync set: it does not campaign.
    let mut f = node("c");
    f.set_eligible(false);
    f.poll(0);
    f.handle_granted(3);
    assert_eq!(f.poll(1), None);
}

/// A seeded simulation: three nodes and an etcd whose leases count from
/// when it receives a renewal; requests and replies take random times, and
/// nodes are cut off from etcd (their calls fail after a timeout) at random.
/// At no moment do two nodes lead; whenever the links are whole long
/// enough, someone leads.
#[test]
fn never_two_leaders_under_random_delays_and_partitions() {
    let seeds: Vec<u64> = match std::env::var("RINGMQ_SEED") {
        Ok(s) => vec![s.parse().expect("RINGMQ_SEED is a number")],
        Err(_) => (1..=40).collect(),
    };
    for seed in seeds {
        println!("seed {seed} (RINGMQ_SEED={seed} replays it)");
        simulate(seed);
    }
}

#[derive(Default)]
struct FakeEtcd {
    /// lease id -> when it ends (etcd's time: receipt of the last renewal + TTL)
    leases: std::collections::HashMap<i64, u64>,
    key: Option<(String, i64, i64)>, // (uri, lease, create revision)
    rev: i64,
    next_lease: i64,
}

impl FakeEtcd {
    fn tick(&mut self, now: u64) {
        self.leases.retain(|_, ends| *ends > now);
        if self.key.as_ref().is_some_and(|(_, l, _)| !self.leases.contains_key(l)) {
            self.key = None;
            self.rev += 1;
        }
    }
}

enum Reply {
    Granted(i64),
    Kept(bool),
    Campaign(Result<i64, (String, i64)>),
    Failed,
}

fn simulate(seed: u64) {
    let mut rng = Rng::seeded(seed);
    let mut etcd = FakeEtcd::default();
    let names = ["a", "b", "c"];
    let mut nodes: Vec<Election> = names.iter().map(|n| node(n)).collect();
    // Per node: the reply in flight (applied at etcd at `at_etcd`, back at `back`).
    let mut flight: Vec<Option<(Action, u64, u64)>> = vec![None, None, None];
    let mut cut_until = [0u64; 3];
    let mut whole_since = 0u64;
    let mut led_at_least_once = false;
    const TIMEOUT: u64 = 500;
    for now in (0..120_000).step_by(5) {
        etcd.tick(now);
        // Partitions: now and then a node is cut off for up to 4 TTLs.
        if rng.below(2_000) == 0 {
            let n = rng.below(3) as usize;
            cut_until[n] = now + rng.below(4 * TTL);
            whole_since = u64::MAX;
        }
        if whole_since == u64::MAX && cut_until.iter().all(|&c| c <= now) {
            whole_since = now;
        }
        for i in 0..3 {
            if let Some((action, at_etcd, back)) = flight[i].clone() {
                if now < back {
                    continue;
                }
                flight[i] = None;
                let cut = cut_until[i] > at_etcd || cut_until[i] > now;
                let reply = if cut {
                    Reply::Failed
                } else {
                    // Applied when it reached etcd (already past: replay in order).
                    match action {
                        Action::Grant { .. } => {
                            etcd.next_lease += 1;
                            etcd.leases.insert(etcd.next_lease, at_etcd + TTL);
                            Reply::Granted(etcd.next_lease)
                        }
                        Action::KeepAlive { lease } => match etcd.leases.get_mut(&lease) {
                            Some(ends) => {
                                *ends = (*ends).max(at_etcd + TTL);
                                Reply::Kept(true)
                            }
                            None => Reply::Kept(false),
                        },
                        Action::Campaign { lease } => match &etcd.key {
                            Some((uri, _, rev)) => Reply::Campaign(Err((uri.clone(), *rev))),
                            None if etcd.leases.contains_key(&lease) => {
                                etcd.rev += 1;
                                etcd.key = Some((names[i].into(), lease, etcd.rev));
                                Reply::Campaign(Ok(etcd.rev))
                            }
                            None => Reply::Failed,
                        },
                    }
                };
                let e = &mut nodes[i];
                match reply {
                    Reply::Granted(l) => e.handle_granted(l),
                    Reply::Kept(alive) => e.handle_kept(alive),
                    Reply::Campaign(r) => e.handle_campaign(r),
                    Reply::Failed => e.handle_failed(now),
                }
            }
            // A watch: the key's deletion or new owner reaches a node (not
            // cut off) after a while.
            if cut_until[i] <= now && rng.below(20) == 0 {
                match &etcd.key {
                    None => {
                        if !matches!(nodes[i].leader(), Leader::Unknown) && !nodes[i].leads(now) {
                            nodes[i].handle_leader_gone();
                        }
                    }
                    Some((uri, _, rev)) => nodes[i].handle_leader(uri.clone(), *rev),
                }
            }
            if flight[i].is_none() {
                if let Some(a) = nodes[i].poll(now) {
                    let (to, from) = if cut_until[i] > now {
                        (now, now + TIMEOUT)
                    } else {
                        let to = now + 1 + rng.below(200);
                        (to, to + 1 + rng.below(200))
                    };
                    flight[i] = Some((a, to, from));
                }
            }
        }
        let leaders: Vec<usize> = (0..3).filter(|&i| nodes[i].leads(now)).collect();
        assert!(leaders.len() <= 1, "seed {seed}: at {now} ms {leaders:?} all lead");
        if let [l] = leaders[..] {
            led_at_least_once = true;
            // The one who leads holds the key in etcd.
            let holder = etcd.key.as_ref().map(|(u, _, _)| u.as_str());
            assert_eq!(
                holder,
                Some(names[l]),
                "seed {seed}: at {now} ms {} leads without the key",
                names[l]
            );
        }
        if whole_since != u64::MAX && now > whole_since + 4 * TTL {
            assert_eq!(
                leaders.len(),
                1,
                "seed {seed}: no leader at {now} ms, links whole since {whole_since}"
            );
        }
    }
    assert!(led_at_least_once, "seed {seed}: nobody ever led");
}
