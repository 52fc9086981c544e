//! The value types of the configuration: memory watermark, log level and
//! format, io backend, the default user's password, INI sections.

use std::fmt;
use std::str::FromStr;

/// A memory limit: a fraction of the machine's RAM, or bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemWatermark {
    /// Thousandths of total RAM (0.4 is 400).
    PerMille(u32),
    /// An absolute RSS limit.
    Bytes(u64),
}

impl MemWatermark {
    /// The limit in bytes on a machine with `ram_bytes` of RAM.
    pub fn bytes(self, ram_bytes: u64) -> u64 {
        match self {
            MemWatermark::PerMille(p) => ram_bytes / 1000 * u64::from(p),
            MemWatermark::Bytes(b) => b,
        }
    }
}

/// Log verbosity. LavinMQ's Crystal severities map onto these: `notice` is `info`,
/// `fatal` is `error`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    Error,
    Warn,
    Info,
    Debug,
    Trace,
}

impl LogLevel {
    /// The name `tracing_subscriber::EnvFilter` understands.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Error => "error",
            Self::Warn => "warn",
            Self::Info => "info",
            Self::Debug => "debug",
            Self::Trace => "trace",
        }
    }
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

impl FromStr for LogFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "text" => Ok(Self::Text),
            "json" => Ok(Self::Json),
            _ => Err("expected text or json".into()),
        }
    }
}

impl FromStr for LogLevel {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "error" | "fatal" => Ok(Self::Error),
            "warn" | "warning" => Ok(Self::Warn),
            "info" | "notice" => Ok(Self::Info),
            "debug" => Ok(Self::Debug),
            "trace" => Ok(Self::Trace),
            _ => Err("expected error, warn, info, debug or trace".into()),
        }
    }
}

/// Which transport backend serves AMQP sockets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IoBackend {
    /// io_uring if the kernel lets us set up a ring, else epoll. Docker's default
    /// seccomp profile blocks io_uring, so "auto" must be able to fall back.
    Auto,
    Uring,
    /// The `tokio::net` backend.
    Epoll,
}

impl FromStr for IoBackend {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "auto" => Ok(Self::Auto),
            "uring" | "io_uring" | "io-uring" => Ok(Self::Uring),
            "epoll" => Ok(Self::Epoll),
            _ => Err("expected uring, epoll or auto".into()),
        }
    }
}

/// The default user's password, as given.
#[derive(Clone, PartialEq, Eq)]
pub enum DefaultPassword {
    /// `--default-password`/`default_password`: in clear. LavinMQ's deprecated key of
    /// this name held a hash; such a file fails closed here (the hash is the password).
    Plain(String),
    /// `--default-password-hash`/`default_password_hash`: a LavinMQ/RabbitMQ password
    /// hash (base64 of salt and SHA-256), checked by the auth module.
    Hash(String),
}

impl fmt::Debug for DefaultPassword {
    // Configs get logged; passwords must not be.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Plain(_) => f.write_str("Plain(<redacted>)"),
            Self::Hash(_) => f.write_str("Hash(<redacted>)"),
        }
    }
}

/// An INI section that holds ringmq settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Section {
    Main,
    Amqp,
    Mgmt,
    Clustering,
    Mqtt,
}

impl Section {
    pub fn name(self) -> &'static str {
        match self {
            Self::Main => "main",
            Self::Amqp => "amqp",
            Self::Mgmt => "mgmt",
            Self::Clustering => "clustering",
            Self::Mqtt => "mqtt",
        }
    }
}
