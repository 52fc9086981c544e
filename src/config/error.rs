//! Why there is no configuration to run with, and the exit code for each case.

use std::path::PathBuf;

use super::Config;

/// Why there is no config to run with. [`ConfigError::exit_code`] says how to exit.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// `-h/--help`: not a failure; print this error (the help text) to stdout.
    #[error("{}", Config::help_text())]
    HelpRequested,
    /// `-v/--version`: not a failure; print this error to stdout.
    #[error("ringmq {}", env!("CARGO_PKG_VERSION"))]
    VersionRequested,
    /// `--print-config-example`: not a failure; print this error (the example
    /// `ringmq.ini`, without its last newline) to stdout.
    #[error("{}", super::example::text().trim_end())]
    ExampleRequested,
    #[error("no data directory: pass -D/--data-dir DIR or set data_dir in [main] of the config file")]
    MissingDataDir,
    #[error("unknown option {0}; see --help")]
    UnknownFlag(String),
    #[error("option {0} needs a value")]
    MissingFlagValue(String),
    #[error("option {0} takes no value")]
    UnexpectedFlagValue(String),
    #[error("invalid value {value:?} for {flag}: {reason}")]
    BadFlagValue {
        flag: String,
        value: String,
        reason: String,
    },
    #[error("cannot read config file {}: {source}", path.display())]
    ReadFile { path: PathBuf, source: std::io::Error },
    #[error("{}:{line}: {message}", path.display())]
    Syntax {
        path: PathBuf,
        line: usize,
        message: String,
    },
    #[error("{}:{line}: invalid value {value:?} for {key} in [{section}]: {reason}", path.display())]
    BadFileValue {
        path: PathBuf,
        line: usize,
        section: &'static str,
        key: String,
        value: String,
        reason: String,
    },
    #[error("invalid value {value:?} for the environment variable {var}: {reason}")]
    BadEnv { var: String, value: String, reason: String },
    #[error("not implemented yet, so refused rather than ignored: {0}")]
    NotImplemented(String),
    /// Settings that are each fine but do not fit together.
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

impl ConfigError {
    /// 0 for help, version and the example file, 2 (usage error, as LavinMQ
    /// exits) for the rest.
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::HelpRequested | Self::VersionRequested | Self::ExampleRequested => 0,
            _ => 2,
        }
    }
}
