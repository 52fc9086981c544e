use super::*;

fn listen(dir: &std::path::Path) -> ListenConfig {
    ListenConfig {
        bind: "127.0.0.1".into(),
        amqp_port: 0,
        amqp_proxy_protocol: false,
        amqps: None,
        unix: None,
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
