//! Property test: `QueueStore` against an in-memory model, including reopen in the
//! middle (in-flight messages come back ready, in original order).
//!
//! The model: message ids increase with append order, and the store delivers requeued
//! messages in original order ahead of new ones, so "ready" is simply the ascending
//! set of ids.

use std::collections::BTreeSet;

use proptest::prelude::*;
use ringmq_store::{MessageRef, QueueStore, SegmentPosition, StoreConfig};

#[derive(Debug, Clone)]
enum Op {
    Append(usize),
    Next,
    Ack(usize),
    Requeue(usize),
    RemoveHead,
    Purge,
    Sync,
    Reopen { clean: bool },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => (0usize..60).prop_map(Op::Append),
        6 => Just(Op::Next),
        4 => any::<usize>().prop_map(Op::Ack),
        2 => any::<usize>().prop_map(Op::Requeue),
        1 => Just(Op::RemoveHead),
        1 => Just(Op::Purge),
        1 => Just(Op::Sync),
        1 => any::<bool>().prop_map(|clean| Op::Reopen { clean }),
    ]
}

fn cfg() -> StoreConfig {
    StoreConfig {
        segment_bytes: 300,
        ..StoreConfig::default()
    }
}

fn id_of(q: &QueueStore, pos: SegmentPosition) -> u64 {
    let v = q.read(pos).unwrap();
    u64::from_le_bytes(v.body[..8].try_into().unwrap())
}

fn run(ops: Vec<Op>) {
    let dir = tempfile::tempdir().unwrap();
    let (mut q, _) = QueueStore::open(dir.path(), cfg()).unwrap();
    let mut next_id = 0u64;
    let mut ready = BTreeSet::<u64>::new();
    let mut in_flight: Vec<(u64, SegmentPosition)> = Vec::new();
    for op in ops {
        match op {
            Op::Append(extra) => {
                let mut body = next_id.to_le_bytes().to_vec();
                body.resize(8 + extra, 0x5A);
                q.append(MessageRef {
                    timestamp_ms: next_id,
                    exchange: b"x",
                    routing_key: b"",
                    properties: b"",
                    body: &body,
                })
                .unwrap();
                ready.insert(next_id);
                next_id += 1;
            }
            Op::Next => match q.next_ready().unwrap() {
                Some(pos) => {
                    let id = id_of(&q, pos);
                    assert_eq!(Some(id), ready.pop_first());
                    in_flight.push((id, pos));
                }
                None => assert!(ready.is_empty()),
            },
            Op::Ack(i) if !in_flight.is_empty() => {
                let (_, pos) = in_flight.swap_remove(i % in_flight.len());
                q.ack(pos).unwrap();
            }
            Op::Requeue(i) if !in_flight.is_empty() => {
                let (id, pos) = in_flight.swap_remove(i % in_flight.len());
                q.requeue(pos).unwrap();
                ready.insert(id);
            }
            Op::Ack(_) | Op::Requeue(_) => {}
            Op::RemoveHead => {
                let head = q.peek_ready().unwrap();
                let id = head.map(|p| id_of(&q, p));
                assert_eq!(id, ready.first().copied());
                assert_eq!(q.remove_next_ready().unwrap(), head);
                ready.pop_first();
            }
            Op::Purge => {
                assert_eq!(q.purge().unwrap(), ready.len() as u64);
                ready.clear();
            }
            Op::Sync => q.sync_all_blocking().unwrap(),
            Op::Reopen { clean } => {
                if clean {
                    q.close().unwrap();
                } else {
                    drop(q);
                }
                let (q2, report) = QueueStore::open(dir.path(), cfg()).unwrap();
                q = q2;
                ready.extend(in_flight.drain(..).map(|(id, _)| id));
                assert_eq!(report.messages_recovered, ready.len() as u64);
                assert!(report.damaged.is_empty(), "{report:?}");
            }
        }
        assert_eq!(q.ready_count(), ready.len() as u64);
        assert_eq!(q.unacked_count(), in_flight.len() as u64);
    }
    // Drain: exactly the model's ready ids, in order, no loss, no duplicates.
    let mut drained = Vec::new();
    while let Some(pos) = q.next_ready().unwrap() {
        drained.push(id_of(&q, pos));
        q.ack(pos).unwrap();
    }
    assert_eq!(drained, ready.into_iter().collect::<Vec<_>>());
    for (_, pos) in in_flight {
        q.ack(pos).unwrap();
    }
    assert_eq!(q.total_bytes(), 0);
    assert!(
        q.segment_count() <= 1,
        "all done segments but the write one are deleted"
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]
    #[test]
    fn store_matches_model(ops in proptest::collection::vec(op(), 1..250)) {
        run(ops);
    }
}
