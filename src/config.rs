//! Broker configuration: defaults, then the INI file, then command-line flags.
//!
//! `ringmq -D DIR` is all it takes; everything else has a default. Settings come from
//! the command line and its file, so that what a broker does is visible there, and
//! for containers, from a handful of environment variables:
//!
//! 1. the INI file named by `-c/--config`, with LavinMQ's sections and key names, so a
//!    `lavinmq.ini` works unchanged (unknown keys are warnings, as in LavinMQ);
//! 2. the variables of the [`env`] module (the first user, as RabbitMQ's image
//!    reads `RABBITMQ_DEFAULT_USER`), read once by `main`;
//! 3. the flags, which override both (LavinMQ parses ARGV, then the file, then
//!    ARGV again for the same effect).
//!
//! ```ini
//! [main]
//! data_dir = /var/lib/ringmq
//! log_level = info
//! # plain bytes as LavinMQ writes them; 8MiB also works
//! segment_size = 8388608
//!
//! [amqp]
//! bind = 127.0.0.1
//! port = 5672
//! heartbeat = 60
//!
//! [mgmt]
//! port = 15672
//!
//! [clustering]
//! enabled = false
//! ```
//!
//! Comments must be on their own line (see the `ini` module for why). Each value is parsed and
//! range-checked in one place, `keys::set`, whichever source it comes from; a bad
//! value in the file is an error naming the file, line and key.

mod args;
mod checks;
pub mod env;
mod error;
mod example;
mod flags;
mod flags_tls;
mod ini;
mod keys;
mod mqtt;
mod sni;
#[cfg(test)]
mod tests;
mod tls;
mod values;

pub use error::ConfigError;
pub use mqtt::{MqttConfig, DEFAULT_MQTT_PORT};
pub use sni::{SniConfig, SniEffective, SniKeys, SniListener};
pub use tls::{is_tls13_suite, TlsVersion, CIPHER_SUITES};
pub use values::{DefaultPassword, IoBackend, LogFormat, LogLevel, MemWatermark, Section};

use std::num::NonZeroU32;
use std::path::{Path, PathBuf};

use flags::{Action, TokenError};
use keys::Outcome;

/// Smallest frame_max a peer may propose (AMQP 0-9-1 §4.2.3, `frame-min-size`).
pub const FRAME_MIN_BYTES: u32 = 4096;
/// Largest frame_max we accept. Frames are buffered whole before they are decoded, so
/// this bounds per-connection receive memory; clients rarely ask for more than the
/// 128 KiB default, and bigger messages are split into body frames anyway.
pub const FRAME_MAX_BYTES_LIMIT: u32 = 16 << 20;
/// Channel numbers are 16-bit on the wire.
pub const CHANNEL_MAX_LIMIT: u16 = u16::MAX;
/// RabbitMQ's hard ceiling for `max_message_size`; a message is appended to a segment
/// as one record with a 32-bit length, and 512 MiB keeps well inside that.
pub const MAX_MESSAGE_BYTES_LIMIT: u64 = 512 << 20;
/// Segments are mmapped, so they are at least a page.
pub const SEGMENT_BYTES_MIN: u32 = 4096;
/// Shards are threads; more than one per core only adds contention.
pub const SHARDS_LIMIT: u16 = 256;

pub const DEFAULT_SEGMENT_BYTES: u32 = ringmq_store::DEFAULT_SEGMENT_BYTES;
pub const DEFAULT_MAX_MESSAGE_BYTES: u64 = 128 << 20;
pub const DEFAULT_AMQP_PORT: u16 = 5672;
pub const DEFAULT_HTTP_PORT: u16 = 15672;
/// RabbitMQ's Prometheus port.
pub const DEFAULT_METRICS_PORT: u16 = 15692;
pub const DEFAULT_CLUSTERING_PORT: u16 = 5679;
pub const DEFAULT_FRAME_MAX_BYTES: u32 = 131_072;
pub const DEFAULT_CHANNEL_MAX: u16 = 2047;
/// RabbitMQ's default `handshake_timeout`.
pub const DEFAULT_HANDSHAKE_TIMEOUT_MS: u64 = crate::core::config::DEFAULT_HANDSHAKE_TIMEOUT_MS;
/// RabbitMQ's default. LavinMQ proposes 300 s; we follow RabbitMQ (DESIGN: behave as
/// RabbitMQ where the protocol leaves a choice), which detects dead peers sooner.
pub const DEFAULT_HEARTBEAT_SECS: u16 = 60;
/// LavinMQ has no connection limit. We need a bound (STYLE: a limit on everything):
/// each connection holds a socket and buffers, and 65535 is above what one host can
/// usefully serve from one address yet far below what exhausts memory.
pub const DEFAULT_MAX_CONNECTIONS: u32 = 65_535;

