//! Load and socket helpers shared by the durability tests (power loss, docker
//! stop under load) and the hostile-client tests.

use std::collections::{BTreeSet, VecDeque};
use std::io::Read;
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use lapin::options::{BasicPublishOptions, ConfirmSelectOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties};

/// Connects to `uri` and opens a channel in confirm mode with the durable queue
/// `queue` declared.
pub async fn durable_confirm_channel(uri: &str, queue: &str) -> (Connection, Channel) {
    let conn = Connection::connect(uri, ConnectionProperties::default())
        .await
        .expect("connect");
    let ch = conn.create_channel().await.expect("channel");
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .expect("confirm.select");
    let durable = QueueDeclareOptions {
        durable: true,
        ..Default::default()
    };
    ch.queue_declare(queue.into(), durable, FieldTable::default())
        .await
        .expect("queue.declare");
    (conn, ch)
}

/// The body of message `id` in [`publish_confirmed_until`]; they sort as the ids do.
pub fn body_of(id: u64) -> String {
    format!("{id:012}")
}

/// Publishes persistent messages with ids 0, 1, ... to the durable queue `queue`
/// with confirms (up to 200 outstanding) until `stop` is set or the broker is gone;
/// `confirmed` gets each id whose confirm (an ack) arrived.
pub async fn publish_confirmed_until(
    uri: String,
    queue: &str,
    confirmed: Arc<Mutex<BTreeSet<u64>>>,
    stop: Arc<AtomicBool>,
) {
    publish_until(uri, queue, confirmed, stop, |_| false).await
}

/// Whether message `id` of [`publish_mixed_confirmed_until`] is transient.
pub fn mixed_transient(id: u64) -> bool {
    id % 3 == 1
}

/// [`publish_confirmed_until`], with every third message transient
/// ([`mixed_transient`]): a restart drops those, so `confirmed` gets only the
/// persistent ones.
pub async fn publish_mixed_confirmed_until(
    uri: String,
    queue: &str,
    confirmed: Arc<Mutex<BTreeSet<u64>>>,
    stop: Arc<AtomicBool>,
) {
    publish_until(uri, queue, confirmed, stop, mixed_transient).await
}

async fn publish_until(
    uri: String,
    queue: &str,
    confirmed: Arc<Mutex<BTreeSet<u64>>>,
    stop: Arc<AtomicBool>,
    transient: fn(u64) -> bool,
) {
    let (_conn, ch) = durable_confirm_channel(&uri, queue).await;
    let mut pending = VecDeque::new();
    let mut id = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let props = BasicProperties::default().with_delivery_mode(if transient(id) { 1 } else { 2 });
        let Ok(c) = ch
            .basic_publish(
                "".into(),
                queue.into(),
                BasicPublishOptions::default(),
                body_of(id).as_bytes(),
                props,
            )
            .await
        else {
            return;
        };
        pending.push_back((id, c));
        id += 1;
        while pending.len() >= 200 {
            let (i, c) = pending.pop_front().expect("non-empty");
            match tokio::time::timeout(Duration::from_secs(5), c).await {
                Ok(Ok(conf)) if conf.is_ack() => {
                    if !transient(i) {
                        confirmed.lock().expect("lock").insert(i);
                    }
                }
                _ => return,
            }
        }
    }
}

/// True once the peer closed `s` (EOF or reset) within `within`.
pub fn closed_within(s: &mut TcpStream, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    let mut buf = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        s.set_read_timeout(Some(left)).expect("set_read_timeout");
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                return false
            }
            Err(_) => return true,
        }
    }
}

/// Takes every message of the durable queue `queue` (which must exist) with
/// basic.get, no-ack, and gives their ids (bodies of [`publish_confirmed_until`]).
pub async fn take_all_ids(ch: &Channel, queue: &str) -> Vec<u64> {
    let passive = QueueDeclareOptions {
        passive: true,
        ..Default::default()
    };
    let q = ch
        .queue_declare(queue.into(), passive, FieldTable::default())
        .await
        .expect("the durable queue is there");
    let mut ids = Vec::with_capacity(q.message_count() as usize);
    for _ in 0..q.message_count() {
        let get = ch.basic_get(queue.into(), lapin::options::BasicGetOptions { no_ack: true });
        let m = tokio::time::timeout(Duration::from_secs(10), get)
            .await
            .expect("basic.get in time")
            .expect("basic.get")
            .expect("a message");
        ids.push(
            std::str::from_utf8(&m.delivery.data)
                .expect("UTF-8")
                .parse()
                .expect("an id"),
        );
    }
    ids
}

/// Asserts every id in `confirmed` is in `found`, and `found` is in publish order
/// without duplicates; `what` names the event in the message.
#[track_caller]
pub fn assert_none_lost(confirmed: &BTreeSet<u64>, found: &[u64], what: &str) {
    let found_set: BTreeSet<u64> = found.iter().copied().collect();
    let lost: Vec<u64> = confirmed.difference(&found_set).copied().collect();
    assert!(
        lost.is_empty(),
        "{} of {} confirmed messages lost at {what}: first {:?}",
        lost.len(),
        confirmed.len(),
        &lost[..lost.len().min(10)]
    );
    assert!(
        found.windows(2).all(|w| w[0] < w[1]),
        "order or duplicates after {what}"
    );
}
