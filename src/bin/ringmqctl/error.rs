//! What can go wrong, sorted by whose fault it is, and the exit code for each.

use std::fmt;

/// Exit codes (documented in `--help`): sysexits.h where one fits.
pub const EXIT_OK: i32 = 0;
pub const EXIT_ERROR: i32 = 1;
pub const EXIT_USAGE: i32 = 2;
/// EX_UNAVAILABLE: the API could not be reached (refused, DNS, timeout, reset).
pub const EXIT_UNAVAILABLE: i32 = 69;

#[derive(Debug)]
pub enum CtlError {
    /// The command line is wrong: unknown command or option, wrong arity, bad JSON
    /// argument.
    Usage(String),
    /// The server answered with a non-2xx status.
    Api {
        status: u16,
        error: String,
        reason: String,
        body: String,
    },
    /// The server could not be reached or the connection broke.
    Unavailable(String),
    /// Anything else: a local file, a reply we cannot read.
    Other(String),
}

impl CtlError {
    pub fn exit_code(&self) -> i32 {
        match self {
            CtlError::Usage(_) => EXIT_USAGE,
            CtlError::Unavailable(_) => EXIT_UNAVAILABLE,
            CtlError::Api { .. } | CtlError::Other(_) => EXIT_ERROR,
        }
    }
}

impl fmt::Display for CtlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CtlError::Usage(m) => write!(f, "{m}"),
            CtlError::Api {
                status, error, reason, ..
            } => {
                write!(f, "HTTP {status}")?;
                if !error.is_empty() {
                    write!(f, ": {error}")?;
                }
                if !reason.is_empty() && reason != error {
                    write!(f, ": {reason}")?;
                }
                Ok(())
            }
            CtlError::Unavailable(m) | CtlError::Other(m) => write!(f, "{m}"),
        }
    }
}