/// The whole configuration. Built by [`Config::from_args`]; every field is valid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub main: MainConfig,
    pub amqp: AmqpConfig,
    pub mgmt: MgmtConfig,
    pub clustering: ClusteringConfig,
    pub mqtt: MqttConfig,
    /// `[sni:HOST]` sections (LavinMQ's): certificates and TLS settings chosen by the
    /// name a TLS client asks for, in file order.
    pub sni: Vec<SniConfig>,
    /// Things ignored on the way (unknown keys and sections). Returned rather than
    /// logged because the log level is itself a setting: log them once logging is up.
    pub warnings: Vec<String>,
}

/// `[main]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MainConfig {
    /// `data_dir`, `-D/--data-dir`. Required: LavinMQ falls back to `/var/lib/lavinmq`
    /// from the environment, we do not read the environment.
    pub data_dir: PathBuf,
    /// `log_level`, `-l/--log-level`, `-d/--debug`.
    pub log_level: LogLevel,
    /// `text` (default) or `json`: one JSON object per line, for log collectors.
    pub log_format: LogFormat,
    /// `segment_size`, `--segment-size`: size of a new segment file.
    pub segment_bytes: u32,
    /// `free_disk_min`, `--free-disk-min`: publishers get connection.blocked while the
    /// data directory's file system has less free space than this. 0 (LavinMQ's
    /// default) means [`MainConfig::free_disk_min_effective_bytes`]: two segments, so
    /// the current segment can always be finished and a new one opened.
    pub free_disk_min_bytes: u64,
    /// `memory_high_watermark`, `--memory-high-watermark`: publishers get
    /// connection.blocked ("low on memory") while the broker's RSS is at or above
    /// this, as RabbitMQ's `vm_memory_high_watermark` (default 0.4 of RAM).
    pub mem_high_watermark: MemWatermark,
    /// ringmq `sync`, `--no-sync`: fsync before confirming durable messages. Off trades
    /// the no-loss guarantee on power failure for throughput (a kill -9 still loses
    /// nothing, the page cache survives it).
    pub sync: bool,
    /// ringmq `io`, `--io`.
    pub io: IoBackend,
    /// ringmq `shards`, `--shards`: number of shard threads.
    pub shards: u16,
    /// `consumer_timeout`, `--consumer-timeout` (ms): an unacked delivery older
    /// than this closes its channel with 406, as RabbitMQ's consumer timeout. Off
    /// (None) by default, as in LavinMQ.
    pub consumer_timeout_ms: Option<u64>,
    /// `default_stream_offset`, `--default-stream-offset`: where a stream
    /// consumer without `x-stream-offset` starts: `next` (RabbitMQ's, the
    /// default), `first` (LavinMQ's) or `last`.
    pub default_stream_offset: crate::core::config::DefaultStreamOffset,
    /// `load_definitions`, `--load-definitions`: a definitions JSON file (RabbitMQ
    /// format) imported at every start.
    pub load_definitions: Option<PathBuf>,
    /// `default_user`, `--default-user`: created with full rights on first start.
    pub default_user: String,
    /// `default_password` / `default_password_hash`, `--default-password` /
    /// `--default-password-hash`.
    pub default_password: DefaultPassword,
    /// `default_user_only_loopback` (LavinMQ; RabbitMQ's `loopback_users`).
    pub default_user_only_loopback: bool,
    /// `tls_cert`, `--cert`: kept for the TLS listeners.
    pub tls_cert_path: Option<PathBuf>,
    /// `tls_key`, `--key`.
    pub tls_key_path: Option<PathBuf>,
    /// `tls_min_version`, `--tls-min-version` (LavinMQ's names): see [`TlsVersion`].
    pub tls_min_version: TlsVersion,
    /// `tls_ciphers`, `--ciphers` (LavinMQ's names): the suites offered, by rustls's
    /// names in preference order; empty is all of [`CIPHER_SUITES`], rustls's order.
    pub tls_ciphers: Vec<String>,
    /// `tls_verify_peer`, `--tls-verify-peer` (LavinMQ's key, from its `[sni:HOST]`
    /// sections; RabbitMQ's `ssl_options.verify = verify_peer`): AMQPS clients
    /// are asked for a certificate, verified against `tls_ca_cert`.
    pub tls_verify_peer: bool,
    /// `tls_ca_cert`, `--ca-cert` (LavinMQ's; RabbitMQ's `cacertfile`): PEM CAs.
    pub tls_ca_cert_path: Option<PathBuf>,
    /// `tls_fail_if_no_peer_cert`, `--tls-fail-if-no-peer-cert` (RabbitMQ's
    /// `fail_if_no_peer_cert`): with `tls_verify_peer`, a client without a
    /// certificate is refused. True by default, unlike RabbitMQ's false:
    /// LavinMQ's `tls_verify_peer` alone already refuses such clients
    /// (OpenSSL's FAIL_IF_NO_PEER_CERT), and failing closed is the safer reading
    /// of a file that asks for client certificates.
    pub tls_fail_if_no_peer_cert: bool,
    /// `tls_cert_login_from`, `--tls-cert-login-from` (RabbitMQ's
    /// `ssl_cert_login_from`, its values and its default, `distinguished_name`):
    /// which name of a verified client certificate SASL EXTERNAL logs in as.
    pub tls_cert_login_from: String,
    /// `tls_cert_login_san_type` (RabbitMQ's `ssl_cert_login_san_type`): with
    /// `subject_alternative_name`, the kind of name.
    pub tls_cert_login_san_type: crate::tls::SanKind,
    /// `tls_cert_login_san_index` (RabbitMQ's `ssl_cert_login_san_index`): with
    /// `subject_alternative_name`, which one of that kind, from 0.
    pub tls_cert_login_san_index: usize,
}

