//! What the links' status APIs (`/api/shovels`, `/api/federation-links`)
//! show the same way: URIs without their credentials, times as RabbitMQ
//! prints them.

use std::time::{SystemTime, UNIX_EPOCH};

pub fn now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// RabbitMQ's shovel and federation timestamp: `2026-12-05 6:32:58` (local
/// time there; UTC here).
pub fn timestamp(secs: u64) -> String {
    let (y, m, d) = crate::tls::x509::civil_from_days((secs / 86_400) as i64);
    let s = secs % 86_400;
    format!("{y}-{m:02}-{d:02} {}:{:02}:{:02}", s / 3600, s % 3600 / 60, s % 60)
}

/// A URI as the status shows it: without `user:password@`.
pub fn without_credentials(uri: &str) -> String {
    match uri.split_once("://") {
        Some((scheme, rest)) => {
            let (authority, path) = rest.split_once('/').map_or((rest, None), |(a, p)| (a, Some(p)));
            let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
            match path {
                Some(p) => format!("{scheme}://{host}/{p}"),
                None => format!("{scheme}://{host}"),
            }
        }
        None => uri.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_and_uris_as_shown() {
        assert_eq!(timestamp(1_700_000_000), "2023-11-14 22:13:20");
        assert_eq!(timestamp(1_700_000_000 - 22 * 3600), "2023-11-14 0:13:20");
        assert_eq!(without_credentials("amqp://u:p@h:5672/v"), "amqp://h:5672/v");
        assert_eq!(without_credentials("amqp://"), "amqp://");
        assert_eq!(without_credentials("amqp://u:p@"), "amqp://");
    }
}
