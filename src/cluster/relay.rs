//! A follower's relay: clients may connect to any node (a load balancer
//! needs no knowledge of roles), and a follower passes each connection's
//! bytes both ways to the leader, as LavinMQ's followers do. The leader is
//! looked up per connection, so a relay follows a failover.

use std::cell::RefCell;
use std::rc::Rc;

use tokio::net::{TcpListener, TcpStream};

/// Where the leader takes connections now (host:port), if one is known.
pub type LeaderAddr = Rc<RefCell<Option<String>>>;

/// Relays every connection accepted on `listener` to the leader, until the
/// task is dropped. With no leader known a connection is closed at once (the
/// client retries, as after any failover).
pub async fn relay(listener: TcpListener, leader: LeaderAddr) {
    loop {
        let (client, peer) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!(error = %e, "cannot accept a connection to relay");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        let to = leader.borrow().clone();
        tokio::task::spawn_local(async move {
            let Some(to) = to else {
                tracing::info!(%peer, "no leader to relay a connection to");
                return;
            };
            if let Err(e) = pass(client, &to).await {
                tracing::debug!(%peer, leader = %to, error = %e, "a relayed connection ended");
            }
        });
    }
}

async fn pass(mut client: TcpStream, to: &str) -> std::io::Result<()> {
    let mut upstream = TcpStream::connect(to).await?;
    let _ = client.set_nodelay(true);
    let _ = upstream.set_nodelay(true);
    tokio::io::copy_bidirectional(&mut client, &mut upstream).await?;
    Ok(())
}