impl MainConfig {
    /// The free-space floor in force: `free_disk_min_bytes`, or two segments if 0.
    pub fn free_disk_min_effective_bytes(&self) -> u64 {
        if self.free_disk_min_bytes == 0 {
            2 * u64::from(self.segment_bytes)
        } else {
            self.free_disk_min_bytes
        }
    }
}

/// The addresses of a listener's `bind` setting: one, or a list separated by
/// commas or spaces (`127.0.0.1, ::1`), as RabbitMQ listens on several
/// (`listeners.tcp.1`, `listeners.tcp.2`). A repeated `--bind` adds to the list.
pub fn bind_addresses(bind: &str) -> impl Iterator<Item = &str> {
    bind.split([',', ' ', '\t']).filter(|a| !a.is_empty())
}

/// A listener address flag given more than once (`--bind A --bind B`) means
/// every address: each occurrence is applied with the values so far joined.
fn merge_repeated_binds(given: &[flags::Given]) -> Vec<flags::Given> {
    let lists = |g: &flags::Given| matches!(g.flag.action, Action::Set(targets) if targets.iter().any(|(_, k)| k.ends_with("bind")));
    let mut out: Vec<flags::Given> = Vec::with_capacity(given.len());
    for g in given {
        let mut g = g.clone();
        if lists(&g) {
            let earlier = out.iter().rev().find(|p| std::ptr::eq(p.flag, g.flag));
            if let (Some(p), Some(v)) = (earlier.and_then(|p| p.value.as_ref()), g.value.as_mut()) {
                *v = format!("{p},{v}");
            }
        }
        out.push(g);
    }
    out
}

