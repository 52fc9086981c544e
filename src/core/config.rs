//! The settings the core needs from the configuration (the io layer owns the rest).

use std::path::PathBuf;

use ringmq_store::StoreConfig;

/// Broker-wide settings the core needs (the io layer owns the rest).
#[derive(Debug, Clone)]
pub struct CoreConfig {
    pub data_dir: PathBuf,
    pub frame_max: u32,
    pub channel_max: u16,
    pub heartbeat_secs: u16,
    pub max_message_bytes: u64,
    pub store: StoreConfig,
    /// false = `--no-sync`: confirm without waiting for fsync.
    pub sync: bool,
    /// The user created at start (RabbitMQ's guest): name, password, loopback only.
    pub default_user: (String, String, bool),
    /// Broker-wide consumer timeout (ms); `x-consumer-timeout` overrides it per
    /// queue. None: off, as LavinMQ (RabbitMQ's default is 30 minutes).
    pub consumer_timeout_ms: Option<u64>,
    /// `--load-definitions FILE`: a definitions JSON imported at every start
    /// (as RabbitMQ's `load_definitions`); a bad file stops the start.
    pub load_definitions: Option<PathBuf>,
    /// `max_consumers_per_channel` (LavinMQ's key): basic.consume beyond it is a
    /// channel error 506. None: only the hard bound `CONSUMERS_PER_CHANNEL_MAX`.
    pub max_consumers_per_channel: Option<std::num::NonZeroU32>,
    /// A connection must finish the handshake (up to connection.open-ok) within
    /// this or is closed (RabbitMQ's `handshake_timeout`).
    pub handshake_timeout_ms: u64,
    /// Where a stream consumer without `x-stream-offset` starts: `next` as
    /// RabbitMQ (the default), `first` as LavinMQ, or `last`
    /// (`default_stream_offset`, `--default-stream-offset`).
    pub default_stream_offset: DefaultStreamOffset,
    /// The secret this start's own links (shovels, federation) log in with
    /// over loopback (`RINGMQ-INTERNAL`); None: that mechanism is refused.
    pub internal_secret: Option<InternalSecret>,
}

/// A secret made at each start for the broker's own AMQP clients (shovels and
/// federation links, `src/links/`). They log in over loopback as a user of
/// this broker without knowing its password, as RabbitMQ's links use a
/// direct connection that needs none: an operator who changes the default
/// user's password, or gives it only as a hash, does not break them. It is
/// never written anywhere, logged or sent beyond loopback.
#[derive(Clone, PartialEq, Eq)]
pub struct InternalSecret(std::sync::Arc<str>);

impl InternalSecret {
    /// The secret of 32 random bytes (the caller reads them: the core does
    /// no IO), as hex.
    pub fn from_random(bytes: [u8; 32]) -> InternalSecret {
        use std::fmt::Write;
        let mut s = String::with_capacity(64);
        for b in bytes {
            let _ = write!(s, "{b:02x}");
        }
        InternalSecret(s.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether `given` is this secret (every byte compared: no timing hint).
    pub fn matches(&self, given: &[u8]) -> bool {
        let mine = self.0.as_bytes();
        mine.len() == given.len() && mine.iter().zip(given).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
    }
}

impl std::fmt::Debug for InternalSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("InternalSecret(..)")
    }
}

/// Where a stream consumer without `x-stream-offset` starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DefaultStreamOffset {
    /// Only what is published from now on (RabbitMQ's default).
    #[default]
    Next,
    /// The stream's first message (LavinMQ's default).
    First,
    /// The newest chunk (RabbitMQ's `last`).
    Last,
}

/// RabbitMQ's default `handshake_timeout`.
pub const DEFAULT_HANDSHAKE_TIMEOUT_MS: u64 = 10_000;

impl CoreConfig {
    /// Small, fast settings for unit tests in `dir` (no fsync, 64 KiB segments).
    #[cfg(test)]
    pub(crate) fn for_tests(dir: &std::path::Path) -> CoreConfig {
        CoreConfig {
            data_dir: dir.to_path_buf(),
            frame_max: 131072,
            channel_max: 16,
            heartbeat_secs: 0,
            max_message_bytes: 1 << 20,
            store: StoreConfig {
                segment_bytes: 64 * 1024,
                ..Default::default()
            },
            sync: false,
            default_user: ("guest".into(), "guest".into(), true),
            consumer_timeout_ms: None,
            load_definitions: None,
            max_consumers_per_channel: None,
            handshake_timeout_ms: DEFAULT_HANDSHAKE_TIMEOUT_MS,
            default_stream_offset: DefaultStreamOffset::Next,
            internal_secret: None,
        }
    }
}
