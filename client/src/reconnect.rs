//! Connecting to the first of several brokers that answers, and trying again
//! after a delay when none does (a shovel's `src-uri` list, RabbitMQ's
//! failover: in order, each once per round).

use std::time::Duration;

use crate::connection::{ClientError, ConnectOptions, Connection};
use crate::uri::Uri;

/// Tries each URI once, in order: the first connection made and its index,
/// or every URI's error.
pub async fn connect_first(
    uris: &[Uri],
    opts: &ConnectOptions,
) -> Result<(Connection, usize), Vec<(usize, ClientError)>> {
    let mut errors = Vec::new();
    for (i, uri) in uris.iter().enumerate() {
        match Connection::connect_with(uri, opts).await {
            Ok(c) => return Ok((c, i)),
            Err(e) => errors.push((i, e)),
        }
    }
    Err(errors)
}

/// Rounds of [`connect_first`] with `delay` between them until one connects
/// or `rounds_max` rounds failed (then the last round's errors); each failed
/// round is told to `on_failure` (a link's status shows it).
pub async fn connect_retrying(
    uris: &[Uri],
    opts: &ConnectOptions,
    delay: Duration,
    rounds_max: u32,
    mut on_failure: impl FnMut(&[(usize, ClientError)]),
) -> Result<(Connection, usize), Vec<(usize, ClientError)>> {
    let mut round = 0;
    loop {
        match connect_first(uris, opts).await {
            Ok(c) => return Ok(c),
            Err(errors) => {
                round += 1;
                on_failure(&errors);
                if round >= rounds_max {
                    return Err(errors);
                }
                tokio::time::sleep(delay).await;
            }
        }
    }
}