/// `[amqp]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AmqpConfig {
    /// `bind`, `--amqp-bind`, `-b/--bind`: one address or several
    /// ([`bind_addresses`]). LavinMQ's default, loopback only: an unconfigured
    /// broker with guest/guest must not be reachable from the network.
    pub bind: String,
    /// `port`, `-p/--amqp-port`. 0 asks the OS for a free port (for tests).
    pub port: u16,
    /// `tls_port`, `--amqps-port`; `-1` in the file is `None`, disabled. Disabled by
    /// default because it needs `tls_cert`/`tls_key` (LavinMQ also only listens on
    /// its 5671 when a certificate is configured).
    pub tls_port: Option<u16>,
    /// `heartbeat`, `--heartbeat`: proposed in connection.tune; 0 disables.
    /// RabbitMQ's `handshake_timeout`: from accept to connection.open-ok.
    pub handshake_timeout_ms: u64,
    pub heartbeat_secs: u16,
    /// `frame_max`, `--frame-max`: proposed in connection.tune.
    pub frame_max_bytes: u32,
    /// `channel_max`, `--channel-max`: proposed in connection.tune.
    pub channel_max: u16,
    /// `max_message_size` (LavinMQ has it under `[amqp]`), `--max-message-size`.
    pub max_message_bytes: u64,
    /// ringmq `max_connections`, `--max-connections`: more are closed at accept.
    pub max_connections: u32,
    /// `max_consumers_per_channel`; `None` (0 in the file) is no limit, as in LavinMQ.
    pub max_consumers_per_channel: Option<NonZeroU32>,
    /// `tcp_nodelay` (LavinMQ reads it from `[main]`; `[amqp]` works too),
    /// `--tcp-nodelay`. LavinMQ defaults to false; we default to true because the
    /// transport already batches a loop turn's frames into one send, so Nagle only
    /// adds up to 40 ms (delayed ACK) to a lone confirm or delivery.
    pub tcp_nodelay: bool,
    /// `unix_path`, `--amqp-unix-path` (LavinMQ's names): AMQP on a Unix
    /// domain socket too; `None` (empty) is none.
    pub unix_path: Option<PathBuf>,
    /// `tcp_proxy_protocol` (LavinMQ's), `--amqp-proxy-protocol`: the AMQP
    /// port requires a PROXY protocol header (v1 or v2) before the client's
    /// first byte; the header's client is the connection's peer.
    pub tcp_proxy_protocol: bool,
    /// ringmq `tls_proxy_protocol`, `--amqps-proxy-protocol`: the same on the
    /// AMQPS port, the header before the TLS handshake.
    pub tls_proxy_protocol: bool,
    /// `unix_proxy_protocol`, `--amqp-unix-proxy-protocol`: the same on the
    /// Unix socket. Off by default, where LavinMQ's is 1 and its header
    /// optional: here a listener's header is either required or not read.
    pub unix_proxy_protocol: bool,
}

/// `[mgmt]` (LavinMQ also accepts `[http]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MgmtConfig {
    /// `bind`, `--http-bind`, `-b/--bind`: one address or several ([`bind_addresses`]).
    pub bind: String,
    /// `port`, `--http-port`; `None` (-1) disables the HTTP API.
    pub port: Option<u16>,
    /// `tls_port`, `--https-port`; disabled by default for the reason on
    /// [`AmqpConfig::tls_port`].
    pub tls_port: Option<u16>,
    /// `metrics_http_bind`, `--metrics-http-bind` (LavinMQ's names; also read
    /// from `[main]`): the unauthenticated Prometheus listener. Loopback by
    /// default, as everything that needs no login.
    pub metrics_bind: String,
    /// `metrics_http_port`, `--metrics-http-port`; `None` (-1) disables it, 0
    /// picks a free port. RabbitMQ's 15692 by default.
    pub metrics_port: Option<u16>,
    /// `unix_path`, `--http-unix-path` (LavinMQ's names): the API on a Unix
    /// domain socket too; `None` (empty) is none.
    pub unix_path: Option<PathBuf>,
    /// `control_unix_path` in `[main]`, `--control-unix-path` (LavinMQ's
    /// names): the API on the Unix socket `ringmqctl` tries first when given
    /// no connection option; [`DEFAULT_CONTROL_UNIX_PATH`] by default, `None`
    /// (empty) is none. Mode 0660. At the default path a socket that cannot
    /// be made (no `/run/ringmq`, another broker listening there) is a log
    /// line, not an error.
    pub control_unix_path: Option<PathBuf>,
}

