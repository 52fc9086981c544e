//! Why a TLS configuration could not be loaded: each case names the file and
//! what is wrong with it, so that the start (exit 2) or a SIGHUP reload (the
//! old configuration stays) can say it in one line.

use std::path::PathBuf;

/// What a file is for, in messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileRole {
    /// `tls_cert` (or an `[sni:HOST]` section's).
    Certificate,
    /// `tls_key`.
    Key,
    /// `tls_ca_cert`: the CAs client certificates are verified against.
    CaBundle,
}

impl std::fmt::Display for FileRole {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Certificate => "TLS certificate",
            Self::Key => "TLS key",
            Self::CaBundle => "TLS CA bundle (tls_ca_cert)",
        })
    }
}

/// Why [`super::TlsAcceptor::load`] or [`super::TlsAcceptor::reload`] failed.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{role} {}: {why}", path.display())]
    File { role: FileRole, path: PathBuf, why: String },
    #[error("TLS certificate {} and key {}: {source}", cert.display(), key.display())]
    KeyMismatch {
        cert: PathBuf,
        key: PathBuf,
        source: rustls::Error,
    },
    #[error("[sni:{host}] certificate {}: {source}", cert.display())]
    SniName {
        host: String,
        cert: PathBuf,
        source: rustls::Error,
    },
    #[error("TLS CA bundle (tls_ca_cert) {}: {why}", path.display())]
    Verifier { path: PathBuf, why: String },
    #[error("cipher suite {0} is not offered by this build's TLS library")]
    UnknownSuite(String),
    #[error("TLS settings: {0}")]
    Settings(rustls::Error),
}

impl TlsError {
    pub(super) fn file(role: FileRole, path: &std::path::Path, why: impl Into<String>) -> TlsError {
        TlsError::File {
            role,
            path: path.to_owned(),
            why: why.into(),
        }
    }
}
