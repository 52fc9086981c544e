//! The peer RabbitMQ of the interop suites (`.ci/rabbitmq_peer.sh`: AMQP 5694,
//! management 15694, with the shovel and federation plugins), or None when it
//! does not answer: the suites then skip, saying how to start one (and fail
//! instead when `RINGMQ_PEER_REQUIRED` is set, as CI's interop step sets it).

use std::time::Duration;

use super::http::Api;

pub struct Peer {
    /// `RINGMQ_SHOVEL_PEER`, as given (default `amqp://guest:guest@127.0.0.1:5694/`).
    pub amqp: String,
    pub http: Api,
}

/// The peer, if its management API answers `probe` (a plugin's path, such
/// as `/api/shovels`) with 200; otherwise None, with a SKIPPED line for `test`.
pub fn rabbitmq(test: &str, probe: &str) -> Option<Peer> {
    let amqp = std::env::var("RINGMQ_SHOVEL_PEER").unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5694/".into());
    let http = std::env::var("RINGMQ_SHOVEL_PEER_HTTP").unwrap_or_else(|_| "http://127.0.0.1:15694".into());
    let api = Api::new(&http, "guest", "guest");
    let hostport = http.trim_start_matches("http://").trim_end_matches('/');
    let listens = std::net::ToSocketAddrs::to_socket_addrs(hostport)
        .ok()
        .and_then(|mut a| a.next())
        .is_some_and(|a| std::net::TcpStream::connect_timeout(&a, Duration::from_secs(1)).is_ok());
    if !listens || api.get(probe).status != 200 {
        let why = format!("no RabbitMQ answering {probe} at {http}; start one with .ci/rabbitmq_peer.sh start DIR");
        // CI's interop step starts the peer: there a skip would be a test
        // that cannot fail.
        assert!(std::env::var_os("RINGMQ_PEER_REQUIRED").is_none(), "{test}: {why}");
        println!("SKIPPED {test}: {why}");
        return None;
    }
    Some(Peer { amqp, http: api })
}
