//! TLS configuration shared by the listeners that speak it (AMQPS in `io`,
//! HTTPS in `http`): the certificate chain and key read and checked once at
//! start, the protocol versions and cipher suites chosen, and the log line for
//! connections that fail their handshake. How a connection runs TLS is its
//! listener's business: the AMQP backends drive rustls over their own buffers
//! (`io::tls`), the HTTP server uses `tokio-rustls` under hyper.
//!
//! The crypto provider is rustls's `ring` one. aws-lc-rs (rustls's default)
//! would build here too (on x86_64 Linux it needs only a C compiler), but ring is
//! a fraction of the C to compile on these 2-core machines, and was already in
//! the lock file. What it lacks is the post-quantum hybrid key exchange
//! (X25519MLKEM768) that rustls offers only with aws-lc-rs: clients get X25519,
//! P-256 or P-384.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::ServerConfig;

use crate::config::TlsVersion;

/// What a TLS listener needs from the configuration.
#[derive(Debug, Clone)]
pub struct TlsSettings {
    /// PEM: the certificate first, then its chain.
    pub cert_path: std::path::PathBuf,
    /// PEM: PKCS#8, PKCS#1 (RSA) or SEC1 (EC); RSA, ECDSA or Ed25519.
    pub key_path: std::path::PathBuf,
    pub min_version: TlsVersion,
    /// rustls's suite names (`config::CIPHER_SUITES`), in preference order; empty: all.
    pub ciphers: Vec<String>,
}

/// A listener's TLS configuration, loaded once at start (certificate and key
/// read and checked against each other) and shared by its connections.
#[derive(Clone)]
pub struct TlsAcceptor {
    config: Arc<ServerConfig>,
}

impl std::fmt::Debug for TlsAcceptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TlsAcceptor(..)")
    }
}

impl TlsAcceptor {
    /// Reads the certificate chain and key and builds the rustls configuration;
    /// the error names the file and what is wrong with it.
    pub fn load(s: &TlsSettings) -> Result<TlsAcceptor, String> {
        let certs = read_certs(&s.cert_path)?;
        let key = PrivateKeyDer::from_pem_file(&s.key_path)
            .map_err(|e| format!("TLS key {}: {}", s.key_path.display(), pem_error(e)))?;
        let provider = provider(&s.ciphers)?;
        let versions: &[&rustls::SupportedProtocolVersion] = match s.min_version {
            TlsVersion::V1_2 => &[&rustls::version::TLS13, &rustls::version::TLS12],
            TlsVersion::V1_3 => &[&rustls::version::TLS13],
        };
        let mut config = ServerConfig::builder_with_provider(Arc::new(provider))
            .with_protocol_versions(versions)
            .map_err(|e| format!("TLS settings: {e}"))?
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .map_err(|e| {
                format!(
                    "TLS certificate {} and key {}: {e}",
                    s.cert_path.display(),
                    s.key_path.display()
                )
            })?;
        // `tls_ciphers` is the server's order of preference, as OpenSSL's
        // cipher list is for LavinMQ and RabbitMQ (`honor_cipher_order`).
        config.ignore_client_order = !s.ciphers.is_empty();
        Ok(TlsAcceptor {
            config: Arc::new(config),
        })
    }

    /// The rustls configuration every connection of the listener shares.
    pub fn config(&self) -> Arc<ServerConfig> {
        Arc::clone(&self.config)
    }

    /// The same certificate and settings, offering these ALPN protocols
    /// (`http/1.1` on the HTTPS listener; AMQP has no registered ALPN id).
    pub fn with_alpn(&self, protocols: &[&[u8]]) -> TlsAcceptor {
        let mut config = (*self.config).clone();
        config.alpn_protocols = protocols.iter().map(|p| p.to_vec()).collect();
        TlsAcceptor {
            config: Arc::new(config),
        }
    }
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("TLS certificate {}: {}", path.display(), pem_error(e)))?;
    if certs.is_empty() {
        return Err(format!(
            "TLS certificate {}: no CERTIFICATE block in the file (PEM expected)",
            path.display()
        ));
    }
    Ok(certs)
}

fn pem_error(e: rustls::pki_types::pem::Error) -> String {
    use rustls::pki_types::pem::Error;
    match e {
        Error::Io(e) => e.to_string(),
        Error::NoItemsFound => "no private key in the file (PEM expected)".into(),
        other => format!("not a valid PEM file ({other:?})"),
    }
}

/// The ring provider with the chosen suites, in the chosen order.
fn provider(ciphers: &[String]) -> Result<CryptoProvider, String> {
    let mut p = rustls::crypto::ring::default_provider();
    if ciphers.is_empty() {
        return Ok(p);
    }
    let all = std::mem::take(&mut p.cipher_suites);
    for name in ciphers {
        let suite = all
            .iter()
            .find(|s| s.suite().as_str() == Some(name.as_str()))
            .ok_or_else(|| format!("cipher suite {name} is not offered by this build's TLS library"))?;
        p.cipher_suites.push(*suite);
    }
    Ok(p)
}

/// A refused or failed TLS connection: one DEBUG line each, and an INFO line
/// at most every [`FAILURE_INFO_EVERY_MS`] with how many were not logged at
/// INFO since, so that a scan or a flood of plain-text clients on the TLS port
/// is seen without flooding the log.
pub fn log_failure(peer: Option<std::net::SocketAddr>, why: &str) {
    static LAST_INFO_MS: AtomicU64 = AtomicU64::new(0);
    static NOT_LOGGED: AtomicU64 = AtomicU64::new(0);
    let peer = peer.map(|p| p.to_string()).unwrap_or_else(|| "?".into());
    tracing::debug!(%peer, error = why, "TLS connection failed");
    let now = crate::sys::now_ms();
    let last = LAST_INFO_MS.load(Ordering::Relaxed);
    if last != 0 && now.saturating_sub(last) < FAILURE_INFO_EVERY_MS {
        NOT_LOGGED.fetch_add(1, Ordering::Relaxed);
        return;
    }
    LAST_INFO_MS.store(now, Ordering::Relaxed);
    let before = NOT_LOGGED.swap(0, Ordering::Relaxed);
    tracing::info!(
        %peer,
        error = why,
        failures_not_logged_before = before,
        "TLS connection failed (one line per 10 s at this level; all at debug)"
    );
}

const FAILURE_INFO_EVERY_MS: u64 = 10_000;
