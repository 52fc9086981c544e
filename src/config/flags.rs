//! The settings table: one table that parses the flags, prints `--help`, says
//! which INI keys exist, and writes the example `ringmq.ini`.
//!
//! Each row is a flag, an INI key, or both (most rows). A row documents the INI
//! key it sets when it sets exactly one (a [`Action::Set`] with one target, or an
//! [`Action::Key`] row for a key whose flag is a switch, such as `sync` for
//! `--no-sync`); [`super::keys::set`] accepts only keys documented here, so a key
//! cannot exist without its default and meaning in `--help` and the example file.
//!
//! Flag names are LavinMQ's where LavinMQ has the setting as a flag
//! (`Config#parse` in `src/lavinmq/config.cr`); the rest are ringmq's, named after
//! the INI key with `_` turned into `-`. Every flag that sets a value goes through
//! [`super::keys::set`] with the key it stands for, so flags and the file can
//! never parse the same setting differently.

use super::Section;

/// What a flag does.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Action {
    /// Takes a value and sets each of these keys to it (`-b` sets two).
    Set(&'static [(Section, &'static str)]),
    /// Takes no value; sets the key to the fixed value.
    Switch(Section, &'static str, &'static str),
    /// Not a flag: an INI key whose flag is a [`Action::Switch`] (`sync`,
    /// `enabled`), documented in its own row.
    Key(Section, &'static str),
    Config,
    Help,
    Version,
    /// Print the example INI file.
    PrintExample,
}

/// One row of the table: a flag, an INI key, or both.
#[derive(Debug)]
pub(crate) struct Flag {
    pub short: Option<char>,
    /// Empty for an [`Action::Key`] row, which has no flag.
    pub long: &'static str,
    /// Placeholder for the value in `--help`; empty for switches.
    pub metavar: &'static str,
    /// One line: `--help` and the example file both show it.
    pub help: &'static str,
    /// The default as it would be written on the command line or in the file. A
    /// test checks that applying it to a default config changes nothing, so
    /// `--help` and the example cannot drift.
    pub default: Option<&'static str>,
    pub action: Action,
    /// Other places the INI file accepts this key (LavinMQ's older names and
    /// sections), with the same meaning.
    pub aliases: &'static [(Section, &'static str)],
    /// Parsed and checked but not acted on yet: why. `--help` and the example say
    /// so, and the example leaves the key commented out.
    pub not_yet: Option<&'static str>,
    /// The value the example file shows for a key without a default (`data_dir`).
    pub example: Option<&'static str>,
}

impl Flag {
    /// False for [`Action::Key`] rows, which exist only in the INI file.
    pub fn is_flag(&self) -> bool {
        !matches!(self.action, Action::Key(..))
    }

    /// The INI key this row documents, if it sets exactly one.
    pub fn ini_key(&self) -> Option<(Section, &'static str)> {
        match self.action {
            Action::Set(&[one]) => Some(one),
            Action::Key(section, key) => Some((section, key)),
            _ => None,
        }
    }

    pub(super) const fn aliases(mut self, aliases: &'static [(Section, &'static str)]) -> Flag {
        self.aliases = aliases;
        self
    }

    pub(super) const fn not_yet(mut self, why: &'static str) -> Flag {
        self.not_yet = Some(why);
        self
    }

    pub(super) const fn example(mut self, value: &'static str) -> Flag {
        self.example = Some(value);
        self
    }
}

use Section::{Amqp, Clustering, Main, Mqtt};

// The rows of the listeners and TLS: `flags_tls.rs` (this file's length).

pub(super) const fn flag(
    short: Option<char>,
    long: &'static str,
    metavar: &'static str,
    help: &'static str,
    default: Option<&'static str>,
    action: Action,
) -> Flag {
    Flag {
        short,
        long,
        metavar,
        help,
        default,
        action,
        aliases: &[],
        not_yet: None,
        example: None,
    }
}

/// A row for an INI key that has no flag of its own.
pub(super) const fn key(section: Section, key: &'static str, help: &'static str, default: &'static str) -> Flag {
    flag(None, "", "", help, Some(default), Action::Key(section, key))
}

