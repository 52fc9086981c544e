//! Large bodies published back to back (not one confirm at a time): on io_uring
//! a connection then receives its large frames straight into its carry-over
//! (`src/io/uring/driver/direct.rs`), leaves that mode after a run of small
//! messages and comes back to it; every body must arrive byte for byte, in order.

mod common;

use common::*;

/// Sizes in three phases: large (with small ones between), small only (long
/// enough for the direct receives to give way to multishot), large again.
fn sizes() -> Vec<usize> {
    let large = [65_536usize, 16, 100_000, 65_536, 1_024, 65_535, 131_072, 70_000, 0];
    let mut out = Vec::new();
    for _ in 0..12 {
        out.extend_from_slice(&large);
    }
    out.extend(std::iter::repeat_n(100usize, 300));
    for _ in 0..6 {
        out.extend_from_slice(&large);
    }
    out
}

fn body(i: usize, n: usize) -> Vec<u8> {
    (0..n).map(|j| (j * 31 + i * 17 + j / 251) as u8).collect()
}

#[test]
fn pipelined_large_bodies_round_trip_byte_for_byte_in_order() {
    let b = Broker::new();
    run(async {
        let conn = connect(&b).await;
        let ch = confirm_channel(&conn).await;
        let q = unique("q-large-pipelined");
        temp_queue(&ch, &q).await;
        let sizes = sizes();
        let mut confirms = Vec::with_capacity(sizes.len());
        for (i, n) in sizes.iter().enumerate() {
            let c = within(
                "basic.publish",
                ch.basic_publish(
                    "".into(),
                    q.as_str().into(),
                    BasicPublishOptions::default(),
                    &body(i, *n),
                    BasicProperties::default(),
                ),
            )
            .await
            .expect("basic.publish");
            confirms.push(c);
        }
        for c in confirms {
            within("publisher confirm", c).await.expect("publisher confirm");
        }
        let mut consumer = consume_no_ack(&ch, &q).await;
        for (i, n) in sizes.iter().enumerate() {
            let d = next(&mut consumer).await;
            assert_eq!(d.data.len(), *n, "message {i}");
            assert!(d.data == body(i, *n), "message {i}: {n} bytes differ");
        }
    });
}
