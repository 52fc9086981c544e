use super::*;

fn listen(dir: &std::path::Path) -> ListenConfig {
    ListenConfig {
        bind: "127.0.0.1".into(),
        amqp_port: 0,
        amqp_proxy_protocol: false,
        amqps: None,
        unix: None,
        mqtt: None,
        tcp_nodelay: true,
        max_connections: 10,
        data_dir: dir.to_path_buf(),
        free_disk_min_bytes: 0,
        mem_high_watermark_bytes: 0,
        backend: IoBackend::Epoll,
        shards: 2,
        services: None,
        notify_socket: None,
        reload: None,
        confirm_gate: None,
    }
}

/// A shard that cannot start (here: its listener's address is not on this
/// host) fails the start with its reason, after its thread ended.
#[test]
fn a_shard_that_cannot_start_fails_the_start_with_its_reason() {
    let dir = tempfile::tempdir().unwrap();
    let (mut first, _port, team) = open(CoreConfig::for_tests(dir.path()), 2).unwrap();
    let mut team = team.expect("two shards: a team");
    // TEST-NET-1 (RFC 5737): never a local address, so bind fails.
    let at = ShardAddrs {
        amqp: vec!["192.0.2.1:1".parse().unwrap()],
        amqps: None,
    };
    let e = team
        .start(&listen(dir.path()), at, IoBackend::Epoll, Duration::from_secs(1))
        .unwrap_err();
    assert!(
        e.to_string().contains("shard 1") && e.to_string().contains("192.0.2.1"),
        "{e}"
    );
    assert!(team.crew.stopping(), "the other shards are told to stop");
    super::super::server::close_unserved(&mut first);
}

/// A shard thread that panicked is an error at the join, not a hang.
#[test]
fn a_panicked_shard_is_an_error_at_the_join() {
    let dir = tempfile::tempdir().unwrap();
    let (mut first, _port, team) = open(CoreConfig::for_tests(dir.path()), 2).unwrap();
    let mut team = team.expect("two shards: a team");
    team.close_unserved();
    team.seeds.clear();
    let crew = team.crew.clone();
    let thread = std::thread::spawn(move || caught(1, &crew, || panic!("boom")));
    team.threads.push((1, thread));
    let e = team.stop_and_join().unwrap_err();
    assert_eq!(e.to_string(), "shard 1 panicked: boom");
    super::super::server::close_unserved(&mut first);
}

/// Credit between shards (`cross`): a publisher whose messages go to another
/// shard's queue is not read once more than the bound is in flight to that
/// shard, and is read again once the peer took enough of it in. A publisher
/// to this shard's own queue is never held back for it, and nothing
/// published is lost.
#[test]
fn a_publisher_to_another_shards_queue_is_held_back_until_the_peer_takes_its_messages_in() {
    use super::cross::flow_bytes;
    use crate::core::mgmt::views::{ConnPhase, View};
    use crate::core::model::meta::{MetaLog, ShardId};
    use crate::core::testkit::client::{method, publish, queue_decl};
    use crate::core::testkit::harness::Harness;
    use ringmq_codec::{BasicProperties, Method};

    let log = MetaLog::new(2);
    let mut shards = Harness::shards(0, 2, &log, false);
    let owned_by = |s: u16| {
        (0..)
            .map(|i| format!("q{i}"))
            .find(|q| ShardId::owner_of_queue("/", q, 2) == ShardId(s))
            .unwrap()
    };
    let (remote, local) = (owned_by(1), owned_by(0));
    let mut links = rings::mesh::<Batch>(2, RING_SLOTS).unwrap();
    let crew = Arc::new(Crew {
        stop: AtomicBool::new(false),
        failure: Mutex::new(None),
        wakes: links[0].wakes(),
        connections: Arc::new(AtomicUsize::new(0)),
    });
    let mut jobs = job_channels(2);
    let peer = CrossPort::new(links.pop().unwrap(), crew.clone(), 2, jobs.pop().unwrap());
    let port = CrossPort::new(links.pop().unwrap(), crew, 2, jobs.pop().unwrap());

    let publisher = shards[0].connect(0, &[1]);
    let other = shards[0].connect(0, &[1]);
    let mut bytes = method(1, Method::QueueDeclare(queue_decl(&remote, false)));
    bytes.extend(method(1, Method::QueueDeclare(queue_decl(&local, false))));
    shards[0].send(publisher, &bytes);
    shards[1].broker_mut().catch_up_meta();
    let props = BasicProperties::default();
    shards[0].send(other, &publish(1, "", &local, &props, b"local"));

    // 8 x 64 KiB per turn until past the bound, the peer taking nothing
    // in: fewer batches than the ring has slots, so it is the credit that
    // holds the publisher back (and wakes it), not a full ring.
    let body = vec![7u8; 64 << 10];
    let held = |h: &Harness, id| h.broker().should_pause_reading(id);
    let mut sent = 0;
    while !held(&shards[0], publisher) {
        assert!(
            sent < 2 * flow_bytes(2) / body.len(),
            "never held back after {sent} publishes"
        );
        let eight: Vec<u8> = (0..8).flat_map(|_| publish(1, "", &remote, &props, &body)).collect();
        shards[0].send(publisher, &eight);
        assert!(!port.pump(shards[0].broker_mut()), "nothing to let go on");
        sent += 8;
    }
    assert!(sent / 8 < RING_SLOTS, "the ring never filled");
    assert!(
        sent * body.len() >= flow_bytes(2),
        "held back at {sent} publishes, before the bound"
    );
    assert!(!held(&shards[0], other), "a publisher to this shard's queues goes on");
    let phase = |h: &Harness, id| View::of(h.broker()).connection(id).unwrap().phase();
    assert!(matches!(phase(&shards[0], publisher), ConnPhase::Flow));
    assert!(matches!(phase(&shards[0], other), ConnPhase::Open));

    // The peer takes in, a batch per turn; the publisher goes on once under
    // half the bound, woken by the peer.
    let _ = port.take_wake();
    let mut freed = false;
    while peer.take_in(shards[1].broker_mut(), 0) > 0 {
        peer.pump(shards[1].broker_mut());
        if port.take_wake() {
            freed |= port.pump(shards[0].broker_mut());
        }
    }
    assert!(freed, "the peer's wake let the publisher go on");
    assert!(!held(&shards[0], publisher));
    assert!(matches!(phase(&shards[0], publisher), ConnPhase::Open));
    let ready = View::of(shards[1].broker())
        .vhost("/")
        .unwrap()
        .queue(&remote)
        .unwrap()
        .ready();
    assert_eq!(ready, sent as u64, "every message stored by the owner");
}