/// The control socket's default path: in systemd's `RuntimeDirectory=ringmq`
/// (packaging/systemd), a directory only the broker's user writes, so no other
/// local user can put a socket of theirs where `ringmqctl` looks. LavinMQ's
/// default is `/tmp/lavinmqctl.sock`, which any local user can take first.
pub const DEFAULT_CONTROL_UNIX_PATH: &str = "/run/ringmq/ringmqctl.sock";

/// `[clustering]`: parsed and kept for the cluster module.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusteringConfig {
    /// `enabled`, `--clustering`.
    pub enabled: bool,
    /// `bind`, `--clustering-bind`: where followers connect.
    pub bind: String,
    /// `port`, `--clustering-port`.
    pub port: u16,
    /// `etcd_endpoints`, `--clustering-etcd-endpoints`: comma-separated host:port.
    pub etcd_endpoints: Vec<String>,
    /// `etcd_prefix`, `--clustering-etcd-prefix`. Not LavinMQ's "lavinmq": the two
    /// replicate differently and must not elect each other.
    pub etcd_prefix: String,
    /// `advertised_uri`, `--clustering-advertised-uri`; `None` means
    /// `tcp://HOSTNAME:PORT`, resolved by the cluster module.
    pub advertised_uri: Option<String>,
    /// `min_isr`, `--clustering-min-isr` (ringmq): how many nodes, the leader
    /// included, must hold a change before it is confirmed. LavinMQ has no
    /// such key: it confirms with whichever followers are in sync, none
    /// included, which is this key's default, 1.
    pub min_isr: u8,
}

impl Default for Config {
    /// Everything but `data_dir`, which has no default and is left empty.
    fn default() -> Self {
        Self {
            main: MainConfig {
                data_dir: PathBuf::new(),
                log_level: LogLevel::Info,
                log_format: LogFormat::Text,
                segment_bytes: DEFAULT_SEGMENT_BYTES,
                free_disk_min_bytes: 0,
                mem_high_watermark: MemWatermark::PerMille(400),
                sync: true,
                io: IoBackend::Auto,
                shards: 1,
                consumer_timeout_ms: None,
                default_stream_offset: crate::core::config::DefaultStreamOffset::Next,
                load_definitions: None,
                default_user: "guest".into(),
                default_password: DefaultPassword::Plain("guest".into()),
                default_user_only_loopback: true,
                tls_cert_path: None,
                tls_key_path: None,
                tls_min_version: TlsVersion::V1_2,
                tls_ciphers: Vec::new(),
                tls_verify_peer: false,
                tls_ca_cert_path: None,
                tls_fail_if_no_peer_cert: true,
                tls_cert_login_from: "distinguished_name".into(),
                tls_cert_login_san_type: crate::tls::SanKind::Dns,
                tls_cert_login_san_index: 0,
            },
            amqp: AmqpConfig {
                bind: "127.0.0.1".into(),
                port: DEFAULT_AMQP_PORT,
                tls_port: None,
                handshake_timeout_ms: DEFAULT_HANDSHAKE_TIMEOUT_MS,
                heartbeat_secs: DEFAULT_HEARTBEAT_SECS,
                frame_max_bytes: DEFAULT_FRAME_MAX_BYTES,
                channel_max: DEFAULT_CHANNEL_MAX,
                max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
                max_connections: DEFAULT_MAX_CONNECTIONS,
                max_consumers_per_channel: None,
                tcp_nodelay: true,
                unix_path: None,
                tcp_proxy_protocol: false,
                tls_proxy_protocol: false,
                unix_proxy_protocol: false,
            },
            mgmt: MgmtConfig {
                bind: "127.0.0.1".into(),
                port: Some(DEFAULT_HTTP_PORT),
                tls_port: None,
                metrics_bind: "127.0.0.1".into(),
                metrics_port: Some(DEFAULT_METRICS_PORT),
                unix_path: None,
                control_unix_path: Some(DEFAULT_CONTROL_UNIX_PATH.into()),
            },
            clustering: ClusteringConfig {
                enabled: false,
                bind: "127.0.0.1".into(),
                port: DEFAULT_CLUSTERING_PORT,
                etcd_endpoints: vec!["localhost:2379".into()],
                etcd_prefix: "ringmq".into(),
                advertised_uri: None,
                min_isr: 1,
            },
            mqtt: MqttConfig::default(),
            sni: Vec::new(),
            warnings: Vec::new(),
        }
    }
}

