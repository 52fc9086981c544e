//! The checker against made-up histories: a model broker's (every promise
//! kept, so the verdict must be clean) and the same with one fault planted
//! (so the verdict must name it). Seeded by proptest; a failure prints its
//! case.

use proptest::prelude::*;

use super::*;

fn id(publisher: u32, seq: u64) -> MsgId {
    MsgId { publisher, seq }
}

fn published(q: &str, id: MsgId) -> Event {
    Event::Published { queue: q.into(), id }
}

fn confirmed(q: &str, id: MsgId, node: &str, term: Term) -> Event {
    Event::Confirmed {
        queue: q.into(),
        id,
        node: node.into(),
        term,
    }
}

fn delivered(q: &str, id: MsgId, redelivered: bool) -> Event {
    Event::Delivered {
        queue: q.into(),
        id,
        redelivered,
    }
}

#[test]
fn a_clean_history_passes() {
    let h = History {
        clients: vec![
            vec![
                published("q", id(1, 1)),
                published("q", id(1, 2)),
                confirmed("q", id(1, 1), "a", 7),
                confirmed("q", id(1, 2), "a", 7),
            ],
            vec![
                delivered("q", id(1, 1), false),
                delivered("q", id(1, 2), false),
                delivered("q", id(1, 2), true),
            ],
        ],
    };
    let v = check(&h);
    assert!(v.ok(), "{v:?}");
    assert_eq!((v.published, v.confirmed, v.delivered, v.redelivered), (2, 2, 2, 1));
}

#[test]
fn each_planted_fault_is_named() {
    let base = vec![
        published("q", id(1, 1)),
        published("q", id(1, 2)),
        published("q", id(1, 3)),
        confirmed("q", id(1, 1), "a", 7),
        confirmed("q", id(1, 2), "a", 7),
    ];
    // Lost: confirmed 2 never comes.
    let v = check(&History {
        clients: vec![base.clone(), vec![delivered("q", id(1, 1), false)]],
    });
    assert_eq!(v.lost, vec![("q".to_owned(), id(1, 2))]);
    // An unconfirmed message may be lost: 3 is not named.
    assert!(v.unflagged_repeats.is_empty() && v.reordered.is_empty());
    // Twice without the flag.
    let v = check(&History {
        clients: vec![
            base.clone(),
            vec![
                delivered("q", id(1, 1), false),
                delivered("q", id(1, 2), false),
                delivered("q", id(1, 1), false),
            ],
        ],
    });
    assert_eq!(v.unflagged_repeats, vec![("q".to_owned(), id(1, 1), 1)]);
    // Out of order for one client.
    let v = check(&History {
        clients: vec![
            base.clone(),
            vec![delivered("q", id(1, 2), false), delivered("q", id(1, 1), false)],
        ],
    });
    assert_eq!(v.reordered, vec![("q".to_owned(), id(1, 2), id(1, 1))]);
    // Never published.
    let v = check(&History {
        clients: vec![
            base.clone(),
            vec![
                delivered("q", id(1, 1), false),
                delivered("q", id(1, 2), false),
                delivered("q", id(9, 1), false),
            ],
        ],
    });
    assert_eq!(v.phantoms, vec![("q".to_owned(), id(9, 1))]);
    // Two nodes confirming in one term.
    let mut two = base.clone();
    two.push(confirmed("q", id(1, 3), "b", 7));
    let v = check(&History {
        clients: vec![
            two,
            vec![
                delivered("q", id(1, 1), false),
                delivered("q", id(1, 2), false),
                delivered("q", id(1, 3), false),
            ],
        ],
    });
    assert_eq!(v.split_brain.len(), 1, "{v:?}");
    assert!(!v.ok());
}

/// A model broker: publishers' messages go into FIFO queues; each is
/// confirmed or not; consumers take them in order, sometimes "crash" before
/// the ack (the message comes back flagged), and a final drain takes the
/// rest. What it records keeps every promise.
fn model_history(ops: &[(u8, u8, bool)]) -> History {
    use std::collections::VecDeque;
    let queues = ["q0", "q1"];
    let mut fifo: [VecDeque<(MsgId, bool)>; 2] = [VecDeque::new(), VecDeque::new()];
    let mut publishers = vec![Vec::new(), Vec::new()];
    let mut consumer = Vec::new();
    let mut seqs = [0u64; 2];
    for &(kind, who, flag) in ops {
        let p = usize::from(who % 2);
        let qi = usize::from(kind % 2);
        match kind % 4 {
            0 | 1 => {
                seqs[p] += 1;
                let m = id(p as u32, seqs[p]);
                publishers[p].push(published(queues[qi], m));
                if flag {
                    publishers[p].push(confirmed(queues[qi], m, "a", 1));
                }
                fifo[qi].push_back((m, false));
            }
            _ => {
                if let Some((m, again)) = fifo[qi].pop_front() {
                    consumer.push(delivered(queues[qi], m, again));
                    if flag {
                        // Not acked: back at the head, flagged.
                        fifo[qi].push_front((m, true));
                    }
                }
            }
        }
    }
    for (qi, f) in fifo.iter_mut().enumerate() {
        for (m, again) in f.drain(..) {
            consumer.push(delivered(queues[qi], m, again));
        }
    }
    publishers.push(consumer);
    History { clients: publishers }
}

proptest! {
    #[test]
    fn a_model_brokers_history_is_clean(ops in proptest::collection::vec((0u8..4, 0u8..2, any::<bool>()), 0..200)) {
        let v = check(&model_history(&ops));
        prop_assert!(v.ok(), "{:?}", v);
    }

    #[test]
    fn a_dropped_confirmed_message_is_lost(ops in proptest::collection::vec((0u8..4, 0u8..2, any::<bool>()), 1..200), pick in any::<prop::sample::Index>()) {
        let mut h = model_history(&ops);
        let confirmed: Vec<(String, MsgId)> = h.events().filter_map(|e| match e {
            Event::Confirmed { queue, id, .. } => Some((queue.clone(), *id)),
            _ => None,
        }).collect();
        prop_assume!(!confirmed.is_empty());
        let gone = pick.get(&confirmed).clone();
        for c in &mut h.clients {
            c.retain(|e| !matches!(e, Event::Delivered { queue, id, .. } if (queue, id) == (&gone.0, &gone.1)));
        }
        let v = check(&h);
        prop_assert_eq!(v.lost, vec![gone]);
    }
}