/// Groups for `--help`, in order; each flag below belongs to the group it follows.
pub(crate) const FLAGS: &[(&str, &[Flag])] = &[
    (
        "Options",
        &[
            flag(
                Some('c'),
                "config",
                "FILE",
                "Config file (INI format)",
                None,
                Action::Config,
            ),
            flag(
                Some('D'),
                "data-dir",
                "DIR",
                "Data directory, required (-D/--data-dir or data_dir in [main])",
                None,
                Action::Set(&[(Main, "data_dir")]),
            )
            .example("/var/lib/ringmq"),
            flag(
                Some('l'),
                "log-level",
                "LEVEL",
                "Log level: error, warn, info, debug, trace",
                Some("info"),
                Action::Set(&[(Main, "log_level")]),
            ),
            flag(
                Some('d'),
                "debug",
                "",
                "Verbose logging (same as --log-level=debug)",
                None,
                Action::Switch(Main, "log_level", "debug"),
            ),
            flag(
                None,
                "log-format",
                "FORMAT",
                "Log lines as text, or as one JSON object per line for log collectors",
                Some("text"),
                Action::Set(&[(Main, "log_format")]),
            ),
            flag(
                None,
                "default-user",
                "USER",
                "Default user, created at first start",
                Some("guest"),
                Action::Set(&[(Main, "default_user")]),
            ),
            flag(
                None,
                "default-password",
                "PASSWORD",
                "Default user's password, in clear (LavinMQ's deprecated option of this name took a hash)",
                Some("guest"),
                Action::Set(&[(Main, "default_password")]),
            ),
            flag(
                None,
                "default-password-hash",
                "HASH",
                "Default user's password as a LavinMQ/RabbitMQ password hash",
                None,
                Action::Set(&[(Main, "default_password_hash")]),
            )
            .not_yet("give the password in clear (--default-password)"),
            flag(
                None,
                "default-user-only-loopback",
                "BOOL",
                "Allow the default user to connect only from loopback",
                Some("true"),
                Action::Set(&[(Main, "default_user_only_loopback")]),
            )
            .aliases(&[(Main, "guest_only_loopback")]),
            flag(
                None,
                "segment-size",
                "BYTES",
                "Size of a message segment file",
                Some("8MiB"),
                Action::Set(&[(Main, "segment_size")]),
            ),
            flag(
                None,
                "free-disk-min",
                "BYTES",
                "Block publishers below this much free disk; 0 = 2 x segment size",
                Some("0"),
                Action::Set(&[(Main, "free_disk_min")]),
            ),
            flag(
                None,
                "memory-high-watermark",
                "LIMIT",
                "Block publishers while the broker's RSS is at or above this: a fraction of RAM (0.4) or bytes (512MiB)",
                Some("0.4"),
                Action::Set(&[(Main, "memory_high_watermark")]),
            ),
            flag(
                None,
                "no-sync",
                "",
                "Confirm without waiting for fsync (unsafe: confirmed messages can be lost on power loss)",
                None,
                Action::Switch(Main, "sync", "false"),
            ),
            key(
                Main,
                "sync",
                "Fsync before confirming persistent messages; false (--no-sync) can lose confirmed messages on power loss",
                "true",
            ),
            flag(
                None,
                "io",
                "BACKEND",
                "Transport: uring, epoll or auto (uring if the kernel allows it)",
                Some("auto"),
                Action::Set(&[(Main, "io")]),
            ),
            flag(
                None,
                "consumer-timeout",
                "MS",
                "Close a channel whose delivery stays unacked this many ms; 0 = off",
                Some("0"),
                Action::Set(&[(Main, "consumer_timeout")]),
            ),
            flag(
                None,
                "default-stream-offset",
                "WHERE",
                "Where a stream consumer without x-stream-offset starts: next (RabbitMQ's), first (LavinMQ's) or last",
                Some("next"),
                Action::Set(&[(Main, "default_stream_offset")]),
            ),
            flag(
                None,
                "load-definitions",
                "FILE",
                "Import this definitions JSON (RabbitMQ format) at every start",
                None,
                Action::Set(&[(Main, "load_definitions")]),
            ),
            flag(
                None,
                "shards",
                "N",
                "Number of shard threads, one broker loop each (queues are spread over them by name; work for another shard's queue crosses threads, and until connections move to their queues' shard 2 shards are slower than 1 for most loads: docs/shards.md)",
                Some("1"),
                Action::Set(&[(Main, "shards")]),
            ),
        ],
    ),
    ("Bindings & TLS", super::flags_tls::BINDINGS_AND_TLS),
    (
        "AMQP limits",
        &[
            flag(
                None,
                "heartbeat",
                "SECS",
                "Heartbeat interval in seconds proposed to clients, 0 disables",
                Some("60"),
                Action::Set(&[(Amqp, "heartbeat")]),
            ),
            flag(
                None,
                "handshake-timeout",
                "MS",
                "A connection must finish the AMQP handshake within this (ms), or is closed",
                Some("10000"),
                Action::Set(&[(Amqp, "handshake_timeout")]),
            ),
            flag(
                None,
                "frame-max",
                "BYTES",
                "Largest frame, at least 4096",
                Some("131072"),
                Action::Set(&[(Amqp, "frame_max")]),
            ),
            flag(
                None,
                "channel-max",
                "N",
                "Most channels per connection, 1..=65535",
                Some("2047"),
                Action::Set(&[(Amqp, "channel_max")]),
            ),
            flag(
                None,
                "max-message-size",
                "BYTES",
                "Largest message body",
                Some("128MiB"),
                Action::Set(&[(Amqp, "max_message_size")]),
            ),
            flag(
                None,
                "max-connections",
                "N",
                "Most client connections; more are refused at accept",
                Some("65535"),
                Action::Set(&[(Amqp, "max_connections")]),
            ),
            flag(
                None,
                "max-consumers-per-channel",
                "N",
                "Most consumers per channel, 0 = no limit",
                Some("0"),
                Action::Set(&[(Amqp, "max_consumers_per_channel")]),
            ),
            flag(
                None,
                "tcp-nodelay",
                "BOOL",
                "Disable Nagle's algorithm on client sockets",
                Some("true"),
                Action::Set(&[(Amqp, "tcp_nodelay")]),
            )
            .aliases(&[(Main, "tcp_nodelay")]),
        ],
    ),
    (
        "MQTT",
        &[
            flag(
                None,
                "mqtt-bind",
                "ADDR",
                "Addresses the MQTT server listens on (a list, or repeat the flag)",
                Some("127.0.0.1"),
                Action::Set(&[(Mqtt, "bind")]),
            ),
            flag(
                None,
                "mqtt-port",
                "PORT",
                "MQTT port (0 = any free port), -1 disables",
                Some("1883"),
                Action::Set(&[(Mqtt, "port")]),
            ),
            flag(
                None,
                "mqtt-exchange",
                "NAME",
                "The exchange MQTT clients publish to and subscribe on (topic / is routing key .)",
                Some("amq.topic"),
                Action::Set(&[(Mqtt, "exchange")]),
            ),
            flag(
                None,
                "mqtt-vhost",
                "VHOST",
                "The vhost of an MQTT user name without vhost: in front",
                Some("/"),
                Action::Set(&[(Mqtt, "vhost")]),
            )
            .aliases(&[(Mqtt, "default_vhost")]),
            flag(
                None,
                "mqtt-max-packet-size",
                "BYTES",
                "Largest MQTT packet from a connected client (64KiB before CONNECT is accepted)",
                Some("268435460"),
                Action::Set(&[(Mqtt, "max_packet_size")]),
            ),
            flag(
                None,
                "mqtt-keepalive-max",
                "SECS",
                "Largest keepalive an MQTT client may ask for; more is refused (CONNACK 2), 0 = no limit",
                Some("65535"),
                Action::Set(&[(Mqtt, "keepalive_max")]),
            ),
        ],
    ),
    (
        "Clustering",
        &[
            flag(
                None,
                "clustering",
                "",
                "Enable clustering",
                None,
                Action::Switch(Clustering, "enabled", "true"),
            ),
            key(Clustering, "enabled", "Enable clustering (--clustering)", "false"),
            flag(
                None,
                "clustering-bind",
                "ADDR",
                "Listen for clustering followers on this address",
                Some("127.0.0.1"),
                Action::Set(&[(Clustering, "bind")]),
            ),
            flag(
                None,
                "clustering-port",
                "PORT",
                "Listen for clustering followers on this port",
                Some("5679"),
                Action::Set(&[(Clustering, "port")]),
            ),
            flag(
                None,
                "clustering-etcd-endpoints",
                "URIS",
                "Comma-separated etcd host:port pairs",
                Some("localhost:2379"),
                Action::Set(&[(Clustering, "etcd_endpoints")]),
            ),
            flag(
                None,
                "clustering-etcd-prefix",
                "KEY",
                "Key prefix used in etcd",
                Some("ringmq"),
                Action::Set(&[(Clustering, "etcd_prefix")]),
            ),
            flag(
                None,
                "clustering-advertised-uri",
                "URI",
                "URI followers use to reach this node (default: tcp://HOSTNAME:PORT)",
                None,
                Action::Set(&[(Clustering, "advertised_uri")]),
            ),
            flag(
                None,
                "clustering-min-isr",
                "N",
                "Confirm only while this many nodes, the leader included, are in sync (1: the leader alone)",
                Some("1"),
                Action::Set(&[(Clustering, "min_isr")]),
            ),
        ],
    ),
    (
        "Miscellaneous",
        &[
            flag(Some('v'), "version", "", "Show version", None, Action::Version),
            flag(Some('h'), "help", "", "Show this help", None, Action::Help),
            flag(
                None,
                "print-config-example",
                "",
                "Print an example ringmq.ini with every key, its default and meaning",
                None,
                Action::PrintExample,
            ),
        ],
    ),
];

/// Every row, flags and INI-only keys.
pub(crate) fn all() -> impl Iterator<Item = &'static Flag> {
    FLAGS.iter().flat_map(|(_, flags)| flags.iter())
}

/// The rows that are command-line flags.
pub(crate) fn flags() -> impl Iterator<Item = &'static Flag> {
    all().filter(|f| f.is_flag())
}

/// The row that documents INI key `key` of `section`, as its key or an alias.
pub(crate) fn documenting(section: Section, key: &str) -> Option<&'static Flag> {
    all().find(|f| f.ini_key() == Some((section, key)) || f.aliases.iter().any(|&(s, k)| s == section && k == key))
}

// Splitting the arguments and printing `--help` are in `args.rs` (this file
// is the table).
pub(crate) use super::args::{help_text, tokenize, Given, TokenError};