impl Config {
    /// Builds the configuration from the arguments after the program name: reads the
    /// file named by the last `-c/--config`, then applies the flags in order. No
    /// environment variable is read (see [`Config::from_args_and_env`]).
    pub fn from_args<I: IntoIterator<Item = String>>(args: I) -> Result<Config, ConfigError> {
        Self::from_args_and_env(args, std::iter::empty())
    }

    /// As [`Config::from_args`], with the variables of [`env`] (the process's
    /// environment, given by `main`) applied after the file and before the flags.
    pub fn from_args_and_env<I, E>(args: I, env_vars: E) -> Result<Config, ConfigError>
    where
        I: IntoIterator<Item = String>,
        E: IntoIterator<Item = (String, String)>,
    {
        let given = flags::tokenize(args).map_err(|e| match e {
            TokenError::Unknown(f) => ConfigError::UnknownFlag(f),
            TokenError::MissingValue(f) => ConfigError::MissingFlagValue(f),
            TokenError::UnexpectedValue(f) => ConfigError::UnexpectedFlagValue(f),
        })?;
        // Help and version win over everything, even over a broken config file.
        for g in &given {
            match g.flag.action {
                Action::Help => return Err(ConfigError::HelpRequested),
                Action::Version => return Err(ConfigError::VersionRequested),
                Action::PrintExample => return Err(ConfigError::ExampleRequested),
                _ => {}
            }
        }
        let mut cfg = Config::default();
        // The last -c wins, like any repeated flag.
        let file = given
            .iter()
            .filter(|g| matches!(g.flag.action, Action::Config))
            .rev()
            .find_map(|g| g.value.as_ref());
        if let Some(path) = file {
            let path = Path::new(path);
            let text = std::fs::read_to_string(path).map_err(|source| ConfigError::ReadFile {
                path: path.to_owned(),
                source,
            })?;
            cfg.apply_ini(&text, path)?;
        }
        env::apply(&mut cfg, env_vars)?;
        for g in &merge_repeated_binds(&given) {
            cfg.apply_flag(g)?;
        }
        cfg.validate()?;
        let tls_files = cfg.main.tls_cert_path.is_some() || cfg.main.tls_key_path.is_some() || !cfg.sni.is_empty();
        if tls_files && cfg.amqp.tls_port.is_none() && cfg.mgmt.tls_port.is_none() {
            // LavinMQ listens on 5671 once a certificate is set; ringmq listens
            // only where asked, and says so rather than stay silent.
            cfg.warnings
                .push("tls_cert/tls_key are set but no TLS port is (--amqps-port): nothing listens with TLS".into());
        }
        Ok(cfg)
    }

    /// The `--help` text.
    pub fn help_text() -> String {
        let mut out = flags::help_text();
        out.push_str("\nEnvironment (applied after the config file, before the flags):\n");
        for (var, meaning) in env::VARS {
            out.push_str(&format!("  {var:<40} {meaning}\n"));
        }
        out
    }

    /// Applies the INI `text`; `path` is only for messages.
    fn apply_ini(&mut self, text: &str, path: &Path) -> Result<(), ConfigError> {
        let items = ini::parse(text).map_err(|e| ConfigError::Syntax {
            path: path.to_owned(),
            line: e.line,
            message: e.message.into(),
        })?;
        // None while inside a section we skip.
        let mut section = None;
        // Inside an `[sni:HOST]` section: its index in `self.sni`.
        let mut sni_at: Option<usize> = None;
        for item in items {
            match item {
                ini::Item::Section { line, name } => {
                    sni_at = None;
                    section = None;
                    match name.strip_prefix("sni:") {
                        Some(host) => sni_at = Some(sni::section(self, host, line, path)?),
                        None => section = self.section_named(name, line, path)?,
                    }
                }
                ini::Item::Pair { line, key, value } => {
                    if let Some(at) = sni_at {
                        sni::set(self, at, key, value, line, path)?;
                        continue;
                    }
                    let Some(section) = section else { continue };
                    match keys::set(self, section, key, value) {
                        Ok(Outcome::Applied) => {}
                        Ok(Outcome::UnknownKey) => self.warnings.push(format!(
                            "{}:{line}: unknown key {key} in [{}], ignored",
                            path.display(),
                            section.name()
                        )),
                        Err(reason) => {
                            return Err(ConfigError::BadFileValue {
                                path: path.to_owned(),
                                line,
                                section: section.name(),
                                key: key.to_owned(),
                                value: value.to_owned(),
                                reason,
                            })
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// Maps a section header to a [`Section`], `None` for LavinMQ sections that ringmq
    /// does not implement (skipped with a warning, so a LavinMQ file still loads), or
    /// an error for anything else, as LavinMQ raises on an unknown section: a typo such
    /// as `[ampq]` must not silently drop every setting under it.
    fn section_named(&mut self, name: &str, line: usize, path: &Path) -> Result<Option<Section>, ConfigError> {
        let syntax = |message: String| ConfigError::Syntax {
            path: path.to_owned(),
            line,
            message,
        };
        match name {
            "main" => Ok(Some(Section::Main)),
            "amqp" => Ok(Some(Section::Amqp)),
            "mgmt" | "http" => Ok(Some(Section::Mgmt)),
            "clustering" => Ok(Some(Section::Clustering)),
            "mqtt" => Ok(Some(Section::Mqtt)),
            "oauth" | "experimental" => {
                self.warnings.push(format!(
                    "{}:{line}: [{name}] is not supported by ringmq, ignored",
                    path.display()
                ));
                Ok(None)
            }
            "replication" => Err(syntax("[replication] is replaced by [clustering]".into())),
            _ => Err(syntax(format!("unknown section [{name}]"))),
        }
    }

    fn apply_flag(&mut self, g: &flags::Given) -> Result<(), ConfigError> {
        let bad = |value: &str, reason: String| ConfigError::BadFlagValue {
            flag: g.spelled.clone(),
            value: value.to_owned(),
            reason,
        };
        let (targets, value): (&[(Section, &str)], &str) = match (&g.flag.action, &g.value) {
            (Action::Set(targets), Some(value)) => (targets, value),
            (Action::Switch(section, key, fixed), _) => {
                keys::set(self, *section, key, fixed).map_err(|r| bad(fixed, r))?;
                return Ok(());
            }
            // -c was read before the file; help and version returned early; tokenize
            // guarantees Set flags have a value.
            _ => return Ok(()),
        };
        for (section, key) in targets {
            let outcome = keys::set(self, *section, key, value).map_err(|r| bad(value, r))?;
            assert_eq!(outcome, Outcome::Applied, "flag {} names unknown key {key}", g.spelled);
        }
        Ok(())
    }

    /// Refuses settings that are parsed but not implemented yet, when they are set
    /// to anything but their default: a user who asks for TLS must not get plain
    /// text and no word (issue 15). `main` calls it before starting; parsing alone
    /// accepts them, so a LavinMQ file can still be checked and printed.
    pub fn refuse_unimplemented(&self) -> Result<(), ConfigError> {
        let mut set: Vec<&str> = Vec::new();
        if self.clustering.enabled && self.main.shards > 1 {
            set.push("[clustering] with more than one shard (--shards): a clustered node runs one shard for now");
        }
        if self.clustering.enabled && self.main.io == IoBackend::Uring {
            set.push(
                "[clustering] with --io=uring: a clustered node runs the epoll backend for now (--io=auto picks it)",
            );
        }
        if matches!(self.main.default_password, DefaultPassword::Hash(_)) {
            set.push(
                "default_password_hash (--default-password-hash): give the password in clear (--default-password)",
            );
        }
        if set.is_empty() {
            return Ok(());
        }
        Err(ConfigError::NotImplemented(set.join("; ")))
    }
}
